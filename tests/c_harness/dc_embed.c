/* dc_embed.c: a session cache server embedded in a program, built from
 * libnal (NAL_LISTENER, NAL_SELECTOR, NAL_CONNECTION) and
 * libdistcacheserver (DC_SERVER with DC_CLIENT_FLAG_IN_SERVER clients),
 * with its storage either a DC_CACHE_cb table written here or the
 * library's default cache.
 *
 * usage: dc_embed <listen-address> [--default-cache] [--sessions N]
 *                 [--selector fdselect|fdpoll|new] [--ext]
 *   --ext   also this project's extension: a client made without
 *           DC_CLIENT_FLAG_IN_SERVER is served by the program's
 *           NAL_CONNECTION_io plus DC_SERVER_process_client
 *
 * Before serving it proves: DC_SERVER_new fails while no cache is set;
 * DC_SERVER_set_cache refuses NULL and a table with a missing handler;
 * with the default cache DC_SERVER_new takes 64..60000 sessions; a
 * DC_SERVER_new whose cache_new fails returns NULL; a new server stores
 * nothing, has done nothing and has no clients; a client created without
 * DC_CLIENT_FLAG_IN_SERVER (and with NOFREE_CONN) is counted, left alone
 * by DC_SERVER_clients_io, removed by DC_SERVER_del_client, and its
 * connection outlives it.
 *
 * Then it prints "READY <address> cache=<c|default>" and serves until a
 * line other than the commands below arrives on stdin, or SIGTERM. stdin
 * commands (each answered with one line):
 *   stats   "STATS items=<stored> ops=<operations> empty=<0|1>
 *            accepted=<connections> new=<n> add=<n> get=<n> getlen=<n>
 *            remove=<n> have=<n> items_cb=<n>" (the last ones count calls
 *            of the C cache's handlers; 0 with the default cache)
 *   reset   DC_SERVER_reset_operations, then "RESET"
 * End of input on stdin is ignored (SIGTERM still stops it). On the way
 * out it prints a last STATS line, frees the server (and with it every
 * client and connection), the listener, the selector and the address,
 * checks that the selector was left empty and that the C cache was freed
 * as often as it was created, prints "BYE" and exits 0.
 *
 * The C cache (a table with expiry) checks the library's side of the
 * contract in dc_server.h: every handler gets the `now` the program
 * passed to DC_SERVER_clients_io / DC_SERVER_items_stored (or that time
 * in whole milliseconds, as this project passes it); cache_add gets
 * ids of 1..64 bytes, sessions of 1..32768 bytes and timeouts of at most
 * 604800000 ms (lookups get the request's id as it came, even empty);
 * cache_add returns 0 for an id already stored; cache_get with a NULL
 * store returns the length, and otherwise copies at most store_size bytes
 * and returns the length. A broken contract exits with status 1. */
/* dc_server.h needs struct timeval declared first (DC_SERVER_new(2)). */
#include <sys/time.h>

#include <libnal/nal.h>
#include <distcache/dc_plug.h>
#include <distcache/dc_server.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "nal_util.h"

#define BUFSZ 4096
#define MAX_ID 64u
#define MAX_DATA 32768u
#define MAX_EXPIRY 604800000UL

/* ---------------------------------------------------------------------------
 * The C cache */

struct entry {
	unsigned char id[MAX_ID];
	unsigned int id_len;
	unsigned char *data;
	unsigned int data_len;
	struct timeval expiry;
};

struct st_DC_CACHE {
	struct entry *e;
	unsigned int max, n;
};

/* What the program passed the library as "now". */
static struct timeval g_now;
static unsigned long c_new, c_free, c_add, c_get, c_getlen, c_remove, c_have,
	c_items;

/* The handlers get the caller's time: as it was (the original), or in
 * whole milliseconds (this project works in milliseconds). */
static void check_now(const struct timeval *now, const char *who)
{
	CHECK(now != NULL, "%s: now is NULL", who);
	CHECK(now->tv_sec == g_now.tv_sec &&
		      (now->tv_usec == g_now.tv_usec ||
		       now->tv_usec == g_now.tv_usec / 1000 * 1000),
	      "%s: now is %ld.%06ld, the program passed %ld.%06ld", who,
	      (long)now->tv_sec, (long)now->tv_usec, (long)g_now.tv_sec,
	      (long)g_now.tv_usec);
}

static int later(const struct timeval *a, const struct timeval *b)
{
	return a->tv_sec > b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_usec > b->tv_usec);
}

