/* args.c: bad arguments fail cleanly instead of aborting or crashing.
 *
 * usage: args <address>      (a running dc_server)
 *
 * Proves: DC_CTX_new returns NULL for NULL or unparseable addresses;
 * DC_CTX_free(NULL) is harmless; NULL ctx, NULL id/session/result_used
 * pointers, id_len 0, sess_len 0 and oversize data (8 + id + session >
 * 32768) make each call return failure (0, or -1 for has) without touching
 * *result_used; DC_CTX_set_timeout rejects NULL and 0; and after all that
 * the same ctx (flags 0 and PERSISTENT) still works. The original asserted
 * (abort, status 134) on most of these. */
#include <distcache/dc_client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static unsigned char big[32768 + 16];
static unsigned char out[32768];

static void bad_calls(DC_CTX *ctx, const char *what)
{
	unsigned char id[64], sess[64];
	unsigned int id_len, used;

	id_len = (unsigned int)snprintf((char *)id, sizeof(id), "args-%ld-%s",
					(long)getpid(), what);
	memset(sess, 'S', sizeof(sess));

	/* NULL ctx */
	CHECK(DC_CTX_add_session(NULL, id, id_len, sess, 10, 60000) == 0,
	      "add with NULL ctx");
	used = 42;
	CHECK(DC_CTX_get_session(NULL, id, id_len, out, sizeof(out), &used) ==
		      0,
	      "get with NULL ctx");
	CHECK(DC_CTX_reget_session(NULL, id, id_len, out, sizeof(out),
				   &used) == 0,
	      "reget with NULL ctx");
	CHECK(used == 42, "NULL-ctx get/reget changed result_used");
	CHECK(DC_CTX_has_session(NULL, id, id_len) == -1, "has with NULL ctx");
	CHECK(DC_CTX_remove_session(NULL, id, id_len) == 0,
	      "remove with NULL ctx");

	/* NULL id, with and without a length */
	CHECK(DC_CTX_add_session(ctx, NULL, id_len, sess, 10, 60000) == 0,
	      "add with NULL id");
	CHECK(DC_CTX_add_session(ctx, NULL, 0, sess, 10, 60000) == 0,
	      "add with NULL id, len 0");
	CHECK(DC_CTX_get_session(ctx, NULL, id_len, out, sizeof(out), &used) ==
		      0,
	      "get with NULL id");
	CHECK(DC_CTX_reget_session(ctx, NULL, id_len, out, sizeof(out),
				   &used) == 0,
	      "reget with NULL id");
	CHECK(DC_CTX_has_session(ctx, NULL, id_len) == -1, "has with NULL id");
	CHECK(DC_CTX_remove_session(ctx, NULL, id_len) == 0,
	      "remove with NULL id");
	CHECK(used == 42, "NULL-id get/reget changed result_used");

	/* id_len 0 */
	CHECK(DC_CTX_add_session(ctx, id, 0, sess, 10, 60000) == 0,
	      "add with id_len 0");
	CHECK(DC_CTX_get_session(ctx, id, 0, out, sizeof(out), &used) == 0,
	      "get with id_len 0");
	CHECK(DC_CTX_reget_session(ctx, id, 0, out, sizeof(out), &used) == 0,
	      "reget with id_len 0");
	CHECK(DC_CTX_has_session(ctx, id, 0) == -1, "has with id_len 0");
	CHECK(DC_CTX_remove_session(ctx, id, 0) == 0, "remove with id_len 0");
	CHECK(used == 42, "id_len-0 get/reget changed result_used");

	/* session: NULL, or length 0 */
	CHECK(DC_CTX_add_session(ctx, id, id_len, NULL, 10, 60000) == 0,
	      "add with NULL session");
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, 0, 60000) == 0,
	      "add with sess_len 0");
	CHECK(DC_CTX_add_session(ctx, id, id_len, NULL, 0, 60000) == 0,
	      "add with NULL session, len 0");

	/* oversize: id + session + 8 > 32768, and absurd lengths */
	CHECK(DC_CTX_add_session(ctx, id, id_len, big, 32768 - 8 - id_len + 1,
				 60000) == 0,
	      "add of one byte too many");
	CHECK(DC_CTX_add_session(ctx, id, id_len, big, 0xffffffffu, 60000) ==
		      0,
	      "add with sess_len 0xffffffff");
	CHECK(DC_CTX_add_session(ctx, big, 32768, sess, 1, 60000) == 0,
	      "add with a 32768-byte id");
	CHECK(DC_CTX_get_session(ctx, big, 32768 + 1, out, sizeof(out),
				 &used) == 0,
	      "get with a 32769-byte id");
	CHECK(DC_CTX_has_session(ctx, big, 32768 + 1) == -1,
	      "has with a 32769-byte id");
	CHECK(DC_CTX_remove_session(ctx, big, 32768 + 1) == 0,
	      "remove with a 32769-byte id");
	CHECK(used == 42, "oversize get changed result_used");

	/* Nothing of the above reached the cache. */
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 0,
	      "a refused add stored the session");

	/* The ctx still works: add, get, then get with NULL result_used. */
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, sizeof(sess), 60000) ==
		      1,
	      "add after the bad calls");
	used = 0;
	CHECK(DC_CTX_get_session(ctx, id, id_len, out, sizeof(out), &used) ==
			      1 &&
		      used == sizeof(sess) &&
		      memcmp(out, sess, sizeof(sess)) == 0,
	      "get after the bad calls");
	CHECK(DC_CTX_get_session(ctx, id, id_len, out, sizeof(out), NULL) == 0,
	      "get with NULL result_used");
	CHECK(DC_CTX_reget_session(ctx, id, id_len, out, sizeof(out), NULL) ==
		      0,
	      "reget with NULL result_used");
	CHECK(DC_CTX_remove_session(ctx, id, id_len) == 1,
	      "remove after the bad calls");
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 0, "has after remove");
}

