/* down.c: every call fails fast when the server is down.
 *
 * usage: down <address>...   (addresses where nothing listens: a missing
 *                             socket path, a stale socket file, a closed
 *                             TCP port)
 *
 * Proves, for each address: DC_CTX_new with PERSISTENT (and not LATE)
 * returns NULL; flags 0, PERSISTENT|LATE, PERSISTENT|LATE|RETRY and
 * PERSISTENT|LATE|PIDCHECK return a ctx; then add, get, reget and remove
 * return 0 and has returns -1, each in under a second, long before any timeout (measured with
 * CLOCK_MONOTONIC), repeatedly, and *result_used is left untouched. */
#include <distcache/dc_client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define LIMIT_MS 1000.0

/* Runs `expr`, checks its value and that it took under LIMIT_MS. */
#define TIMED(expr, want, what)                                          \
	do {                                                             \
		double t0_ = now_ms();                                   \
		int r_ = (expr);                                         \
		double dt_ = now_ms() - t0_;                             \
		CHECK(r_ == (want), "%s on %s (flags 0x%x): returned %d, " \
		      "want %d", what, addr, flags, r_, want);           \
		CHECK(dt_ < LIMIT_MS, "%s on %s (flags 0x%x) took %.1f ms", \
		      what, addr, flags, dt_);                           \
		if (dt_ > worst)                                         \
			worst = dt_;                                     \
	} while (0)

static double worst;

static void check_address(const char *addr)
{
	static const unsigned int flag_sets[] = {
		0,
		DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_LATE,
		DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_LATE |
			DC_CTX_FLAG_PERSISTENT_RETRY,
		DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_LATE |
			DC_CTX_FLAG_PERSISTENT_PIDCHECK,
		DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_LATE |
			DC_CTX_FLAG_PERSISTENT_RETRY |
			DC_CTX_FLAG_PERSISTENT_PIDCHECK,
	};
	static const unsigned char id[] = "down-id";
	static const unsigned char sess[] = "down-session";
	unsigned char out[64];
	unsigned int used, i, flags;
	int round;
	DC_CTX *ctx;

	flags = DC_CTX_FLAG_PERSISTENT;
	{
		double t0 = now_ms();
		ctx = DC_CTX_new(addr, flags);
		CHECK(ctx == NULL, "PERSISTENT DC_CTX_new(%s) succeeded", addr);
		CHECK(now_ms() - t0 < LIMIT_MS, "PERSISTENT DC_CTX_new took "
		      "%.1f ms", now_ms() - t0);
		ctx = DC_CTX_new(addr, flags | DC_CTX_FLAG_PERSISTENT_RETRY);
		CHECK(ctx == NULL, "PERSISTENT|RETRY DC_CTX_new(%s) succeeded",
		      addr);
	}

	for (i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
		flags = flag_sets[i];
		TIMED((ctx = DC_CTX_new(addr, flags)) != NULL, 1,
		      "DC_CTX_new");
		for (round = 0; round < 3; round++) {
			used = 99;
			TIMED(DC_CTX_add_session(ctx, id, sizeof(id), sess,
						 sizeof(sess), 60000),
			      0, "add");
			TIMED(DC_CTX_get_session(ctx, id, sizeof(id), out,
						 sizeof(out), &used),
			      0, "get");
			TIMED(DC_CTX_reget_session(ctx, id, sizeof(id), out,
						   sizeof(out), &used),
			      0, "reget");
			TIMED(DC_CTX_has_session(ctx, id, sizeof(id)), -1,
			      "has");
			TIMED(DC_CTX_remove_session(ctx, id, sizeof(id)), 0,
			      "remove");
			CHECK(used == 99, "failed get changed result_used");
		}
		DC_CTX_free(ctx);
	}
}

int main(int argc, char **argv)
{
	int i;

	if (argc < 2) {
		fprintf(stderr, "usage: %s <address>...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++)
		check_address(argv[i]);
	printf("down OK (slowest call %.2f ms)\n", worst);
	return 0;
}