static int expired(const struct entry *e, const struct timeval *now)
{
	return later(now, &e->expiry);
}

static void drop(DC_CACHE *c, unsigned int i)
{
	free(c->e[i].data);
	c->e[i] = c->e[--c->n];
}

static void purge(DC_CACHE *c, const struct timeval *now)
{
	unsigned int i = 0;

	while (i < c->n) {
		if (expired(&c->e[i], now))
			drop(c, i);
		else
			i++;
	}
}

static int find(DC_CACHE *c, const unsigned char *id, unsigned int len)
{
	unsigned int i;

	if (len == 0 || len > MAX_ID)
		return -1;
	for (i = 0; i < c->n; i++)
		if (c->e[i].id_len == len && memcmp(c->e[i].id, id, len) == 0)
			return (int)i;
	return -1;
}

/* ADD ids are checked by the library (1..64 bytes); lookups pass the
 * request's payload as it came, which may be empty or longer than 64. */
static void check_id(const unsigned char *id, unsigned int len,
		     unsigned int min, unsigned int max, const char *who)
{
	CHECK((id != NULL || len == 0) && len >= min && len <= max,
	      "%s: id of %u bytes at %p", who, len, (const void *)id);
}

static DC_CACHE *cb_new(unsigned int max_sessions)
{
	DC_CACHE *c;

	c_new++;
	if (max_sessions == 0 || max_sessions > 100000)
		return NULL;
	c = calloc(1, sizeof(*c));
	CHECK(c != NULL, "calloc");
	c->e = calloc(max_sessions, sizeof(*c->e));
	CHECK(c->e != NULL, "calloc");
	c->max = max_sessions;
	return c;
}

static void cb_free(DC_CACHE *c)
{
	c_free++;
	CHECK(c != NULL, "cache_free(NULL)");
	while (c->n)
		drop(c, c->n - 1);
	free(c->e);
	free(c);
}

static int cb_add(DC_CACHE *c, const struct timeval *now,
		  unsigned long timeout_msecs, const unsigned char *id,
		  unsigned int id_len, const unsigned char *data,
		  unsigned int data_len)
{
	struct entry *e;
	unsigned int i, soonest;

	c_add++;
	check_now(now, "cache_add");
	check_id(id, id_len, 1, MAX_ID, "cache_add");
	CHECK(data != NULL && data_len >= 1 && data_len <= MAX_DATA,
	      "cache_add: session of %u bytes", data_len);
	CHECK(timeout_msecs <= MAX_EXPIRY, "cache_add: timeout %lu",
	      timeout_msecs);
	purge(c, now);
	if (find(c, id, id_len) >= 0)
		return 0;
	if (c->n == c->max) {
		soonest = 0;
		for (i = 1; i < c->n; i++)
			if (later(&c->e[soonest].expiry, &c->e[i].expiry))
				soonest = i;
		drop(c, soonest);
	}
	e = &c->e[c->n];
	e->data = malloc(data_len);
	CHECK(e->data != NULL, "malloc");
	memcpy(e->id, id, id_len);
	e->id_len = id_len;
	memcpy(e->data, data, data_len);
	e->data_len = data_len;
	e->expiry.tv_sec = now->tv_sec + (time_t)(timeout_msecs / 1000);
	e->expiry.tv_usec = now->tv_usec + (long)(timeout_msecs % 1000) * 1000;
	if (e->expiry.tv_usec >= 1000000) {
		e->expiry.tv_sec++;
		e->expiry.tv_usec -= 1000000;
	}
	c->n++;
	return 1;
}

static unsigned int cb_get(DC_CACHE *c, const struct timeval *now,
			   const unsigned char *id, unsigned int id_len,
			   unsigned char *store, unsigned int store_size)
{
	int i;
	unsigned int n;

	if (store)
		c_get++;
	else
		c_getlen++;
	check_now(now, "cache_get");
	check_id(id, id_len, 0, MAX_DATA, "cache_get");
	purge(c, now);
	i = find(c, id, id_len);
	if (i < 0)
		return 0;
	if (store) {
		n = c->e[i].data_len;
		if (n > store_size)
			n = store_size;
		memcpy(store, c->e[i].data, n);
	}
	return c->e[i].data_len;
}

