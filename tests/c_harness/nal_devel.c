/* nal_devel.c: a transport and a selector of our own, written against
 * <libnal/nal_devel.h>, driven through the ordinary <libnal/nal.h> calls.
 *
 * "PIPE:name" is an in-process transport: a listener registers its name, a
 * connect makes a socketpair(2), queues one end on the listener and wakes
 * it through a pipe(2); the listener's selector hooks register the pipe,
 * the connections' hooks their socket, with NAL_FD_CTRL_FDSET/FDTEST.
 * "tiny" is a selector type of its own that waits with poll(2) and answers
 * the same two commands, so that it drives PIPE objects and the built-in
 * connections alike.
 *
 * Checked: the registry (linking, duplicates by unique name, prefix
 * dispatch), the lifecycle hooks (every on_create has its on_destroy),
 * echo round trips of 64 KiB over PIPE with each built-in selector and
 * with "tiny", built-in connections in "tiny", refusals (no listener, bad
 * address, handlers a type does not have), and the accessors.
 *
 * Usage: nal_devel */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libnal/nal.h>
#include <libnal/nal_devel.h>

#include "harness.h"
#include "nal_util.h"

#define NAME_MAX_LEN 48
#define QUEUE_MAX 8
#define PAYLOAD (64 * 1024)

/* Lifecycle counters: created minus destroyed, per type. */
static int live_addr, live_list, live_conn, live_sel;
static int resets_addr;

/* ---------------------------------------------------------------------------
 * The PIPE transport */

/* Each vtdata has an `alive` flag: on_create runs again when an object is
 * reused with the same vtable, and only the first one counts. */
typedef struct {
	int alive;
	char name[NAME_MAX_LEN];
} pipe_addr;

typedef struct pipe_list {
	int alive;
	char name[NAME_MAX_LEN];
	int wake[2];
	int queue[QUEUE_MAX];
	int queued;
	unsigned int def_size;
	int listening;
	unsigned char found;
	struct pipe_list *next;
} pipe_list;

typedef struct {
	int fd;
	NAL_BUFFER *rd, *snd;
	unsigned char found;
} pipe_conn;

static pipe_list *listening; /* every PIPE listener, by name */

static pipe_list *find_listener(const char *name)
{
	pipe_list *l;
	for (l = listening; l; l = l->next)
		if (strcmp(l->name, name) == 0)
			return l;
	return NULL;
}

static void nonblocking(int fd)
{
	CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0, "fcntl: %s",
	      strerror(errno));
}

static const NAL_LISTENER_vtable pipe_list_vt;
static const NAL_CONNECTION_vtable pipe_conn_vt;

static int addr_create(NAL_ADDRESS *a)
{
	pipe_addr *d = nal_address_get_vtdata(a);
	if (!d->alive) {
		d->alive = 1;
		live_addr++;
	}
	return 1;
}
static void addr_destroy(NAL_ADDRESS *a)
{
	(void)a;
	live_addr--;
}
static void addr_reset(NAL_ADDRESS *a)
{
	pipe_addr *d = nal_address_get_vtdata(a);
	d->name[0] = '\0';
	resets_addr++;
}
static int addr_parse(NAL_ADDRESS *a, const char *s)
{
	pipe_addr *d = nal_address_get_vtdata(a);
	const char *name = s + strlen("PIPE:");
	if (strncmp(s, "PIPE:", 5) != 0 || !*name || strlen(name) >= NAME_MAX_LEN)
		return 0;
	strcpy(d->name, name);
	return 1;
}
static int addr_yes(const NAL_ADDRESS *a)
{
	(void)a;
	return 1;
}
static const NAL_LISTENER_vtable *addr_listener(const NAL_ADDRESS *a)
{
	(void)a;
	return &pipe_list_vt;
}
static const NAL_CONNECTION_vtable *addr_connection(const NAL_ADDRESS *a)
{
	(void)a;
	return &pipe_conn_vt;
}

static const char *pipe_prefixes[] = {"PIPE:", NULL};
static NAL_ADDRESS_vtable pipe_addr_vt = {
	"pipe-test", sizeof(pipe_addr), pipe_prefixes,
	addr_create, addr_destroy, addr_reset, NULL,
	addr_parse, addr_yes, addr_yes, addr_listener, addr_connection, NULL};
