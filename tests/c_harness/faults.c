/* faults.c: DC_CTX while dc_server is down and once it is back, and fork()
 * after a restart or while other threads use the context.
 *
 * usage: faults <address> down|fork-restart|fork-busy
 *
 * down (handshake: "READY down", the driver kills dc_server and writes a
 *   line; "READY up", the driver starts a new one and writes a line):
 *   with each of flags 0, PERSISTENT, PERSISTENT|RETRY, PERSISTENT|LATE,
 *   PERSISTENT|RETRY|LATE and PERSISTENT|PIDCHECK, and a timeout of
 *   500 ms, every call while the server is down returns its failure value
 *   within the timeout plus one second: has -1, add 0, remove 0, get 0
 *   with *result_used untouched, and reget 0 (the session fetched before
 *   is forgotten once a later call failed). The first refused connection
 *   marks the address down for the process (the breaker, back-off 1 s): the
 *   calls after it fail at once. Once the new server is up, calls on the
 *   first context fail at once until the back-off is over, and one succeeds
 *   within the back-off and a second; then the first call on every other
 *   context succeeds too (the new server is empty), except on a PERSISTENT
 *   one without RETRY, whose connection to the old server went untried
 *   while the address was down: that call fails, and the next succeeds.
 *   Then a full round trip on each.
 *
 * fork-restart (handshake "READY restart": the driver kills dc_server and
 *   starts a new one): contexts PERSISTENT|RETRY|PIDCHECK,
 *   PERSISTENT|PIDCHECK, PERSISTENT|RETRY and PERSISTENT, connected to the
 *   old server, are used in a forked child and then in the parent. A call
 *   on a connection to the dead server fails (has -1) unless RETRY makes a
 *   new one; a child with PIDCHECK never uses the inherited connection.
 *   So the first has is 0 everywhere except: PERSISTENT in the child and
 *   in the parent, and PERSISTENT|PIDCHECK in the parent (-1, then 0).
 *
 * fork-busy: 8 threads run checked round trips on one
 *   PERSISTENT|PIDCHECK context while the main thread forks 20 children
 *   one after another; each child makes 50 checked round trips on the same
 *   context and exits (an alarm kills a child that hangs, e.g. on a lock
 *   another thread held at the fork). Every child must exit 0. */
#include <distcache/dc_client.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define TIMEOUT_MS 500
#define SLACK_MS 1000
/* The breaker's first back-off, the default. */
#define BACKOFF_MS 1000

static void print_pid(void)
{
	fprintf(stderr, " (pid %ld)", (long)getpid());
}

static unsigned int mkid(unsigned char *id, const char *what, int n)
{
	return (unsigned int)snprintf((char *)id, 64, "faults-%ld-%s-%d",
				      (long)getpid(), what, n);
}

static void fill(unsigned char *sess, unsigned int len, int seed)
{
	unsigned int i;
	for (i = 0; i < len; i++)
		sess[i] = (unsigned char)(i * 7 + (unsigned int)seed);
}

/* One checked round trip on ctx with a fresh id. */
static void round_trip(DC_CTX *ctx, const char *what, int n)
{
	unsigned char id[64], sess[600];
	unsigned int id_len = mkid(id, what, n);

	fill(sess, sizeof(sess), n);
	roundtrip_ok(ctx, id, id_len, sess, sizeof(sess), what);
}

/* has on the id "probe", which no server holds. */
static int probe(DC_CTX *ctx)
{
	unsigned char id[64];
	return DC_CTX_has_session(ctx, id, mkid(id, "probe", 0));
}

static DC_CTX *new_ctx(const char *addr, unsigned int flags)
{
	DC_CTX *ctx = DC_CTX_new(addr, flags);
	CHECK(ctx != NULL, "DC_CTX_new(0x%x)", flags);
	CHECK(DC_CTX_set_timeout(ctx, TIMEOUT_MS) == 1, "set_timeout");
	return ctx;
}

/* ------------------------------------------------------------------------ */

static void bounded(double start, const char *what, unsigned int flags)
{
	double took = now_ms() - start;
	CHECK(took <= TIMEOUT_MS + SLACK_MS,
	      "flags 0x%x: %s took %.0f ms (timeout %d ms)", flags, what, took,
	      TIMEOUT_MS);
}

