/* nal_util.h: what the libnal harness programs (nal_*.c, dc_*.c) share.
 *
 * Include it after <libnal/nal.h> and "harness.h". Like harness.h it holds
 * only macros and static inline functions.
 *
 * Provides:
 * - selector_new(kind): a NAL_SELECTOR from the constructor named "new"
 *   (NAL_SELECTOR_new), "fdselect" or "fdpoll"; SELECTOR_KINDS lists them.
 * - pattern(seed, i): the i-th byte of a reproducible stream.
 * - wait_accept(): select on a listener until NAL_CONNECTION_accept
 *   succeeds, within a time limit.
 * - ignore_sigpipe(): libnal writes with write(2), so a peer that closes
 *   first would kill the process with SIGPIPE, as in the original's tools. */
#ifndef DC_TEST_NAL_UTIL_H
#define DC_TEST_NAL_UTIL_H

#include <signal.h>
#include <string.h>

static const char *const SELECTOR_KINDS[] = {"fdselect", "fdpoll", "new"};
#define NUM_SELECTOR_KINDS 3

static inline NAL_SELECTOR *selector_new(const char *kind)
{
	if (strcmp(kind, "fdselect") == 0)
		return NAL_SELECTOR_new_fdselect();
	if (strcmp(kind, "fdpoll") == 0)
		return NAL_SELECTOR_new_fdpoll();
	if (strcmp(kind, "new") == 0)
		return NAL_SELECTOR_new();
	FAIL("unknown selector kind '%s'", kind);
	return NULL;
}

static inline unsigned char pattern(unsigned int seed, unsigned long i)
{
	return (unsigned char)((i * 131u + seed * 29u + (i >> 9) * 7u) & 0xff);
}

/* Selects on sel (which holds `list`) until a connection is accepted into
 * conn, at most limit_ms; fails the program otherwise. Returns how many
 * select calls it took. */
static inline int wait_accept(NAL_SELECTOR *sel, NAL_LISTENER *list,
			      NAL_CONNECTION *conn, double limit_ms)
{
	double start = now_ms();
	int rounds = 0;

	while (!NAL_CONNECTION_accept(conn, list)) {
		CHECK(now_ms() - start < limit_ms,
		      "no connection accepted within %.0f ms", limit_ms);
		CHECK(NAL_SELECTOR_select(sel, 100000, 1) >= 0,
		      "select failed while waiting to accept");
		rounds++;
	}
	return rounds;
}

static inline void ignore_sigpipe(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGPIPE, &sa, NULL) == 0, "ignore SIGPIPE");
}

#endif /* DC_TEST_NAL_UTIL_H */
