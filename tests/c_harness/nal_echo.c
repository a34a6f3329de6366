/* nal_echo.c: a libnal echo server and its clients in one process, driven
 * by one NAL_SELECTOR.
 *
 * usage: nal_echo [--ext] [--refused <tcp-address>] <address>...
 *   <address>   where to listen and connect: UNIX:/path (a fresh path per
 *               run is made by appending ".<selector kind>"), IP:host:port
 *               or any other form the library takes for both
 *   --refused   a TCP address nothing listens on
 *   --ext       also this project's extensions: a selector reset or freed
 *               with objects in it lets them go, usable in another one
 *               (the original left them pointing at it); sending to a
 *               closed peer fails the I/O and raises no SIGPIPE (the
 *               original's write(2) killed a process that did not ignore
 *               it)
 *
 * For every address and each selector constructor (NAL_SELECTOR_new_fdselect,
 * NAL_SELECTOR_new_fdpoll, NAL_SELECTOR_new) it proves:
 * - the selector: an empty NAL_SELECTOR_new() fails select at once; an
 *   object is added once (a second add fails); num_objects counts
 *   listeners and connections and drops when they are freed or deleted;
 *   select with a timeout and nothing ready returns 0 after about the
 *   time asked; select without a timeout returns when something is ready;
 *   reset of an empty selector leaves it usable.
 * - the listener: create once, add/del from the selector, accept only
 *   after a select saw the connection (NAL_CONNECTION_accept fails
 *   otherwise, and when the listener is not in the selector),
 *   NAL_LISTENER_finished is 0, set_fs_perms/set_fs_owner on UNIX
 *   listeners (and their refusal on TCP ones).
 * - connections: a new one has no buffers, is not established and cannot
 *   do I/O; four clients at once each send more than the buffer size
 *   (100000, 70000, 50000 and 30000 bytes, one client with 1000-byte
 *   buffers) and get it back byte for byte, the server side echoing with
 *   NAL_BUFFER_transfer (with and without a maximum), write_ptr/wrote and
 *   read/write; is_established; NAL_CONNECTION_io fails for a connection
 *   taken out of its selector and works again once it is back; a peer
 *   that closes is detected by NAL_CONNECTION_io returning 0, on both
 *   sides, after the bytes it sent before closing have arrived; reset
 *   connections are reused for new accepts.
 * - connecting where nothing listens fails: at once for UNIX paths, at
 *   create or at the first I/O for TCP (--refused).
 * Exit 0 on success, 1 with a message on the first failure. */
#include <libnal/nal.h>

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "nal_util.h"

#define NCLIENTS 4
#define BUFSZ 4096
#define LIMIT_MS 20000.0

static const unsigned long totals[NCLIENTS] = {100000, 70000, 50000, 30000};

static const char *g_addr, *g_kind;

static void print_context(void)
{
	fprintf(stderr, " (%s, %s)", g_addr ? g_addr : "-",
		g_kind ? g_kind : "-");
}

struct client {
	NAL_CONNECTION *conn;
	unsigned int seed;
	unsigned long total, sent, got;
};

/* How the server side echoes, per accepted connection. */
static void echo_step(NAL_CONNECTION *s, int how)
{
	NAL_BUFFER *rd = NAL_CONNECTION_get_read(s);
	NAL_BUFFER *sd = NAL_CONNECTION_get_send(s);
	unsigned char tmp[600];
	unsigned int n, k;

	switch (how % 4) {
	case 0:
		NAL_BUFFER_transfer(sd, rd, 0);
		break;
	case 1:
		NAL_BUFFER_transfer(sd, rd, 777);
		break;
	case 2:
		n = NAL_BUFFER_used(rd);
		if (n > NAL_BUFFER_unused(sd))
			n = NAL_BUFFER_unused(sd);
		memcpy(NAL_BUFFER_write_ptr(sd), NAL_BUFFER_data(rd), n);
		NAL_BUFFER_wrote(sd, n);
		CHECK(NAL_BUFFER_read(rd, NULL, n) == n, "discard %u", n);
		break;
	default:
		n = NAL_BUFFER_unused(sd);
		if (n > sizeof(tmp))
			n = sizeof(tmp);
		n = NAL_BUFFER_read(rd, tmp, n);
		k = NAL_BUFFER_write(sd, tmp, n);
		CHECK(k == n, "echo write %u of %u", k, n);
		break;
	}
}

