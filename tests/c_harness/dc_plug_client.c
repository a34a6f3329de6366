/* dc_plug_client.c: the DC_PLUG API, over connection pairs and against a
 * running cache server.
 *
 * usage: dc_plug_client [--selector fdselect|fdpoll|new] [--ext] [address]
 *   address     a cache server (dc_server, dc_embed, the original's
 *               dc_server); without it only the pair checks run
 *   --selector  the selector constructor (default: new)
 *   --ext       also the checks of this project's extensions: a frame fed
 *               to a plug in every possible split is decoded exactly once
 *               (the original's decoder misread some splits), and every
 *               request is pipelined, also behind the 20000-byte GET (the
 *               original server drops a client that sends a request while
 *               a reply larger than its send buffer is still going out, so
 *               without --ext the client waits for that reply first)
 *
 * Proves, over NAL_CONNECTION_create_pair (no server):
 * - the state rules: read/consume with nothing received, commit/rollback/
 *   write_more with nothing open and a second write without resume all
 *   fail; write with resume replaces the open message; write_more appends;
 *   rollback drops it; 32768 bytes is the largest payload (write and
 *   write_more refuse more); a read stays open (read again needs resume,
 *   which gives the same message) until consume.
 * - the bytes a TO_SERVER plug sends (14-byte big-endian header at
 *   protocol level 0x00110000, is_response 0, 2048-byte frames with
 *   complete=0 then the rest), and that it reassembles responses written
 *   by hand, including multi-frame ones; a request-sense plug (flags 0)
 *   reads requests and answers; a plug that receives a message of the
 *   wrong sense fails its I/O.
 * Against the server at `address`, one TO_SERVER plug pipelines 14
 * requests (ADD, GET, HAVE, REMOVE, a 20000-byte multi-frame ADD and its
 * GET, refused ADDs) plus a rolled-back one, written with write/write_more/
 * commit, and matches each reply by request_uid; a second plug with
 * NOFREE_CONN leaves its connection usable after DC_PLUG_free.
 * Prints "OPS <n> STORED <k>": the requests the server answered and the
 * sessions this run left stored. Exit 0 on success, 1 with a message. */
#include <libnal/nal.h>
#include <distcache/dc_plug.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "nal_util.h"

#define BUFSZ 4096
#define LIMIT_MS 20000.0
#define BIG_LEN 20000u

static const char *g_kind = "new";
static int g_ext;
/* The split under test in test_splits (-1 outside it), for FAIL lines. */
static int g_cut = -1;

static void print_context(void)
{
	if (g_cut >= 0)
		fprintf(stderr, " (split at %d)", g_cut);
}

/* ---------------------------------------------------------------------------
 * Frames by hand */

static unsigned int frame(unsigned char *out, int is_response,
			  unsigned long uid, unsigned int op, int complete,
			  const unsigned char *data, unsigned int len)
{
	unsigned char *p = out;
	unsigned int room = 14 + len;

	CHECK(NAL_encode_uint32(&p, &room, 0x00110000UL) &&
		      NAL_encode_char(&p, &room, (unsigned char)is_response) &&
		      NAL_encode_uint32(&p, &room, uid) &&
		      NAL_encode_char(&p, &room, 0) &&
		      NAL_encode_char(&p, &room, (unsigned char)op) &&
		      NAL_encode_char(&p, &room, (unsigned char)complete) &&
		      NAL_encode_uint16(&p, &room, len) &&
		      NAL_encode_bin(&p, &room, data, len),
	      "frame encoding");
	return 14 + len;
}

/* ---------------------------------------------------------------------------
 * Pumping */

/* One select (at most 20 ms) and I/O round over plugs and raw
 * connections. */
static void round_io(NAL_SELECTOR *sel, DC_PLUG **plugs, int nplugs,
		     NAL_CONNECTION **raw, int nraw)
{
	int i;

	CHECK(NAL_SELECTOR_select(sel, 20000, 1) >= 0, "select");
	for (i = 0; i < nplugs; i++)
		CHECK(DC_PLUG_io(plugs[i]), "DC_PLUG_io failed (plug %d)", i);
	for (i = 0; i < nraw; i++)
		CHECK(NAL_CONNECTION_io(raw[i]), "NAL_CONNECTION_io failed");
}

