/* api_bad_input.c: every function of <libnal/nal.h>, <distcache/dc_plug.h>
 * and <distcache/dc_server.h> given bad input.
 *
 * usage: api_bad_input <unix-path>   (a path for a UNIX listener; nothing
 *                                     there yet)
 *
 * This is an extension of this project: the original crashes (NULL
 * dereference), aborts (assert) or corrupts memory on most of these. Here
 * each call must return the failure value of the original's convention
 * (NULL for pointers, 0 for int and unsigned results, a negative number
 * for NAL_SELECTOR_select; DC_SERVER_clients_empty says 1: a NULL server
 * has no clients), a void call must simply return, and the
 * objects involved must stay usable: after the bad calls the same buffer,
 * connection, plug and server still do their job. The bad input covers
 * NULL objects and pointers, unparsed addresses, lengths beyond a buffer
 * (NAL_BUFFER_wrote past the free space, codecs given a NULL data pointer
 * with a non-zero length), a buffer transferred into itself, a pair made
 * of one connection twice, and DC_PLUG messages with an invalid command.
 * Exit 0 on success, 1 with a message on the first failure. */
#include <sys/time.h>

#include <libnal/nal.h>
#include <distcache/dc_plug.h>
#include <distcache/dc_server.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "nal_util.h"