/* The client side: top up the send buffer, check what came back. */
static void client_step(struct client *c)
{
	NAL_BUFFER *sd = NAL_CONNECTION_get_send(c->conn);
	NAL_BUFFER *rd = NAL_CONNECTION_get_read(c->conn);
	unsigned char tmp[1500];
	unsigned int n, i;

	n = NAL_BUFFER_unused(sd);
	if (n > c->total - c->sent)
		n = (unsigned int)(c->total - c->sent);
	if (n > sizeof(tmp))
		n = sizeof(tmp);
	for (i = 0; i < n; i++)
		tmp[i] = pattern(c->seed, c->sent + i);
	CHECK(NAL_BUFFER_write(sd, tmp, n) == n, "client write");
	c->sent += n;
	while ((n = NAL_BUFFER_read(rd, tmp, sizeof(tmp))) > 0) {
		CHECK(c->got + n <= c->total,
		      "client %u: more bytes back than sent", c->seed);
		for (i = 0; i < n; i++)
			CHECK(tmp[i] == pattern(c->seed, c->got + i),
			      "client %u: byte %lu differs", c->seed,
			      c->got + i);
		c->got += n;
	}
}

static void must_io(NAL_CONNECTION *conn, const char *who)
{
	CHECK(NAL_CONNECTION_io(conn), "NAL_CONNECTION_io failed for %s",
	      who);
}

/* Runs select + I/O until every client has its bytes back. */
static void echo_all(NAL_SELECTOR *sel, struct client *cl, int ncl,
		     NAL_CONNECTION **srv, int nsrv)
{
	double start = now_ms();
	int i, done = 0;

	while (!done) {
		CHECK(now_ms() - start < LIMIT_MS, "echo not done in %.0f ms",
		      LIMIT_MS);
		for (i = 0; i < ncl; i++)
			client_step(&cl[i]);
		CHECK(NAL_SELECTOR_select(sel, 500000, 1) >= 0, "select");
		for (i = 0; i < ncl; i++)
			must_io(cl[i].conn, "a client");
		for (i = 0; i < nsrv; i++) {
			must_io(srv[i], "a server connection");
			echo_step(srv[i], i);
		}
		done = 1;
		for (i = 0; i < ncl; i++) {
			client_step(&cl[i]);
			if (cl[i].got < cl[i].total)
				done = 0;
		}
	}
}

/* Selects until NAL_CONNECTION_io fails for exactly one of conns (the
 * others must keep working); returns its index. */
static int wait_io_failure(NAL_SELECTOR *sel, NAL_CONNECTION **conns, int n,
			   const char *what)
{
	double start = now_ms();
	int i, dead = -1;

	while (dead < 0) {
		CHECK(now_ms() - start < 5000, "%s: not detected within 5 s",
		      what);
		CHECK(NAL_SELECTOR_select(sel, 200000, 1) >= 0, "select");
		for (i = 0; i < n; i++) {
			if (NAL_CONNECTION_io(conns[i]))
				continue;
			CHECK(dead < 0, "%s: two connections failed", what);
			dead = i;
		}
	}
	return dead;
}