/* Rounds until `p` has a message to read; returns it (opened). */
static void wait_read(NAL_SELECTOR *sel, DC_PLUG **plugs, int nplugs,
		      NAL_CONNECTION **raw, int nraw, DC_PLUG *p,
		      unsigned long *uid, DC_CMD *cmd,
		      const unsigned char **data, unsigned int *len)
{
	double start = now_ms();

	while (!DC_PLUG_read(p, 0, uid, cmd, data, len)) {
		CHECK(now_ms() - start < 5000, "no message within 5 s");
		round_io(sel, plugs, nplugs, raw, nraw);
	}
}

/* Rounds until `c`'s read buffer holds `len` bytes. */
static void wait_raw(NAL_SELECTOR *sel, DC_PLUG **plugs, int nplugs,
		     NAL_CONNECTION *c, unsigned int len)
{
	double start = now_ms();

	while (NAL_BUFFER_used(NAL_CONNECTION_get_read(c)) < len) {
		CHECK(now_ms() - start < 5000,
		      "%u of %u raw bytes within 5 s",
		      NAL_BUFFER_used(NAL_CONNECTION_get_read(c)), len);
		round_io(sel, plugs, nplugs, &c, 1);
	}
}

/* ---------------------------------------------------------------------------
 * Pairs */

static unsigned char big[DC_MAX_TOTAL_DATA + 16];

static void make_pair(NAL_CONNECTION **a, NAL_CONNECTION **b)
{
	*a = NAL_CONNECTION_new();
	*b = NAL_CONNECTION_new();
	CHECK(*a && *b, "NAL_CONNECTION_new");
	CHECK(NAL_CONNECTION_create_pair(*a, *b, BUFSZ) == 1, "create_pair");
}

static void test_states(void)
{
	NAL_CONNECTION *c1, *c2;
	DC_PLUG *p;
	unsigned long uid = 77;
	DC_CMD cmd = DC_CMD_ERROR;
	const unsigned char *data = NULL;
	unsigned int len = 99;

	make_pair(&c1, &c2);
	p = DC_PLUG_new(c1, DC_PLUG_FLAG_TO_SERVER);
	CHECK(p != NULL, "DC_PLUG_new");
	CHECK(DC_PLUG_read(p, 0, &uid, &cmd, &data, &len) == 0 &&
		      DC_PLUG_read(p, 1, &uid, &cmd, &data, &len) == 0,
	      "read with nothing received");
	CHECK(uid == 77 && cmd == DC_CMD_ERROR && data == NULL && len == 99,
	      "a failed read wrote its outputs");
	CHECK(DC_PLUG_consume(p) == 0, "consume with nothing read");
	CHECK(DC_PLUG_commit(p) == 0, "commit with nothing written");
	CHECK(DC_PLUG_rollback(p) == 0, "rollback with nothing written");
	CHECK(DC_PLUG_write_more(p, big, 10) == 0,
	      "write_more with nothing written");

	CHECK(DC_PLUG_write(p, 0, 1, DC_CMD_HAVE, big, 10) == 1, "write");
	CHECK(DC_PLUG_write(p, 0, 2, DC_CMD_GET, big, 10) == 0,
	      "a second write without resume");
	CHECK(DC_PLUG_write(p, 1, 3, DC_CMD_GET, big, 10) == 1,
	      "write with resume");
	CHECK(DC_PLUG_write_more(p, big, 0) == 0, "write_more of 0 bytes");
	CHECK(DC_PLUG_write_more(p, NULL, 0) == 0, "write_more(NULL, 0)");
	CHECK(DC_PLUG_rollback(p) == 1, "rollback");
	CHECK(DC_PLUG_rollback(p) == 0, "second rollback");
	CHECK(DC_PLUG_commit(p) == 0, "commit after rollback");

	/* 32768 bytes of payload at most, however they are written. */
	CHECK(DC_PLUG_write(p, 0, 4, DC_CMD_ADD, big, DC_MAX_TOTAL_DATA + 1) ==
		      0,
	      "write of 32769 bytes");
	CHECK(DC_PLUG_write(p, 0, 4, DC_CMD_ADD, big, DC_MAX_TOTAL_DATA) == 1,
	      "write of 32768 bytes");
	CHECK(DC_PLUG_write_more(p, big, 1) == 0,
	      "write_more past 32768 bytes");
	CHECK(DC_PLUG_write(p, 1, 5, DC_CMD_ADD, NULL, 0) == 1,
	      "write of 0 bytes (resume)");
	CHECK(DC_PLUG_write_more(p, big, DC_MAX_TOTAL_DATA - 1) == 1,
	      "write_more to 32767 bytes");
	CHECK(DC_PLUG_write_more(p, big, 2) == 0,
	      "write_more from 32767 to 32769 bytes");
	CHECK(DC_PLUG_write_more(p, big, 1) == 1,
	      "write_more to exactly 32768 bytes");
	CHECK(DC_PLUG_rollback(p) == 1, "rollback of 32768 bytes");
	CHECK(DC_PLUG_free(p) == 1, "DC_PLUG_free");
	NAL_CONNECTION_free(c2);
	printf("plug states: ok\n");
}

