/* nal_buffer.c: the libnal building blocks that need no peer.
 *
 * usage: nal_buffer <tcp-address> [--ext]
 *   <tcp-address>  a free TCP address both to listen on and to connect to,
 *                  e.g. IP:127.0.0.1:40000 (for the Nagle checks)
 *   --ext          also the checks of this project's extensions (IPv6
 *                  address syntax), which the original does not have
 *
 * Proves, as the original libnal behaves:
 * - NAL_BUFFER: a new buffer has size 0 (empty and full at once);
 *   set_size accepts 0..32768 and refuses more; resizing to another size
 *   discards the data while "resizing" to the same size keeps it;
 *   write/read are short when space/data runs out; read with a NULL
 *   destination discards; transfer with and without a maximum;
 *   write_ptr/wrote; data(); reset.
 * - NAL_encode_* / NAL_decode_*: big-endian, advance the pointer, shrink the
 *   length, and fail without touching anything when short.
 * - NAL_ADDRESS: which strings parse, what each kind can do (connect,
 *   listen), create on a used address fails until reset, and the default
 *   buffer size (0..32768) that connections inherit.
 * - NAL_CONNECTION_create_pair: data both ways through a selector, buffer
 *   sizes from def_buffer_size, refusal of used connections and of sizes
 *   over 32768.
 * - NAL_config_set_nagle: TCP connections (both ends) get TCP_NODELAY by
 *   default, and not after NAL_config_set_nagle(1).
 * Exit 0 on success, 1 with a message on the first failure. */
#include <libnal/nal.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "nal_util.h"

#define MAX_BUF 32768u

/* ---------------------------------------------------------------------------
 * NAL_BUFFER */

static void check_state(const NAL_BUFFER *b, unsigned int size,
			unsigned int used, const char *when)
{
	unsigned int got_size = NAL_BUFFER_size(b);
	unsigned int got_used = NAL_BUFFER_used(b);

	CHECK(got_size == size && got_used == used,
	      "%s: size %u used %u, want size %u used %u", when, got_size,
	      got_used, size, used);
	CHECK(NAL_BUFFER_unused(b) == size - used, "%s: unused %u, want %u",
	      when, NAL_BUFFER_unused(b), size - used);
	CHECK(!NAL_BUFFER_empty(b) == !(used == 0), "%s: empty() is %d", when,
	      NAL_BUFFER_empty(b));
	CHECK(!NAL_BUFFER_notempty(b) == !(used > 0), "%s: notempty() is %d",
	      when, NAL_BUFFER_notempty(b));
	CHECK(!NAL_BUFFER_full(b) == !(used == size), "%s: full() is %d", when,
	      NAL_BUFFER_full(b));
	CHECK(!NAL_BUFFER_notfull(b) == !(used < size), "%s: notfull() is %d",
	      when, NAL_BUFFER_notfull(b));
}

static void fill(unsigned char *p, unsigned int len, unsigned int seed)
{
	unsigned int i;

	for (i = 0; i < len; i++)
		p[i] = pattern(seed, i);
}