static void fresh_connection_checks(NAL_SELECTOR *sel, NAL_LISTENER *list)
{
	NAL_CONNECTION *c = NAL_CONNECTION_new();

	CHECK(c != NULL, "NAL_CONNECTION_new");
	CHECK(NAL_CONNECTION_get_read(c) == NULL &&
		      NAL_CONNECTION_get_send(c) == NULL &&
		      NAL_CONNECTION_get_read_c(c) == NULL &&
		      NAL_CONNECTION_get_send_c(c) == NULL,
	      "a new connection has buffers");
	CHECK(NAL_CONNECTION_is_established(c) == 0,
	      "a new connection is established");
	CHECK(NAL_CONNECTION_io(c) == 0, "I/O on a new connection");
	CHECK(NAL_CONNECTION_set_size(c, 100) == 0,
	      "set_size on a new connection");
	CHECK(NAL_CONNECTION_add_to_selector(c, sel) == 0,
	      "a new connection was added to a selector");
	CHECK(NAL_CONNECTION_accept(c, list) == 0,
	      "accept before any select");
	NAL_CONNECTION_del_from_selector(c);
	NAL_CONNECTION_reset(c);
	NAL_CONNECTION_free(c);
}

static void listener_fs_checks(NAL_LISTENER *list, const char *path)
{
	struct stat st;
	struct passwd *pw = getpwuid(getuid());

	if (!path) {
		CHECK(NAL_LISTENER_set_fs_perms(list, "600") == 0,
		      "set_fs_perms on a network listener");
		CHECK(NAL_LISTENER_set_fs_owner(list, NULL, NULL) == 0,
		      "set_fs_owner on a network listener");
		return;
	}
	CHECK(NAL_LISTENER_set_fs_perms(list, "600") == 1, "set_fs_perms 600");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
	      "socket mode %o after set_fs_perms(\"600\")",
	      (unsigned int)(st.st_mode & 0777));
	CHECK(NAL_LISTENER_set_fs_perms(list, "0751") == 1, "set_fs_perms 0751");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0751,
	      "socket mode %o after set_fs_perms(\"0751\")",
	      (unsigned int)(st.st_mode & 0777));
	CHECK(NAL_LISTENER_set_fs_perms(list, "9x") == 0,
	      "set_fs_perms(\"9x\") succeeded");
	CHECK(NAL_LISTENER_set_fs_perms(list, "") == 0,
	      "set_fs_perms(\"\") succeeded");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0751,
	      "a refused set_fs_perms changed the mode");
	CHECK(NAL_LISTENER_set_fs_perms(list, "777") == 1, "set_fs_perms 777");
	CHECK(pw != NULL, "getpwuid");
	CHECK(NAL_LISTENER_set_fs_owner(list, pw->pw_name, NULL) == 1,
	      "set_fs_owner(\"%s\", NULL)", pw->pw_name);
	CHECK(NAL_LISTENER_set_fs_owner(list, NULL, NULL) == 1,
	      "set_fs_owner(NULL, NULL)");
	CHECK(NAL_LISTENER_set_fs_owner(list, "no-such-user-dc-test", NULL) ==
		      0,
	      "set_fs_owner with an unknown user succeeded");
	CHECK(NAL_LISTENER_set_fs_owner(list, NULL, "no-such-group-dc-test") ==
		      0,
	      "set_fs_owner with an unknown group succeeded");
	CHECK(stat(path, &st) == 0 && st.st_uid == getuid(),
	      "socket owner %u", (unsigned int)st.st_uid);
}