static int cb_remove(DC_CACHE *c, const struct timeval *now,
		     const unsigned char *id, unsigned int id_len)
{
	int i;

	c_remove++;
	check_now(now, "cache_remove");
	check_id(id, id_len, 0, MAX_DATA, "cache_remove");
	purge(c, now);
	i = find(c, id, id_len);
	if (i < 0)
		return 0;
	drop(c, (unsigned int)i);
	return 1;
}

static int cb_have(DC_CACHE *c, const struct timeval *now,
		   const unsigned char *id, unsigned int id_len)
{
	c_have++;
	check_now(now, "cache_have");
	check_id(id, id_len, 0, MAX_DATA, "cache_have");
	purge(c, now);
	return find(c, id, id_len) >= 0;
}

static unsigned int cb_items(DC_CACHE *c, const struct timeval *now)
{
	c_items++;
	check_now(now, "cache_num_items");
	purge(c, now);
	return c->n;
}

static const DC_CACHE_cb c_cache = {cb_new,    cb_free, cb_add,  cb_get,
				    cb_remove, cb_have, cb_items};

/* ---------------------------------------------------------------------------
 * Before serving */

static void setup_checks(int use_default)
{
	DC_CACHE_cb broken = c_cache;
	DC_SERVER *s;

	/* No cache yet. */
	CHECK(DC_SERVER_new(512) == NULL, "DC_SERVER_new before a cache set");
	CHECK(DC_SERVER_set_cache(NULL) == 0, "DC_SERVER_set_cache(NULL)");
	broken.cache_have = NULL;
	CHECK(DC_SERVER_set_cache(&broken) == 0,
	      "DC_SERVER_set_cache with no cache_have");
	broken = c_cache;
	broken.cache_new = NULL;
	CHECK(DC_SERVER_set_cache(&broken) == 0,
	      "DC_SERVER_set_cache with no cache_new");
	CHECK(DC_SERVER_new(512) == NULL,
	      "DC_SERVER_new after refused set_cache calls");
	if (use_default) {
		CHECK(DC_SERVER_set_default_cache() == 1,
		      "DC_SERVER_set_default_cache");
		CHECK(DC_SERVER_new(DC_CACHE_MIN_SIZE - 1) == NULL,
		      "default cache with 63 sessions");
		CHECK(DC_SERVER_new(DC_CACHE_MAX_SIZE + 1) == NULL,
		      "default cache with 60001 sessions");
		s = DC_SERVER_new(DC_CACHE_MIN_SIZE);
		CHECK(s != NULL, "default cache with 64 sessions");
		DC_SERVER_free(s);
		s = DC_SERVER_new(DC_CACHE_MAX_SIZE);
		CHECK(s != NULL, "default cache with 60000 sessions");
		DC_SERVER_free(s);
	} else {
		CHECK(DC_SERVER_set_cache(&c_cache) == 1, "DC_SERVER_set_cache");
		CHECK(DC_SERVER_new(0) == NULL,
		      "DC_SERVER_new when cache_new fails");
		CHECK(c_new == 1 && c_free == 0,
		      "cache_new/cache_free calls: %lu/%lu", c_new, c_free);
	}
}

/* The extension: a client made without DC_CLIENT_FLAG_IN_SERVER is
 * served by the caller's NAL_CONNECTION_io plus DC_SERVER_process_client
 * (the original never decoded its requests). A HAVE for an unknown id
 * through a DC_PLUG at the pair's other end gets "not found". */
