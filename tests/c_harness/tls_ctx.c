/* tls_ctx.c: DC_CTX over a TLS: address.
 *
 * usage: tls_ctx <address> <flags> <rounds>
 *        tls_ctx <address> <flags> refused
 *        tls_ctx <address> <flags> fork
 *
 * With <rounds>: adds, gets (checking the bytes) and removes a session
 * <rounds> times; with flags 0 every operation makes a connection of its
 * own. With "refused": DC_CTX_new must return NULL (the TLS files named by
 * DISTCACHE_TLS_* are missing or bad), and the program must not abort.
 * With "fork": the parent makes a round, forks, the child makes rounds on
 * the same context (with whatever flags: a TLS connection is never shared
 * with a child), then the parent makes rounds again on its own connection.
 * Exit 0 on success, 1 with a message on the first failure. */
#include <distcache/dc_client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what, unsigned int round)
{
	fprintf(stderr, "FAIL: %s (round %u)\n", what, round);
	return 1;
}

/* add, get (checking the bytes), remove, <rounds> times; 0 on success. */
static int rounds_on(DC_CTX *ctx, unsigned int rounds, const char *tag)
{
	unsigned char id[48], data[256], out[512];
	unsigned int i, used;

	for (i = 0; i < rounds; i++) {
		unsigned int n;
		int id_len = snprintf((char *)id, sizeof(id), "tls-c-%s-%ld-%u",
				      tag, (long)getpid(), i);
		for (n = 0; n < sizeof(data); n++)
			data[n] = (unsigned char)(n * 7u + i);
		if (!DC_CTX_add_session(ctx, id, (unsigned int)id_len, data,
					sizeof(data), 60000))
			return fail("add", i);
		used = 0;
		if (!DC_CTX_get_session(ctx, id, (unsigned int)id_len, out,
					sizeof(out), &used))
			return fail("get", i);
		if (used != sizeof(data) || memcmp(out, data, sizeof(data)) != 0)
			return fail("get returned other bytes", i);
		if (!DC_CTX_remove_session(ctx, id, (unsigned int)id_len))
			return fail("remove", i);
	}
	return 0;
}

static int across_fork(DC_CTX *ctx)
{
	int status;
	pid_t pid;

	if (rounds_on(ctx, 3, "before"))
		return 1;
	pid = fork();
	if (pid < 0)
		return fail("fork", 0);
	if (pid == 0)
		_exit(rounds_on(ctx, 10, "child") ? 1 : 0);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return fail("the child's rounds", 0);
	return rounds_on(ctx, 10, "after");
}

int main(int argc, char **argv)
{
	unsigned int rounds;
	unsigned int flags;
	DC_CTX *ctx;

	if (argc != 4) {
		fprintf(stderr, "usage: tls_ctx <address> <flags> <rounds|refused>\n");
		return 2;
	}
	flags = (unsigned int)strtoul(argv[2], NULL, 0);
	ctx = DC_CTX_new(argv[1], flags);
	if (strcmp(argv[3], "refused") == 0) {
		if (ctx != NULL) {
			DC_CTX_free(ctx);
			return fail("DC_CTX_new succeeded without usable TLS files", 0);
		}
		printf("refused\n");
		return 0;
	}
	if (ctx == NULL)
		return fail("DC_CTX_new", 0);
	if (strcmp(argv[3], "fork") == 0) {
		if (across_fork(ctx))
			return 1;
		DC_CTX_free(ctx);
		printf("ok fork\n");
		return 0;
	}
	rounds = (unsigned int)strtoul(argv[3], NULL, 10);
	if (rounds_on(ctx, rounds, "main"))
		return 1;
	DC_CTX_free(ctx);
	printf("ok %u\n", rounds);
	return 0;
}