static void test_buffer(void)
{
	static unsigned char src[MAX_BUF + 16], dst[MAX_BUF + 16];
	NAL_BUFFER *b = NAL_BUFFER_new(), *c = NAL_BUFFER_new();
	unsigned char *wp;

	CHECK(b && c, "NAL_BUFFER_new returned NULL");
	fill(src, sizeof(src), 1);

	/* A new buffer holds nothing and has no room: empty and full. */
	check_state(b, 0, 0, "new buffer");
	CHECK(NAL_BUFFER_write(b, src, 10) == 0, "write into a 0-byte buffer");
	CHECK(NAL_BUFFER_read(b, dst, 10) == 0, "read from a 0-byte buffer");

	/* Sizes: 0..32768 accepted, more refused without a change. */
	CHECK(NAL_BUFFER_set_size(b, 100) == 1, "set_size(100)");
	check_state(b, 100, 0, "after set_size(100)");
	CHECK(NAL_BUFFER_set_size(b, MAX_BUF + 1) == 0, "set_size(32769)");
	check_state(b, 100, 0, "after a refused set_size");
	CHECK(NAL_BUFFER_set_size(b, MAX_BUF) == 1, "set_size(32768)");
	check_state(b, MAX_BUF, 0, "after set_size(32768)");
	CHECK(NAL_BUFFER_write(b, src, MAX_BUF + 16) == MAX_BUF,
	      "a 32768-byte buffer takes 32768 bytes");
	check_state(b, MAX_BUF, MAX_BUF, "full 32768-byte buffer");
	CHECK(memcmp(NAL_BUFFER_data(b), src, MAX_BUF) == 0,
	      "data() of the full buffer");
	CHECK(NAL_BUFFER_set_size(b, 0) == 1, "set_size(0)");
	check_state(b, 0, 0, "after set_size(0)");
	CHECK(NAL_BUFFER_write(b, src, 1) == 0, "write after set_size(0)");

	/* Writes: short when the space runs out. */
	CHECK(NAL_BUFFER_set_size(b, 100) == 1, "set_size(100) again");
	CHECK(NAL_BUFFER_write(b, src, 0) == 0, "a 0-byte write");
	check_state(b, 100, 0, "after a 0-byte write");
	CHECK(NAL_BUFFER_write(b, src, 30) == 30, "write 30");
	check_state(b, 100, 30, "after write 30");
	CHECK(memcmp(NAL_BUFFER_data(b), src, 30) == 0, "data() after write");
	CHECK(NAL_BUFFER_write(b, src + 30, 100) == 70,
	      "write 100 into 70 free bytes is short");
	check_state(b, 100, 100, "after the short write");
	CHECK(NAL_BUFFER_write(b, src, 5) == 0, "write into a full buffer");
	CHECK(memcmp(NAL_BUFFER_data(b), src, 100) == 0, "data() when full");

	/* Reads: from the front, the rest moves up; short when data runs
	 * out. */
	memset(dst, 0, sizeof(dst));
	CHECK(NAL_BUFFER_read(b, dst, 10) == 10, "read 10");
	CHECK(memcmp(dst, src, 10) == 0, "read 10: data");
	check_state(b, 100, 90, "after read 10");
	CHECK(memcmp(NAL_BUFFER_data(b), src + 10, 90) == 0,
	      "the remaining data moved to the front");
	CHECK(NAL_BUFFER_read(b, dst, 0) == 0, "a 0-byte read");
	check_state(b, 100, 90, "after a 0-byte read");
	CHECK(NAL_BUFFER_read(b, dst, 1000) == 90, "read 1000 of 90");
	CHECK(memcmp(dst, src + 10, 90) == 0, "read 1000 of 90: data");
	check_state(b, 100, 0, "after reading everything");
	CHECK(NAL_BUFFER_read(b, dst, 10) == 0, "read from an empty buffer");

	/* A NULL destination discards (the original's send path uses it). */
	CHECK(NAL_BUFFER_write(b, src, 20) == 20, "write 20");
	CHECK(NAL_BUFFER_read(b, NULL, 5) == 5, "read(NULL, 5) discards 5");
	check_state(b, 100, 15, "after discarding 5");
	CHECK(memcmp(NAL_BUFFER_data(b), src + 5, 15) == 0,
	      "after discarding 5: data");

	/* set_size to the same size keeps the data; to another size it
	 * drops it. */
	CHECK(NAL_BUFFER_set_size(b, 100) == 1, "set_size to the same size");
	check_state(b, 100, 15, "set_size to the same size keeps the data");
	CHECK(memcmp(NAL_BUFFER_data(b), src + 5, 15) == 0,
	      "same-size set_size: data kept");
	CHECK(NAL_BUFFER_set_size(b, 200) == 1, "set_size(200)");
	check_state(b, 200, 0, "set_size to a new size empties the buffer");

	/* reset empties and keeps the size. */
	CHECK(NAL_BUFFER_write(b, src, 50) == 50, "write 50");
	NAL_BUFFER_reset(b);
	check_state(b, 200, 0, "after reset");

	/* write_ptr/wrote: direct writes at the tail. */
	CHECK(NAL_BUFFER_write(b, src, 7) == 7, "write 7");
	wp = NAL_BUFFER_write_ptr(b);
	CHECK(wp == NAL_BUFFER_data(b) + 7,
	      "write_ptr is data() + used");
	memcpy(wp, src + 7, 13);
	check_state(b, 200, 7, "write_ptr alone changes nothing");
	NAL_BUFFER_wrote(b, 13);
	check_state(b, 200, 20, "after wrote(13)");
	CHECK(memcmp(NAL_BUFFER_data(b), src, 20) == 0, "data after wrote");
	NAL_BUFFER_wrote(b, 0);
	check_state(b, 200, 20, "after wrote(0)");
	NAL_BUFFER_wrote(b, NAL_BUFFER_unused(b));
	check_state(b, 200, 200, "wrote(unused) fills the buffer");
	NAL_BUFFER_reset(b);

	/* transfer(dest, src, max): max 0 means "as much as fits". */
	CHECK(NAL_BUFFER_set_size(c, 64) == 1, "set_size(c, 64)");
	CHECK(NAL_BUFFER_write(b, src, 150) == 150, "write 150");
	CHECK(NAL_BUFFER_transfer(c, b, 10) == 10, "transfer max 10");
	check_state(c, 64, 10, "dest after transfer 10");
	check_state(b, 200, 140, "src after transfer 10");
	CHECK(NAL_BUFFER_transfer(c, b, 0) == 54,
	      "transfer max 0 fills the destination (54)");
	check_state(c, 64, 64, "dest after transfer max 0");
	check_state(b, 200, 86, "src after transfer max 0");
	CHECK(memcmp(NAL_BUFFER_data(c), src, 64) == 0,
	      "transferred bytes in order");
	CHECK(memcmp(NAL_BUFFER_data(b), src + 64, 86) == 0,
	      "source keeps the rest in order");
	CHECK(NAL_BUFFER_transfer(c, b, 0) == 0, "transfer into a full dest");
	CHECK(NAL_BUFFER_read(c, dst, 64) == 64, "drain dest");
	CHECK(NAL_BUFFER_transfer(c, b, 1000) == 64,
	      "transfer max 1000 is bounded by the dest's room");
	CHECK(NAL_BUFFER_read(c, dst, 64) == 64, "drain dest again");
	CHECK(NAL_BUFFER_transfer(c, b, 0) == 22,
	      "transfer is bounded by the source's data");
	check_state(b, 200, 0, "src emptied by transfer");
	CHECK(memcmp(NAL_BUFFER_data(c), src + 128, 22) == 0,
	      "the last transfer's bytes");
	CHECK(NAL_BUFFER_transfer(c, b, 0) == 0, "transfer from an empty src");

	NAL_BUFFER_free(b);
	NAL_BUFFER_free(c);
}