static void down(const char *addr)
{
	const unsigned int P = DC_CTX_FLAG_PERSISTENT;
	const unsigned int R = DC_CTX_FLAG_PERSISTENT_RETRY;
	const unsigned int L = DC_CTX_FLAG_PERSISTENT_LATE;
	const unsigned int C = DC_CTX_FLAG_PERSISTENT_PIDCHECK;
	const unsigned int flags[] = { 0, P, P | R, P | L, P | R | L, P | C };
	enum { N = sizeof(flags) / sizeof(flags[0]) };
	DC_CTX *ctx[N];
	unsigned char id[64], sess[300], out[512];
	unsigned int id_len, used;
	double t;
	int i;

	fill(sess, sizeof(sess), 3);
	for (i = 0; i < N; i++) {
		ctx[i] = new_ctx(addr, flags[i]);
		round_trip(ctx[i], "before", i);
		/* Fetched last: what reget would return. */
		id_len = mkid(id, "kept", i);
		CHECK(DC_CTX_add_session(ctx[i], id, id_len, sess,
					 sizeof(sess), 60000) == 1,
		      "add kept");
		CHECK(DC_CTX_get_session(ctx[i], id, id_len, out, sizeof(out),
					 &used) == 1 &&
			      used == sizeof(sess),
		      "get kept");
	}

	await_go("down");
	for (i = 0; i < N; i++) {
		id_len = mkid(id, "kept", i);
		t = now_ms();
		CHECK(DC_CTX_has_session(ctx[i], id, id_len) == -1,
		      "flags 0x%x: has while down", flags[i]);
		bounded(t, "has", flags[i]);
		t = now_ms();
		CHECK(DC_CTX_add_session(ctx[i], id, id_len, sess,
					 sizeof(sess), 60000) == 0,
		      "flags 0x%x: add while down", flags[i]);
		bounded(t, "add", flags[i]);
		used = 12345;
		t = now_ms();
		CHECK(DC_CTX_get_session(ctx[i], id, id_len, out, sizeof(out),
					 &used) == 0,
		      "flags 0x%x: get while down", flags[i]);
		bounded(t, "get", flags[i]);
		CHECK(used == 12345, "flags 0x%x: a failed get set result_used",
		      flags[i]);
		CHECK(DC_CTX_reget_session(ctx[i], id, id_len, out,
					   sizeof(out), &used) == 0,
		      "flags 0x%x: reget after a failed get", flags[i]);
		t = now_ms();
		CHECK(DC_CTX_remove_session(ctx[i], id, id_len) == 0,
		      "flags 0x%x: remove while down", flags[i]);
		bounded(t, "remove", flags[i]);
	}

	await_go("up");
	t = now_ms();
	id_len = mkid(id, "kept", 0);
	while (DC_CTX_has_session(ctx[0], id, id_len) != 0) {
		CHECK(now_ms() - t <= BACKOFF_MS + SLACK_MS,
		      "no call succeeded %d ms after the server was back",
		      BACKOFF_MS + SLACK_MS);
		usleep(20000);
	}
	for (i = 0; i < N; i++) {
		/* Its calls while down never tried the connection kept from
		 * the old server: without RETRY, the first call finds it dead
		 * (as after any restart), and the next one connects afresh. */
		int stale = (flags[i] & P) && !(flags[i] & R);
		id_len = mkid(id, "kept", i);
		t = now_ms();
		CHECK(DC_CTX_has_session(ctx[i], id, id_len) == (stale ? -1 : 0),
		      "flags 0x%x: the first call once the server is back",
		      flags[i]);
		bounded(t, "has", flags[i]);
		if (stale)
			CHECK(DC_CTX_has_session(ctx[i], id, id_len) == 0,
			      "flags 0x%x: the call after the stale one",
			      flags[i]);
		round_trip(ctx[i], "after", i);
	}
	for (i = 0; i < N; i++)
		DC_CTX_free(ctx[i]);
	printf("faults down OK\n");
}

/* ------------------------------------------------------------------------ */

struct restart_case {
	unsigned int flags;
	const char *name;
	int child_first;  /* the first has in the child */
	int parent_first; /* the first has in the parent, after the child */
	DC_CTX *ctx;
};

static void first_calls(struct restart_case *c, int n, int in_child)
{
	int i, want, got;

	for (i = 0; i < n; i++) {
		want = in_child ? c[i].child_first : c[i].parent_first;
		got = probe(c[i].ctx);
		CHECK(got == want, "%s: %s: first has %d, want %d", c[i].name,
		      in_child ? "child" : "parent", got, want);
		if (got == -1)
			CHECK(probe(c[i].ctx) == 0,
			      "%s: %s: has after the failed one", c[i].name,
			      in_child ? "child" : "parent");
		round_trip(c[i].ctx, in_child ? "child" : "parent", i);
	}
}

