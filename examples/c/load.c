/* load.c: a small load generator for a distcache server.
 *
 * Build: cc -Wall -O2 -o load load.c -ldistcache
 * Run:   ./load UNIX:/tmp/dc.sock 20000
 *
 * Runs N operations (cycles of add, get, remove on 64 ids with 200-byte
 * sessions) twice: over one PERSISTENT connection, then with flags 0 (a new
 * connection per operation), and prints the operations per second of each.
 * Exits 1 if any operation fails. */
#include <distcache/dc_client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IDS 64
#define SESS_LEN 200

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs n operations on ctx; returns the number that failed. */
static long run(DC_CTX *ctx, long n, const char *tag)
{
	unsigned char id[64], sess[SESS_LEN], buf[SESS_LEN];
	unsigned int id_len, used;
	long i, failures = 0;

	memset(sess, 's', sizeof(sess));
	for (i = 0; i < n; i++) {
		/* Cycle add -> get -> remove over IDS ids. */
		long cycle = i / 3;
		id_len = (unsigned int)snprintf((char *)id, sizeof(id),
						"load-%ld-%s-%ld",
						(long)getpid(), tag,
						cycle % IDS);
		switch (i % 3) {
		case 0:
			failures += !DC_CTX_add_session(ctx, id, id_len, sess,
							sizeof(sess), 60000);
			break;
		case 1:
			failures += !DC_CTX_get_session(ctx, id, id_len, buf,
							sizeof(buf), &used);
			break;
		default:
			failures += !DC_CTX_remove_session(ctx, id, id_len);
			break;
		}
	}
	return failures;
}

static int bench(const char *addr, unsigned int flags, const char *name,
		 long n)
{
	DC_CTX *ctx = DC_CTX_new(addr, flags);
	double t0, dt;
	long failures;

	if (ctx == NULL) {
		fprintf(stderr, "%s: cannot connect to %s\n", name, addr);
		return 1;
	}
	t0 = now_s();
	failures = run(ctx, n, name);
	dt = now_s() - t0;
	DC_CTX_free(ctx);
	printf("%-10s %8ld ops in %6.3f s: %9.0f ops/s", name, n, dt,
	       dt > 0 ? (double)n / dt : 0.0);
	if (failures)
		printf("  (%ld FAILED)", failures);
	printf("\n");
	return failures != 0;
}

int main(int argc, char **argv)
{
	long n;
	int bad = 0;

	if (argc != 3 || (n = atol(argv[2])) <= 0) {
		fprintf(stderr, "usage: %s <address> <operations>\n", argv[0]);
		return 2;
	}
	bad |= bench(argv[1], DC_CTX_FLAG_PERSISTENT, "persistent", n);
	bad |= bench(argv[1], 0, "per-op", n);
	return bad;
}