/* ---------------------------------------------------------------------------
 * Codecs */

static void test_codecs(void)
{
	unsigned char buf[16], *p;
	const unsigned char *q;
	unsigned int len, u16;
	unsigned long u32;
	unsigned char ch, bin[8];
	static const unsigned char want[] = {0x01, 0x02, 0x03, 0x04, 0xa1,
					     0xb2, 0x7f, 0xde, 0xad, 0xbe};

	memset(buf, 0xEE, sizeof(buf));
	p = buf;
	len = 10;
	CHECK(NAL_encode_uint32(&p, &len, 0x01020304UL) == 1, "encode u32");
	CHECK(p == buf + 4 && len == 6, "encode u32 advances 4");
	CHECK(NAL_encode_uint16(&p, &len, 0xa1b2) == 1, "encode u16");
	CHECK(p == buf + 6 && len == 4, "encode u16 advances 2");
	CHECK(NAL_encode_char(&p, &len, 0x7f) == 1, "encode char");
	CHECK(p == buf + 7 && len == 3, "encode char advances 1");
	/* Too short: nothing moves, nothing is written. */
	CHECK(NAL_encode_uint32(&p, &len, 0x11111111UL) == 0,
	      "encode u32 into 3 bytes");
	CHECK(NAL_encode_bin(&p, &len, (const unsigned char *)"wxyz", 4) == 0,
	      "encode 4 bytes into 3");
	CHECK(p == buf + 7 && len == 3, "failed encodes moved the pointer");
	CHECK(buf[7] == 0xEE, "a failed encode wrote");
	CHECK(NAL_encode_bin(&p, &len, (const unsigned char *)"\xde\xad\xbe",
			     3) == 1,
	      "encode bin 3 into 3");
	CHECK(p == buf + 10 && len == 0, "encode bin advances 3");
	CHECK(NAL_encode_char(&p, &len, 1) == 0, "encode char into 0 bytes");
	CHECK(NAL_encode_uint16(&p, &len, 1) == 0, "encode u16 into 0 bytes");
	CHECK(NAL_encode_bin(&p, &len, (const unsigned char *)"x", 0) == 1,
	      "encode 0 bytes into 0");
	CHECK(p == buf + 10 && len == 0, "0-byte encode moved the pointer");
	CHECK(memcmp(buf, want, sizeof(want)) == 0,
	      "encoded bytes are big-endian");
	CHECK(buf[10] == 0xEE, "encode wrote past its length");

	/* Only the low 32 and 16 bits are encoded. */
	p = buf;
	len = 6;
	CHECK(NAL_encode_uint32(&p, &len, 0xffffffffUL) == 1 &&
		      NAL_encode_uint16(&p, &len, 0x12345u) == 1,
	      "encode u32 max / u16 of 0x12345");
	CHECK(memcmp(buf, "\xff\xff\xff\xff\x23\x45", 6) == 0,
	      "u32 max / u16 low bits");
	if (sizeof(unsigned long) > 4) {
		unsigned long wide = 0x0102030405060708UL;
		p = buf;
		len = 4;
		CHECK(NAL_encode_uint32(&p, &len, wide) == 1, "encode wide");
		CHECK(memcmp(buf, "\x05\x06\x07\x08", 4) == 0,
		      "a u32 of a 64-bit value keeps its low 32 bits");
	}

	/* Decoding. */
	q = want;
	len = sizeof(want);
	CHECK(NAL_decode_uint32(&q, &len, &u32) == 1 && u32 == 0x01020304UL,
	      "decode u32: %lx", u32);
	CHECK(q == want + 4 && len == 6, "decode u32 advances 4");
	CHECK(NAL_decode_uint16(&q, &len, &u16) == 1 && u16 == 0xa1b2,
	      "decode u16: %x", u16);
	CHECK(q == want + 6 && len == 4, "decode u16 advances 2");
	CHECK(NAL_decode_char(&q, &len, &ch) == 1 && ch == 0x7f,
	      "decode char: %x", ch);
	CHECK(q == want + 7 && len == 3, "decode char advances 1");
	u32 = 12345;
	CHECK(NAL_decode_uint32(&q, &len, &u32) == 0, "decode u32 from 3");
	CHECK(u32 == 12345, "a failed decode wrote its value");
	memset(bin, 0, sizeof(bin));
	CHECK(NAL_decode_bin(&q, &len, bin, 4) == 0, "decode 4 from 3");
	CHECK(bin[0] == 0, "a failed decode_bin wrote");
	CHECK(q == want + 7 && len == 3, "failed decodes moved the pointer");
	CHECK(NAL_decode_bin(&q, &len, bin, 0) == 1, "decode 0 bytes");
	CHECK(q == want + 7 && len == 3, "0-byte decode moved the pointer");
	CHECK(NAL_decode_bin(&q, &len, bin, 3) == 1 &&
		      memcmp(bin, "\xde\xad\xbe", 3) == 0,
	      "decode bin 3");
	CHECK(q == want + 10 && len == 0, "decode bin advances 3");
	ch = 9;
	u16 = 9;
	CHECK(NAL_decode_char(&q, &len, &ch) == 0 && ch == 9,
	      "decode char from 0");
	CHECK(NAL_decode_uint16(&q, &len, &u16) == 0 && u16 == 9,
	      "decode u16 from 0");
	q = (const unsigned char *)"\xff\xff\xff\xff\x80\x01";
	len = 6;
	CHECK(NAL_decode_uint32(&q, &len, &u32) == 1 && u32 == 0xffffffffUL,
	      "decode u32 max: %lx", u32);
	CHECK(NAL_decode_uint16(&q, &len, &u16) == 1 && u16 == 0x8001,
	      "decode u16 0x8001: %x", u16);
}