static void run_echo(const char *base, const char *kind)
{
	char str[300];
	const char *path = NULL;
	NAL_ADDRESS *addr = NAL_ADDRESS_new();
	NAL_SELECTOR *sel = selector_new(kind);
	NAL_LISTENER *list = NAL_LISTENER_new();
	NAL_CONNECTION *srv[NCLIENTS + 1];
	struct client cl[NCLIENTS];
	unsigned int objs;
	int i, nsrv = 0, r, dead;
	double t0, el;

	g_kind = kind;
	if (strncmp(base, "UNIX:", 5) == 0) {
		snprintf(str, sizeof(str), "%s.%s", base, kind);
		path = str + 5;
	} else {
		snprintf(str, sizeof(str), "%s", base);
	}
	g_addr = str;
	CHECK(addr && sel && list, "NAL_*_new returned NULL");
	CHECK(NAL_ADDRESS_create(addr, str, BUFSZ) == 1, "address");
	CHECK(NAL_ADDRESS_can_listen(addr) && NAL_ADDRESS_can_connect(addr),
	      "the address must allow listen and connect");
	CHECK(NAL_SELECTOR_num_objects(sel) == 0, "new selector not empty");
	if (strcmp(kind, "new") == 0) {
		/* Until something is added NAL_SELECTOR_new() has no
		 * implementation: select fails at once, whatever the
		 * timeout. */
		t0 = now_ms();
		r = NAL_SELECTOR_select(sel, 2000000, 1);
		CHECK(r < 0, "select on an empty NAL_SELECTOR_new(): %d", r);
		CHECK(now_ms() - t0 < 1000, "it waited %.0f ms",
		      now_ms() - t0);
	}

	CHECK(NAL_LISTENER_create(list, addr) == 1, "listen");
	CHECK(NAL_LISTENER_create(list, addr) == 0, "listen twice");
	CHECK(NAL_LISTENER_finished(list) == 0, "listener finished");
	listener_fs_checks(list, path);
	CHECK(NAL_LISTENER_add_to_selector(list, sel) == 1, "add listener");
	CHECK(NAL_LISTENER_add_to_selector(list, sel) == 0,
	      "listener added twice");
	CHECK(NAL_SELECTOR_num_objects(sel) == 1, "num_objects %u, want 1",
	      NAL_SELECTOR_num_objects(sel));
	fresh_connection_checks(sel, list);
	CHECK(NAL_SELECTOR_num_objects(sel) == 1, "num_objects %u, want 1",
	      NAL_SELECTOR_num_objects(sel));

	/* Nothing is ready: the timeout runs out. */
	t0 = now_ms();
	r = NAL_SELECTOR_select(sel, 200000, 1);
	el = now_ms() - t0;
	CHECK(r == 0, "select with nothing ready returned %d", r);
	CHECK(el >= 150 && el <= 3000,
	      "a 200 ms select returned after %.0f ms", el);

	/* Clients. */
	for (i = 0; i < NCLIENTS; i++) {
		cl[i].conn = NAL_CONNECTION_new();
		cl[i].seed = (unsigned int)i + 1;
		cl[i].total = totals[i];
		cl[i].sent = cl[i].got = 0;
		CHECK(cl[i].conn != NULL, "NAL_CONNECTION_new");
		CHECK(NAL_CONNECTION_create(cl[i].conn, addr) == 1,
		      "connect client %d", i);
		CHECK(NAL_CONNECTION_create(cl[i].conn, addr) == 0,
		      "connect a used connection");
		CHECK(NAL_CONNECTION_add_to_selector(cl[i].conn, sel) == 1,
		      "add client %d", i);
		CHECK(NAL_CONNECTION_add_to_selector(cl[i].conn, sel) == 0,
		      "client %d added twice", i);
		if (path)
			CHECK(NAL_CONNECTION_is_established(cl[i].conn),
			      "UNIX connections are established at once");
	}
	CHECK(NAL_CONNECTION_set_size(cl[3].conn, 1000) == 1, "set_size 1000");
	CHECK(NAL_BUFFER_size(NAL_CONNECTION_get_read(cl[3].conn)) == 1000 &&
		      NAL_BUFFER_size(NAL_CONNECTION_get_send(cl[3].conn)) ==
			      1000,
	      "set_size resizes both buffers");
	objs = NAL_SELECTOR_num_objects(sel);
	CHECK(objs == 1 + NCLIENTS, "num_objects %u, want %d", objs,
	      1 + NCLIENTS);

	/* Connections are pending: a select without timeout returns. */
	r = NAL_SELECTOR_select(sel, 0, 0);
	CHECK(r > 0, "select without timeout returned %d", r);
	for (i = 0; i < NCLIENTS; i++)
		must_io(cl[i].conn, "a client before accept");
	t0 = now_ms();
	while (nsrv < NCLIENTS) {
		srv[nsrv] = NAL_CONNECTION_new();
		CHECK(srv[nsrv] != NULL, "NAL_CONNECTION_new");
		while (!NAL_CONNECTION_accept(srv[nsrv], list)) {
			CHECK(now_ms() - t0 < 5000,
			      "%d of %d accepted after 5 s", nsrv, NCLIENTS);
			CHECK(NAL_SELECTOR_select(sel, 100000, 1) >= 0,
			      "select");
			for (i = 0; i < NCLIENTS; i++)
				must_io(cl[i].conn, "a client during accept");
		}
		CHECK(NAL_CONNECTION_is_established(srv[nsrv]),
		      "an accepted connection is established");
		CHECK(NAL_BUFFER_size(NAL_CONNECTION_get_read(srv[nsrv])) ==
			      BUFSZ,
		      "accepted buffer size");
		CHECK(NAL_CONNECTION_add_to_selector(srv[nsrv], sel) == 1,
		      "add accepted");
		nsrv++;
	}
	srv[nsrv] = NAL_CONNECTION_new();
	CHECK(srv[nsrv] != NULL, "NAL_CONNECTION_new");
	CHECK(NAL_CONNECTION_accept(srv[nsrv], list) == 0,
	      "accepted with nothing pending");
	CHECK(NAL_SELECTOR_num_objects(sel) == 1 + 2 * NCLIENTS,
	      "num_objects %u, want %d", NAL_SELECTOR_num_objects(sel),
	      1 + 2 * NCLIENTS);

	echo_all(sel, cl, NCLIENTS, srv, nsrv);
	for (i = 0; i < NCLIENTS; i++)
		CHECK(NAL_CONNECTION_is_established(cl[i].conn),
		      "client %d not established after the echo", i);

	/* A connection out of its selector does no I/O; back in, it
	 * works. */
	NAL_CONNECTION_del_from_selector(cl[1].conn);
	NAL_CONNECTION_del_from_selector(cl[1].conn);
	CHECK(NAL_SELECTOR_num_objects(sel) == 2 * NCLIENTS,
	      "num_objects after del %u", NAL_SELECTOR_num_objects(sel));
	CHECK(NAL_CONNECTION_io(cl[1].conn) == 0,
	      "I/O on a connection outside any selector");
	CHECK(NAL_CONNECTION_add_to_selector(cl[1].conn, sel) == 1,
	      "re-add a client");
	cl[1].total += 5000;
	echo_all(sel, cl, NCLIENTS, srv, nsrv);

	/* The client closes after its last bytes went out: the server's
	 * I/O fails after those bytes arrived. */
	CHECK(NAL_BUFFER_write(NAL_CONNECTION_get_send(cl[0].conn),
			       (const unsigned char *)"bye", 3) == 3,
	      "write bye");
	t0 = now_ms();
	while (NAL_BUFFER_notempty(NAL_CONNECTION_get_send(cl[0].conn))) {
		CHECK(now_ms() - t0 < 5000, "bye not sent in 5 s");
		CHECK(NAL_SELECTOR_select(sel, 200000, 1) >= 0, "select");
		must_io(cl[0].conn, "client 0 sending bye");
	}
	NAL_CONNECTION_free(cl[0].conn);
	CHECK(NAL_SELECTOR_num_objects(sel) == 2 * NCLIENTS,
	      "num_objects after freeing a client: %u",
	      NAL_SELECTOR_num_objects(sel));
	dead = wait_io_failure(sel, srv, nsrv, "client close");
	CHECK(NAL_BUFFER_used(NAL_CONNECTION_get_read(srv[dead])) == 3 &&
		      memcmp(NAL_BUFFER_data(NAL_CONNECTION_get_read(
				     srv[dead])),
			     "bye", 3) == 0,
	      "the closed peer's last bytes are in the read buffer (%u)",
	      NAL_BUFFER_used(NAL_CONNECTION_get_read(srv[dead])));
	NAL_CONNECTION_del_from_selector(srv[dead]);
	NAL_CONNECTION_reset(srv[dead]);
	CHECK(NAL_CONNECTION_get_read(srv[dead]) == NULL,
	      "a reset connection still has buffers");
	CHECK(NAL_SELECTOR_num_objects(sel) == 2 * NCLIENTS - 1,
	      "num_objects %u", NAL_SELECTOR_num_objects(sel));

	/* The server closes one: its client's I/O fails. */
	{
		NAL_CONNECTION *left[NCLIENTS - 1];
		int k = dead == 1 ? 2 : 1;
		for (i = 1; i < NCLIENTS; i++)
			left[i - 1] = cl[i].conn;
		NAL_CONNECTION_free(srv[k]);
		srv[k] = NULL;
		i = wait_io_failure(sel, left, NCLIENTS - 1, "server close");
		NAL_CONNECTION_free(left[i]);
		cl[i + 1].conn = NULL;
	}
	CHECK(NAL_SELECTOR_num_objects(sel) == 2 * NCLIENTS - 3,
	      "num_objects %u", NAL_SELECTOR_num_objects(sel));

	/* A listener out of the selector accepts nothing, even with a
	 * connection waiting; back in, it does. The reset connection is
	 * reused. */
	NAL_LISTENER_del_from_selector(list);
	NAL_LISTENER_del_from_selector(list);
	CHECK(NAL_SELECTOR_num_objects(sel) == 2 * NCLIENTS - 4,
	      "num_objects %u", NAL_SELECTOR_num_objects(sel));
	cl[0].conn = NAL_CONNECTION_new();
	cl[0].total = 9000;
	cl[0].sent = cl[0].got = 0;
	cl[0].seed = 99;
	CHECK(NAL_CONNECTION_create(cl[0].conn, addr) == 1, "reconnect");
	CHECK(NAL_CONNECTION_add_to_selector(cl[0].conn, sel) == 1, "add");
	for (i = 0; i < 3; i++) {
		CHECK(NAL_SELECTOR_select(sel, 100000, 1) >= 0, "select");
		must_io(cl[0].conn, "the new client");
		CHECK(NAL_CONNECTION_accept(srv[dead], list) == 0,
		      "accepted from a listener outside the selector");
	}
	CHECK(NAL_LISTENER_add_to_selector(list, sel) == 1, "re-add listener");
	wait_accept(sel, list, srv[dead], 5000);
	CHECK(NAL_CONNECTION_add_to_selector(srv[dead], sel) == 1, "add");
	{
		/* Echo for the clients still connected: the new one and the
		 * two whose server side is intact. */
		struct client act[NCLIENTS];
		NAL_CONNECTION *sv[NCLIENTS];
		int na = 0, ns = 0;
		for (i = 0; i < NCLIENTS; i++)
			if (cl[i].conn) {
				act[na] = cl[i];
				act[na].total = act[na].got + 3000;
				act[na].sent = act[na].got;
				na++;
			}
		CHECK(na == 3, "%d clients left, want 3", na);
		for (i = 0; i < nsrv; i++)
			if (srv[i])
				sv[ns++] = srv[i];
		/* act[].seed keeps each stream's pattern going. */
		echo_all(sel, act, na, sv, ns);
	}

	/* Cleanup: everything out, reset the empty selector, use it again. */
	for (i = 0; i < NCLIENTS; i++)
		if (cl[i].conn)
			NAL_CONNECTION_free(cl[i].conn);
	for (i = 0; i <= nsrv; i++)
		if (srv[i])
			NAL_CONNECTION_free(srv[i]);
	CHECK(NAL_SELECTOR_num_objects(sel) == 1, "num_objects %u, want 1",
	      NAL_SELECTOR_num_objects(sel));
	NAL_LISTENER_free(list);
	CHECK(NAL_SELECTOR_num_objects(sel) == 0, "num_objects %u, want 0",
	      NAL_SELECTOR_num_objects(sel));
	NAL_SELECTOR_reset(sel);
	CHECK(NAL_SELECTOR_num_objects(sel) == 0, "after reset");
	{
		NAL_CONNECTION *a = NAL_CONNECTION_new(),
			       *b = NAL_CONNECTION_new();
		unsigned char ch = 0;
		CHECK(NAL_CONNECTION_create_pair(a, b, 512) == 1, "pair");
		CHECK(NAL_CONNECTION_add_to_selector(a, sel) == 1 &&
			      NAL_CONNECTION_add_to_selector(b, sel) == 1,
		      "add a pair to the reset selector");
		CHECK(NAL_BUFFER_write(NAL_CONNECTION_get_send(a),
				       (const unsigned char *)"!", 1) == 1,
		      "write");
		t0 = now_ms();
		while (NAL_BUFFER_empty(NAL_CONNECTION_get_read(b))) {
			CHECK(now_ms() - t0 < 5000,
			      "nothing through the reset selector");
			CHECK(NAL_SELECTOR_select(sel, 200000, 1) >= 0,
			      "select");
			must_io(a, "pair a");
			must_io(b, "pair b");
		}
		CHECK(NAL_BUFFER_read(NAL_CONNECTION_get_read(b), &ch, 1) == 1 &&
			      ch == '!',
		      "pair byte");
		NAL_CONNECTION_free(a);
		NAL_CONNECTION_free(b);
	}
	NAL_SELECTOR_free(sel);
	NAL_ADDRESS_free(addr);
	if (path) {
		/* A UNIX address with nothing listening fails at once. */
		char none[320];
		NAL_ADDRESS *a = NAL_ADDRESS_new();
		NAL_CONNECTION *c = NAL_CONNECTION_new();
		snprintf(none, sizeof(none), "%s.none", str);
		CHECK(NAL_ADDRESS_create(a, none, BUFSZ) == 1, "address");
		CHECK(NAL_CONNECTION_create(c, a) == 0,
		      "connected to %s, where nothing listens", none);
		NAL_CONNECTION_free(c);
		NAL_ADDRESS_free(a);
		unlink(path);
	}
	printf("echo %s %s: ok\n", str, kind);
	g_addr = g_kind = NULL;
}

