/* breaker_fork.c: DC_CTX against a dc_server that goes silent and comes
 * back, with threads and a forked child.
 *
 * usage: breaker_fork <address> <timeout_ms>
 *
 * Two contexts to one address: flags 0, and the flags mod_socache_dc uses
 * (PERSISTENT|PIDCHECK|RETRY|LATE). Handshakes with the driver: "READY
 * silent" (the driver stops dc_server with SIGSTOP: its kernel still
 * accepts connections, nothing answers) and "READY back" (SIGCONT).
 *
 * With the breaker on (DISTCACHE_DOWN_MS unset, or MIN:MAX with MAX at
 * most 2000):
 * - 50 calls on each context take at most 2 timeouts in all;
 * - a child forked then finds the address down: its 50 calls on each
 *   context fail (-1) without waiting for any timeout, and it exits 0;
 * - 16 threads making 50 calls each on the shared contexts take at most
 *   2 timeouts in all;
 * - once the server is back, a call succeeds within the longest back-off
 *   and a second, and a child forked then succeeds at once.
 * With DISTCACHE_DOWN_MS=0 (breaker off) every call to the silent server
 * waits for its timeout, in the parent and in the child, and the first
 * call once the server is back succeeds. */
#include <distcache/dc_client.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

enum { CALLS = 50, THREADS = 16 };

static long timeout_ms;
static DC_CTX *ctx[2];
static const unsigned int flags[2] = {
	0, DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_PIDCHECK |
		   DC_CTX_FLAG_PERSISTENT_RETRY | DC_CTX_FLAG_PERSISTENT_LATE
};

static void print_pid(void)
{
	fprintf(stderr, " (pid %ld)", (long)getpid());
}

/* has on an id no server holds: 0 when the server answers, -1 on failure. */
static int has(DC_CTX *c, int n)
{
	unsigned char id[64];
	int len = snprintf((char *)id, sizeof(id), "breaker-%ld-%d",
			   (long)getpid(), n);
	return DC_CTX_has_session(c, id, (unsigned int)len);
}

/* CALLS calls on each context; all must fail. Returns the time taken. */
static double calls_failing(void)
{
	double start = now_ms();
	int i, k;

	for (k = 0; k < 2; k++)
		for (i = 0; i < CALLS; i++)
			CHECK(has(ctx[k], i) == -1,
			      "flags 0x%x: call %d to a silent server", flags[k],
			      i);
	return now_ms() - start;
}

static void *thread_calls(void *arg)
{
	DC_CTX *c = ctx[*(int *)arg % 2];
	int i;

	for (i = 0; i < CALLS; i++)
		CHECK(has(c, i) == -1, "thread %d: call %d to a silent server",
		      *(int *)arg, i);
	return NULL;
}

static double threads_failing(void)
{
	pthread_t t[THREADS];
	int n[THREADS], i;
	double start = now_ms();

	for (i = 0; i < THREADS; i++) {
		n[i] = i;
		CHECK(pthread_create(&t[i], NULL, thread_calls, &n[i]) == 0,
		      "pthread_create");
	}
	for (i = 0; i < THREADS; i++)
		CHECK(pthread_join(t[i], NULL) == 0, "pthread_join");
	return now_ms() - start;
}

/* Forks a child that runs calls_failing() (want_fail) or one call that
 * must succeed, and bounds its time by max_ms; waits for it. */
static void child(int want_fail, double max_ms)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		double took;
		alarm(60);
		if (want_fail) {
			took = calls_failing();
		} else {
			double start = now_ms();
			CHECK(has(ctx[1], 0) == 0,
			      "child: a call once the server is back");
			took = now_ms() - start;
		}
		CHECK(took <= max_ms, "child: calls took %.0f ms (limit %.0f)",
		      took, max_ms);
		printf("child: %s in %.0f ms\n",
		       want_fail ? "100 calls failed" : "one call succeeded", took);
		fflush(stdout);
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the child failed (status 0x%x)", status);
}

int main(int argc, char **argv)
{
	const char *down = getenv("DISTCACHE_DOWN_MS");
	int off = down && strcmp(down, "0") == 0;
	double took, back, limit;
	int k;

	fail_context = print_pid;
	if (argc != 3) {
		fprintf(stderr, "usage: breaker_fork <address> <timeout_ms>\n");
		return 2;
	}
	timeout_ms = atol(argv[2]);
	for (k = 0; k < 2; k++) {
		ctx[k] = DC_CTX_new(argv[1], flags[k]);
		CHECK(ctx[k] != NULL, "DC_CTX_new(0x%x)", flags[k]);
		CHECK(DC_CTX_set_timeout(ctx[k], (unsigned long)timeout_ms) ==
			      1,
		      "set_timeout");
		CHECK(has(ctx[k], 0) == 0, "flags 0x%x: a call before",
		      flags[k]);
	}

	await_go("silent");
	if (off) {
		/* Every call waits for its timeout (a tenth early at most:
		 * the clock of the sleep and of the measure differ). */
		for (k = 0; k < 2; k++) {
			double start = now_ms();
			CHECK(has(ctx[k], 1) == -1 && has(ctx[k], 2) == -1,
			      "flags 0x%x: calls to a silent server", flags[k]);
			took = now_ms() - start;
			CHECK(took >= 2 * timeout_ms * 0.9,
			      "flags 0x%x: 2 calls failed in %.0f ms with the "
			      "breaker off",
			      flags[k], took);
		}
		printf("breaker off: every call waited for its timeout\n");
	} else {
		took = calls_failing();
		printf("parent: 100 calls failed in %.0f ms\n", took);
		CHECK(took <= 2 * timeout_ms,
		      "100 calls took %.0f ms (timeout %ld ms)", took,
		      timeout_ms);
		/* Inherited: no call of the child waits for a timeout. */
		child(1, timeout_ms * 0.9);
		took = threads_failing();
		printf("%d threads: %d calls failed in %.0f ms\n", THREADS,
		       THREADS * CALLS, took);
		CHECK(took <= 2 * timeout_ms,
		      "%d threads' calls took %.0f ms (timeout %ld ms)",
		      THREADS, took, timeout_ms);
	}

	await_go("back");
	back = now_ms();
	limit = off ? timeout_ms : 2000 + 1000;
	while (has(ctx[1], 3) != 0) {
		CHECK(now_ms() - back <= limit,
		      "no call succeeded within %.0f ms of the server's return",
		      limit);
		usleep(20000);
	}
	printf("back: a call succeeded after %.0f ms\n", now_ms() - back);
	CHECK(has(ctx[0], 4) == 0, "flags 0: a call once the server is back");
	child(0, timeout_ms);
	for (k = 0; k < 2; k++)
		DC_CTX_free(ctx[k]);
	printf("breaker_fork OK\n");
	return 0;
}
