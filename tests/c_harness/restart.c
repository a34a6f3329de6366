/* restart.c: persistent connections across a dc_server restart.
 *
 * usage: restart <address>
 *
 * Handshake with the test driver: once every ctx is connected this prints
 * "READY restart" on stdout and waits for a line on stdin; the driver kills
 * dc_server, starts a new one on the same address and writes "go".
 *
 * Proves:
 * - PERSISTENT|RETRY (and RETRY|LATE): the first operation after the
 *   restart reconnects and succeeds transparently, for each kind of
 *   operation (add, get, has, remove each tried first on its own ctx).
 * - PERSISTENT without RETRY: that first operation fails (has -> -1), and
 *   the next one reconnects and succeeds (the original failed forever).
 * - flags 0: unaffected, every operation has its own connection.
 * - The sessions stored before the restart are gone (a new server). */
#include <distcache/dc_client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static const unsigned char sess[] = "a session of some forty bytes or so....";

static unsigned int mkid(unsigned char *id, const char *name)
{
	return (unsigned int)snprintf((char *)id, 64, "restart-%ld-%s",
				      (long)getpid(), name);
}

static void add_ok(DC_CTX *ctx, const char *name)
{
	unsigned char id[64];
	unsigned int len = mkid(id, name);
	CHECK(DC_CTX_add_session(ctx, id, len, sess, sizeof(sess), 60000) == 1,
	      "add %s", name);
}

static int get(DC_CTX *ctx, const char *name)
{
	unsigned char id[64], out[256];
	unsigned int len = mkid(id, name), used = 0;
	int r = DC_CTX_get_session(ctx, id, len, out, sizeof(out), &used);
	if (r == 1)
		CHECK(used == sizeof(sess) && memcmp(out, sess, used) == 0,
		      "get %s: wrong data", name);
	return r;
}

static int has(DC_CTX *ctx, const char *name)
{
	unsigned char id[64];
	unsigned int len = mkid(id, name);
	return DC_CTX_has_session(ctx, id, len);
}

static int rm(DC_CTX *ctx, const char *name)
{
	unsigned char id[64];
	unsigned int len = mkid(id, name);
	return DC_CTX_remove_session(ctx, id, len);
}

static DC_CTX *new_ctx(const char *addr, unsigned int flags)
{
	DC_CTX *ctx = DC_CTX_new(addr, flags);
	CHECK(ctx != NULL, "DC_CTX_new(0x%x)", flags);
	/* Connect now (LATE connects at the first operation). */
	CHECK(has(ctx, "warmup") == 0, "warm-up has on ctx 0x%x", flags);
	return ctx;
}

int main(int argc, char **argv)
{
	const unsigned int P = DC_CTX_FLAG_PERSISTENT;
	const unsigned int R = DC_CTX_FLAG_PERSISTENT_RETRY;
	const unsigned int L = DC_CTX_FLAG_PERSISTENT_LATE;
	DC_CTX *retry_add, *retry_get, *retry_has, *retry_rm, *retry_late;
	DC_CTX *noretry, *noretry_get, *temp;
	const char *addr;

	if (argc != 2) {
		fprintf(stderr, "usage: %s <address>\n", argv[0]);
		return 2;
	}
	addr = argv[1];
	retry_add = new_ctx(addr, P | R);
	retry_get = new_ctx(addr, P | R);
	retry_has = new_ctx(addr, P | R);
	retry_rm = new_ctx(addr, P | R);
	retry_late = new_ctx(addr, P | R | L);
	noretry = new_ctx(addr, P);
	noretry_get = new_ctx(addr, P);
	temp = new_ctx(addr, 0);

	add_ok(retry_add, "before");
	CHECK(get(retry_get, "before") == 1, "get before restart");
	CHECK(has(noretry, "before") == 1, "has before restart");

	await_go("restart");

	/* RETRY: each first operation reconnects and succeeds. */
	add_ok(retry_add, "after");
	CHECK(get(retry_get, "after") == 1, "RETRY: first get after restart");
	CHECK(has(retry_has, "after") == 1, "RETRY: first has after restart");
	CHECK(rm(retry_rm, "after") == 1, "RETRY: first remove after restart");
	CHECK(has(retry_late, "after") == 0,
	      "RETRY|LATE: first has after restart");
	CHECK(has(retry_get, "before") == 0,
	      "a session from before the restart survived");

	/* No RETRY: one failure, then a fresh connection. */
	CHECK(has(noretry, "before") == -1,
	      "no RETRY: first has after restart did not fail");
	CHECK(has(noretry, "before") == 0,
	      "no RETRY: second has after restart did not reconnect");
	add_ok(noretry, "after2");
	CHECK(get(noretry_get, "after2") == 0,
	      "no RETRY: first get after restart did not fail");
	CHECK(get(noretry_get, "after2") == 1,
	      "no RETRY: second get after restart did not reconnect");

	/* flags 0 is unaffected. */
	CHECK(has(temp, "after2") == 1, "flags 0 after restart");

	/* The reconnected ctxs keep working. */
	CHECK(rm(retry_add, "after2") == 1, "remove on retry ctx");
	CHECK(has(retry_late, "after2") == 0, "has on retry|late ctx");

	DC_CTX_free(retry_add);
	DC_CTX_free(retry_get);
	DC_CTX_free(retry_has);
	DC_CTX_free(retry_rm);
	DC_CTX_free(retry_late);
	DC_CTX_free(noretry);
	DC_CTX_free(noretry_get);
	DC_CTX_free(temp);
	printf("restart OK\n");
	return 0;
}