/* ---------------------------------------------------------------------------
 * Addresses */

struct addr_case {
	const char *s;
	int ok, can_connect, can_listen;
};

static const struct addr_case addr_cases[] = {
	{"UNIX:/tmp/nal_buffer.sock", 1, 1, 1},
	{"UNIX:relative.sock", 1, 1, 1},
	{"IP:9001", 1, 0, 1},
	{"IPv4:9001", 1, 0, 1},
	{"IP::9001", 1, 0, 1},
	{"IP:0", 1, 0, 1},
	{"IP:65535", 1, 0, 1},
	{"IP:127.0.0.1:9001", 1, 1, 1},
	{"IPv4:127.0.0.1:9001", 1, 1, 1},
	{"IP:localhost:9001", 1, 1, 1},
	{"IP:0.0.0.0:9001", 1, 1, 1},
	{"", 0, 0, 0},
	{"I", 0, 0, 0},
	{"IP", 0, 0, 0},
	{"IP:", 0, 0, 0},
	{"UNIX", 0, 0, 0},
	{"IP:65536", 0, 0, 0},
	{"IP:99999999999", 0, 0, 0},
	{"IP:-1", 0, 0, 0},
	{"IP:abc", 0, 0, 0},
	{"IP:9001x", 0, 0, 0},
	{"IP:127.0.0.1:", 0, 0, 0},
	{"IP:127.0.0.1:x", 0, 0, 0},
	{"IP:127.0.0.1:65536", 0, 0, 0},
	{"IP:127.0.0.1:80:90", 0, 0, 0},
	{"ip:9001", 0, 0, 0},
	{"unix:/tmp/x", 0, 0, 0},
	{"TCP:9001", 0, 0, 0},
	{"FOO:127.0.0.1:9001", 0, 0, 0},
	{"/tmp/socket", 0, 0, 0},
	{"9001", 0, 0, 0},
};

