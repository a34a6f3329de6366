/* fork.c: DC_CTX_FLAG_PERSISTENT_PIDCHECK across fork().
 *
 * usage: fork <address>      (a running dc_server)
 *
 * Observation used: the set of socket inodes open in the process, read from
 * /proc/self/fd ("socket:[N]").
 *
 * 1. PERSISTENT|PIDCHECK: the parent connects and uses the ctx, then forks.
 *    The child records its sockets, runs operations, and records them
 *    again: a socket that was not inherited must have appeared (the child
 *    opened its own connection). Parent and child run operations at the
 *    same time and both must see correct results; afterwards the parent's
 *    connection (its socket inode) is unchanged and still works.
 * 2. Contrast, PERSISTENT without PIDCHECK: the child's operations (the
 *    parent waits meanwhile) succeed without any new socket: it reused the
 *    inherited connection. */
#include <distcache/dc_client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Every FAIL line names the process (parent or child) that failed. */
static void print_pid(void)
{
	fprintf(stderr, " (pid %ld)", (long)getpid());
}

static int contains(const struct sockset *s, unsigned long ino)
{
	int i;
	for (i = 0; i < s->n; i++)
		if (s->inode[i] == ino)
			return 1;
	return 0;
}

/* Sockets in b that are not in a. */
static int new_sockets(const struct sockset *a, const struct sockset *b)
{
	int i, n = 0;
	for (i = 0; i < b->n; i++)
		if (!contains(a, b->inode[i]))
			n++;
	return n;
}

/* add, get (checked byte for byte), has, remove: `rounds` times. */
static void exercise(DC_CTX *ctx, const char *who, int rounds)
{
	unsigned char id[64], sess[700];
	unsigned int id_len;
	char what[64];
	int i, j;

	for (i = 0; i < rounds; i++) {
		id_len = (unsigned int)snprintf((char *)id, sizeof(id),
						"fork-%ld-%s-%d",
						(long)getpid(), who, i);
		for (j = 0; j < (int)sizeof(sess); j++)
			sess[j] = (unsigned char)(i * 13 + j + who[0]);
		snprintf(what, sizeof(what), "%s round %d", who, i);
		roundtrip_ok(ctx, id, id_len, sess, sizeof(sess), what);
	}
}

static void wait_child(pid_t pid, const char *what)
{
	int status;
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "%s: child failed (status 0x%x)", what, status);
}

static void with_pidcheck(const char *addr)
{
	struct sockset parent_before, parent_after, child_before, child_after;
	DC_CTX *ctx;
	pid_t pid;

	ctx = DC_CTX_new(addr, DC_CTX_FLAG_PERSISTENT |
				       DC_CTX_FLAG_PERSISTENT_PIDCHECK);
	CHECK(ctx != NULL, "DC_CTX_new(PERSISTENT|PIDCHECK)");
	exercise(ctx, "parent-pre", 3);
	list_sockets(&parent_before);
	CHECK(parent_before.n >= 1, "parent has no socket open");

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		list_sockets(&child_before);
		exercise(ctx, "child", 300);
		list_sockets(&child_after);
		CHECK(new_sockets(&child_before, &child_after) >= 1,
		      "PIDCHECK: the child opened no socket of its own "
		      "(%d before, %d after)",
		      child_before.n, child_after.n);
		DC_CTX_free(ctx);
		_exit(0);
	}
	/* The parent works at the same time as the child. */
	exercise(ctx, "parent", 300);
	wait_child(pid, "PIDCHECK");
	/* The parent's connection survived the child: same socket, works. */
	exercise(ctx, "parent-post", 10);
	list_sockets(&parent_after);
	CHECK(new_sockets(&parent_before, &parent_after) == 0 &&
		      new_sockets(&parent_after, &parent_before) == 0,
	      "PIDCHECK: the parent's sockets changed across the fork");
	DC_CTX_free(ctx);
	printf("fork: PIDCHECK child used its own connection\n");
}

static void without_pidcheck(const char *addr)
{
	struct sockset child_before, child_after;
	DC_CTX *ctx;
	pid_t pid;

	ctx = DC_CTX_new(addr, DC_CTX_FLAG_PERSISTENT);
	CHECK(ctx != NULL, "DC_CTX_new(PERSISTENT)");
	exercise(ctx, "parent-pre", 3);
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		list_sockets(&child_before);
		exercise(ctx, "child", 20);
		list_sockets(&child_after);
		CHECK(new_sockets(&child_before, &child_after) == 0,
		      "without PIDCHECK the child opened a new socket; "
		      "expected it to reuse the inherited one");
		DC_CTX_free(ctx);
		_exit(0);
	}
	/* Only one process uses the shared socket at a time. */
	wait_child(pid, "no PIDCHECK");
	exercise(ctx, "parent-post", 10);
	DC_CTX_free(ctx);
	printf("fork: without PIDCHECK the child reused the inherited "
	       "connection\n");
}

int main(int argc, char **argv)
{
	fail_context = print_pid;
	if (argc != 2) {
		fprintf(stderr, "usage: %s <address>\n", argv[0]);
		return 2;
	}
	with_pidcheck(argv[1]);
	without_pidcheck(argv[1]);
	printf("fork OK\n");
	return 0;
}
