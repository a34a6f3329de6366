/* basic.c: the DC_CTX API end to end against a running dc_server.
 *
 * usage: basic <address> [flags]
 *   flags: a number (DC_CTX_FLAG_* bits, decimal or 0x..), default 0.
 *
 * Proves, for one flag combination: add/get/reget/has/remove and their
 * return conventions; a miss leaves *result_used untouched; reget answers
 * the last get of the same id and fails for any other id or after another
 * operation; a NULL 0-byte buffer asks for the length; a short result
 * buffer gets a prefix and the full length; the largest session that fits
 * (8 + id + session == 32768) round-trips and one byte more is refused;
 * sessions of 1..4 bytes are stored (has finds them) but get fails;
 * duplicate add and missing remove fail; short timeouts are sent as is.
 * Exit 0 on success, 1 with a message on the first failure. */
#include <distcache/dc_client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MAX_TOTAL 32768u

static unsigned int g_flags;
static unsigned char big[MAX_TOTAL];
static unsigned char out[MAX_TOTAL + 16];

/* Every FAIL line names the flags under test. */
static void print_flags(void)
{
	fprintf(stderr, " (flags 0x%x)", g_flags);
}

/* A unique id prefix per process so that runs sharing a server never meet. */
static unsigned int make_id(unsigned char *buf, const char *name)
{
	int n = snprintf((char *)buf, 64, "basic-%ld-%x-%s", (long)getpid(),
			 g_flags, name);
	return (unsigned int)n;
}

static void fill(unsigned char *p, unsigned int len, unsigned int seed)
{
	unsigned int i;
	for (i = 0; i < len; i++)
		p[i] = (unsigned char)((i * 31u + seed * 7u + (i >> 8)) & 0xff);
}

static void sleep_ms(long ms)
{
	struct timespec ts;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

static void test_roundtrip(DC_CTX *ctx)
{
	unsigned char id[64], id2[64], sess[300];
	unsigned int id_len = make_id(id, "roundtrip");
	unsigned int id2_len = make_id(id2, "other");
	unsigned int used;
	int r;

	fill(sess, sizeof(sess), 1);

	/* Nothing there yet: has 0, get 0 with result_used untouched. */
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 0, "has before add");
	used = 0xdeadbeef;
	CHECK(DC_CTX_get_session(ctx, id, id_len, out, sizeof(out), &used) ==
		      0,
	      "get before add returned a hit");
	CHECK(used == 0xdeadbeef, "miss changed result_used to %u", used);
	CHECK(DC_CTX_remove_session(ctx, id, id_len) == 0,
	      "remove of a missing id returned success");
	/* No get has succeeded yet: reget has nothing to answer with. */
	CHECK(DC_CTX_reget_session(ctx, id, id_len, out, sizeof(out), &used) ==
		      0,
	      "reget with no previous get succeeded");

	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, sizeof(sess), 60000) ==
		      1,
	      "add failed");
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, sizeof(sess), 60000) ==
		      0,
	      "duplicate add succeeded");
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 1, "has after add");

	memset(out, 0xAA, sizeof(out));
	used = 0;
	r = DC_CTX_get_session(ctx, id, id_len, out, sizeof(out), &used);
	CHECK(r == 1, "get after add returned %d", r);
	CHECK(used == sizeof(sess), "get result_used %u, want %u", used,
	      (unsigned int)sizeof(sess));
	CHECK(memcmp(out, sess, sizeof(sess)) == 0, "get data differs");
	CHECK(out[sizeof(sess)] == 0xAA, "get wrote past the session length");

	/* reget of the same id is answered from memory. */
	memset(out, 0, sizeof(out));
	used = 0;
	r = DC_CTX_reget_session(ctx, id, id_len, out, sizeof(out), &used);
	CHECK(r == 1, "reget after get returned %d", r);
	CHECK(used == sizeof(sess), "reget result_used %u", used);
	CHECK(memcmp(out, sess, sizeof(sess)) == 0, "reget data differs");
	/* ... and twice in a row. */
	used = 0;
	CHECK(DC_CTX_reget_session(ctx, id, id_len, out, sizeof(out), &used) ==
			      1 &&
		      used == sizeof(sess),
	      "second reget failed");
	/* reget for another id, a prefix of the id, or a longer id fails. */
	used = 0x5555;
	CHECK(DC_CTX_reget_session(ctx, id2, id2_len, out, sizeof(out),
				   &used) == 0,
	      "reget for another id succeeded");
	CHECK(used == 0x5555, "failed reget changed result_used");
	CHECK(DC_CTX_reget_session(ctx, id, id_len - 1, out, sizeof(out),
				   &used) == 0,
	      "reget for a prefix of the id succeeded");

	/* The man page: reget fails when the last operation was not a get of
	 * that id. A has in between ends the get's reget window. */
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 1, "has before reget");
	used = 0x5555;
	CHECK(DC_CTX_reget_session(ctx, id, id_len, out, sizeof(out),
				   &used) == 0,
	      "reget after an intervening has succeeded");
	CHECK(used == 0x5555, "failed reget changed result_used");

	/* As in the original, a NULL buffer of size 0 asks for the length. */
	used = 0;
	CHECK(DC_CTX_get_session(ctx, id, id_len, NULL, 0, &used) == 1 &&
		      used == sizeof(sess),
	      "get with a NULL, 0-byte buffer: used %u", used);

	/* remove, then everything misses; reget after the remove fails. */
	CHECK(DC_CTX_remove_session(ctx, id, id_len) == 1, "remove failed");
	CHECK(DC_CTX_remove_session(ctx, id, id_len) == 0,
	      "second remove succeeded");
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 0, "has after remove");
	used = 777;
	CHECK(DC_CTX_get_session(ctx, id, id_len, out, sizeof(out), &used) ==
		      0,
	      "get after remove succeeded");
	CHECK(used == 777, "miss after remove changed result_used");
	CHECK(DC_CTX_reget_session(ctx, id, id_len, out, sizeof(out), &used) ==
		      0,
	      "reget after remove + missed get succeeded");

	/* The id can be added again after removal. */
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, 100, 60000) == 1,
	      "re-add after remove failed");
	used = 0;
	CHECK(DC_CTX_get_session(ctx, id, id_len, out, sizeof(out), &used) ==
			      1 &&
		      used == 100 && memcmp(out, sess, 100) == 0,
	      "get after re-add");
	CHECK(DC_CTX_remove_session(ctx, id, id_len) == 1, "final remove");
}