/* The bytes a plug sends, and the responses it reassembles. */
static void test_wire(void)
{
	static unsigned char want[8 * 2100], chunk[2100];
	NAL_CONNECTION *c1, *c2;
	NAL_SELECTOR *sel = selector_new(g_kind);
	DC_PLUG *p;
	unsigned long uid;
	DC_CMD cmd;
	const unsigned char *data, *first;
	unsigned int len, n, i, off;

	make_pair(&c1, &c2);
	p = DC_PLUG_new(c1, DC_PLUG_FLAG_TO_SERVER);
	CHECK(p != NULL, "DC_PLUG_new");
	CHECK(DC_PLUG_to_select(p, sel) == 1, "DC_PLUG_to_select");
	CHECK(DC_PLUG_to_select(p, sel) == 0, "DC_PLUG_to_select twice");
	CHECK(NAL_CONNECTION_add_to_selector(c2, sel) == 1, "add raw end");
	CHECK(NAL_SELECTOR_num_objects(sel) == 2, "num_objects");

	/* A one-frame HAVE. */
	CHECK(DC_PLUG_write(p, 0, 0x01020304UL, DC_CMD_HAVE,
			    (const unsigned char *)"id", 2) == 1 &&
		      DC_PLUG_commit(p) == 1,
	      "write HAVE");
	n = frame(want, 0, 0x01020304UL, 3, 1, (const unsigned char *)"id", 2);
	wait_raw(sel, &p, 1, c2, n);
	CHECK(NAL_BUFFER_used(NAL_CONNECTION_get_read(c2)) == n &&
		      memcmp(NAL_BUFFER_data(NAL_CONNECTION_get_read(c2)),
			     want, n) == 0,
	      "HAVE frame bytes");
	NAL_BUFFER_reset(NAL_CONNECTION_get_read(c2));

	/* A 5000-byte ADD payload: 2048 + 2048 (complete 0) + 904. */
	for (i = 0; i < 5000; i++)
		big[i] = pattern(7, i);
	CHECK(DC_PLUG_write(p, 0, 0xfffffffeUL, DC_CMD_ADD, big, 3000) == 1 &&
		      DC_PLUG_write_more(p, big + 3000, 2000) == 1 &&
		      DC_PLUG_commit(p) == 1,
	      "write ADD 5000");
	n = frame(want, 0, 0xfffffffeUL, 0, 0, big, 2048);
	n += frame(want + n, 0, 0xfffffffeUL, 0, 0, big + 2048, 2048);
	n += frame(want + n, 0, 0xfffffffeUL, 0, 1, big + 4096, 904);
	for (off = 0; off < n;) {
		wait_raw(sel, &p, 1, c2, 1);
		len = NAL_BUFFER_read(NAL_CONNECTION_get_read(c2), chunk,
				      sizeof(chunk));
		CHECK(off + len <= n &&
			      memcmp(chunk, want + off, len) == 0,
		      "ADD frames differ at byte %u..%u", off, off + len);
		off += len;
	}

	/* Responses written by hand: a one-frame one and a 3-frame one. */
	n = frame(chunk, 1, 0x01020304UL, 3, 1, (const unsigned char *)"\x01",
		  1);
	CHECK(NAL_BUFFER_write(NAL_CONNECTION_get_send(c2), chunk, n) == n,
	      "raw write");
	wait_read(sel, &p, 1, &c2, 1, p, &uid, &cmd, &data, &len);
	CHECK(uid == 0x01020304UL && cmd == DC_CMD_HAVE && len == 1 &&
		      data[0] == 1,
	      "HAVE response: uid %lx cmd %d len %u", uid, (int)cmd, len);
	first = data;
	CHECK(DC_PLUG_read(p, 0, &uid, &cmd, &data, &len) == 0,
	      "read again without resume");
	CHECK(DC_PLUG_read(p, 1, &uid, &cmd, &data, &len) == 1 &&
		      data == first && uid == 0x01020304UL && len == 1,
	      "read again with resume");
	CHECK(DC_PLUG_consume(p) == 1, "consume");
	CHECK(DC_PLUG_consume(p) == 0, "consume twice");
	CHECK(DC_PLUG_read(p, 1, &uid, &cmd, &data, &len) == 0,
	      "read after consume");
	for (i = 0; i < 3; i++) {
		unsigned int part = i < 2 ? 2048 : 7;
		n = frame(chunk, 1, 42, 1, i == 2, big + 2048 * i, part);
		while (NAL_BUFFER_unused(NAL_CONNECTION_get_send(c2)) < n)
			round_io(sel, &p, 1, &c2, 1);
		CHECK(NAL_BUFFER_write(NAL_CONNECTION_get_send(c2), chunk, n) ==
			      n,
		      "raw write");
	}
	wait_read(sel, &p, 1, &c2, 1, p, &uid, &cmd, &data, &len);
	CHECK(uid == 42 && cmd == DC_CMD_GET && len == 4103 &&
		      memcmp(data, big, len) == 0,
	      "3-frame GET response: uid %lu cmd %d len %u", uid, (int)cmd,
	      len);
	CHECK(DC_PLUG_consume(p) == 1, "consume");

	/* A request arriving at a TO_SERVER plug is an error. */
	n = frame(chunk, 0, 5, 3, 1, (const unsigned char *)"id", 2);
	CHECK(NAL_BUFFER_write(NAL_CONNECTION_get_send(c2), chunk, n) == n,
	      "raw write");
	{
		double start = now_ms();
		for (;;) {
			CHECK(now_ms() - start < 5000,
			      "a request to a TO_SERVER plug was not refused");
			CHECK(NAL_SELECTOR_select(sel, 100000, 1) >= 0,
			      "select");
			CHECK(NAL_CONNECTION_io(c2), "raw I/O");
			if (!DC_PLUG_io(p))
				break;
			CHECK(DC_PLUG_read(p, 0, &uid, &cmd, &data, &len) == 0,
			      "a request was read by a TO_SERVER plug");
		}
	}
	DC_PLUG_from_select(p);
	CHECK(NAL_SELECTOR_num_objects(sel) == 1, "DC_PLUG_from_select");
	CHECK(DC_PLUG_free(p) == 1, "DC_PLUG_free");
	NAL_CONNECTION_free(c2);
	NAL_SELECTOR_free(sel);
	printf("plug wire: ok\n");
}

