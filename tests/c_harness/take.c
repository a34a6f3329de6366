/* take.c: DC_CTX_take_session(), as a C program uses it.
 *
 * usage: take <address> <rounds> <processes>
 *
 * 1. A taken session comes back whole, once: a second take, a get and a
 *    has all miss afterwards. A take of an id never stored misses and
 *    leaves *result_used alone.
 * 2. A buffer too small: the take still succeeds (and deletes), says the
 *    full length, and DC_CTX_reget_session() returns the whole session.
 * 3. Bad arguments fail with 0.
 * 4. <rounds> times, <processes> forked processes, each with its own
 *    context, take the same id at the same moment: exactly one gets it. */
#include <distcache/dc_client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef DISTCACHE_HAVE_TAKE_SESSION
#error "dc_client.h does not define DISTCACHE_HAVE_TAKE_SESSION"
#endif

static const char *address;

static void fill(unsigned char *b, unsigned int n, unsigned int seed)
{
	unsigned int i;
	for (i = 0; i < n; i++)
		b[i] = (unsigned char)(seed * 31 + i * 7);
}

static void once_only(DC_CTX *ctx)
{
	unsigned char sess[300], got[400];
	unsigned int used = 0;
	const unsigned char *id = (const unsigned char *)"take-once";

	fill(sess, sizeof(sess), 1);
	CHECK(DC_CTX_add_session(ctx, id, 9, sess, sizeof(sess), 60000) == 1, "add");
	CHECK(DC_CTX_take_session(ctx, id, 9, got, sizeof(got), &used) == 1, "take");
	CHECK(used == sizeof(sess), "take: used %u", used);
	CHECK(memcmp(got, sess, sizeof(sess)) == 0, "take: bytes differ");
	used = 12345;
	CHECK(DC_CTX_take_session(ctx, id, 9, got, sizeof(got), &used) == 0, "second take");
	CHECK(used == 12345, "a miss changed result_used to %u", used);
	CHECK(DC_CTX_get_session(ctx, id, 9, got, sizeof(got), &used) == 0, "get after take");
	CHECK(DC_CTX_has_session(ctx, id, 9) == 0, "has after take");
	CHECK(DC_CTX_take_session(ctx, (const unsigned char *)"never", 5, got, sizeof(got),
				  &used) == 0,
	      "take of a missing id");
	CHECK(used == 12345, "a miss changed result_used to %u", used);
}

static void short_buffer(DC_CTX *ctx)
{
	unsigned char sess[1000], got[1000], small[10];
	unsigned int used = 0;
	const unsigned char *id = (const unsigned char *)"take-short";

	fill(sess, sizeof(sess), 2);
	CHECK(DC_CTX_add_session(ctx, id, 10, sess, sizeof(sess), 60000) == 1, "add");
	CHECK(DC_CTX_take_session(ctx, id, 10, small, sizeof(small), &used) == 1, "take");
	CHECK(used == sizeof(sess), "take: used %u", used);
	CHECK(memcmp(small, sess, sizeof(small)) == 0, "take: first bytes differ");
	/* reget right after the take, as after a get: any other operation
	 * on the context in between would forget it. */
	used = 0;
	CHECK(DC_CTX_reget_session(ctx, id, 10, got, sizeof(got), &used) == 1, "reget");
	CHECK(used == sizeof(sess) && memcmp(got, sess, sizeof(sess)) == 0, "reget: wrong");
	CHECK(DC_CTX_has_session(ctx, id, 10) == 0, "taken with a short buffer: still there");
	/* A NULL buffer of size 0 asks for the length alone. */
	CHECK(DC_CTX_add_session(ctx, id, 10, sess, sizeof(sess), 60000) == 1, "add again");
	CHECK(DC_CTX_take_session(ctx, id, 10, NULL, 0, &used) == 1, "take, length only");
	CHECK(used == sizeof(sess), "length only: used %u", used);
	CHECK(DC_CTX_has_session(ctx, id, 10) == 0, "length only: still there");
}

static void bad_arguments(DC_CTX *ctx)
{
	unsigned char got[10];
	unsigned int used;
	const unsigned char *id = (const unsigned char *)"x";

	CHECK(DC_CTX_take_session(NULL, id, 1, got, sizeof(got), &used) == 0, "NULL ctx");
	CHECK(DC_CTX_take_session(ctx, NULL, 1, got, sizeof(got), &used) == 0, "NULL id");
	CHECK(DC_CTX_take_session(ctx, id, 1, got, sizeof(got), NULL) == 0, "NULL used");
}

/* One taker: waits for the go byte, takes, exits 0 (got the session,
 * checked), 1 (miss) or 2 (wrong bytes). */
static void taker(int go, const unsigned char *id, unsigned int id_len,
		  const unsigned char *sess, unsigned int sess_len)
{
	unsigned char got[600];
	unsigned int used = 0;
	char c;
	DC_CTX *ctx = DC_CTX_new(address, 0);

	if (!ctx)
		_exit(3);
	if (read(go, &c, 1) != 1)
		_exit(4);
	if (!DC_CTX_take_session(ctx, id, id_len, got, sizeof(got), &used))
		_exit(1);
	_exit(used == sess_len && memcmp(got, sess, sess_len) == 0 ? 0 : 2);
}

static void one_winner(DC_CTX *ctx, int rounds, int procs)
{
	unsigned char sess[500];
	char id[32];
	int round, i;

	for (round = 0; round < rounds; round++) {
		int go[2], winners = 0, misses = 0, status;
		unsigned int id_len = (unsigned int)snprintf(id, sizeof(id), "race-%d", round);
		pid_t pid;

		fill(sess, sizeof(sess), (unsigned int)round);
		CHECK(DC_CTX_add_session(ctx, (unsigned char *)id, id_len, sess, sizeof(sess),
					 60000) == 1,
		      "round %d: add", round);
		CHECK(pipe(go) == 0, "pipe");
		for (i = 0; i < procs; i++) {
			pid = fork();
			CHECK(pid >= 0, "fork");
			if (pid == 0) {
				close(go[1]);
				taker(go[0], (unsigned char *)id, id_len, sess, sizeof(sess));
			}
		}
		close(go[0]);
		/* Every taker is released by one write. */
		for (i = 0; i < procs; i++)
			CHECK(write(go[1], "g", 1) == 1, "go");
		close(go[1]);
		for (i = 0; i < procs; i++) {
			CHECK(wait(&status) > 0, "wait");
			CHECK(WIFEXITED(status), "round %d: a taker died", round);
			if (WEXITSTATUS(status) == 0)
				winners++;
			else if (WEXITSTATUS(status) == 1)
				misses++;
			else
				FAIL("round %d: a taker exited %d", round, WEXITSTATUS(status));
		}
		CHECK(winners == 1 && misses == procs - 1,
		      "round %d: %d of %d takes got the session", round, winners, procs);
	}
	printf("%d rounds of %d processes: one winner each\n", rounds, procs);
}

int main(int argc, char **argv)
{
	DC_CTX *ctx;

	CHECK(argc == 4, "usage: take <address> <rounds> <processes>");
	address = argv[1];
	ctx = DC_CTX_new(address, DC_CTX_FLAG_PERSISTENT);
	CHECK(ctx != NULL, "DC_CTX_new(%s)", address);
	once_only(ctx);
	short_buffer(ctx);
	bad_arguments(ctx);
	one_winner(ctx, atoi(argv[2]), atoi(argv[3]));
	DC_CTX_free(ctx);
	printf("ok\n");
	return 0;
}