int main(int argc, char **argv)
{
	static const char *bad_addresses[] = {
		"", "nonsense", "FOO:bar", "IP:", "IP:70000", "IP:1.2.3.4:x",
		"UNIX:",
	};
	static const unsigned int flag_sets[] = {
		0, DC_CTX_FLAG_PERSISTENT,
		DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_LATE,
	};
	unsigned int i, f;
	DC_CTX *ctx;

	if (argc != 2) {
		fprintf(stderr, "usage: %s <address>\n", argv[0]);
		return 2;
	}

	for (f = 0; f < sizeof(flag_sets) / sizeof(flag_sets[0]); f++) {
		CHECK(DC_CTX_new(NULL, flag_sets[f]) == NULL,
		      "DC_CTX_new(NULL, 0x%x) returned a ctx", flag_sets[f]);
		for (i = 0; i < sizeof(bad_addresses) / sizeof(bad_addresses[0]);
		     i++) {
			ctx = DC_CTX_new(bad_addresses[i], flag_sets[f]);
			if (ctx != NULL) {
				DC_CTX_free(ctx);
				FAIL("DC_CTX_new(\"%s\", 0x%x) returned a ctx",
				     bad_addresses[i], flag_sets[f]);
			}
		}
	}
	DC_CTX_free(NULL);

	CHECK(DC_CTX_set_timeout(NULL, 1000) == 0, "set_timeout(NULL)");

	for (f = 0; f < sizeof(flag_sets) / sizeof(flag_sets[0]); f++) {
		char what[16];
		ctx = DC_CTX_new(argv[1], flag_sets[f]);
		CHECK(ctx != NULL, "DC_CTX_new(%s, 0x%x)", argv[1],
		      flag_sets[f]);
		CHECK(DC_CTX_set_timeout(ctx, 0) == 0, "set_timeout(ctx, 0)");
		CHECK(DC_CTX_set_timeout(ctx, 3000) == 1,
		      "set_timeout(ctx, 3000)");
		snprintf(what, sizeof(what), "f%x", flag_sets[f]);
		bad_calls(ctx, what);
		DC_CTX_free(ctx);
	}
	printf("args OK\n");
	return 0;
}
