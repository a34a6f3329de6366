/* harness.h: what the C harness programs in tests/c_harness/ share.
 *
 * Include it after the distcache headers:
 *
 *     #include <distcache/dc_client.h>
 *
 *     #include "harness.h"
 *
 * (roundtrip_ok() exists only when <distcache/dc_client.h> came first.)
 *
 * It is private to the tests (not part of the installed API). Everything
 * here is a macro or a static inline function, so a program pays only for
 * what it uses and -Wall -Wextra -Werror see no unused functions. It needs
 * the POSIX.1-2008 declarations (clock_gettime, dirfd, readlinkat) that the
 * compiler's default GNU C mode provides.
 *
 * Provides:
 * - FAIL(fmt, ...) and CHECK(cond, fmt, ...): report the first failure on
 *   stderr as "FAIL <file>:<line>: <message>" and exit(1). A program may
 *   set fail_context to a function that prints extra context (the flags
 *   under test, the pid) between the location and the ": ".
 * - now_ms(): CLOCK_MONOTONIC in milliseconds, for timing calls.
 * - await_go(): the READY/go handshake with the test driver.
 * - scan_fds(), count_fds(), list_sockets(), count_sockets(): the file
 *   descriptors and sockets open in this process, from /proc/self/fd.
 * - roundtrip_ok(): one checked add/get/has/remove on a DC_CTX. */
#ifndef DC_TEST_HARNESS_H
#define DC_TEST_HARNESS_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------
 * Failing */

/* When set, FAIL calls this to print extra context to stderr right after
 * "FAIL <file>:<line>", e.g. fprintf(stderr, " (flags 0x%x)", flags). */
static void (*fail_context)(void);

#define FAIL(...)                                                        \
	do {                                                             \
		fprintf(stderr, "FAIL %s:%d", __FILE__, __LINE__);       \
		if (fail_context)                                        \
			fail_context();                                  \
		fprintf(stderr, ": ");                                   \
		fprintf(stderr, __VA_ARGS__);                            \
		fprintf(stderr, "\n");                                   \
		exit(1);                                                 \
	} while (0)
#define CHECK(cond, ...)                                                 \
	do {                                                             \
		if (!(cond))                                             \
			FAIL(__VA_ARGS__);                               \
	} while (0)

/* ---------------------------------------------------------------------------
 * Time and the test driver */

/* CLOCK_MONOTONIC in milliseconds. */
static inline double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* The handshake with the driver (tests/c_harness.rs): prints "READY
 * <what>" on stdout and waits for a line on stdin, which the driver writes
 * once it has done its part (started or restarted dc_server). */
static inline void await_go(const char *what)
{
	char line[64];

	printf("READY %s\n", what);
	fflush(stdout);
	CHECK(fgets(line, sizeof(line), stdin) != NULL,
	      "no go line from the driver");
}

/* ---------------------------------------------------------------------------
 * Descriptors and sockets open in this process, from /proc/self/fd */

/* Calls visit(target, arg), when visit is not NULL, with the link target of
 * every file descriptor open in this process ("socket:[N]", "/dev/null",
 * ...), leaving out the one the directory scan itself uses. Returns how
 * many descriptors there are, or -1 when /proc/self/fd cannot be read. */
static inline int scan_fds(void (*visit)(const char *target, void *arg),
			   void *arg)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char target[128];
	ssize_t len;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		n++;
		if (!visit)
			continue;
		len = readlinkat(dirfd(d), e->d_name, target,
				 sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		visit(target, arg);
	}
	closedir(d);
	return n;
}

/* Open file descriptors of this process; -1 when they cannot be listed. */
static inline int count_fds(void)
{
	return scan_fds(NULL, NULL);
}

#define MAX_SOCKS 64

/* The inodes of the sockets open in this process (at most MAX_SOCKS). */
struct sockset {
	unsigned long inode[MAX_SOCKS];
	int n;
};

/* 1 and the inode when a /proc/self/fd link target is a socket. */
static inline int socket_inode(const char *target, unsigned long *ino)
{
	return sscanf(target, "socket:[%lu]", ino) == 1;
}

static inline void sockset_visit(const char *target, void *arg)
{
	struct sockset *s = arg;
	unsigned long ino;

	if (socket_inode(target, &ino) && s->n < MAX_SOCKS)
		s->inode[s->n++] = ino;
}

/* Fills s with the sockets open in this process. */
static inline void list_sockets(struct sockset *s)
{
	s->n = 0;
	CHECK(scan_fds(sockset_visit, s) >= 0, "opendir /proc/self/fd");
}

static inline void socket_count_visit(const char *target, void *arg)
{
	unsigned long ino;

	if (socket_inode(target, &ino))
		++*(int *)arg;
}

/* How many sockets are open in this process. */
static inline int count_sockets(void)
{
	int n = 0;

	CHECK(scan_fds(socket_count_visit, &n) >= 0, "opendir /proc/self/fd");
	return n;
}

/* ---------------------------------------------------------------------------
 * DC_CTX (only when <distcache/dc_client.h> was included first) */

#ifdef HEADER_DISTCACHE_DC_CLIENT_H

/* add (timeout 60 s), get (checked byte for byte), has and remove of `id`
 * on ctx, each of which must succeed; `who` names the round trip in the
 * failure messages. */
static inline void roundtrip_ok(DC_CTX *ctx, const unsigned char *id,
				unsigned int id_len, const unsigned char *sess,
				unsigned int sess_len, const char *who)
{
	unsigned char out[1024];
	unsigned int used = 0;

	CHECK(sess_len <= sizeof(out), "%s: a %u-byte session is too big for "
	      "roundtrip_ok", who, sess_len);
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, sess_len, 60000) == 1,
	      "%s: add failed", who);
	CHECK(DC_CTX_get_session(ctx, id, id_len, out, sizeof(out), &used) ==
		      1,
	      "%s: get failed", who);
	CHECK(used == sess_len && memcmp(out, sess, sess_len) == 0,
	      "%s: get returned wrong data (used %u, want %u)", who, used,
	      sess_len);
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 1, "%s: has", who);
	CHECK(DC_CTX_remove_session(ctx, id, id_len) == 1, "%s: remove", who);
}

#endif /* HEADER_DISTCACHE_DC_CLIENT_H */

#endif /* DC_TEST_HARNESS_H */