/* Same unique name, never consulted: linking it changes nothing. */
static NAL_ADDRESS_vtable pipe_addr_dup = {
	"pipe-test", sizeof(pipe_addr), pipe_prefixes,
	addr_create, addr_destroy, addr_reset, NULL,
	NULL, NULL, NULL, NULL, NULL, NULL};

/* A selector of unknown type gets the poll kind. */
static int join_selector(NAL_SELECTOR *sel)
{
	if (nal_selector_get_type(sel) == NAL_SELECTOR_TYPE_DYNAMIC)
		return nal_selector_dynamic_set(sel, sel_fdpoll());
	return 1;
}

static void fd_set_on(NAL_SELECTOR *sel, NAL_SELECTOR_TOKEN tok, int fd,
		      unsigned char flags)
{
	NAL_FD_FDSET args;
	args.token = tok;
	args.fd = fd;
	args.flags = flags;
	CHECK(nal_selector_ctrl(sel, NAL_FD_CTRL_FDSET, &args) == 1,
	      "FDSET refused for fd %d", fd);
}

static unsigned char fd_test_on(NAL_SELECTOR *sel, NAL_SELECTOR_TOKEN tok, int fd)
{
	NAL_FD_FDTEST args;
	args.flags = 0xff;
	args.token = tok;
	args.fd = fd;
	CHECK(nal_selector_ctrl(sel, NAL_FD_CTRL_FDTEST, &args) == 1,
	      "FDTEST refused for fd %d", fd);
	return args.flags;
}

static void list_close(pipe_list *d)
{
	pipe_list **p;
	if (!d->listening)
		return;
	for (p = &listening; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			break;
		}
	close(d->wake[0]);
	close(d->wake[1]);
	while (d->queued)
		close(d->queue[--d->queued]);
	d->listening = 0;
}
static int list_create(NAL_LISTENER *l)
{
	pipe_list *d = nal_listener_get_vtdata(l);
	if (!d->alive) {
		d->alive = 1;
		live_list++;
	}
	return 1;
}
static void list_destroy(NAL_LISTENER *l)
{
	list_close(nal_listener_get_vtdata(l));
	live_list--;
}
static void list_reset(NAL_LISTENER *l)
{
	list_close(nal_listener_get_vtdata(l));
}
static int list_listen(NAL_LISTENER *l, const NAL_ADDRESS *a)
{
	pipe_list *d = nal_listener_get_vtdata(l);
	const pipe_addr *ad = nal_address_get_vtdata(a);
	if (find_listener(ad->name) || pipe(d->wake) != 0)
		return 0;
	nonblocking(d->wake[0]);
	strcpy(d->name, ad->name);
	d->def_size = NAL_ADDRESS_get_def_buffer_size(a);
	d->listening = 1;
	d->next = listening;
	listening = d;
	return 1;
}
static const NAL_CONNECTION_vtable *list_pre_accept(NAL_LISTENER *l)
{
	pipe_list *d = nal_listener_get_vtdata(l);
	return d->queued ? &pipe_conn_vt : NULL;
}
static int list_finished(const NAL_LISTENER *l)
{
	(void)l;
	return 0;
}
static int list_pre_add(NAL_LISTENER *l, NAL_SELECTOR *sel)
{
	(void)l;
	return join_selector(sel);
}
static void list_post_del(NAL_LISTENER *l, NAL_SELECTOR *sel)
{
	(void)l;
	(void)sel;
}
static void list_pre_select(NAL_LISTENER *l, NAL_SELECTOR *sel, NAL_SELECTOR_TOKEN tok)
{
	pipe_list *d = nal_listener_get_vtdata(l);
	fd_set_on(sel, tok, d->wake[0], NAL_FD_FLAG_READ);
}
static void list_post_select(NAL_LISTENER *l, NAL_SELECTOR *sel, NAL_SELECTOR_TOKEN tok)
{
	pipe_list *d = nal_listener_get_vtdata(l);
	d->found = fd_test_on(sel, tok, d->wake[0]);
}
static const NAL_LISTENER_vtable pipe_list_vt = {
	sizeof(pipe_list), list_create, list_destroy, list_reset, NULL,
	list_listen, list_pre_accept, list_finished,
	list_pre_add, NULL, NULL, list_post_del,
	list_pre_select, list_post_select,
	NULL, NULL};