static void test_buffer_and_codecs(void)
{
	NAL_BUFFER *b = NAL_BUFFER_new();
	unsigned char tmp[16], *p;
	const unsigned char *q;
	unsigned int len, u16 = 7;
	unsigned long u32 = 7;
	unsigned char ch = 7;

	CHECK(b != NULL, "NAL_BUFFER_new");
	/* NULL buffers. */
	CHECK(NAL_BUFFER_set_size(NULL, 10) == 0, "set_size(NULL)");
	CHECK(NAL_BUFFER_empty(NULL) == 0 && NAL_BUFFER_full(NULL) == 0 &&
		      NAL_BUFFER_notempty(NULL) == 0 &&
		      NAL_BUFFER_notfull(NULL) == 0,
	      "the predicates of a NULL buffer");
	CHECK(NAL_BUFFER_used(NULL) == 0 && NAL_BUFFER_unused(NULL) == 0 &&
		      NAL_BUFFER_size(NULL) == 0,
	      "the sizes of a NULL buffer");
	CHECK(NAL_BUFFER_data(NULL) == NULL, "data(NULL)");
	CHECK(NAL_BUFFER_write_ptr(NULL) == NULL, "write_ptr(NULL)");
	CHECK(NAL_BUFFER_write(NULL, tmp, 3) == 0, "write(NULL)");
	CHECK(NAL_BUFFER_read(NULL, tmp, 3) == 0, "read(NULL)");
	CHECK(NAL_BUFFER_transfer(NULL, b, 0) == 0, "transfer(NULL, b)");
	CHECK(NAL_BUFFER_transfer(b, NULL, 0) == 0, "transfer(b, NULL)");
	NAL_BUFFER_wrote(NULL, 3);
	NAL_BUFFER_reset(NULL);
	NAL_BUFFER_free(NULL);

	/* Bad lengths and pointers on a real buffer. */
	CHECK(NAL_BUFFER_set_size(b, 0x80000000u) == 0, "set_size(2^31)");
	CHECK(NAL_BUFFER_set_size(b, 10) == 1, "set_size(10)");
	CHECK(NAL_BUFFER_write(b, NULL, 3) == 0,
	      "write from a NULL pointer");
	CHECK(NAL_BUFFER_write(b, (const unsigned char *)"abcd", 4) == 4,
	      "write 4");
	NAL_BUFFER_wrote(b, 7);
	CHECK(NAL_BUFFER_used(b) == 4,
	      "wrote(7) with 6 bytes free changed used to %u",
	      NAL_BUFFER_used(b));
	NAL_BUFFER_wrote(b, 0xffffffffu);
	CHECK(NAL_BUFFER_used(b) == 4 && NAL_BUFFER_size(b) == 10,
	      "wrote(2^32-1): used %u size %u", NAL_BUFFER_used(b),
	      NAL_BUFFER_size(b));
	CHECK(NAL_BUFFER_transfer(b, b, 0) == 0,
	      "a buffer transferred into itself");
	CHECK(NAL_BUFFER_used(b) == 4 &&
		      memcmp(NAL_BUFFER_data(b), "abcd", 4) == 0,
	      "the self-transfer changed the buffer");
	CHECK(NAL_BUFFER_read(b, tmp, 4) == 4 && memcmp(tmp, "abcd", 4) == 0,
	      "the buffer still works");
	NAL_BUFFER_free(b);

	/* Codecs: NULL cursor, NULL length, NULL value, NULL data. */
	q = (const unsigned char *)"\x01\x02\x03\x04";
	len = 4;
	CHECK(NAL_decode_uint32(NULL, &len, &u32) == 0, "decode_uint32(NULL)");
	CHECK(NAL_decode_uint32(&q, NULL, &u32) == 0,
	      "decode_uint32(len NULL)");
	CHECK(NAL_decode_uint32(&q, &len, NULL) == 0,
	      "decode_uint32(val NULL)");
	CHECK(NAL_decode_uint16(NULL, &len, &u16) == 0 &&
		      NAL_decode_uint16(&q, NULL, &u16) == 0 &&
		      NAL_decode_uint16(&q, &len, NULL) == 0,
	      "decode_uint16 with NULLs");
	CHECK(NAL_decode_char(NULL, &len, &ch) == 0 &&
		      NAL_decode_char(&q, NULL, &ch) == 0 &&
		      NAL_decode_char(&q, &len, NULL) == 0,
	      "decode_char with NULLs");
	CHECK(NAL_decode_bin(NULL, &len, tmp, 2) == 0 &&
		      NAL_decode_bin(&q, NULL, tmp, 2) == 0 &&
		      NAL_decode_bin(&q, &len, NULL, 2) == 0,
	      "decode_bin with NULLs");
	CHECK(len == 4 && u32 == 7 && u16 == 7 && ch == 7,
	      "a failed decode changed its outputs");
	q = NULL;
	CHECK(NAL_decode_uint32(&q, &len, &u32) == 0 &&
		      NAL_decode_uint16(&q, &len, &u16) == 0 &&
		      NAL_decode_char(&q, &len, &ch) == 0 &&
		      NAL_decode_bin(&q, &len, tmp, 2) == 0,
	      "decoding 4 bytes from a NULL pointer");
	CHECK(q == NULL && len == 4, "a failed decode moved the cursor");
	p = tmp;
	len = sizeof(tmp);
	CHECK(NAL_encode_uint32(NULL, &len, 1) == 0 &&
		      NAL_encode_uint32(&p, NULL, 1) == 0 &&
		      NAL_encode_uint16(NULL, &len, 1) == 0 &&
		      NAL_encode_uint16(&p, NULL, 1) == 0 &&
		      NAL_encode_char(NULL, &len, 1) == 0 &&
		      NAL_encode_char(&p, NULL, 1) == 0 &&
		      NAL_encode_bin(NULL, &len, tmp, 1) == 0 &&
		      NAL_encode_bin(&p, NULL, tmp, 1) == 0,
	      "encode with NULLs");
	CHECK(NAL_encode_bin(&p, &len, NULL, 3) == 0,
	      "encode_bin from a NULL pointer");
	CHECK(p == tmp && len == sizeof(tmp), "a failed encode moved");
	p = NULL;
	CHECK(NAL_encode_uint32(&p, &len, 1) == 0 &&
		      NAL_encode_uint16(&p, &len, 1) == 0 &&
		      NAL_encode_char(&p, &len, 1) == 0 &&
		      NAL_encode_bin(&p, &len, tmp, 1) == 0,
	      "encoding into a NULL pointer with room claimed");
	NAL_config_set_nagle(-5);
	NAL_config_set_nagle(0);
}