static void own_io_client(DC_SERVER *server)
{
	NAL_CONNECTION *a = NAL_CONNECTION_new(), *b = NAL_CONNECTION_new();
	NAL_SELECTOR *sel = NAL_SELECTOR_new_fdpoll();
	DC_CLIENT *cl;
	DC_PLUG *p;
	unsigned long uid = 0, ops = DC_SERVER_num_operations(server);
	DC_CMD cmd = DC_CMD_ERROR;
	const unsigned char *data = NULL;
	unsigned int len = 0;
	double start = now_ms();

	CHECK(a && b && sel && NAL_CONNECTION_create_pair(a, b, BUFSZ),
	      "pair");
	cl = DC_SERVER_new_client(server, a, 0);
	p = DC_PLUG_new(b, DC_PLUG_FLAG_TO_SERVER);
	CHECK(cl && p, "client and plug");
	CHECK(NAL_CONNECTION_add_to_selector(a, sel) &&
		      DC_PLUG_to_select(p, sel),
	      "to the selector");
	CHECK(DC_PLUG_write(p, 0, 77, DC_CMD_HAVE,
			    (const unsigned char *)"unknown-id", 10) &&
		      DC_PLUG_commit(p),
	      "write HAVE");
	while (!DC_PLUG_read(p, 0, &uid, &cmd, &data, &len)) {
		CHECK(now_ms() - start < 5000,
		      "a client without DC_CLIENT_FLAG_IN_SERVER was not "
		      "answered within 5 s");
		CHECK(NAL_SELECTOR_select(sel, 20000, 1) >= 0, "select");
		gettimeofday(&g_now, NULL);
		CHECK(NAL_CONNECTION_io(a), "NAL_CONNECTION_io");
		CHECK(DC_SERVER_process_client(cl, &g_now) == 1,
		      "DC_SERVER_process_client");
		CHECK(DC_PLUG_io(p), "DC_PLUG_io");
	}
	CHECK(uid == 77 && cmd == DC_CMD_HAVE && len == 1 && data[0] == 1,
	      "reply: uid %lu cmd %d len %u", uid, (int)cmd, len);
	CHECK(DC_PLUG_consume(p) == 1, "consume");
	CHECK(DC_SERVER_num_operations(server) == ops + 1, "num_operations");
	DC_SERVER_reset_operations(server);
	CHECK(DC_SERVER_del_client(cl) == 1, "del_client");
	CHECK(DC_PLUG_free(p) == 1, "DC_PLUG_free");
	CHECK(NAL_SELECTOR_num_objects(sel) == 0,
	      "del_client left the connection in the selector");
	NAL_SELECTOR_free(sel);
	printf("own-I/O client (extension): ok\n");
}

static void client_checks(DC_SERVER *server)
{
	NAL_CONNECTION *a = NAL_CONNECTION_new(), *b = NAL_CONNECTION_new();
	DC_CLIENT *cl;

	CHECK(a && b && NAL_CONNECTION_create_pair(a, b, BUFSZ), "pair");
	gettimeofday(&g_now, NULL);
	CHECK(DC_SERVER_items_stored(server, &g_now) == 0, "items_stored");
	CHECK(DC_SERVER_num_operations(server) == 0, "num_operations");
	CHECK(DC_SERVER_clients_empty(server) == 1, "clients_empty");
	cl = DC_SERVER_new_client(server, a, DC_CLIENT_FLAG_NOFREE_CONN);
	CHECK(cl != NULL, "DC_SERVER_new_client");
	CHECK(DC_SERVER_clients_empty(server) == 0,
	      "clients_empty with a client");
	CHECK(DC_SERVER_process_client(cl, &g_now) == 1,
	      "process_client with no request");
	CHECK(DC_SERVER_clients_io(server, &g_now) == 1, "clients_io");
	CHECK(DC_SERVER_clients_empty(server) == 0,
	      "clients_io dropped a client it does not own");
	CHECK(DC_SERVER_del_client(cl) == 1, "DC_SERVER_del_client");
	CHECK(DC_SERVER_clients_empty(server) == 1,
	      "clients_empty after del_client");
	CHECK(NAL_CONNECTION_get_read(a) != NULL &&
		      NAL_CONNECTION_is_established(a),
	      "a NOFREE_CONN client's connection did not outlive it");
	NAL_CONNECTION_free(a);
	NAL_CONNECTION_free(b);
	CHECK(DC_SERVER_num_operations(server) == 0, "num_operations");
}

/* ---------------------------------------------------------------------------
 * Serving */

static volatile sig_atomic_t g_stop;

static void on_term(int sig)
{
	(void)sig;
	g_stop = 1;
}

static unsigned long g_accepted;

static void stats(DC_SERVER *server)
{
	unsigned int items;

	gettimeofday(&g_now, NULL);
	items = DC_SERVER_items_stored(server, &g_now);
	printf("STATS items=%u ops=%lu empty=%d accepted=%lu new=%lu add=%lu "
	       "get=%lu getlen=%lu remove=%lu have=%lu items_cb=%lu\n",
	       items, DC_SERVER_num_operations(server),
	       DC_SERVER_clients_empty(server), g_accepted, c_new, c_add,
	       c_get, c_getlen, c_remove, c_have, c_items);
	fflush(stdout);
}