static void test_short_buffer(DC_CTX *ctx)
{
	unsigned char id[64], sess[5000], small[10];
	unsigned int id_len = make_id(id, "short");
	unsigned int used;

	fill(sess, sizeof(sess), 2);
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, sizeof(sess), 60000) ==
		      1,
	      "add (short buffer test)");
	memset(small, 0xCC, sizeof(small));
	used = 0;
	/* Ask for only 7 of the bytes: a prefix and the full length. */
	CHECK(DC_CTX_get_session(ctx, id, id_len, small, 7, &used) == 1,
	      "get with a short buffer failed");
	CHECK(used == sizeof(sess), "short get result_used %u, want %u", used,
	      (unsigned int)sizeof(sess));
	CHECK(memcmp(small, sess, 7) == 0, "short get prefix differs");
	CHECK(small[7] == 0xCC && small[8] == 0xCC && small[9] == 0xCC,
	      "short get wrote past result_size");
	/* Then reget with a big enough buffer. */
	memset(out, 0, sizeof(out));
	used = 0;
	CHECK(DC_CTX_reget_session(ctx, id, id_len, out, sizeof(out), &used) ==
		      1,
	      "reget after a short get failed");
	CHECK(used == sizeof(sess) && memcmp(out, sess, sizeof(sess)) == 0,
	      "reget after a short get: wrong data (used %u)", used);
	/* A zero-sized buffer still reports the length. */
	used = 0;
	CHECK(DC_CTX_get_session(ctx, id, id_len, small, 0, &used) == 1 &&
		      used == sizeof(sess),
	      "get with result_size 0: used %u", used);
	CHECK(DC_CTX_remove_session(ctx, id, id_len) == 1, "remove (short)");
}

