/* hang.c: a server that accepts and never answers cannot hang the caller.
 *
 * usage: hang <address> set [flags...] | env | default
 *   <address>: a listener (provided by the test driver) that accepts
 *              connections and never writes anything.
 *   set:     DC_CTX_set_timeout(ctx, 500): for each flags value given
 *            (default: 0, PERSISTENT, PERSISTENT|LATE), each of add, get,
 *            has and remove fails (has -> -1) after 500 ms, RETRY
 *            included (the timeout bounds the whole call); reget and an
 *            oversize add fail at once (they never touch the network).
 *   env:     DISTCACHE_TIMEOUT_MS (set by the driver, read at DC_CTX_new)
 *            bounds each call for flags 0 and PERSISTENT; DC_CTX_set_timeout
 *            overrides it afterwards (500 ms again).
 *   default: no setting: one has() with flags 0 fails after 1000 ms.
 * The driver turns the breaker off (DISTCACHE_DOWN_MS=0) for set and env,
 * which time every call: with it on, the calls after the first would fail
 * at once (tests/breaker.rs).
 * Times are measured with CLOCK_MONOTONIC.
 *
 * Every timeout T must end no earlier than T ms, and well before a hang: the
 * library waits in poll(2) for exactly the time left, but a loaded machine
 * may run the process late, so the upper bound only proves the call ends. */
#include <distcache/dc_client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* Runs `expr`, checks its value and that it took lo..hi ms. */
#define TIMED(expr, want, lo, hi, what)                                  \
	do {                                                             \
		double t0_ = now_ms();                                   \
		int r_ = (expr);                                         \
		double dt_ = now_ms() - t0_;                             \
		CHECK(r_ == (want), "%s (flags 0x%x): returned %d, want %d", \
		      what, flags, r_, want);                            \
		CHECK(dt_ >= (lo) && dt_ <= (hi),                        \
		      "%s (flags 0x%x) took %.1f ms, want %.0f..%.0f ms",  \
		      what, flags, dt_, (double)(lo), (double)(hi));     \
		printf("  %-8s flags 0x%x: %.1f ms\n", what, flags, dt_); \
	} while (0)

static const unsigned char id[] = "hang-id";
static const unsigned char sess[] = "hang-session";
static unsigned char big[32768];

static void network_calls(DC_CTX *ctx, unsigned int flags, double lo,
			  double hi)
{
	unsigned char out[64];
	unsigned int used = 5;

	TIMED(DC_CTX_add_session(ctx, id, sizeof(id), sess, sizeof(sess),
				 60000),
	      0, lo, hi, "add");
	TIMED(DC_CTX_get_session(ctx, id, sizeof(id), out, sizeof(out), &used),
	      0, lo, hi, "get");
	CHECK(used == 5, "a timed-out get changed result_used");
	TIMED(DC_CTX_has_session(ctx, id, sizeof(id)), -1, lo, hi, "has");
	TIMED(DC_CTX_remove_session(ctx, id, sizeof(id)), 0, lo, hi, "remove");
	/* Local failures do not wait. */
	TIMED(DC_CTX_reget_session(ctx, id, sizeof(id), out, sizeof(out),
				   &used),
	      0, 0.0, 20.0, "reget");
	TIMED(DC_CTX_add_session(ctx, id, sizeof(id), big,
				 32768 - 8 - sizeof(id) + 1, 60000),
	      0, 0.0, 1000.0, "oversize");
}

/* The latest a timeout of t ms may end. */
static double late_bound(double t)
{
	return t + 1000.0;
}

static DC_CTX *new_ctx(const char *addr, unsigned int flags)
{
	DC_CTX *ctx;
	double t0 = now_ms();
	ctx = DC_CTX_new(addr, flags);
	CHECK(ctx != NULL, "DC_CTX_new(%s, 0x%x)", addr, flags);
	CHECK(now_ms() - t0 < 1000.0, "DC_CTX_new took %.1f ms", now_ms() - t0);
	return ctx;
}

int main(int argc, char **argv)
{
	static const unsigned int flag_sets[] = {
		0, DC_CTX_FLAG_PERSISTENT,
		DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_LATE,
	};
	unsigned int i, flags;
	const char *addr, *mode;
	DC_CTX *ctx;

	if (argc < 3 || (argc > 3 && strcmp(argv[2], "set") != 0)) {
		fprintf(stderr,
			"usage: %s <address> set [flags...] | env | default\n",
			argv[0]);
		return 2;
	}
	addr = argv[1];
	mode = argv[2];

	if (strcmp(mode, "set") == 0) {
		unsigned int n = argc > 3 ? (unsigned int)argc - 3
					  : sizeof(flag_sets) / sizeof(flag_sets[0]);
		for (i = 0; i < n; i++) {
			flags = argc > 3 ? (unsigned int)strtoul(argv[3 + i],
								 NULL, 0)
					 : flag_sets[i];
			ctx = new_ctx(addr, flags);
			CHECK(DC_CTX_set_timeout(ctx, 500) == 1, "set_timeout");
			network_calls(ctx, flags, 500.0, late_bound(500.0));
			DC_CTX_free(ctx);
		}
	} else if (strcmp(mode, "env") == 0) {
		const char *env = getenv("DISTCACHE_TIMEOUT_MS");
		double t;
		CHECK(env != NULL, "DISTCACHE_TIMEOUT_MS is not set");
		t = atof(env);
		CHECK(t >= 100.0, "DISTCACHE_TIMEOUT_MS=%s is too small", env);
		for (i = 0; i < 2; i++) {
			flags = flag_sets[i];
			ctx = new_ctx(addr, flags);
			TIMED(DC_CTX_has_session(ctx, id, sizeof(id)), -1, t,
			      late_bound(t), "has/env");
			CHECK(DC_CTX_set_timeout(ctx, 500) == 1, "set_timeout");
			TIMED(DC_CTX_has_session(ctx, id, sizeof(id)), -1,
			      500.0, late_bound(500.0), "has/set");
			DC_CTX_free(ctx);
		}
	} else if (strcmp(mode, "default") == 0) {
		CHECK(getenv("DISTCACHE_TIMEOUT_MS") == NULL,
		      "DISTCACHE_TIMEOUT_MS is set");
		flags = 0;
		ctx = new_ctx(addr, flags);
		TIMED(DC_CTX_has_session(ctx, id, sizeof(id)), -1, 1000.0,
		      late_bound(1000.0), "has/dflt");
		DC_CTX_free(ctx);
	} else {
		FAIL("unknown mode %s", mode);
	}
	printf("hang %s OK\n", mode);
	return 0;
}