static int conn_create(NAL_CONNECTION *c)
{
	pipe_conn *d = nal_connection_get_vtdata(c);
	/* Reused after a reset: the buffers are still there. */
	if (!d->rd) {
		d->rd = NAL_BUFFER_new();
		d->snd = NAL_BUFFER_new();
		live_conn++;
	}
	d->fd = -1;
	return d->rd && d->snd;
}
static void conn_reset(NAL_CONNECTION *c)
{
	pipe_conn *d = nal_connection_get_vtdata(c);
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	NAL_BUFFER_reset(d->rd);
	NAL_BUFFER_reset(d->snd);
}
static void conn_destroy(NAL_CONNECTION *c)
{
	pipe_conn *d = nal_connection_get_vtdata(c);
	conn_reset(c);
	NAL_BUFFER_free(d->rd);
	NAL_BUFFER_free(d->snd);
	d->rd = d->snd = NULL;
	live_conn--;
}
static int conn_sizes(pipe_conn *d, unsigned int size)
{
	return NAL_BUFFER_set_size(d->rd, size) && NAL_BUFFER_set_size(d->snd, size);
}
static int conn_connect(NAL_CONNECTION *c, const NAL_ADDRESS *a)
{
	pipe_conn *d = nal_connection_get_vtdata(c);
	const pipe_addr *ad = nal_address_get_vtdata(a);
	pipe_list *l = find_listener(ad->name);
	int sv[2];
	if (!l || l->queued == QUEUE_MAX || !conn_sizes(d, NAL_ADDRESS_get_def_buffer_size(a)))
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 0;
	nonblocking(sv[0]);
	nonblocking(sv[1]);
	d->fd = sv[0];
	l->queue[l->queued++] = sv[1];
	CHECK(write(l->wake[1], "c", 1) == 1, "wake the listener");
	return 1;
}
static int conn_accept(NAL_CONNECTION *c, const NAL_LISTENER *l)
{
	pipe_conn *d = nal_connection_get_vtdata(c);
	pipe_list *ld = nal_listener_get_vtdata(l);
	char byte;
	if (!ld->queued || !conn_sizes(d, ld->def_size))
		return 0;
	d->fd = ld->queue[0];
	memmove(ld->queue, ld->queue + 1, sizeof(int) * (unsigned)--ld->queued);
	CHECK(read(ld->wake[0], &byte, 1) == 1, "the listener's wake-up byte");
	return 1;
}
static int conn_set_size(NAL_CONNECTION *c, unsigned int size)
{
	return conn_sizes(nal_connection_get_vtdata(c), size);
}
static NAL_BUFFER *conn_get_read(const NAL_CONNECTION *c)
{
	return ((pipe_conn *)nal_connection_get_vtdata(c))->rd;
}
static NAL_BUFFER *conn_get_send(const NAL_CONNECTION *c)
{
	return ((pipe_conn *)nal_connection_get_vtdata(c))->snd;
}
static int conn_established(const NAL_CONNECTION *c)
{
	return ((pipe_conn *)nal_connection_get_vtdata(c))->fd >= 0;
}
static int conn_pre_add(NAL_CONNECTION *c, NAL_SELECTOR *sel)
{
	(void)c;
	return join_selector(sel);
}
static void conn_post_del(NAL_CONNECTION *c, NAL_SELECTOR *sel)
{
	(void)c;
	(void)sel;
}
static void conn_pre_select(NAL_CONNECTION *c, NAL_SELECTOR *sel, NAL_SELECTOR_TOKEN tok)
{
	pipe_conn *d = nal_connection_get_vtdata(c);
	unsigned char flags = 0;
	if (NAL_BUFFER_notfull(d->rd))
		flags |= NAL_FD_FLAG_READ;
	if (NAL_BUFFER_notempty(d->snd))
		flags |= NAL_FD_FLAG_SEND;
	fd_set_on(sel, tok, d->fd, flags);
}
static void conn_post_select(NAL_CONNECTION *c, NAL_SELECTOR *sel, NAL_SELECTOR_TOKEN tok)
{
	pipe_conn *d = nal_connection_get_vtdata(c);
	d->found = fd_test_on(sel, tok, d->fd);
}
static int conn_io(NAL_CONNECTION *c)
{
	pipe_conn *d = nal_connection_get_vtdata(c);
	unsigned char found = d->found;
	ssize_t n;
	d->found = 0;
	if ((found & NAL_FD_FLAG_READ) && NAL_BUFFER_notfull(d->rd)) {
		n = read(d->fd, NAL_BUFFER_write_ptr(d->rd), NAL_BUFFER_unused(d->rd));
		if (n == 0 || (n < 0 && errno != EAGAIN))
			return 0;
		if (n > 0)
			NAL_BUFFER_wrote(d->rd, (unsigned int)n);
	}
	if ((found & NAL_FD_FLAG_SEND) && NAL_BUFFER_notempty(d->snd)) {
		n = write(d->fd, NAL_BUFFER_data(d->snd), NAL_BUFFER_used(d->snd));
		if (n < 0 && errno != EAGAIN)
			return 0;
		if (n > 0)
			NAL_BUFFER_read(d->snd, NULL, (unsigned int)n);
	}
	return !(found & NAL_FD_FLAG_EXCEPT);
}
static const NAL_CONNECTION_vtable pipe_conn_vt = {
	sizeof(pipe_conn), conn_create, conn_destroy, conn_reset, NULL,
	conn_connect, conn_accept, conn_set_size, conn_get_read, conn_get_send,
	conn_established, conn_pre_add, NULL, NULL, conn_post_del,
	conn_pre_select, conn_post_select, conn_io};