static void test_objects(const char *path)
{
	char str[300];
	NAL_ADDRESS *unparsed = NAL_ADDRESS_new(), *addr = NAL_ADDRESS_new();
	NAL_LISTENER *list = NAL_LISTENER_new();
	NAL_CONNECTION *c1 = NAL_CONNECTION_new(), *c2 = NAL_CONNECTION_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new();
	double t0;

	CHECK(unparsed && addr && list && c1 && c2 && sel, "NAL_*_new");
	/* Addresses. */
	CHECK(NAL_ADDRESS_create(NULL, "IP:9001", 0) == 0, "create(NULL)");
	CHECK(NAL_ADDRESS_create(addr, NULL, 0) == 0, "create(addr, NULL)");
	CHECK(NAL_ADDRESS_get_def_buffer_size(NULL) == 0 &&
		      NAL_ADDRESS_set_def_buffer_size(NULL, 10) == 0 &&
		      NAL_ADDRESS_can_connect(NULL) == 0 &&
		      NAL_ADDRESS_can_listen(NULL) == 0,
	      "NULL address");
	NAL_ADDRESS_reset(NULL);
	NAL_ADDRESS_free(NULL);

	/* Listeners. */
	CHECK(NAL_LISTENER_create(NULL, addr) == 0, "listen(NULL)");
	CHECK(NAL_LISTENER_create(list, NULL) == 0, "listen(list, NULL)");
	CHECK(NAL_LISTENER_create(list, unparsed) == 0,
	      "listen on an unparsed address");
	CHECK(NAL_LISTENER_add_to_selector(NULL, sel) == 0 &&
		      NAL_LISTENER_finished(NULL) == 0 &&
		      NAL_LISTENER_set_fs_owner(NULL, NULL, NULL) == 0 &&
		      NAL_LISTENER_set_fs_perms(NULL, "600") == 0,
	      "NULL listener");
	NAL_LISTENER_del_from_selector(NULL);
	NAL_LISTENER_reset(NULL);
	NAL_LISTENER_free(NULL);
	snprintf(str, sizeof(str), "UNIX:%s", path);
	CHECK(NAL_ADDRESS_create(addr, str, 2048) == 1, "address %s", str);
	CHECK(NAL_LISTENER_create(list, addr) == 1,
	      "the listener works after the bad calls");
	CHECK(NAL_LISTENER_add_to_selector(list, NULL) == 0,
	      "add a listener to a NULL selector");
	CHECK(NAL_LISTENER_set_fs_perms(list, NULL) == 0,
	      "set_fs_perms(NULL)");

	/* Connections. */
	CHECK(NAL_CONNECTION_create(NULL, addr) == 0, "connect(NULL)");
	CHECK(NAL_CONNECTION_create(c1, NULL) == 0, "connect(c, NULL)");
	CHECK(NAL_CONNECTION_accept(NULL, list) == 0 &&
		      NAL_CONNECTION_accept(c1, NULL) == 0,
	      "accept with NULLs");
	CHECK(NAL_CONNECTION_set_size(NULL, 10) == 0 &&
		      NAL_CONNECTION_get_read(NULL) == NULL &&
		      NAL_CONNECTION_get_send(NULL) == NULL &&
		      NAL_CONNECTION_get_read_c(NULL) == NULL &&
		      NAL_CONNECTION_get_send_c(NULL) == NULL &&
		      NAL_CONNECTION_io(NULL) == 0 &&
		      NAL_CONNECTION_is_established(NULL) == 0 &&
		      NAL_CONNECTION_add_to_selector(NULL, sel) == 0,
	      "NULL connection");
	NAL_CONNECTION_del_from_selector(NULL);
	NAL_CONNECTION_reset(NULL);
	NAL_CONNECTION_free(NULL);
	CHECK(NAL_CONNECTION_create_pair(NULL, c2, 100) == 0 &&
		      NAL_CONNECTION_create_pair(c1, NULL, 100) == 0,
	      "create_pair with a NULL");
	CHECK(NAL_CONNECTION_create_pair(c1, c1, 100) == 0,
	      "a pair of one connection with itself");
	CHECK(NAL_CONNECTION_create_pair(c1, c2, 100) == 1,
	      "the connections still make a pair");
	CHECK(NAL_CONNECTION_set_size(c1, 0xffffffffu) == 0,
	      "set_size(2^32-1)");
	CHECK(NAL_CONNECTION_add_to_selector(c1, NULL) == 0,
	      "add a connection to a NULL selector");

	/* Selectors. */
	t0 = now_ms();
	CHECK(NAL_SELECTOR_select(NULL, 0, 0) < 0, "select(NULL)");
	CHECK(now_ms() - t0 < 1000, "select(NULL) blocked");
	CHECK(NAL_SELECTOR_num_objects(NULL) == 0, "num_objects(NULL)");
	NAL_SELECTOR_reset(NULL);
	NAL_SELECTOR_free(NULL);

	/* Everything still works: a byte through the pair. */
	CHECK(NAL_CONNECTION_add_to_selector(c1, sel) == 1 &&
		      NAL_CONNECTION_add_to_selector(c2, sel) == 1,
	      "add the pair");
	CHECK(NAL_BUFFER_write(NAL_CONNECTION_get_send(c1),
			       (const unsigned char *)"z", 1) == 1,
	      "write");
	t0 = now_ms();
	while (NAL_BUFFER_empty(NAL_CONNECTION_get_read(c2))) {
		CHECK(now_ms() - t0 < 5000, "the pair does not work");
		CHECK(NAL_SELECTOR_select(sel, 100000, 1) >= 0, "select");
		CHECK(NAL_CONNECTION_io(c1) && NAL_CONNECTION_io(c2), "io");
	}
	NAL_CONNECTION_free(c1);
	NAL_CONNECTION_free(c2);
	NAL_LISTENER_free(list);
	NAL_SELECTOR_free(sel);
	NAL_ADDRESS_free(addr);
	NAL_ADDRESS_free(unparsed);
	unlink(path);
}

