/* threads.c: one DC_CTX shared by many threads at once.
 *
 * usage: threads <address> <flags> [threads [ops_per_thread]]
 *   defaults: 16 threads, 10000 operations per thread.
 *   The server needs room for threads * KEYS sessions (the driver starts it
 *   with -sessions 4096) so that nothing is evicted behind our back.
 *
 * Each thread owns KEYS ids (nobody else touches them) and keeps a model of
 * what the cache holds for them. It picks add, get, has or remove at random
 * and checks every result against the model: add succeeds exactly when the
 * id is absent, get returns the exact bytes (5..3000 of them, varying per
 * add), has and remove say 1 exactly when present. After a get hit it
 * sometimes calls reget, which must answer that get (reget state is per
 * calling thread). Prints ops/s and the number of file descriptors the ctx
 * holds after the run, and checks DC_CTX_free releases them all. */
#include <distcache/dc_client.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define KEYS 24
#define MAX_SESS 3000
#define MIN_SESS 5

static DC_CTX *g_ctx;
static long g_ops;
static const char *g_addr;
static unsigned int g_flags;

struct worker {
	pthread_t tid;
	int index;
	char error[256];
	long done;
};

struct key {
	int present;
	unsigned int len;
	unsigned int seed;
};

static unsigned int next_rand(unsigned int *s)
{
	/* xorshift32 */
	unsigned int x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

static void fill(unsigned char *p, unsigned int len, unsigned int seed)
{
	unsigned int i, s = seed | 1u;
	for (i = 0; i < len; i++)
		p[i] = (unsigned char)next_rand(&s);
}

#define WFAIL(...)                                                        \
	do {                                                              \
		snprintf(w->error, sizeof(w->error), __VA_ARGS__);        \
		return NULL;                                              \
	} while (0)

static void *run(void *arg)
{
	struct worker *w = arg;
	struct key keys[KEYS];
	unsigned char ids[KEYS][32];
	unsigned int id_lens[KEYS];
	unsigned char expect[MAX_SESS], got[MAX_SESS];
	unsigned int rnd = 0x9e3779b9u ^ (unsigned int)(w->index * 7919 + 1);
	unsigned int used, k, op, version = 0;
	int r;
	long i;

	memset(keys, 0, sizeof(keys));
	for (k = 0; k < KEYS; k++)
		id_lens[k] = (unsigned int)snprintf((char *)ids[k], 32,
						    "thr-%x-%d-%u", g_flags,
						    w->index, k);
	for (i = 0; i < g_ops; i++) {
		k = next_rand(&rnd) % KEYS;
		op = next_rand(&rnd) % 4;
		switch (op) {
		case 0: /* add */
		{
			unsigned int len = MIN_SESS +
					   next_rand(&rnd) %
						   (MAX_SESS - MIN_SESS + 1);
			unsigned int seed = ++version * 131u + (unsigned)w->index;
			fill(expect, len, seed);
			r = DC_CTX_add_session(g_ctx, ids[k], id_lens[k],
					       expect, len, 600000);
			if (r != !keys[k].present)
				WFAIL("op %ld: add of key %u returned %d, "
				      "present=%d",
				      i, k, r, keys[k].present);
			if (r) {
				keys[k].present = 1;
				keys[k].len = len;
				keys[k].seed = seed;
			}
			break;
		}
		case 1: /* get (+ sometimes reget) */
			used = 0xfeedu;
			r = DC_CTX_get_session(g_ctx, ids[k], id_lens[k], got,
					       sizeof(got), &used);
			if (r != keys[k].present)
				WFAIL("op %ld: get of key %u returned %d, "
				      "present=%d",
				      i, k, r, keys[k].present);
			if (!r) {
				if (used != 0xfeedu)
					WFAIL("op %ld: a get miss changed "
					      "result_used",
					      i);
				break;
			}
			fill(expect, keys[k].len, keys[k].seed);
			if (used != keys[k].len ||
			    memcmp(got, expect, used) != 0)
				WFAIL("op %ld: get of key %u: %u bytes, want "
				      "%u, or data differs",
				      i, k, used, keys[k].len);
			if ((next_rand(&rnd) & 7) == 0) {
				memset(got, 0, sizeof(got));
				used = 0;
				r = DC_CTX_reget_session(g_ctx, ids[k],
							 id_lens[k], got,
							 sizeof(got), &used);
				if (r != 1 || used != keys[k].len ||
				    memcmp(got, expect, used) != 0)
					WFAIL("op %ld: reget of key %u "
					      "(returned %d, %u bytes) does "
					      "not match this thread's get",
					      i, k, r, used);
			}
			break;
		case 2: /* has */
			r = DC_CTX_has_session(g_ctx, ids[k], id_lens[k]);
			if (r != keys[k].present)
				WFAIL("op %ld: has of key %u returned %d, "
				      "present=%d",
				      i, k, r, keys[k].present);
			break;
		default: /* remove */
			r = DC_CTX_remove_session(g_ctx, ids[k], id_lens[k]);
			if (r != keys[k].present)
				WFAIL("op %ld: remove of key %u returned %d, "
				      "present=%d",
				      i, k, r, keys[k].present);
			keys[k].present = 0;
			break;
		}
		w->done++;
	}
	/* Clean up what this thread left behind. */
	for (k = 0; k < KEYS; k++)
		if (keys[k].present &&
		    DC_CTX_remove_session(g_ctx, ids[k], id_lens[k]) != 1)
			WFAIL("cleanup remove of key %u failed", k);
	return NULL;
}

int main(int argc, char **argv)
{
	struct worker *workers;
	int nthreads = 16, i, failed = 0, fds_before, fds_during, fds_after;
	long total = 0;
	double t0, secs;

	if (argc < 3 || argc > 5) {
		fprintf(stderr,
			"usage: %s <address> <flags> [threads [ops]]\n",
			argv[0]);
		return 2;
	}
	g_addr = argv[1];
	g_flags = (unsigned int)strtoul(argv[2], NULL, 0);
	g_ops = 10000;
	if (argc >= 4)
		nthreads = atoi(argv[3]);
	if (argc >= 5)
		g_ops = atol(argv[4]);
	if (nthreads < 1 || g_ops < 1) {
		fprintf(stderr, "FAIL: bad thread or op count\n");
		return 2;
	}
	fds_before = count_fds();
	g_ctx = DC_CTX_new(g_addr, g_flags);
	if (!g_ctx) {
		fprintf(stderr, "FAIL: DC_CTX_new(%s, 0x%x)\n", g_addr,
			g_flags);
		return 1;
	}
	workers = calloc((size_t)nthreads, sizeof(*workers));
	if (!workers)
		return 1;
	t0 = now_ms();
	for (i = 0; i < nthreads; i++) {
		workers[i].index = i;
		if (pthread_create(&workers[i].tid, NULL, run, &workers[i])) {
			fprintf(stderr, "FAIL: pthread_create\n");
			return 1;
		}
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(workers[i].tid, NULL);
		total += workers[i].done;
		if (workers[i].error[0]) {
			fprintf(stderr, "FAIL thread %d (flags 0x%x): %s\n", i,
				g_flags, workers[i].error);
			failed = 1;
		}
	}
	secs = (now_ms() - t0) / 1000.0;
	fds_during = count_fds();
	DC_CTX_free(g_ctx);
	fds_after = count_fds();
	free(workers);
	printf("threads flags 0x%x: %d threads, %ld ops in %.2f s (%.0f "
	       "ops/s)\n",
	       g_flags, nthreads, total, secs, (double)total / secs);
	printf("file descriptors: %d before DC_CTX_new, %d after the run, "
	       "%d after DC_CTX_free\n",
	       fds_before, fds_during, fds_after);
	if (fds_after != fds_before) {
		fprintf(stderr, "FAIL: DC_CTX_free left %d descriptors open\n",
			fds_after - fds_before);
		failed = 1;
	}
	if (failed)
		return 1;
	printf("threads OK\n");
	return 0;
}