/* ---------------------------------------------------------------------------
 * The "tiny" selector: up to TINY_MAX objects, one poll(2) per select */

#define TINY_MAX 8
#define TINY_FDS 16
#define TINY_TYPE (NAL_SELECTOR_TYPE_CUSTOM + 7)

typedef struct {
	NAL_CONNECTION *conn[TINY_MAX];
	NAL_LISTENER *list[TINY_MAX];
	struct pollfd fds[TINY_FDS];
	int owner[TINY_FDS];
	int nfds;
	int hooking; /* the slot whose hook runs, -1 outside hooks */
} tiny;

#define TOKEN(i) ((NAL_SELECTOR_TOKEN)(tiny_tokens + (i)))
static char tiny_tokens[TINY_MAX];
static int slot_of(NAL_SELECTOR_TOKEN t)
{
	return (int)((char *)t - tiny_tokens);
}

static int tiny_create(NAL_SELECTOR *s)
{
	((tiny *)nal_selector_get_vtdata(s))->hooking = -1;
	live_sel++;
	return 1;
}
static void tiny_destroy(NAL_SELECTOR *s)
{
	(void)s;
	live_sel--;
}
static void tiny_reset(NAL_SELECTOR *s)
{
	(void)s;
}
static NAL_SELECTOR_TYPE tiny_type(const NAL_SELECTOR *s)
{
	(void)s;
	return TINY_TYPE;
}
static int tiny_select(NAL_SELECTOR *s, unsigned long usec, int use_timeout)
{
	tiny *t = nal_selector_get_vtdata(s);
	int i, n;
	t->nfds = 0;
	for (i = 0; i < TINY_MAX; i++) {
		t->hooking = i;
		if (t->conn[i])
			nal_connection_pre_select(t->conn[i]);
		if (t->list[i])
			nal_listener_pre_select(t->list[i]);
	}
	t->hooking = -1;
	n = poll(t->fds, (nfds_t)t->nfds, use_timeout ? (int)(usec / 1000) : -1);
	if (n <= 0)
		return n;
	for (i = 0; i < TINY_MAX; i++) {
		t->hooking = i;
		if (t->conn[i])
			nal_connection_post_select(t->conn[i]);
		if (t->list[i])
			nal_listener_post_select(t->list[i]);
	}
	t->hooking = -1;
	return n;
}
static unsigned int tiny_num(const NAL_SELECTOR *s)
{
	const tiny *t = nal_selector_get_vtdata(s);
	unsigned int n = 0;
	int i;
	for (i = 0; i < TINY_MAX; i++)
		n += (t->conn[i] != NULL) + (t->list[i] != NULL);
	return n;
}
static int tiny_free_slot(const tiny *t)
{
	int i;
	for (i = 0; i < TINY_MAX; i++)
		if (!t->conn[i] && !t->list[i])
			return i;
	return -1;
}
static NAL_SELECTOR_TOKEN tiny_add_list(NAL_SELECTOR *s, NAL_LISTENER *l)
{
	tiny *t = nal_selector_get_vtdata(s);
	int i = tiny_free_slot(t);
	if (i < 0)
		return NAL_SELECTOR_TOKEN_NULL;
	t->list[i] = l;
	return TOKEN(i);
}
static NAL_SELECTOR_TOKEN tiny_add_conn(NAL_SELECTOR *s, NAL_CONNECTION *c)
{
	tiny *t = nal_selector_get_vtdata(s);
	int i = tiny_free_slot(t);
	if (i < 0)
		return NAL_SELECTOR_TOKEN_NULL;
	t->conn[i] = c;
	return TOKEN(i);
}
static void tiny_del_list(NAL_SELECTOR *s, NAL_LISTENER *l, NAL_SELECTOR_TOKEN tok)
{
	tiny *t = nal_selector_get_vtdata(s);
	CHECK(t->list[slot_of(tok)] == l, "tiny: del_listener with a wrong token");
	t->list[slot_of(tok)] = NULL;
}
static void tiny_del_conn(NAL_SELECTOR *s, NAL_CONNECTION *c, NAL_SELECTOR_TOKEN tok)
{
	tiny *t = nal_selector_get_vtdata(s);
	CHECK(t->conn[slot_of(tok)] == c, "tiny: del_connection with a wrong token");
	t->conn[slot_of(tok)] = NULL;
}
static int tiny_ctrl(NAL_SELECTOR *s, int cmd, void *p)
{
	tiny *t = nal_selector_get_vtdata(s);
	int i;
	if (cmd == NAL_FD_CTRL_FDSET) {
		NAL_FD_FDSET *a = p;
		CHECK(slot_of(a->token) == t->hooking, "FDSET from outside its hook");
		CHECK(t->nfds < TINY_FDS, "tiny: too many descriptors");
		t->fds[t->nfds].fd = a->fd;
		t->fds[t->nfds].events = (short)(((a->flags & NAL_FD_FLAG_READ) ? POLLIN : 0) |
						 ((a->flags & NAL_FD_FLAG_SEND) ? POLLOUT : 0));
		t->fds[t->nfds].revents = 0;
		t->owner[t->nfds++] = t->hooking;
		return 1;
	}
	if (cmd == NAL_FD_CTRL_FDTEST) {
		NAL_FD_FDTEST *a = p;
		a->flags = 0;
		for (i = 0; i < t->nfds; i++)
			if (t->owner[i] == slot_of(a->token) && t->fds[i].fd == a->fd) {
				short r = t->fds[i].revents;
				if (r & (POLLIN | POLLHUP))
					a->flags |= NAL_FD_FLAG_READ;
				if (r & POLLOUT)
					a->flags |= NAL_FD_FLAG_SEND;
				if (r & (POLLERR | POLLNVAL))
					a->flags |= NAL_FD_FLAG_EXCEPT;
			}
		return 1;
	}
	return 0;
}
static const NAL_SELECTOR_vtable tiny_vt = {
	sizeof(tiny), tiny_create, tiny_destroy, tiny_reset, NULL,
	tiny_type, tiny_select, tiny_num, tiny_add_list, tiny_add_conn,
	tiny_del_list, tiny_del_conn, tiny_ctrl};