/* Pumps a client and a server plug until `p` has a message. */
static void pump(NAL_SELECTOR *sel, DC_PLUG *a, DC_PLUG *b, DC_PLUG *p)
{
	unsigned long uid;
	DC_CMD cmd;
	const unsigned char *d;
	unsigned int len;
	double t0 = now_ms();

	while (!DC_PLUG_read(p, 1, &uid, &cmd, &d, &len)) {
		CHECK(now_ms() - t0 < 5000, "no message within 5 s");
		CHECK(NAL_SELECTOR_select(sel, 100000, 1) >= 0, "select");
		CHECK(DC_PLUG_io(a) && DC_PLUG_io(b), "DC_PLUG_io");
	}
}

static void test_plug(void)
{
	NAL_CONNECTION *c1 = NAL_CONNECTION_new(), *c2 = NAL_CONNECTION_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new_fdpoll();
	DC_PLUG *cli, *srv;
	unsigned long uid = 5;
	DC_CMD cmd = DC_CMD_ADD;
	const unsigned char *d = NULL;
	unsigned int len = 5;

	CHECK(c1 && c2 && sel && NAL_CONNECTION_create_pair(c1, c2, 4096),
	      "pair");
	CHECK(DC_PLUG_new(NULL, 0) == NULL, "DC_PLUG_new(NULL)");
	CHECK(DC_PLUG_free(NULL) == 0, "DC_PLUG_free(NULL)");
	CHECK(DC_PLUG_to_select(NULL, sel) == 0 && DC_PLUG_io(NULL) == 0 &&
		      DC_PLUG_consume(NULL) == 0 &&
		      DC_PLUG_write(NULL, 0, 1, DC_CMD_HAVE,
				    (const unsigned char *)"x", 1) == 0 &&
		      DC_PLUG_write_more(NULL, (const unsigned char *)"x", 1) ==
			      0 &&
		      DC_PLUG_commit(NULL) == 0 && DC_PLUG_rollback(NULL) == 0 &&
		      DC_PLUG_read(NULL, 0, &uid, &cmd, &d, &len) == 0,
	      "NULL plug");
	DC_PLUG_from_select(NULL);
	cli = DC_PLUG_new(c1, DC_PLUG_FLAG_TO_SERVER);
	srv = DC_PLUG_new(c2, 0);
	CHECK(cli && srv, "DC_PLUG_new");
	CHECK(DC_PLUG_to_select(cli, NULL) == 0, "to_select(plug, NULL)");
	CHECK(DC_PLUG_to_select(cli, sel) == 1 && DC_PLUG_to_select(srv, sel) ==
							  1,
	      "to_select");

	/* Bad writes: NULL data with a length, a huge length, invalid
	 * commands. None may leave the plug stuck. */
	CHECK(DC_PLUG_write(cli, 0, 1, DC_CMD_HAVE, NULL, 3) == 0,
	      "write from a NULL pointer");
	CHECK(DC_PLUG_write(cli, 0, 1, DC_CMD_HAVE,
			    (const unsigned char *)"x", 0xffffffffu) == 0,
	      "write of 2^32-1 bytes");
	CHECK(DC_PLUG_write(cli, 0, 1, DC_CMD_HAVE, NULL, 0) == 1,
	      "write of nothing");
	CHECK(DC_PLUG_write_more(cli, NULL, 3) == 0,
	      "write_more from a NULL pointer");
	CHECK(DC_PLUG_rollback(cli) == 1, "rollback");
	if (DC_PLUG_write(cli, 0, 2, DC_CMD_ERROR, (const unsigned char *)"x",
			  1)) {
		CHECK(DC_PLUG_commit(cli) == 0, "commit of DC_CMD_ERROR");
		DC_PLUG_rollback(cli);
	}
	if (DC_PLUG_write(cli, 0, 3, (DC_CMD)99, (const unsigned char *)"x",
			  1)) {
		CHECK(DC_PLUG_commit(cli) == 0, "commit of command 99");
		DC_PLUG_rollback(cli);
	}
	CHECK(DC_PLUG_write(cli, 0, 4, DC_CMD_HAVE,
			    (const unsigned char *)"id", 2) == 1 &&
		      DC_PLUG_commit(cli) == 1,
	      "the plug writes again after the bad writes");

	/* Reads with NULL outputs fail and lose nothing. */
	pump(sel, cli, srv, srv);
	CHECK(DC_PLUG_read(srv, 1, NULL, &cmd, &d, &len) == 0 &&
		      DC_PLUG_read(srv, 1, &uid, NULL, &d, &len) == 0 &&
		      DC_PLUG_read(srv, 1, &uid, &cmd, NULL, &len) == 0 &&
		      DC_PLUG_read(srv, 1, &uid, &cmd, &d, NULL) == 0,
	      "read with a NULL output");
	CHECK(DC_PLUG_read(srv, 1, &uid, &cmd, &d, &len) == 1 && uid == 4 &&
		      cmd == DC_CMD_HAVE && len == 2 && memcmp(d, "id", 2) == 0,
	      "the message after the bad reads: uid %lu cmd %d len %u", uid,
	      (int)cmd, len);
	CHECK(DC_PLUG_consume(srv) == 1, "consume");
	CHECK(DC_PLUG_free(cli) == 1 && DC_PLUG_free(srv) == 1, "free");
	NAL_SELECTOR_free(sel);
}