/* A request-sense plug (flags 0) answering a TO_SERVER plug. */
static void test_both_ends(void)
{
	NAL_CONNECTION *c1, *c2;
	NAL_SELECTOR *sel = selector_new(g_kind);
	DC_PLUG *cli, *srv, *both[2];
	unsigned long uid;
	DC_CMD cmd;
	const unsigned char *data;
	unsigned int len, i;

	make_pair(&c1, &c2);
	cli = DC_PLUG_new(c1, DC_PLUG_FLAG_TO_SERVER);
	srv = DC_PLUG_new(c2, 0);
	CHECK(cli && srv, "DC_PLUG_new");
	both[0] = cli;
	both[1] = srv;
	CHECK(DC_PLUG_to_select(cli, sel) && DC_PLUG_to_select(srv, sel),
	      "to_select");
	for (i = 0; i < BIG_LEN; i++)
		big[i] = pattern(11, i);
	CHECK(DC_PLUG_write(cli, 0, 8, DC_CMD_GET, (const unsigned char *)"xyz",
			    3) == 1 &&
		      DC_PLUG_write_more(cli, (const unsigned char *)"123", 3) ==
			      1 &&
		      DC_PLUG_commit(cli) == 1,
	      "client write");
	wait_read(sel, both, 2, NULL, 0, srv, &uid, &cmd, &data, &len);
	CHECK(uid == 8 && cmd == DC_CMD_GET && len == 6 &&
		      memcmp(data, "xyz123", 6) == 0,
	      "request seen by the server plug: uid %lu cmd %d len %u", uid,
	      (int)cmd, len);
	CHECK(DC_PLUG_write(srv, 0, 8, DC_CMD_GET, NULL, 0) == 1 &&
		      DC_PLUG_write_more(srv, big, BIG_LEN) == 1 &&
		      DC_PLUG_commit(srv) == 1,
	      "server write");
	CHECK(DC_PLUG_consume(srv) == 1, "server consume");
	wait_read(sel, both, 2, NULL, 0, cli, &uid, &cmd, &data, &len);
	CHECK(uid == 8 && cmd == DC_CMD_GET && len == BIG_LEN &&
		      memcmp(data, big, BIG_LEN) == 0,
	      "20000-byte response: uid %lu cmd %d len %u", uid, (int)cmd,
	      len);
	CHECK(DC_PLUG_consume(cli) == 1, "client consume");
	CHECK(DC_PLUG_free(cli) == 1 && DC_PLUG_free(srv) == 1, "free");
	CHECK(NAL_SELECTOR_num_objects(sel) == 0,
	      "freed plugs left their connections in the selector");
	NAL_SELECTOR_free(sel);
	printf("plug both ends: ok\n");
}

