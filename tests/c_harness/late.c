/* late.c: DC_CTX_FLAG_PERSISTENT_LATE with a server that starts later.
 *
 * usage: late <address>      (nothing listening there yet)
 *
 * Handshake with the test driver: after the checks that need the server to
 * be down, this prints "READY start" on stdout and waits for a line on
 * stdin; the driver starts dc_server on the address and writes "go".
 *
 * Proves: with the server down, DC_CTX_new(PERSISTENT) returns NULL while
 * PERSISTENT|LATE and flags 0 return a ctx without touching the network;
 * an operation on a LATE ctx fails while the server is down and does not
 * poison the ctx; once the server is up, both LATE ctxs (one that failed
 * before, one never used) and the flags-0 ctx work, and PERSISTENT
 * DC_CTX_new now succeeds. The refused connections mark the address down
 * for the process (the breaker, back-off 1 s): once the server is up, the
 * flags-0 ctx is polled until a call succeeds, which must be within the
 * back-off and a second, before the checks above. Counting the sockets in /proc/self/fd: a
 * PERSISTENT DC_CTX_new opens one; PERSISTENT|LATE opens none until the
 * first operation, then keeps one; flags 0 keeps none after an operation;
 * DC_CTX_free closes them. */
#include <distcache/dc_client.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

static void roundtrip(DC_CTX *ctx, const char *who)
{
	static const unsigned char sess[] = "late session data";
	unsigned char id[64];
	unsigned int id_len;

	id_len = (unsigned int)snprintf((char *)id, sizeof(id), "late-%ld-%s",
					(long)getpid(), who);
	roundtrip_ok(ctx, id, id_len, sess, sizeof(sess), who);
}

int main(int argc, char **argv)
{
	const unsigned int P = DC_CTX_FLAG_PERSISTENT;
	const unsigned int L = DC_CTX_FLAG_PERSISTENT_LATE;
	DC_CTX *late_used, *late_fresh, *temp, *pers;
	const char *addr;

	if (argc != 2) {
		fprintf(stderr, "usage: %s <address>\n", argv[0]);
		return 2;
	}
	addr = argv[1];

	pers = DC_CTX_new(addr, P);
	CHECK(pers == NULL, "PERSISTENT DC_CTX_new succeeded with no server");
	late_used = DC_CTX_new(addr, P | L);
	CHECK(late_used != NULL, "PERSISTENT|LATE DC_CTX_new returned NULL");
	late_fresh = DC_CTX_new(addr, P | L | DC_CTX_FLAG_PERSISTENT_RETRY);
	CHECK(late_fresh != NULL, "PERSISTENT|LATE|RETRY DC_CTX_new");
	temp = DC_CTX_new(addr, 0);
	CHECK(temp != NULL, "flags 0 DC_CTX_new returned NULL");

	CHECK(DC_CTX_has_session(late_used, (const unsigned char *)"x", 1) ==
		      -1,
	      "LATE: has with the server down did not return -1");
	CHECK(DC_CTX_has_session(temp, (const unsigned char *)"x", 1) == -1,
	      "flags 0: has with the server down did not return -1");

	await_go("start");
	{
		double t0 = now_ms();
		while (DC_CTX_has_session(temp, (const unsigned char *)"x", 1) !=
		       0) {
			CHECK(now_ms() - t0 <= 2000.0,
			      "no call succeeded within 2000 ms of the start");
			usleep(20000);
		}
	}

	roundtrip(late_used, "late-used");
	roundtrip(late_fresh, "late-fresh");
	roundtrip(temp, "temp");
	pers = DC_CTX_new(addr, P);
	CHECK(pers != NULL, "PERSISTENT DC_CTX_new failed with the server up");
	roundtrip(pers, "persistent");

	DC_CTX_free(late_used);
	DC_CTX_free(late_fresh);
	DC_CTX_free(temp);
	DC_CTX_free(pers);

	/* When each kind of ctx holds a connection. */
	{
		int base = count_sockets(), n;
		pers = DC_CTX_new(addr, P);
		CHECK(pers != NULL, "PERSISTENT DC_CTX_new (sockets)");
		n = count_sockets();
		CHECK(n == base + 1, "PERSISTENT DC_CTX_new: %d new sockets, "
		      "want 1", n - base);
		late_used = DC_CTX_new(addr, P | L);
		CHECK(late_used != NULL, "LATE DC_CTX_new (sockets)");
		n = count_sockets();
		CHECK(n == base + 1, "PERSISTENT|LATE DC_CTX_new opened a "
		      "socket");
		roundtrip(late_used, "late-count");
		n = count_sockets();
		CHECK(n == base + 2, "PERSISTENT|LATE after an operation: %d "
		      "sockets, want %d", n, base + 2);
		temp = DC_CTX_new(addr, 0);
		CHECK(temp != NULL, "flags 0 DC_CTX_new (sockets)");
		roundtrip(temp, "temp-count");
		n = count_sockets();
		CHECK(n == base + 2, "flags 0 kept a socket after its "
		      "operations (%d, want %d)", n, base + 2);
		DC_CTX_free(temp);
		DC_CTX_free(late_used);
		DC_CTX_free(pers);
		n = count_sockets();
		CHECK(n == base, "DC_CTX_free left %d sockets open", n - base);
	}
	printf("late OK\n");
	return 0;
}