/* The extension: IPv6 (address syntax only; nal_echo runs traffic). */
static const struct addr_case addr_cases_ext[] = {
	{"IPv6:[::1]:9001", 1, 1, 1},
	{"IPv6:[::]:9001", 1, 1, 1},
	{"IPv6:[0:0:0:0:0:0:0:1]:9001", 1, 1, 1},
	{"IPv6:9001", 1, 0, 1},
	{"IPv6:[::1]:0", 1, 1, 1},
	{"IPv6:", 0, 0, 0},
	{"IPv6:[::1]", 0, 0, 0},
	{"IPv6:[::1]:", 0, 0, 0},
	{"IPv6:[::1]:65536", 0, 0, 0},
	{"IPv6:[::1]:x", 0, 0, 0},
	{"IPv6:[::1:9001", 0, 0, 0},
	{"IPv6:::1:9001", 0, 0, 0},
	{"IPv6:[zz::1]:9001", 0, 0, 0},
	{"IPv6:[127.0.0.1]:9001", 0, 0, 0},
	{"IPv6:65536", 0, 0, 0},
	{"ipv6:[::1]:9001", 0, 0, 0},
};

static void check_addr_cases(NAL_ADDRESS *a, const struct addr_case *cases,
			     unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		const struct addr_case *c = cases + i;
		int ok = NAL_ADDRESS_create(a, c->s, 2048);
		CHECK(ok == c->ok, "NAL_ADDRESS_create(\"%s\") = %d, want %d",
		      c->s, ok, c->ok);
		CHECK(!NAL_ADDRESS_can_connect(a) == !c->can_connect,
		      "can_connect(\"%s\") = %d", c->s,
		      NAL_ADDRESS_can_connect(a));
		CHECK(!NAL_ADDRESS_can_listen(a) == !c->can_listen,
		      "can_listen(\"%s\") = %d", c->s,
		      NAL_ADDRESS_can_listen(a));
		if (ok) {
			CHECK(NAL_ADDRESS_get_def_buffer_size(a) == 2048,
			      "def buffer size of \"%s\"", c->s);
			/* In use until reset. */
			CHECK(NAL_ADDRESS_create(a, "IP:9001", 2048) == 0,
			      "create on the used address of \"%s\"", c->s);
			NAL_ADDRESS_reset(a);
			CHECK(!NAL_ADDRESS_can_connect(a) &&
				      !NAL_ADDRESS_can_listen(a),
			      "reset address of \"%s\" still usable", c->s);
		}
	}
}

