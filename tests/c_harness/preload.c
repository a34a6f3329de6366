/* preload.c: a DC_CTX program for the LD_PRELOAD test.
 *
 * usage: preload <address>   (a running dc_server)
 *
 * tests/c_api.rs links it against a stand-in libdistcache.so.1 whose
 * DC_CTX functions all fail (standin_distcache.c), then runs it with the
 * real library in LD_PRELOAD. It prints "DC_CTX_new from <file>", the
 * library dladdr(3) says DC_CTX_new came from, then does an add, get
 * (checked byte for byte), reget, has and remove with a persistent
 * context and again with a connection per operation.
 * Exit 0 on success; 3 when DC_CTX_new returns NULL (what the stand-in
 * does); 1 with a message on any other failure. */
#define _GNU_SOURCE
#include <dlfcn.h>

#include <distcache/dc_client.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static void round_trip(const char *address, unsigned int flags)
{
	unsigned char id[64], sess[700], out[800];
	unsigned int id_len, used = 0, i;
	DC_CTX *ctx = DC_CTX_new(address, flags);

	if (!ctx) {
		fprintf(stderr, "DC_CTX_new(%s, 0x%x) returned NULL\n",
			address, flags);
		exit(3);
	}
	id_len = (unsigned int)snprintf((char *)id, sizeof(id),
					"preload-%ld-%x", (long)getpid(),
					flags);
	for (i = 0; i < sizeof(sess); i++)
		sess[i] = (unsigned char)(i * 13 + flags);
	roundtrip_ok(ctx, id, id_len, sess, sizeof(sess), "round trip");
	CHECK(DC_CTX_add_session(ctx, id, id_len, sess, sizeof(sess), 60000) ==
		      1,
	      "add");
	CHECK(DC_CTX_get_session(ctx, id, id_len, out, sizeof(out), &used) ==
			      1 &&
		      used == sizeof(sess) &&
		      memcmp(out, sess, sizeof(sess)) == 0,
	      "get");
	used = 0;
	CHECK(DC_CTX_reget_session(ctx, id, id_len, out, sizeof(out),
				   &used) == 1 &&
		      used == sizeof(sess),
	      "reget");
	CHECK(DC_CTX_remove_session(ctx, id, id_len) == 1, "remove");
	CHECK(DC_CTX_has_session(ctx, id, id_len) == 0, "has after remove");
	DC_CTX_free(ctx);
}

int main(int argc, char **argv)
{
	Dl_info info;

	if (argc != 2) {
		fprintf(stderr, "usage: %s <address>\n", argv[0]);
		return 2;
	}
	CHECK(dladdr((void *)DC_CTX_new, &info) != 0 && info.dli_fname,
	      "dladdr(DC_CTX_new)");
	printf("DC_CTX_new from %s\n", info.dli_fname);
	fflush(stdout);
	round_trip(argv[1], DC_CTX_FLAG_PERSISTENT);
	round_trip(argv[1], 0);
	printf("preload OK\n");
	return 0;
}