/* Reads what stdin has; runs complete command lines. Returns 0 to stop. */
static int stdin_commands(DC_SERVER *server, int *stdin_open)
{
	static char line[256];
	static size_t used;
	struct pollfd pfd;
	ssize_t n;
	char *nl;

	pfd.fd = 0;
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (!*stdin_open || poll(&pfd, 1, 0) <= 0)
		return 1;
	n = read(0, line + used, sizeof(line) - 1 - used);
	if (n <= 0) {
		*stdin_open = 0;
		return 1;
	}
	used += (size_t)n;
	line[used] = '\0';
	while ((nl = strchr(line, '\n')) != NULL) {
		*nl = '\0';
		if (strcmp(line, "stats") == 0) {
			stats(server);
		} else if (strcmp(line, "reset") == 0) {
			DC_SERVER_reset_operations(server);
			printf("RESET\n");
			fflush(stdout);
		} else {
			return 0;
		}
		used -= (size_t)(nl + 1 - line);
		memmove(line, nl + 1, used + 1);
	}
	CHECK(used < sizeof(line) - 1, "an stdin line too long");
	return 1;
}

int main(int argc, char **argv)
{
	const char *address = NULL, *kind = "new";
	unsigned int sessions = 4096;
	int use_default = 0, ext = 0, i, stdin_open = 1, r;
	struct sigaction sa;
	NAL_ADDRESS *addr;
	NAL_LISTENER *list;
	NAL_SELECTOR *sel;
	NAL_CONNECTION *conn;
	DC_SERVER *server;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--default-cache") == 0)
			use_default = 1;
		else if (strcmp(argv[i], "--sessions") == 0 && i + 1 < argc)
			sessions = (unsigned int)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--selector") == 0 && i + 1 < argc)
			kind = argv[++i];
		else if (strcmp(argv[i], "--ext") == 0)
			ext = 1;
		else if (argv[i][0] != '-' && !address)
			address = argv[i];
		else {
			address = NULL;
			break;
		}
	}
	if (!address) {
		fprintf(stderr,
			"usage: %s <listen-address> [--default-cache] "
			"[--sessions N] [--selector fdselect|fdpoll|new] "
			"[--ext]\n",
			argv[0]);
		return 2;
	}
	ignore_sigpipe();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGTERM, &sa, NULL) == 0, "sigaction");

	setup_checks(use_default);
	server = DC_SERVER_new(sessions);
	CHECK(server != NULL, "DC_SERVER_new(%u)", sessions);
	client_checks(server);
	if (ext)
		own_io_client(server);

	addr = NAL_ADDRESS_new();
	list = NAL_LISTENER_new();
	sel = selector_new(kind);
	conn = NAL_CONNECTION_new();
	CHECK(addr && list && sel && conn, "NAL_*_new");
	CHECK(NAL_ADDRESS_create(addr, address, BUFSZ) == 1 &&
		      NAL_ADDRESS_can_listen(addr),
	      "listen address %s", address);
	CHECK(NAL_LISTENER_create(list, addr) == 1, "listen on %s", address);
	CHECK(NAL_LISTENER_add_to_selector(list, sel) == 1, "add listener");
	printf("READY %s cache=%s\n", address, use_default ? "default" : "c");
	fflush(stdout);

	while (!g_stop) {
		r = NAL_SELECTOR_select(sel, 100000, 1);
		CHECK(r >= 0 || errno == EINTR, "select: %s", strerror(errno));
		if (g_stop)
			break;
		gettimeofday(&g_now, NULL);
		CHECK(DC_SERVER_clients_io(server, &g_now) == 1, "clients_io");
		while (NAL_CONNECTION_accept(conn, list)) {
			CHECK(NAL_CONNECTION_add_to_selector(conn, sel) == 1,
			      "add an accepted connection");
			CHECK(DC_SERVER_new_client(server, conn,
						   DC_CLIENT_FLAG_IN_SERVER) !=
				      NULL,
			      "DC_SERVER_new_client");
			g_accepted++;
			conn = NAL_CONNECTION_new();
			CHECK(conn != NULL, "NAL_CONNECTION_new");
		}
		if (!stdin_commands(server, &stdin_open))
			break;
	}

	stats(server);
	DC_SERVER_free(server);
	NAL_CONNECTION_free(conn);
	NAL_LISTENER_free(list);
	CHECK(NAL_SELECTOR_num_objects(sel) == 0,
	      "%u objects left in the selector after DC_SERVER_free",
	      NAL_SELECTOR_num_objects(sel));
	NAL_SELECTOR_free(sel);
	NAL_ADDRESS_free(addr);
	if (!use_default)
		CHECK(c_free == c_new - 1,
		      "cache_new ran %lu times (one refused), cache_free %lu",
		      c_new, c_free);
	printf("BYE\n");
	return 0;
}