static void test_address(int ext)
{
	static char longstr[300];
	NAL_ADDRESS *a = NAL_ADDRESS_new(), *b = NAL_ADDRESS_new();
	NAL_CONNECTION *conn = NAL_CONNECTION_new();
	NAL_LISTENER *list = NAL_LISTENER_new();

	CHECK(a && b && conn && list, "NAL_*_new returned NULL");
	/* A new address: nothing. */
	CHECK(!NAL_ADDRESS_can_connect(a) && !NAL_ADDRESS_can_listen(a),
	      "a new address can connect or listen");
	CHECK(NAL_ADDRESS_get_def_buffer_size(a) == 0,
	      "new address def buffer size %u",
	      NAL_ADDRESS_get_def_buffer_size(a));
	/* A connection needs an address that can connect. */
	CHECK(NAL_CONNECTION_create(conn, a) == 0,
	      "connect to a new (unparsed) address");

	check_addr_cases(a, addr_cases,
			 sizeof(addr_cases) / sizeof(addr_cases[0]));
	if (ext)
		check_addr_cases(a, addr_cases_ext, sizeof(addr_cases_ext) /
							    sizeof(addr_cases_ext[0]));

	/* Strings longer than 255 characters are refused. */
	memset(longstr, 0, sizeof(longstr));
	memcpy(longstr, "UNIX:/", 6);
	memset(longstr + 6, 'x', 256 - 6);
	CHECK(strlen(longstr) == 256, "long string");
	CHECK(NAL_ADDRESS_create(a, longstr, 1024) == 0,
	      "a 256-character address was accepted");

	/* Default buffer sizes: 0..32768. */
	CHECK(NAL_ADDRESS_create(a, "UNIX:/tmp/x.sock", MAX_BUF + 1) == 0,
	      "create with def_buffer_size 32769");
	CHECK(NAL_ADDRESS_create(a, "UNIX:/tmp/x.sock", MAX_BUF) == 1,
	      "create with def_buffer_size 32768");
	CHECK(NAL_ADDRESS_get_def_buffer_size(a) == MAX_BUF, "get 32768");
	CHECK(NAL_ADDRESS_set_def_buffer_size(a, MAX_BUF + 1) == 0,
	      "set_def_buffer_size(32769)");
	CHECK(NAL_ADDRESS_get_def_buffer_size(a) == MAX_BUF,
	      "a refused set changed the size");
	CHECK(NAL_ADDRESS_set_def_buffer_size(a, 1000) == 1, "set 1000");
	CHECK(NAL_ADDRESS_get_def_buffer_size(a) == 1000, "get 1000");
	CHECK(NAL_ADDRESS_set_def_buffer_size(a, 0) == 1, "set 0");
	CHECK(NAL_ADDRESS_get_def_buffer_size(a) == 0, "get 0");
	CHECK(NAL_ADDRESS_can_connect(a) && NAL_ADDRESS_can_listen(a),
	      "set_def_buffer_size changed what the address can do");
	/* On a new address too. */
	CHECK(NAL_ADDRESS_set_def_buffer_size(b, 777) == 1 &&
		      NAL_ADDRESS_get_def_buffer_size(b) == 777,
	      "set on a new address");
	NAL_ADDRESS_free(b);

	/* Connections inherit the size: listen on a UNIX path with 1000 and
	 * connect. (The socket lives in a fresh temporary directory.) */
	{
		char dir[] = "/tmp/nal_buffer.XXXXXX";
		char str[128];
		NAL_SELECTOR *sel = NAL_SELECTOR_new_fdpoll();
		NAL_CONNECTION *acc = NAL_CONNECTION_new();
		CHECK(mkdtemp(dir) != NULL, "mkdtemp");
		snprintf(str, sizeof(str), "UNIX:%s/s.sock", dir);
		NAL_ADDRESS_reset(a);
		CHECK(NAL_ADDRESS_create(a, str, 1000) == 1, "create %s", str);
		CHECK(NAL_LISTENER_create(list, a) == 1, "listen on %s", str);
		CHECK(NAL_LISTENER_add_to_selector(list, sel) == 1,
		      "add the listener");
		/* A changed def size is seen by later connections. */
		CHECK(NAL_ADDRESS_set_def_buffer_size(a, 3000) == 1, "set 3000");
		CHECK(NAL_CONNECTION_create(conn, a) == 1, "connect to %s", str);
		CHECK(NAL_BUFFER_size(NAL_CONNECTION_get_read(conn)) == 3000 &&
			      NAL_BUFFER_size(NAL_CONNECTION_get_send(conn)) ==
				      3000,
		      "connection buffers: %u/%u, want 3000",
		      NAL_BUFFER_size(NAL_CONNECTION_get_read(conn)),
		      NAL_BUFFER_size(NAL_CONNECTION_get_send(conn)));
		wait_accept(sel, list, acc, 5000);
		CHECK(NAL_BUFFER_size(NAL_CONNECTION_get_read(acc)) == 1000 &&
			      NAL_BUFFER_size(NAL_CONNECTION_get_send(acc)) ==
				      1000,
		      "accepted connection buffers: %u/%u, want the "
		      "listener's 1000",
		      NAL_BUFFER_size(NAL_CONNECTION_get_read(acc)),
		      NAL_BUFFER_size(NAL_CONNECTION_get_send(acc)));
		/* NAL_CONNECTION_set_size resizes both; 0..32768. */
		CHECK(NAL_CONNECTION_set_size(acc, MAX_BUF + 1) == 0,
		      "NAL_CONNECTION_set_size(32769)");
		CHECK(NAL_CONNECTION_set_size(acc, 5000) == 1,
		      "NAL_CONNECTION_set_size(5000)");
		CHECK(NAL_BUFFER_size(NAL_CONNECTION_get_read(acc)) == 5000 &&
			      NAL_BUFFER_size(NAL_CONNECTION_get_send(acc)) ==
				      5000,
		      "after NAL_CONNECTION_set_size(5000)");
		CHECK(NAL_CONNECTION_get_read_c(acc) ==
				      NAL_CONNECTION_get_read(acc) &&
			      NAL_CONNECTION_get_send_c(acc) ==
				      NAL_CONNECTION_get_send(acc) &&
			      NAL_CONNECTION_get_read(acc) !=
				      NAL_CONNECTION_get_send(acc),
		      "get_read_c/get_send_c differ from get_read/get_send");
		NAL_CONNECTION_free(acc);
		NAL_CONNECTION_free(conn);
		conn = NULL;
		NAL_LISTENER_free(list);
		NAL_SELECTOR_free(sel);
		snprintf(str, sizeof(str), "%s/s.sock", dir);
		unlink(str);
		rmdir(dir);
	}
	NAL_ADDRESS_free(a);
}