static void test_sizes(DC_CTX *ctx)
{
	unsigned char id[64];
	unsigned int id_len = make_id(id, "big");
	unsigned int sess_len = MAX_TOTAL - 8 - id_len;
	unsigned int used, len;
	char name[32];

	/* The largest session that fits: 8 + id_len + sess_len == 32768. */
	fill(big, sess_len, 3);
	CHECK(DC_CTX_add_session(ctx, id, id_len, big, sess_len + 1, 60000) ==
		      0,
	      "add of 32769 bytes of payload succeeded");
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 0,
	      "the refused oversize session is in the cache");
	CHECK(DC_CTX_add_session(ctx, id, id_len, big, sess_len, 60000) == 1,
	      "add of the largest session (%u bytes) failed", sess_len);
	memset(out, 0, sizeof(out));
	used = 0;
	CHECK(DC_CTX_get_session(ctx, id, id_len, out, sizeof(out), &used) ==
		      1,
	      "get of the largest session failed");
	CHECK(used == sess_len, "largest session: used %u, want %u", used,
	      sess_len);
	CHECK(memcmp(out, big, sess_len) == 0, "largest session data differs");
	CHECK(DC_CTX_remove_session(ctx, id, id_len) == 1, "remove big");

	/* Sizes around the 2048-byte frame boundary and small ones. A session
	 * of 1..4 bytes is stored (has finds it) but a GET reply shorter
	 * than 5 bytes counts as failure, as in the original. */
	{
		static const unsigned int sizes[] = {
			1, 2, 3, 4, 5, 6, 2047, 2048, 2049, 4096, 4097, 20000};
		unsigned int i;
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			len = sizes[i];
			snprintf(name, sizeof(name), "size%u", len);
			id_len = make_id(id, name);
			fill(big, len, len);
			CHECK(DC_CTX_add_session(ctx, id, id_len, big, len,
						 60000) == 1,
			      "add of %u bytes failed", len);
			CHECK(DC_CTX_has_session(ctx, id, id_len) == 1,
			      "has for a %u-byte session", len);
			used = 0x12345;
			memset(out, 0, len + 1);
			if (len < 5) {
				CHECK(DC_CTX_get_session(ctx, id, id_len, out,
							 sizeof(out),
							 &used) == 0,
				      "get of a %u-byte session succeeded",
				      len);
			} else {
				CHECK(DC_CTX_get_session(ctx, id, id_len, out,
							 sizeof(out),
							 &used) == 1,
				      "get of a %u-byte session failed", len);
				CHECK(used == len &&
					      memcmp(out, big, len) == 0,
				      "%u-byte session: used %u or data "
				      "differs",
				      len, used);
			}
			CHECK(DC_CTX_remove_session(ctx, id, id_len) == 1,
			      "remove of the %u-byte session", len);
		}
	}

	/* Ids: 1 byte and 64 bytes work; 65 bytes are refused by the server. */
	{
		unsigned char lid[65];
		unsigned char sess[16];
		fill(sess, sizeof(sess), 9);
		memset(lid, 0, sizeof(lid));
		id_len = make_id(lid, "long-id");
		memset(lid + id_len, 'x', sizeof(lid) - id_len);
		CHECK(DC_CTX_add_session(ctx, lid, 64, sess, sizeof(sess),
					 60000) == 1,
		      "add with a 64-byte id failed");
		CHECK(DC_CTX_has_session(ctx, lid, 64) == 1, "has 64-byte id");
		CHECK(DC_CTX_remove_session(ctx, lid, 64) == 1,
		      "remove 64-byte id");
		CHECK(DC_CTX_add_session(ctx, lid, 65, sess, sizeof(sess),
					 60000) == 0,
		      "add with a 65-byte id succeeded");
		/* Binary ids with NUL bytes are fine. */
		lid[0] = 0;
		lid[5] = 0;
		CHECK(DC_CTX_add_session(ctx, lid, 20, sess, sizeof(sess),
					 60000) == 1,
		      "add with a binary id failed");
		CHECK(DC_CTX_has_session(ctx, lid, 20) == 1, "has binary id");
		CHECK(DC_CTX_has_session(ctx, lid, 19) == 0,
		      "has found a prefix of a binary id");
		CHECK(DC_CTX_remove_session(ctx, lid, 20) == 1,
		      "remove binary id");
	}
}

static void test_timeouts(DC_CTX *ctx)
{
	unsigned char id[64], sess[32];
	unsigned int id_len;

	fill(sess, sizeof(sess), 4);
	/* Timeouts under 500 ms are sent as they are (the original aborted):
	 * the session is stored and expires after that time. */
	id_len = make_id(id, "t100");
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, sizeof(sess), 100) ==
		      1,
	      "add with a 100 ms timeout failed");
	id_len = make_id(id, "t0");
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, sizeof(sess), 0) == 1,
	      "add with a 0 ms timeout failed");
	id_len = make_id(id, "t7days");
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, sizeof(sess),
				 604800000UL) == 1,
	      "add with the 7-day timeout failed");
	CHECK(DC_CTX_remove_session(ctx, id, id_len) == 1, "remove t7days");
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, sizeof(sess),
				 604800001UL) == 0,
	      "add with a timeout over 7 days succeeded");
	id_len = make_id(id, "t1000");
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, sizeof(sess), 1000) ==
		      1,
	      "add with a 1000 ms timeout failed");
	sleep_ms(400);
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 1,
	      "1000 ms session gone after 400 ms");
	id_len = make_id(id, "t100");
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 0,
	      "100 ms session still there after 400 ms");
	id_len = make_id(id, "t0");
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 0,
	      "0 ms session still there after 400 ms");
	sleep_ms(1000);
	id_len = make_id(id, "t1000");
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 0,
	      "1000 ms session still there after 1400 ms");
}

int main(int argc, char **argv)
{
	DC_CTX *ctx;

	fail_context = print_flags;
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s <address> [flags]\n", argv[0]);
		return 2;
	}
	if (argc == 3)
		g_flags = (unsigned int)strtoul(argv[2], NULL, 0);
	ctx = DC_CTX_new(argv[1], g_flags);
	CHECK(ctx != NULL, "DC_CTX_new(%s, 0x%x) returned NULL", argv[1],
	      g_flags);
	test_roundtrip(ctx);
	test_short_buffer(ctx);
	test_sizes(ctx);
	test_timeouts(ctx);
	DC_CTX_free(ctx);
	printf("basic OK (flags 0x%x)\n", g_flags);
	return 0;
}