/* A TCP connect to a closed port: refused at create, or (non-blocking)
 * accepted by create and failed by the first I/O after a select. */
static void run_refused(const char *str)
{
	NAL_ADDRESS *a = NAL_ADDRESS_new();
	NAL_CONNECTION *c = NAL_CONNECTION_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new();
	double t0 = now_ms();

	g_addr = str;
	g_kind = "refused";
	CHECK(NAL_ADDRESS_create(a, str, BUFSZ) == 1, "address");
	if (NAL_CONNECTION_create(c, a)) {
		CHECK(NAL_CONNECTION_add_to_selector(c, sel) == 1, "add");
		for (;;) {
			CHECK(now_ms() - t0 < 5000,
			      "refused connect not reported in 5 s");
			CHECK(NAL_SELECTOR_select(sel, 200000, 1) >= 0,
			      "select");
			if (!NAL_CONNECTION_io(c))
				break;
			CHECK(!NAL_CONNECTION_is_established(c),
			      "a refused connection became established");
		}
		printf("refused %s: create 1, I/O 0\n", str);
	} else {
		printf("refused %s: create 0\n", str);
	}
	NAL_CONNECTION_free(c);
	NAL_SELECTOR_free(sel);
	NAL_ADDRESS_free(a);
	g_addr = g_kind = NULL;
}