/* The extension: a frame fed in two pieces, split at every offset, and
 * one byte at a time, is decoded once and correctly. */
static void test_splits(void)
{
	static unsigned char msg[64];
	NAL_CONNECTION *c1, *c2;
	NAL_SELECTOR *sel = selector_new(g_kind);
	DC_PLUG *p;
	unsigned long uid;
	DC_CMD cmd;
	const unsigned char *data;
	unsigned int len, n, cut, i;

	make_pair(&c1, &c2);
	p = DC_PLUG_new(c1, DC_PLUG_FLAG_TO_SERVER);
	CHECK(p && DC_PLUG_to_select(p, sel) &&
		      NAL_CONNECTION_add_to_selector(c2, sel),
	      "setup");
	n = frame(msg, 1, 9, 1, 1, (const unsigned char *)"session-bytes",
		  13);
	/* cut 0: one byte at a time; cut c: bytes [0, c) then [c, n). */
	for (cut = 0; cut < n; cut++) {
		unsigned int from = 0;
		g_cut = (int)cut;
		while (from < n) {
			unsigned int k = from == 0 && cut ? cut : n - from;
			if (cut == 0)
				k = 1;
			CHECK(NAL_BUFFER_write(NAL_CONNECTION_get_send(c2),
					       msg + from, k) == k,
			      "raw write");
			from += k;
			/* Let this piece arrive on its own: out of c2, then
			 * one more round for the plug to read it. */
			for (i = 0; i < 100; i++) {
				round_io(sel, &p, 1, &c2, 1);
				if (NAL_BUFFER_empty(
					    NAL_CONNECTION_get_send(c2)))
					break;
			}
			round_io(sel, &p, 1, &c2, 1);
			if (from < n)
				CHECK(DC_PLUG_read(p, 0, &uid, &cmd, &data,
						   &len) == 0,
				      "split at %u: a message after %u of %u "
				      "bytes",
				      cut, from, n);
		}
		wait_read(sel, &p, 1, &c2, 1, p, &uid, &cmd, &data, &len);
		CHECK(uid == 9 && cmd == DC_CMD_GET && len == 13 &&
			      memcmp(data, "session-bytes", 13) == 0,
		      "split at %u: uid %lu cmd %d len %u", cut, uid, (int)cmd,
		      len);
		CHECK(DC_PLUG_consume(p) == 1, "consume");
		round_io(sel, &p, 1, &c2, 1);
		CHECK(DC_PLUG_read(p, 0, &uid, &cmd, &data, &len) == 0,
		      "split at %u: a second message appeared", cut);
	}
	g_cut = -1;
	CHECK(DC_PLUG_free(p) == 1, "free");
	NAL_CONNECTION_free(c2);
	NAL_SELECTOR_free(sel);
	printf("plug splits (extension): ok\n");
}