static void fork_restart(const char *addr)
{
	const unsigned int P = DC_CTX_FLAG_PERSISTENT;
	const unsigned int R = DC_CTX_FLAG_PERSISTENT_RETRY;
	const unsigned int C = DC_CTX_FLAG_PERSISTENT_PIDCHECK;
	struct restart_case c[] = {
		{ P | R | C, "PERSISTENT|RETRY|PIDCHECK", 0, 0, NULL },
		{ P | C, "PERSISTENT|PIDCHECK", 0, -1, NULL },
		{ P | R, "PERSISTENT|RETRY", 0, 0, NULL },
		{ P, "PERSISTENT", -1, -1, NULL },
	};
	enum { N = sizeof(c) / sizeof(c[0]) };
	int i, status;
	pid_t pid;

	for (i = 0; i < N; i++) {
		c[i].ctx = new_ctx(addr, c[i].flags);
		round_trip(c[i].ctx, "before", i);
	}
	await_go("restart");
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		alarm(30);
		first_calls(c, N, 1);
		for (i = 0; i < N; i++)
			DC_CTX_free(c[i].ctx);
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the child failed (status 0x%x)", status);
	first_calls(c, N, 0);
	for (i = 0; i < N; i++)
		DC_CTX_free(c[i].ctx);
	printf("faults fork-restart OK\n");
}

/* ------------------------------------------------------------------------ */

struct busy {
	DC_CTX *ctx;
	int thread;
	volatile int *stop;
	int rounds;
};

static void *busy_thread(void *arg)
{
	struct busy *b = arg;
	char what[32];

	snprintf(what, sizeof(what), "busy%d", b->thread);
	while (!__atomic_load_n(b->stop, __ATOMIC_RELAXED))
		round_trip(b->ctx, what, b->rounds++);
	return NULL;
}

static void fork_busy(const char *addr)
{
	enum { THREADS = 8, CHILDREN = 20, CHILD_ROUNDS = 50 };
	DC_CTX *ctx = new_ctx(addr, DC_CTX_FLAG_PERSISTENT |
					    DC_CTX_FLAG_PERSISTENT_PIDCHECK);
	pthread_t threads[THREADS];
	struct busy b[THREADS];
	volatile int stop = 0;
	int i, j, status;
	pid_t pid;

	CHECK(DC_CTX_set_timeout(ctx, 5000) == 1, "set_timeout");
	for (i = 0; i < THREADS; i++) {
		b[i].ctx = ctx;
		b[i].thread = i;
		b[i].stop = &stop;
		b[i].rounds = 0;
		CHECK(pthread_create(&threads[i], NULL, busy_thread, &b[i]) ==
			      0,
		      "pthread_create");
	}
	for (i = 0; i < CHILDREN; i++) {
		fflush(NULL);
		pid = fork();
		CHECK(pid >= 0, "fork");
		if (pid == 0) {
			alarm(30);
			for (j = 0; j < CHILD_ROUNDS; j++)
				round_trip(ctx, "child", i * 1000 + j);
			_exit(0);
		}
		CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child %d failed (status 0x%x)", i, status);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < THREADS; i++) {
		CHECK(pthread_join(threads[i], NULL) == 0, "pthread_join");
		CHECK(b[i].rounds > 0, "thread %d made no round trip", i);
	}
	DC_CTX_free(ctx);
	printf("faults fork-busy OK: %d children x %d round trips beside "
	       "%d busy threads\n",
	       CHILDREN, CHILD_ROUNDS, THREADS);
}

int main(int argc, char **argv)
{
	fail_context = print_pid;
	if (argc != 3) {
		fprintf(stderr, "usage: %s <address> "
				"down|fork-restart|fork-busy\n",
			argv[0]);
		return 2;
	}
	if (strcmp(argv[2], "down") == 0)
		down(argv[1]);
	else if (strcmp(argv[2], "fork-restart") == 0)
		fork_restart(argv[1]);
	else if (strcmp(argv[2], "fork-busy") == 0)
		fork_busy(argv[1]);
	else {
		fprintf(stderr, "unknown case %s\n", argv[2]);
		return 2;
	}
	return 0;
}