/* ---------------------------------------------------------------------------
 * Connection pairs */

/* Moves `len` bytes from `from` to `to` through the selector, writing with
 * NAL_BUFFER_write and reading with NAL_BUFFER_read. */
static void pump_pair(NAL_SELECTOR *sel, NAL_CONNECTION *from,
		      NAL_CONNECTION *to, unsigned int len, unsigned int seed)
{
	static unsigned char chunk[4096];
	unsigned long sent = 0, got = 0, i;
	double start = now_ms();

	while (got < len) {
		unsigned int n, k;
		CHECK(now_ms() - start < 10000,
		      "pair: %lu of %u bytes after 10 s", got, len);
		n = NAL_BUFFER_unused(NAL_CONNECTION_get_send(from));
		if (n > len - sent)
			n = (unsigned int)(len - sent);
		if (n > sizeof(chunk))
			n = sizeof(chunk);
		for (i = 0; i < n; i++)
			chunk[i] = pattern(seed, sent + i);
		k = NAL_BUFFER_write(NAL_CONNECTION_get_send(from), chunk, n);
		CHECK(k == n, "pair: wrote %u of %u free bytes", k, n);
		sent += n;
		CHECK(NAL_SELECTOR_select(sel, 500000, 1) >= 0, "pair: select");
		CHECK(NAL_CONNECTION_io(from) && NAL_CONNECTION_io(to),
		      "pair: io failed");
		n = NAL_BUFFER_read(NAL_CONNECTION_get_read(to), chunk,
				    sizeof(chunk));
		for (i = 0; i < n; i++)
			CHECK(chunk[i] == pattern(seed, got + i),
			      "pair: byte %lu differs", got + i);
		got += n;
	}
	CHECK(NAL_BUFFER_empty(NAL_CONNECTION_get_read(to)),
	      "pair: more bytes than sent");
}

static void test_pair(void)
{
	NAL_CONNECTION *c1 = NAL_CONNECTION_new(), *c2 = NAL_CONNECTION_new();
	NAL_CONNECTION *c3 = NAL_CONNECTION_new(), *c4 = NAL_CONNECTION_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new();

	CHECK(c1 && c2 && c3 && c4 && sel, "NAL_*_new returned NULL");
	CHECK(NAL_CONNECTION_create_pair(c3, c4, MAX_BUF + 1) == 0,
	      "create_pair with def_buffer_size 32769");
	CHECK(NAL_CONNECTION_create_pair(c1, c2, 2048) == 1, "create_pair");
	CHECK(NAL_CONNECTION_is_established(c1) &&
		      NAL_CONNECTION_is_established(c2),
	      "a pair is established at once");
	CHECK(NAL_BUFFER_size(NAL_CONNECTION_get_read(c1)) == 2048 &&
		      NAL_BUFFER_size(NAL_CONNECTION_get_send(c2)) == 2048,
	      "pair buffer sizes");
	CHECK(NAL_CONNECTION_create_pair(c1, c2, 2048) == 0,
	      "create_pair on used connections");
	CHECK(NAL_CONNECTION_add_to_selector(c1, sel) == 1 &&
		      NAL_CONNECTION_add_to_selector(c2, sel) == 1,
	      "add the pair to a selector");
	CHECK(NAL_SELECTOR_num_objects(sel) == 2, "num_objects %u",
	      NAL_SELECTOR_num_objects(sel));
	pump_pair(sel, c1, c2, 50000, 3);
	pump_pair(sel, c2, c1, 50000, 4);
	pump_pair(sel, c1, c2, 1, 5);
	NAL_CONNECTION_free(c1);
	NAL_CONNECTION_free(c2);
	NAL_CONNECTION_free(c3);
	NAL_CONNECTION_free(c4);
	CHECK(NAL_SELECTOR_num_objects(sel) == 0,
	      "freed connections left the selector: %u",
	      NAL_SELECTOR_num_objects(sel));
	NAL_SELECTOR_free(sel);
}

