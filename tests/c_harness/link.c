/* link.c: a minimal DC_CTX user, built several ways by the driver
 * (-ldistcache alone; -ldistcacheserver -ldistcache -lnal; statically
 * against libdistcache.a) to prove each link line gives a working program.
 *
 * usage: link <address> [--one-copy]
 *
 * Runs one add/get/has/remove round trip on a flags-0 and a PERSISTENT ctx.
 * With --one-copy (dynamic builds only) it also looks up, in the running
 * process, DC_CTX_new and whichever libnal / libdistcacheserver / DC_PLUG
 * functions the loaded libraries export, and checks with dladdr() that they
 * all live in the same shared object: one copy of the code, whichever
 * library names the program was linked with. */
#define _GNU_SOURCE
#include <distcache/dc_client.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static void roundtrip(const char *addr, unsigned int flags)
{
	unsigned char id[64], sess[200];
	unsigned int id_len;
	char who[32];
	DC_CTX *ctx = DC_CTX_new(addr, flags);

	CHECK(ctx != NULL, "DC_CTX_new(%s, 0x%x)", addr, flags);
	id_len = (unsigned int)snprintf((char *)id, sizeof(id), "link-%ld-%x",
					(long)getpid(), flags);
	memset(sess, 'L', sizeof(sess));
	snprintf(who, sizeof(who), "flags 0x%x", flags);
	roundtrip_ok(ctx, id, id_len, sess, sizeof(sess), who);
	DC_CTX_free(ctx);
}

static void one_copy(void)
{
	static const char *names[] = {
		"DC_CTX_free",     "DC_CTX_get_session", "NAL_ADDRESS_new",
		"NAL_CONNECTION_new", "NAL_SELECTOR_new", "DC_PLUG_new",
		"DC_SERVER_new",   "DC_SERVER_process_client",
	};
	Dl_info base, info;
	void *p;
	unsigned int i, found = 0;
	char home[4096];

	p = dlsym(RTLD_DEFAULT, "DC_CTX_new");
	CHECK(p != NULL, "dlsym(DC_CTX_new): %s", dlerror());
	CHECK(dladdr(p, &base) != 0 && base.dli_fname != NULL,
	      "dladdr(DC_CTX_new)");
	snprintf(home, sizeof(home), "%s", base.dli_fname);
	printf("DC_CTX_new lives in %s\n", home);
	CHECK(strstr(home, "libdistcache.so") != NULL,
	      "DC_CTX_new is not in libdistcache.so: %s", home);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		p = dlsym(RTLD_DEFAULT, names[i]);
		if (p == NULL) {
			printf("  %s: not exported\n", names[i]);
			continue;
		}
		CHECK(dladdr(p, &info) != 0 && info.dli_fname != NULL,
		      "dladdr(%s)", names[i]);
		CHECK(strcmp(info.dli_fname, home) == 0,
		      "%s lives in %s, not in %s: two copies of the code",
		      names[i], info.dli_fname, home);
		printf("  %s: %s\n", names[i], info.dli_fname);
		found++;
	}
	printf("one copy: %u other symbols found, all in the same object\n",
	       found);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3 ||
	    (argc == 3 && strcmp(argv[2], "--one-copy") != 0)) {
		fprintf(stderr, "usage: %s <address> [--one-copy]\n", argv[0]);
		return 2;
	}
	if (argc == 3)
		one_copy();
	roundtrip(argv[1], 0);
	roundtrip(argv[1], DC_CTX_FLAG_PERSISTENT);
	printf("link OK\n");
	return 0;
}