/* ---------------------------------------------------------------------------
 * Against a server */

struct req {
	unsigned long uid;
	DC_CMD cmd;
	unsigned long timeout;
	const unsigned char *id;
	unsigned int id_len;
	const unsigned char *data;
	unsigned int data_len;
	int rollback;
	/* Send nothing more until this one is answered (unless --ext). */
	int barrier;
	/* The expected reply: one status byte, or `data` for GET hits. */
	int status;
	const unsigned char *reply;
	unsigned int reply_len;
	int answered;
};

/* Writes one request with write (the 8-byte ADD header, or nothing) and
 * write_more for the rest, then commits (or rolls back). Returns 0 when the
 * plug is still busy with the previous message. */
static int send_req(DC_PLUG *p, struct req *r)
{
	unsigned char hdr[8], *h = hdr;
	unsigned int room = 8;

	if (r->cmd == DC_CMD_ADD) {
		CHECK(NAL_encode_uint32(&h, &room, r->timeout) &&
			      NAL_encode_uint32(&h, &room, r->id_len),
		      "ADD header");
		if (!DC_PLUG_write(p, 0, r->uid, r->cmd, hdr, 8))
			return 0;
	} else if (!DC_PLUG_write(p, 0, r->uid, r->cmd, NULL, 0)) {
		return 0;
	}
	CHECK(DC_PLUG_write_more(p, r->id, r->id_len) == 1, "write_more id");
	if (r->data_len) {
		unsigned int off = 0, k;
		/* In uneven pieces, to exercise the appending. */
		while (off < r->data_len) {
			k = r->data_len - off;
			if (k > 3001)
				k = 3001;
			CHECK(DC_PLUG_write_more(p, r->data + off, k) == 1,
			      "write_more data");
			off += k;
		}
	}
	if (r->rollback)
		CHECK(DC_PLUG_rollback(p) == 1, "rollback");
	else
		CHECK(DC_PLUG_commit(p) == 1, "commit");
	return 1;
}

static void take_replies(DC_PLUG *p, struct req *reqs, int n, int *left)
{
	unsigned long uid;
	DC_CMD cmd;
	const unsigned char *data;
	unsigned int len;
	int i;

	while (DC_PLUG_read(p, 0, &uid, &cmd, &data, &len)) {
		struct req *r = NULL;
		for (i = 0; i < n; i++)
			if (reqs[i].uid == uid && !reqs[i].rollback)
				r = &reqs[i];
		CHECK(r != NULL, "a reply for unknown uid %lu", uid);
		CHECK(!r->answered, "two replies for uid %lu", uid);
		CHECK(cmd == r->cmd, "uid %lu: reply cmd %d, want %d", uid,
		      (int)cmd, (int)r->cmd);
		if (r->reply) {
			CHECK(len == r->reply_len &&
				      memcmp(data, r->reply, len) == 0,
			      "uid %lu: reply of %u bytes, want %u", uid, len,
			      r->reply_len);
		} else {
			CHECK(len == 1 && data[0] == r->status,
			      "uid %lu: reply of %u bytes, first %02x; want "
			      "status %02x",
			      uid, len, len ? data[0] : 0, r->status);
		}
		r->answered = 1;
		(*left)--;
		CHECK(DC_PLUG_consume(p) == 1, "consume");
	}
}