/* ---------------------------------------------------------------------------
 * Nagle */

/* Bitmap of the descriptors open now (0..1023). */
static void open_fds(unsigned char *map)
{
	int fd;

	for (fd = 0; fd < 1024; fd++)
		map[fd] = fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

/* The TCP_NODELAY setting of every TCP socket opened since `before` that
 * is not a listener: counts of sockets with it on and off. */
static void nodelay_since(const unsigned char *before, int *on, int *off)
{
	int fd, v, acc;
	socklen_t len;

	*on = *off = 0;
	for (fd = 0; fd < 1024; fd++) {
		if (before[fd] || fcntl(fd, F_GETFD) == -1)
			continue;
		len = sizeof(acc);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 ||
		    acc)
			continue;
		len = sizeof(v);
		if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) != 0)
			continue;
		if (v)
			(*on)++;
		else
			(*off)++;
	}
}

static void nagle_round(NAL_ADDRESS *a, NAL_LISTENER *list,
			NAL_SELECTOR *sel, int want_nodelay)
{
	static unsigned char before[1024];
	NAL_CONNECTION *c = NAL_CONNECTION_new(), *s = NAL_CONNECTION_new();
	int on, off;

	CHECK(c && s, "NAL_CONNECTION_new");
	open_fds(before);
	CHECK(NAL_CONNECTION_create(c, a) == 1, "TCP connect");
	wait_accept(sel, list, s, 5000);
	nodelay_since(before, &on, &off);
	if (want_nodelay)
		CHECK(on == 2 && off == 0,
		      "Nagle off (the default): %d sockets with TCP_NODELAY, %d "
		      "without; want 2 with",
		      on, off);
	else
		CHECK(on == 0 && off == 2,
		      "after NAL_config_set_nagle(1): %d sockets with "
		      "TCP_NODELAY, %d without; want 2 without",
		      on, off);
	NAL_CONNECTION_free(c);
	NAL_CONNECTION_free(s);
}

static void test_nagle(const char *tcp)
{
	NAL_ADDRESS *a = NAL_ADDRESS_new();
	NAL_LISTENER *list = NAL_LISTENER_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new_fdselect();

	CHECK(a && list && sel, "NAL_*_new");
	CHECK(NAL_ADDRESS_create(a, tcp, 4096) == 1, "address %s", tcp);
	CHECK(NAL_ADDRESS_can_connect(a) && NAL_ADDRESS_can_listen(a),
	      "%s must allow connect and listen", tcp);
	CHECK(NAL_LISTENER_create(list, a) == 1, "listen on %s", tcp);
	CHECK(NAL_LISTENER_add_to_selector(list, sel) == 1, "add listener");
	nagle_round(a, list, sel, 1);
	NAL_config_set_nagle(1);
	nagle_round(a, list, sel, 0);
	NAL_config_set_nagle(0);
	nagle_round(a, list, sel, 1);
	NAL_LISTENER_free(list);
	NAL_SELECTOR_free(sel);
	NAL_ADDRESS_free(a);
}

int main(int argc, char **argv)
{
	int ext = 0;

	if (argc < 2 || argc > 3 ||
	    (argc == 3 && strcmp(argv[2], "--ext") != 0)) {
		fprintf(stderr, "usage: %s <tcp-address> [--ext]\n", argv[0]);
		return 2;
	}
	ext = argc == 3;
	ignore_sigpipe();
	test_buffer();
	test_codecs();
	test_address(ext);
	test_pair();
	test_nagle(argv[1]);
	printf("nal_buffer OK%s\n", ext ? " (with extensions)" : "");
	return 0;
}
