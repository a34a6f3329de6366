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
 * DC_CTX_new now succeeds. Counting the sockets in /proc/self/fd: a
 * PERSISTENT DC_CTX_new opens one; PERSISTENT|LATE opens none until the
 * first operation, then keeps one; flags 0 keeps none after an operation;
 * DC_CTX_free closes them. */
#define _GNU_SOURCE
#include <distcache/dc_client.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAIL(...)                                                        \
	do {                                                             \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);     \
		fprintf(stderr, __VA_ARGS__);                            \
		fprintf(stderr, "\n");                                   \
		exit(1);                                                 \
	} while (0)
#define CHECK(cond, ...)                                                 \
	do {                                                             \
		if (!(cond))                                             \
			FAIL(__VA_ARGS__);                               \
	} while (0)

/* Sockets open in this process. */
static int count_sockets(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char target[64];
	ssize_t len;
	int n = 0;

	CHECK(d != NULL, "opendir /proc/self/fd");
	while ((e = readdir(d)) != NULL) {
		len = readlinkat(dirfd(d), e->d_name, target,
				 sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strncmp(target, "socket:", 7) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void roundtrip(DC_CTX *ctx, const char *who)
{
	unsigned char id[64], out[128];
	static const unsigned char sess[] = "late session data";
	unsigned int id_len, used = 0;

	id_len = (unsigned int)snprintf((char *)id, sizeof(id), "late-%ld-%s",
					(long)getpid(), who);
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, sizeof(sess), 60000) ==
		      1,
	      "%s: add", who);
	CHECK(DC_CTX_get_session(ctx, id, id_len, out, sizeof(out), &used) ==
			      1 &&
		      used == sizeof(sess) && memcmp(out, sess, used) == 0,
	      "%s: get", who);
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 1, "%s: has", who);
	CHECK(DC_CTX_remove_session(ctx, id, id_len) == 1, "%s: remove", who);
}

int main(int argc, char **argv)
{
	const unsigned int P = DC_CTX_FLAG_PERSISTENT;
	const unsigned int L = DC_CTX_FLAG_PERSISTENT_LATE;
	DC_CTX *late_used, *late_fresh, *temp, *pers;
	const char *addr;
	char line[64];

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

	printf("READY start\n");
	fflush(stdout);
	CHECK(fgets(line, sizeof(line), stdin) != NULL,
	      "no go line from the driver");

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