static void test_server(const char *address)
{
	static unsigned char id1[64], id2[64], idbig[64], idrb[64], id65[65];
	static unsigned char small[300];
	NAL_ADDRESS *addr = NAL_ADDRESS_new();
	NAL_CONNECTION *conn = NAL_CONNECTION_new();
	NAL_SELECTOR *sel = selector_new(g_kind);
	DC_PLUG *p;
	unsigned int l1, l2, lbig, lrb, i;
	int n, next = 0, left, ops;
	double start;

	l1 = (unsigned int)snprintf((char *)id1, 64, "plug-%ld-one",
				    (long)getpid());
	l2 = (unsigned int)snprintf((char *)id2, 64, "plug-%ld-two",
				    (long)getpid());
	lbig = (unsigned int)snprintf((char *)idbig, 64, "plug-%ld-big",
				      (long)getpid());
	lrb = (unsigned int)snprintf((char *)idrb, 64, "plug-%ld-rolled-back",
				     (long)getpid());
	memset(id65, 'x', sizeof(id65));
	memcpy(id65, id1, l1);
	for (i = 0; i < sizeof(small); i++)
		small[i] = pattern(21, i);
	for (i = 0; i < BIG_LEN; i++)
		big[i] = pattern(22, i);
	{
		/* uid, cmd, timeout, id, id_len, data, data_len, rollback,
		 * barrier, status, reply, reply_len, answered */
		struct req reqs[] = {
			{0x100, DC_CMD_HAVE, 0, id1, l1, NULL, 0, 0, 0, 1, NULL, 0,
			 0},
			{0x101, DC_CMD_ADD, 60000, id1, l1, small, sizeof(small), 0,
			 0, 0, NULL, 0, 0},
			{0x1ff, DC_CMD_ADD, 60000, idrb, lrb, small, 50, 1, 0, 0,
			 NULL, 0, 0},
			{0x102, DC_CMD_ADD, 60000, id1, l1, small, 10, 0, 0, 0x65,
			 NULL, 0, 0},
			{0x103, DC_CMD_GET, 0, id1, l1, NULL, 0, 0, 0, 0, small,
			 sizeof(small), 0},
			{0x104, DC_CMD_ADD, 60000, idbig, lbig, big, BIG_LEN, 0, 0,
			 0, NULL, 0, 0},
			{0x105, DC_CMD_HAVE, 0, idrb, lrb, NULL, 0, 0, 0, 1, NULL,
			 0, 0},
			{0x106, DC_CMD_GET, 0, idbig, lbig, NULL, 0, 0, 1, 0, big,
			 BIG_LEN, 0},
			{0x107, DC_CMD_HAVE, 0, idbig, lbig, NULL, 0, 0, 0, 0, NULL,
			 0, 0},
			{0x108, DC_CMD_REMOVE, 0, id1, l1, NULL, 0, 0, 0, 0, NULL,
			 0, 0},
			{0x109, DC_CMD_REMOVE, 0, id1, l1, NULL, 0, 0, 0, 1, NULL,
			 0, 0},
			{0x10a, DC_CMD_GET, 0, id1, l1, NULL, 0, 0, 0, 1, NULL, 0,
			 0},
			{0xffffffffUL, DC_CMD_HAVE, 0, idbig, lbig, NULL, 0, 0, 0,
			 0, NULL, 0, 0},
			{0, DC_CMD_ADD, 604800001UL, id2, l2, small, 10, 0, 0, 0x66,
			 NULL, 0, 0},
			{0x10b, DC_CMD_ADD, 60000, id65, 65, small, 10, 0, 0, 0x67,
			 NULL, 0, 0},
		};
		n = (int)(sizeof(reqs) / sizeof(reqs[0]));
		ops = 0;
		for (i = 0; i < (unsigned int)n; i++)
			if (!reqs[i].rollback)
				ops++;
		left = ops;

		CHECK(addr && conn && sel, "NAL_*_new");
		CHECK(NAL_ADDRESS_create(addr, address, BUFSZ) == 1,
		      "address %s", address);
		CHECK(NAL_CONNECTION_create(conn, addr) == 1, "connect to %s",
		      address);
		p = DC_PLUG_new(conn, DC_PLUG_FLAG_TO_SERVER);
		CHECK(p != NULL, "DC_PLUG_new");
		CHECK(DC_PLUG_to_select(p, sel) == 1, "to_select");
		start = now_ms();
		while (left > 0) {
			CHECK(now_ms() - start < LIMIT_MS,
			      "%d of %d replies missing after %.0f ms", left,
			      ops, LIMIT_MS);
			while (next < n && (g_ext || next == 0 ||
					    !reqs[next - 1].barrier ||
					    reqs[next - 1].answered) &&
			       send_req(p, &reqs[next]))
				next++;
			CHECK(NAL_SELECTOR_select(sel, 200000, 1) >= 0,
			      "select");
			CHECK(DC_PLUG_io(p), "DC_PLUG_io: the server closed "
					     "the connection (%d replies "
					     "missing, %d requests sent)",
			      left, next);
			take_replies(p, reqs, n, &left);
		}
		CHECK(next == n, "not every request was sent");
		/* Nothing more arrives. */
		for (i = 0; i < 2; i++) {
			CHECK(NAL_SELECTOR_select(sel, 100000, 1) >= 0,
			      "select");
			CHECK(DC_PLUG_io(p), "DC_PLUG_io after the replies");
			take_replies(p, reqs, n, &left);
		}
		CHECK(left == 0, "extra replies");
	}
	DC_PLUG_from_select(p);
	CHECK(NAL_SELECTOR_num_objects(sel) == 0, "from_select");

	/* NOFREE_CONN: the connection outlives the plug. */
	{
		NAL_CONNECTION *c2 = NAL_CONNECTION_new();
		DC_PLUG *p2;
		struct req r = {0x200, DC_CMD_HAVE, 0, idbig, lbig, NULL, 0, 0, 0,
				0, NULL, 0, 0};
		int one = 1;
		CHECK(NAL_CONNECTION_create(c2, addr) == 1, "connect");
		p2 = DC_PLUG_new(c2, DC_PLUG_FLAG_TO_SERVER |
					     DC_PLUG_FLAG_NOFREE_CONN);
		CHECK(p2 && DC_PLUG_to_select(p2, sel), "plug 2");
		CHECK(send_req(p2, &r) == 1, "send on plug 2");
		start = now_ms();
		while (one > 0) {
			CHECK(now_ms() - start < 5000, "no reply on plug 2");
			CHECK(NAL_SELECTOR_select(sel, 200000, 1) >= 0,
			      "select");
			CHECK(DC_PLUG_io(p2), "DC_PLUG_io on plug 2");
			take_replies(p2, &r, 1, &one);
		}
		CHECK(DC_PLUG_free(p2) == 1, "free plug 2");
		CHECK(NAL_SELECTOR_num_objects(sel) == 1,
		      "a NOFREE_CONN plug's free took its connection out "
		      "of the selector");
		CHECK(NAL_CONNECTION_get_read(c2) != NULL &&
			      NAL_CONNECTION_is_established(c2),
		      "the connection did not outlive its NOFREE_CONN plug");
		NAL_CONNECTION_free(c2);
		CHECK(NAL_SELECTOR_num_objects(sel) == 0, "num_objects");
		ops++;
	}
	CHECK(DC_PLUG_free(p) == 1, "DC_PLUG_free");
	NAL_SELECTOR_free(sel);
	NAL_ADDRESS_free(addr);
	printf("plug against %s: ok\n", address);
	/* Left stored: idbig. */
	printf("OPS %d STORED 1\n", ops);
}

int main(int argc, char **argv)
{
	const char *address = NULL;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--selector") == 0 && i + 1 < argc)
			g_kind = argv[++i];
		else if (strcmp(argv[i], "--ext") == 0)
			g_ext = 1;
		else if (argv[i][0] != '-' && !address)
			address = argv[i];
		else {
			fprintf(stderr,
				"usage: %s [--selector fdselect|fdpoll|new] "
				"[--ext] [address]\n",
				argv[0]);
			return 2;
		}
	}
	fail_context = print_context;
	ignore_sigpipe();
	NAL_SELECTOR_free(selector_new(g_kind));
	test_states();
	test_wire();
	test_both_ends();
	if (g_ext)
		test_splits();
	if (address)
		test_server(address);
	printf("dc_plug_client OK\n");
	return 0;
}