static NAL_SELECTOR *make_selector(const char *kind)
{
	if (strcmp(kind, "tiny") == 0)
		return nal_selector_new(&tiny_vt);
	if (strcmp(kind, "devel-fdpoll") == 0)
		return nal_selector_new(sel_fdpoll());
	return selector_new(kind);
}

/* ---------------------------------------------------------------------------
 * The checks */

/* One select round with a bound; every connection given does its I/O. */
static void pump(NAL_SELECTOR *sel, NAL_CONNECTION **conns, int n)
{
	int i, r = NAL_SELECTOR_select(sel, 200000, 1);
	CHECK(r >= 0, "select: %s", strerror(errno));
	for (i = 0; i < n; i++)
		CHECK(NAL_CONNECTION_io(conns[i]), "connection %d failed", i);
}

/* Sends PAYLOAD bytes from `client`, which `server` echoes back. */
static void echo(NAL_SELECTOR *sel, NAL_CONNECTION *client, NAL_CONNECTION *server,
		 unsigned int seed)
{
	static unsigned char got[PAYLOAD];
	unsigned long sent = 0, received = 0, i;
	NAL_CONNECTION *both[2];
	double start = now_ms();
	both[0] = client;
	both[1] = server;
	while (received < PAYLOAD) {
		NAL_BUFFER *out = NAL_CONNECTION_get_send(client);
		unsigned char chunk[1000];
		unsigned int k, room = NAL_BUFFER_unused(out);
		CHECK(now_ms() - start < 20000, "echo stalled at %lu of %d bytes", received,
		      PAYLOAD);
		for (k = 0; k < room && k < sizeof(chunk) && sent + k < PAYLOAD; k++)
			chunk[k] = pattern(seed, sent + k);
		if (k)
			sent += NAL_BUFFER_write(out, chunk, k);
		pump(sel, both, 2);
		NAL_BUFFER_transfer(NAL_CONNECTION_get_send(server),
				    NAL_CONNECTION_get_read(server), 32768);
		received += NAL_BUFFER_read(NAL_CONNECTION_get_read(client), got + received,
					    (unsigned int)(PAYLOAD - received));
	}
	for (i = 0; i < PAYLOAD; i++)
		CHECK(got[i] == pattern(seed, i), "byte %lu differs", i);
}

