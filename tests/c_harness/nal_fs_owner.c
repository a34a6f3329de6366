/* nal_fs_owner.c: NAL_LISTENER_set_fs_owner with numeric ids, by the rules
 * of dc_server's -sockowner and -sockgroup (an extension: the original
 * took names only).
 *
 * usage: nal_fs_owner <socket-path>
 *
 * It listens on UNIX:<socket-path> and proves:
 * - the user's own uid as a number gives the file to that user and, with
 *   no group, to the account's primary group; its own gid as a number
 *   sets the group; both together set both;
 * - a number no account has is refused as a user (its primary group would
 *   be unknown), and the file keeps its owner;
 * - run as root: another account's uid as a number, and a group number no
 *   group has (a number is taken as it is), are applied as given.
 * It prints "OK nal_fs_owner" at the end. */
#include <libnal/nal.h>

#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static void owner_is(const char *path, uid_t uid, gid_t gid, const char *what)
{
	struct stat st;

	CHECK(stat(path, &st) == 0, "stat %s", path);
	CHECK(st.st_uid == uid && st.st_gid == gid,
	      "%s: owner %u:%u, wanted %u:%u", what, (unsigned int)st.st_uid,
	      (unsigned int)st.st_gid, (unsigned int)uid, (unsigned int)gid);
}

int main(int argc, char **argv)
{
	char address[300], uid_str[32], gid_str[32], other[32];
	NAL_ADDRESS *addr = NAL_ADDRESS_new();
	NAL_LISTENER *list = NAL_LISTENER_new();
	struct passwd *pw = getpwuid(getuid());
	unsigned long absent = 3999999999ul;
	uid_t uid = getuid();
	gid_t gid = getgid(), primary;

	CHECK(argc == 2, "usage: nal_fs_owner <socket-path>");
	CHECK(pw != NULL, "getpwuid(%u)", (unsigned int)uid);
	primary = pw->pw_gid;
	snprintf(address, sizeof(address), "UNIX:%s", argv[1]);
	CHECK(addr && list && NAL_ADDRESS_create(addr, address, 4096) == 1 &&
		      NAL_LISTENER_create(list, addr) == 1,
	      "listen on %s", address);

	snprintf(uid_str, sizeof(uid_str), "%u", (unsigned int)uid);
	snprintf(gid_str, sizeof(gid_str), "%u", (unsigned int)gid);
	CHECK(NAL_LISTENER_set_fs_owner(list, uid_str, NULL) == 1,
	      "set_fs_owner(\"%s\", NULL)", uid_str);
	owner_is(argv[1], uid, primary, "a numeric user alone");
	CHECK(NAL_LISTENER_set_fs_owner(list, NULL, gid_str) == 1,
	      "set_fs_owner(NULL, \"%s\")", gid_str);
	owner_is(argv[1], uid, gid, "a numeric group");
	CHECK(NAL_LISTENER_set_fs_owner(list, uid_str, gid_str) == 1,
	      "set_fs_owner(\"%s\", \"%s\")", uid_str, gid_str);
	owner_is(argv[1], uid, gid, "a numeric user and group");

	while (getpwuid((uid_t)absent) != NULL)
		absent--;
	snprintf(other, sizeof(other), "%lu", absent);
	CHECK(NAL_LISTENER_set_fs_owner(list, other, NULL) == 0,
	      "set_fs_owner(\"%s\", NULL) with no such account succeeded",
	      other);
	owner_is(argv[1], uid, gid, "after a refused user");

	if (geteuid() == 0) {
		struct passwd *nobody = getpwnam("nobody");

		CHECK(nobody != NULL && nobody->pw_uid != 0,
		      "an account 'nobody' to give the file to");
		snprintf(other, sizeof(other), "%u",
			 (unsigned int)nobody->pw_uid);
		CHECK(NAL_LISTENER_set_fs_owner(list, other, NULL) == 1,
		      "set_fs_owner(\"%s\", NULL) as root", other);
		owner_is(argv[1], nobody->pw_uid, nobody->pw_gid,
			 "another account by number");
		CHECK(NAL_LISTENER_set_fs_owner(list, other, "4242") == 1,
		      "set_fs_owner(\"%s\", \"4242\") as root", other);
		owner_is(argv[1], nobody->pw_uid, 4242,
			 "a group number with no group");
	}

	NAL_LISTENER_free(list);
	NAL_ADDRESS_free(addr);
	printf("OK nal_fs_owner\n");
	return 0;
}