static int cb_dummy_add(DC_CACHE *c, const struct timeval *now,
			unsigned long t, const unsigned char *id,
			unsigned int id_len, const unsigned char *d,
			unsigned int d_len)
{
	(void)c, (void)now, (void)t, (void)id, (void)id_len, (void)d,
		(void)d_len;
	return 0;
}

static void test_server(void)
{
	DC_CACHE_cb partial;
	DC_SERVER *s;
	NAL_CONNECTION *c1 = NAL_CONNECTION_new(), *c2 = NAL_CONNECTION_new();
	struct timeval now;
	DC_CLIENT *cl;

	gettimeofday(&now, NULL);
	CHECK(c1 && c2 && NAL_CONNECTION_create_pair(c1, c2, 4096), "pair");
	memset(&partial, 0, sizeof(partial));
	partial.cache_add = cb_dummy_add;
	CHECK(DC_SERVER_set_cache(NULL) == 0, "set_cache(NULL)");
	CHECK(DC_SERVER_set_cache(&partial) == 0,
	      "set_cache with missing handlers");
	CHECK(DC_SERVER_set_default_cache() == 1, "set_default_cache");
	CHECK(DC_SERVER_new(0) == NULL, "DC_SERVER_new(0)");
	CHECK(DC_SERVER_new(0xffffffffu) == NULL, "DC_SERVER_new(2^32-1)");
	DC_SERVER_free(NULL);
	CHECK(DC_SERVER_items_stored(NULL, &now) == 0 &&
		      DC_SERVER_num_operations(NULL) == 0 &&
		      DC_SERVER_clients_empty(NULL) == 1 &&
		      DC_SERVER_clients_io(NULL, &now) == 0 &&
		      DC_SERVER_process_client(NULL, &now) == 0 &&
		      DC_SERVER_del_client(NULL) == 0,
	      "NULL server or client");
	DC_SERVER_reset_operations(NULL);
	s = DC_SERVER_new(512);
	CHECK(s != NULL, "DC_SERVER_new(512)");
	CHECK(DC_SERVER_new_client(NULL, c1, 0) == NULL,
	      "new_client(NULL server)");
	CHECK(DC_SERVER_new_client(s, NULL, 0) == NULL,
	      "new_client(NULL connection)");
	CHECK(DC_SERVER_clients_empty(s) == 1, "a refused client was kept");
	/* A NULL time: no crash, whatever the answer. */
	printf("items_stored(server, NULL) = %u\n",
	       DC_SERVER_items_stored(s, NULL));
	printf("clients_io(server, NULL) = %d\n", DC_SERVER_clients_io(s, NULL));
	/* The server and the connection still work together. */
	cl = DC_SERVER_new_client(s, c1, DC_CLIENT_FLAG_NOFREE_CONN);
	CHECK(cl != NULL, "new_client");
	printf("process_client(client, NULL) = %d\n",
	       DC_SERVER_process_client(cl, NULL));
	CHECK(DC_SERVER_del_client(cl) == 1, "del_client");
	CHECK(DC_SERVER_items_stored(s, &now) == 0 &&
		      DC_SERVER_num_operations(s) == 0,
	      "the server after the bad calls");
	DC_SERVER_free(s);
	NAL_CONNECTION_free(c1);
	NAL_CONNECTION_free(c2);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s <unix-path>\n", argv[0]);
		return 2;
	}
	ignore_sigpipe();
	test_buffer_and_codecs();
	test_objects(argv[1]);
	test_plug();
	test_server();
	printf("api_bad_input OK\n");
	return 0;
}