static void echo_over(const char *kind, unsigned int seed)
{
	char name[64];
	NAL_ADDRESS *addr = NAL_ADDRESS_new();
	NAL_LISTENER *list = NAL_LISTENER_new(), *second;
	NAL_CONNECTION *client = NAL_CONNECTION_new(), *server = NAL_CONNECTION_new();
	NAL_SELECTOR *sel = make_selector(kind);
	NAL_SELECTOR_TOKEN tok = NAL_SELECTOR_TOKEN_NULL;
	double start;

	CHECK(sel, "%s: no selector", kind);
	snprintf(name, sizeof(name), "PIPE:echo-%s", kind);
	CHECK(NAL_ADDRESS_create(addr, name, 4096), "%s: parse %s", kind, name);
	CHECK(NAL_LISTENER_create(list, addr), "%s: listen", kind);
	second = NAL_LISTENER_new();
	CHECK(!NAL_LISTENER_create(second, addr), "%s: a second listener on one name", kind);
	NAL_LISTENER_free(second);
	CHECK(NAL_LISTENER_add_to_selector(list, sel), "%s: listener joins", kind);
	CHECK(nal_listener_get_selector(list, &tok) == sel && tok != NAL_SELECTOR_TOKEN_NULL,
	      "%s: the listener's selector and token", kind);
	CHECK(NAL_CONNECTION_create(client, addr), "%s: connect", kind);
	CHECK(nal_connection_get_vtable(client) == &pipe_conn_vt, "%s: client vtable", kind);
	CHECK(NAL_CONNECTION_is_established(client), "%s: established", kind);
	CHECK(NAL_CONNECTION_add_to_selector(client, sel), "%s: client joins", kind);
	CHECK(!NAL_CONNECTION_add_to_selector(client, sel), "%s: joins twice", kind);
	start = now_ms();
	while (!NAL_CONNECTION_accept(server, list)) {
		CHECK(now_ms() - start < 10000, "%s: nothing to accept", kind);
		CHECK(NAL_SELECTOR_select(sel, 200000, 1) >= 0, "%s: select", kind);
	}
	CHECK(NAL_CONNECTION_add_to_selector(server, sel), "%s: server joins", kind);
	CHECK(NAL_SELECTOR_num_objects(sel) == 3, "%s: three objects", kind);
	if (strcmp(kind, "new") == 0)
		CHECK(nal_selector_get_type(sel) == NAL_SELECTOR_TYPE_FDPOLL,
		      "new: the transport chose the poll kind");
	if (strcmp(kind, "tiny") == 0) {
		CHECK(nal_selector_get_type(sel) == TINY_TYPE, "tiny: its type");
		CHECK(nal_selector_get_vtable(sel) == &tiny_vt, "tiny: its vtable");
	}
	echo(sel, client, server, seed);

	/* The peer closing is seen as the end of the connection. */
	NAL_CONNECTION_free(client);
	CHECK(NAL_SELECTOR_num_objects(sel) == 2, "%s: freeing leaves the selector", kind);
	start = now_ms();
	for (;;) {
		CHECK(now_ms() - start < 10000, "%s: the close was not seen", kind);
		CHECK(NAL_SELECTOR_select(sel, 200000, 1) >= 0, "%s: select", kind);
		if (!NAL_CONNECTION_io(server))
			break;
	}
	NAL_CONNECTION_del_from_selector(server);
	CHECK(nal_connection_get_selector(server, NULL) == NULL, "%s: left", kind);
	CHECK(NAL_SELECTOR_num_objects(sel) == 1, "%s: one object left", kind);
	NAL_CONNECTION_free(server);
	NAL_SELECTOR_free(sel);
	CHECK(nal_listener_get_selector(list, NULL) == NULL, "%s: the selector let go", kind);
	NAL_LISTENER_free(list);
	NAL_ADDRESS_free(addr);
}