/* Moves one byte from a to b through sel. */
static void one_byte(NAL_SELECTOR *sel, NAL_CONNECTION *a, NAL_CONNECTION *b)
{
	unsigned char ch = 0;
	double t0 = now_ms();

	CHECK(NAL_BUFFER_write(NAL_CONNECTION_get_send(a),
			       (const unsigned char *)"#", 1) == 1,
	      "write");
	while (NAL_BUFFER_empty(NAL_CONNECTION_get_read(b))) {
		CHECK(now_ms() - t0 < 5000, "a byte did not get through");
		CHECK(NAL_SELECTOR_select(sel, 100000, 1) >= 0, "select");
		must_io(a, "pair a");
		must_io(b, "pair b");
	}
	CHECK(NAL_BUFFER_read(NAL_CONNECTION_get_read(b), &ch, 1) == 1 &&
		      ch == '#',
	      "the byte");
}

/* The extensions: a selector reset or freed with objects in it lets them
 * go (they join another selector and work); sending to a closed peer fails
 * the I/O without raising SIGPIPE. */
static void run_ext(void)
{
	NAL_SELECTOR *s1 = NAL_SELECTOR_new_fdpoll();
	NAL_SELECTOR *s2 = NAL_SELECTOR_new_fdselect();
	NAL_CONNECTION *a = NAL_CONNECTION_new(), *b = NAL_CONNECTION_new();
	struct sigaction dfl, old;
	double t0;

	g_addr = "pair";
	g_kind = "ext";
	CHECK(s1 && s2 && a && b && NAL_CONNECTION_create_pair(a, b, 256),
	      "pair");
	CHECK(NAL_CONNECTION_add_to_selector(a, s1) &&
		      NAL_CONNECTION_add_to_selector(b, s1),
	      "add");
	one_byte(s1, a, b);
	NAL_SELECTOR_reset(s1);
	CHECK(NAL_SELECTOR_num_objects(s1) == 0, "reset left %u objects",
	      NAL_SELECTOR_num_objects(s1));
	CHECK(NAL_CONNECTION_add_to_selector(a, s2) &&
		      NAL_CONNECTION_add_to_selector(b, s2),
	      "the connections of a reset selector join another one");
	one_byte(s2, b, a);
	NAL_SELECTOR_free(s2);
	CHECK(NAL_CONNECTION_add_to_selector(a, s1) &&
		      NAL_CONNECTION_add_to_selector(b, s1),
	      "the connections of a freed selector join another one");
	one_byte(s1, a, b);

	/* SIGPIPE at its default action: the write to a closed peer must
	 * not raise it. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	CHECK(sigaction(SIGPIPE, &dfl, &old) == 0, "sigaction");
	NAL_CONNECTION_free(b);
	t0 = now_ms();
	for (;;) {
		CHECK(now_ms() - t0 < 5000, "the closed peer was not noticed");
		if (NAL_BUFFER_empty(NAL_CONNECTION_get_send(a)))
			NAL_BUFFER_write(NAL_CONNECTION_get_send(a),
					 (const unsigned char *)"x", 1);
		CHECK(NAL_SELECTOR_select(s1, 100000, 1) >= 0, "select");
		if (!NAL_CONNECTION_io(a))
			break;
	}
	CHECK(sigaction(SIGPIPE, &old, NULL) == 0, "sigaction");
	NAL_CONNECTION_free(a);
	NAL_SELECTOR_free(s1);
	printf("selector reset/free with objects, no SIGPIPE (extension): ok\n");
	g_addr = g_kind = NULL;
}

int main(int argc, char **argv)
{
	int i, k, n = 0, ext = 0;

	fail_context = print_context;
	ignore_sigpipe();
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--refused") == 0 && i + 1 < argc) {
			run_refused(argv[++i]);
			continue;
		}
		if (strcmp(argv[i], "--ext") == 0) {
			ext = 1;
			continue;
		}
		for (k = 0; k < NUM_SELECTOR_KINDS; k++)
			run_echo(argv[i], SELECTOR_KINDS[k]);
		n++;
	}
	if (n == 0 && !ext) {
		fprintf(stderr,
			"usage: %s [--ext] [--refused <tcp-address>] "
			"<address>...\n",
			argv[0]);
		return 2;
	}
	if (ext)
		run_ext();
	printf("nal_echo OK\n");
	return 0;
}