/* Built-in connections (a socket pair) in the tiny selector. */
static void builtins_in_tiny(void)
{
	NAL_SELECTOR *sel = nal_selector_new(&tiny_vt);
	NAL_CONNECTION *a = NAL_CONNECTION_new(), *b = NAL_CONNECTION_new();
	CHECK(NAL_CONNECTION_create_pair(a, b, 8192), "socket pair");
	CHECK(nal_connection_get_vtable(a) != NULL &&
		      nal_connection_get_vtable(a) != &pipe_conn_vt,
	      "a built-in connection shows the built-in vtable");
	CHECK(nal_connection_get_vtdata(a) == NULL, "a built-in connection has no vtdata");
	CHECK(NAL_CONNECTION_add_to_selector(a, sel) && NAL_CONNECTION_add_to_selector(b, sel),
	      "built-in connections join the tiny selector");
	CHECK(NAL_SELECTOR_num_objects(sel) == 2, "tiny counts two");
	echo(sel, a, b, 77);
	NAL_CONNECTION_free(a);
	CHECK(NAL_SELECTOR_num_objects(sel) == 1, "tiny was told of the free");
	NAL_SELECTOR_free(sel);
	CHECK(nal_connection_get_selector(b, NULL) == NULL, "freeing tiny let go of b");
	NAL_CONNECTION_free(b);
}

static void registry(void)
{
	const NAL_ADDRESS_vtable *vt;
	const char **p;
	int found_unix = 0, count = 0;
	NAL_ADDRESS *addr = NAL_ADDRESS_new();

	vt = NAL_ADDRESS_vtable_builtins();
	CHECK(vt && vt->unique_name, "the built-in address type");
	for (p = vt->prefixes; *p; p++)
		found_unix |= strcmp(*p, "UNIX:") == 0;
	CHECK(found_unix, "the built-in type parses UNIX:");
	CHECK(!NAL_ADDRESS_create(addr, "PIPE:early", 1024), "PIPE: before it is linked");

	NAL_ADDRESS_vtable_link(&pipe_addr_vt);
	NAL_ADDRESS_vtable_link(&pipe_addr_vt);
	NAL_ADDRESS_vtable_link(&pipe_addr_dup);
	for (vt = NAL_ADDRESS_vtable_builtins(); vt; vt = vt->next)
		count++;
	CHECK(count == 2, "%d types registered, expected the built-in one and PIPE", count);

	CHECK(NAL_ADDRESS_create(addr, "PIPE:early", 1024), "PIPE: once linked");
	CHECK(nal_address_get_vtable(addr) == &pipe_addr_vt, "the PIPE vtable");
	CHECK(strcmp(((pipe_addr *)nal_address_get_vtdata(addr))->name, "early") == 0,
	      "the parsed name in the vtdata");
	CHECK(NAL_ADDRESS_can_connect(addr) && NAL_ADDRESS_can_listen(addr), "can_*");
	CHECK(nal_address_get_listener(addr) == &pipe_list_vt, "listener type");
	CHECK(nal_address_get_connection(addr) == &pipe_conn_vt, "connection type");
	CHECK(!NAL_ADDRESS_create(addr, "PIPE:again", 1024), "an address in use");
	NAL_ADDRESS_reset(addr);
	CHECK(resets_addr == 1, "on_reset ran");
	CHECK(nal_address_get_vtable(addr) == NULL, "no vtable after a reset");
	CHECK(!NAL_ADDRESS_create(addr, "PIPE:", 1024), "an empty PIPE name");
	CHECK(nal_address_get_vtable(addr) == NULL, "a failed parse leaves no vtable");

	/* Built-in addresses keep working, and show the built-in vtable. */
	CHECK(NAL_ADDRESS_create(addr, "UNIX:/nonexistent/nal_devel.sock", 1024),
	      "a UNIX address after a PIPE one");
	CHECK(nal_address_get_vtable(addr) == NAL_ADDRESS_vtable_builtins(),
	      "the built-in vtable");
	CHECK(nal_address_get_vtdata(addr) == NULL, "built-in addresses have no vtdata");
	CHECK(nal_address_get_listener(addr) != NULL, "built-in listener type");
	NAL_ADDRESS_free(addr);
	CHECK(live_addr == 0, "%d PIPE addresses not destroyed", live_addr);
}

static void refusals(void)
{
	NAL_ADDRESS *addr = NAL_ADDRESS_new();
	NAL_LISTENER *list = NAL_LISTENER_new();
	NAL_CONNECTION *conn = NAL_CONNECTION_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new();

	CHECK(NAL_ADDRESS_create(addr, "PIPE:nobody", 1024), "parse");
	CHECK(!NAL_CONNECTION_create(conn, addr), "connect with no listener");
	CHECK(nal_connection_get_vtable(conn) == NULL, "a failed connect leaves no vtable");
	CHECK(!NAL_CONNECTION_accept(conn, list), "accept on an idle listener");
	CHECK(NAL_LISTENER_create(list, addr), "listen");
	CHECK(nal_listener_get_vtable(list) == &pipe_list_vt, "listener vtable");
	CHECK(!NAL_CONNECTION_accept(conn, list), "accept with nothing queued");
	CHECK(!NAL_LISTENER_set_fs_perms(list, "600"), "a type without set_fs_perms");
	CHECK(!NAL_LISTENER_set_fs_owner(list, "root", NULL), "a type without set_fs_owner");
	CHECK(!NAL_LISTENER_finished(list), "finished");
	CHECK(nal_listener_pre_accept(list) == NULL, "nothing to accept");
	CHECK(NAL_CONNECTION_create(conn, addr), "connect");
	CHECK(nal_listener_pre_accept(list) == &pipe_conn_vt, "one to accept");
	CHECK(NAL_CONNECTION_set_size(conn, 100) &&
		      NAL_BUFFER_size(NAL_CONNECTION_get_read(conn)) == 100,
	      "set_size reaches the transport");
	CHECK(!NAL_CONNECTION_set_size(conn, 40000), "sizes above 32768 are refused");
	CHECK(!NAL_CONNECTION_io(conn), "io outside a selector");
	NAL_CONNECTION_reset(conn);
	CHECK(nal_connection_get_vtable(conn) == NULL, "reset unmaps");
	CHECK(nal_selector_get_type(sel) == NAL_SELECTOR_TYPE_DYNAMIC, "a new selector");
	CHECK(nal_selector_dynamic_set(sel, sel_fdselect()), "dynamic_set");
	CHECK(!nal_selector_dynamic_set(sel, sel_fdpoll()), "dynamic_set twice");
	CHECK(nal_selector_get_type(sel) == NAL_SELECTOR_TYPE_FDSELECT, "fdselect kind");
	CHECK(nal_selector_get_vtable(sel) == sel_fdselect(), "fdselect vtable");
	CHECK(nal_selector_get_vtdata(sel) == NULL, "built-in selectors have no vtdata");
	CHECK(!nal_selector_ctrl(sel, NAL_SELECTOR_CTRL_CUSTOM, &sel), "unknown command");
	CHECK(nal_selector_get_type(NULL) == NAL_SELECTOR_TYPE_ERROR, "NULL selector");
	NAL_SELECTOR_free(sel);
	NAL_CONNECTION_free(conn);
	NAL_LISTENER_reset(list);
	CHECK(nal_listener_get_vtable(list) == NULL && !listening, "reset stops listening");
	NAL_LISTENER_free(list);
	NAL_ADDRESS_free(addr);
}

int main(void)
{
	static const char *kinds[] = {"new", "fdpoll", "fdselect", "devel-fdpoll", "tiny"};
	unsigned int i;

	ignore_sigpipe();
	registry();
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		echo_over(kinds[i], i + 1);
	builtins_in_tiny();
	refusals();
	CHECK(live_addr == 0 && live_list == 0 && live_conn == 0 && live_sel == 0,
	      "hooks unbalanced: %d addresses, %d listeners, %d connections, %d selectors",
	      live_addr, live_list, live_conn, live_sel);
	printf("OK nal_devel\n");
	return 0;
}
