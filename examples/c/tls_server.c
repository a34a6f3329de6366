/* tls_server.c: a TLS 1.3 server that keeps its sessions in distcache, and
 * why it takes them rather than getting them.
 *
 * Build (after `make install PREFIX=/usr/local` or against a staged tree):
 *     cc -Wall -o tls_server tls_server.c -ldistcache -lssl -lcrypto
 * Run two of them on one cache:
 *     dc_server -listen UNIX:/tmp/dc.sock &
 *     ./tls_server UNIX:/tmp/dc.sock cert.pem key.pem 8443 take &
 *     ./tls_server UNIX:/tmp/dc.sock cert.pem key.pem 8444 take &
 * and resume on one a session made on the other, with early data:
 *     openssl s_client -connect 127.0.0.1:8443 -sess_out s.pem -ign_eof </dev/null
 *     echo hello > early.txt
 *     openssl s_client -connect 127.0.0.1:8444 -sess_in s.pem \
 *         -early_data early.txt -ign_eof </dev/null
 *
 * Early data (0-RTT) arrives before the handshake has proved anything
 * fresh about the client: an attacker who recorded a ClientHello with its
 * early data can send it again, to this server or to any other of the
 * farm. RFC 8446 (section 8.1) asks that a ticket that allowed early data
 * be accepted once only. OpenSSL does that with stateful tickets (the
 * ticket is a session id; SSL_OP_NO_TICKET) and its anti-replay check,
 * which deletes the session as it resumes it. With an external cache that
 * is two calls, the get callback and then the remove callback, and two
 * servers that receive the same ClientHello at the same moment can both
 * get the session before either removes it: both accept the same early
 * data. DC_CTX_take_session() fetches and deletes in one step on the
 * cache server, so at most one of them can.
 *
 * usage: tls_server <cache address> <cert.pem> <key.pem> <port> take|get
 *   port 0 picks a free one. "get" uses DC_CTX_get_session() in the get
 *   callback and leaves the deletion to the remove callback, to show the
 *   window that take closes.
 *
 * It serves one connection at a time. For each it prints one line as soon
 * as it knows what became of the early data ("EARLY accepted <bytes>",
 * "EARLY rejected", "EARLY none", or "EARLY error"), then
 * "DONE resumed" or "DONE full" once the handshake completes (or
 * "DONE failed"), then answers "hello" and closes. */
#include <distcache/dc_client.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef DISTCACHE_HAVE_TAKE_SESSION
#error "this example needs DC_CTX_take_session() (DISTCACHE_HAVE_TAKE_SESSION)"
#endif

/* The largest session distcache holds (32 KiB); a TLS session is far
 * smaller. */
#define MAX_SESSION 32768
/* How long a session stays in the cache, in milliseconds. */
#define SESSION_TIMEOUT_MS 300000UL
/* How long a connection may stall before it is dropped, in seconds. */
#define IO_TIMEOUT_S 5

static DC_CTX *cache;
static int use_take;

/* A new session: stored in the cache under its id, serialised. */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	unsigned char *der, *p;
	const unsigned char *id;
	unsigned int id_len;
	int len = i2d_SSL_SESSION(sess, NULL);

	(void)ssl;
	if (len <= 0 || len > MAX_SESSION || (der = malloc((size_t)len)) == NULL)
		return 0;
	p = der;
	i2d_SSL_SESSION(sess, &p);
	id = SSL_SESSION_get_id(sess, &id_len);
	if (!DC_CTX_add_session(cache, id, id_len, der, (unsigned int)len,
				SESSION_TIMEOUT_MS))
		fprintf(stderr, "tls_server: could not store a session\n");
	free(der);
	/* 0: OpenSSL keeps its own reference; we kept none. */
	return 0;
}

/* A client asks to resume: the session from the cache, taken (fetched and
 * deleted in one step) or only fetched. */
static SSL_SESSION *get_session(SSL *ssl, const unsigned char *id, int id_len,
				int *copy)
{
	static unsigned char der[MAX_SESSION];
	const unsigned char *p = der;
	unsigned int used = 0;
	int found;

	(void)ssl;
	*copy = 0; /* the session returned is OpenSSL's to free */
	if (id_len <= 0)
		return NULL;
	if (use_take)
		found = DC_CTX_take_session(cache, id, (unsigned int)id_len, der,
					    sizeof(der), &used);
	else
		found = DC_CTX_get_session(cache, id, (unsigned int)id_len, der,
					   sizeof(der), &used);
	if (!found || used > sizeof(der))
		return NULL;
	return d2i_SSL_SESSION(NULL, &p, (long)used);
}

/* OpenSSL deletes a session it resumed for early data (its anti-replay
 * check), and one that went bad. After a take there is nothing left. */
static void remove_session(SSL_CTX *ctx, SSL_SESSION *sess)
{
	const unsigned char *id;
	unsigned int id_len;

	(void)ctx;
	id = SSL_SESSION_get_id(sess, &id_len);
	DC_CTX_remove_session(cache, id, id_len);
}

static SSL_CTX *make_context(const char *cert, const char *key)
{
	static const unsigned char sid_ctx[] = "distcache tls_server example";
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL
	    || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION)
	    || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1
	    || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1
	    || !SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1))
		return NULL;
	/* Stateful tickets: a ticket is a session id, the session is in the
	 * cache, and so a ticket can be used once. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 1);
	/* Early data on; anti-replay is on unless SSL_OP_NO_ANTI_REPLAY. */
	SSL_CTX_set_max_early_data(ctx, 16384);
	/* Sessions are looked up in distcache only. OpenSSL's anti-replay
	 * check accepts a resumption only when it can delete the session
	 * from its own cache, so the sessions fetched are stored there too
	 * (SSL_SESS_CACHE_NO_INTERNAL would make every such resumption fail);
	 * it is never looked up. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER |
						    SSL_SESS_CACHE_NO_INTERNAL_LOOKUP);
	SSL_CTX_sess_set_new_cb(ctx, new_session);
	SSL_CTX_sess_set_get_cb(ctx, get_session);
	SSL_CTX_sess_set_remove_cb(ctx, remove_session);
	return ctx;
}

static int listen_on(int port)
{
	struct sockaddr_in addr;
	socklen_t len = sizeof(addr);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons((unsigned short)port);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 64) != 0
	    || getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
		close(fd);
		return -1;
	}
	printf("READY %d\n", ntohs(addr.sin_port));
	fflush(stdout);
	return fd;
}

/* One connection: the early data first, as a 0-RTT server reads it, then
 * the rest of the handshake and a short answer. */
static void serve(SSL_CTX *ctx, int fd)
{
	struct timeval tv = { IO_TIMEOUT_S, 0 };
	char early[16385];
	size_t got = 0, n;
	int r, told = 0;
	SSL *ssl = SSL_new(ctx);

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (ssl == NULL || !SSL_set_fd(ssl, fd)) {
		printf("EARLY error\nDONE failed\n");
		goto out;
	}
	for (;;) {
		r = SSL_read_early_data(ssl, early + got, sizeof(early) - 1 - got, &n);
		if (r != SSL_READ_EARLY_DATA_SUCCESS)
			break;
		got += n;
		if (!told) {
			/* Accepted: a server would act on it now, before the
			 * handshake completes. */
			early[got] = '\0';
			printf("EARLY accepted %zu bytes: %.*s\n", got, (int)strcspn(early, "\n"),
			       early);
			fflush(stdout);
			told = 1;
		}
	}
	if (r == SSL_READ_EARLY_DATA_ERROR) {
		if (!told)
			printf("EARLY error\n");
		printf("DONE failed\n");
		ERR_clear_error();
		goto out;
	}
	if (!told) {
		switch (SSL_get_early_data_status(ssl)) {
		case SSL_EARLY_DATA_ACCEPTED:
			printf("EARLY accepted 0 bytes\n");
			break;
		case SSL_EARLY_DATA_REJECTED:
			printf("EARLY rejected\n");
			break;
		default:
			printf("EARLY none\n");
		}
		fflush(stdout);
	}
	if (SSL_do_handshake(ssl) != 1) {
		printf("DONE failed\n");
		ERR_clear_error();
		goto out;
	}
	printf("DONE %s\n", SSL_session_reused(ssl) ? "resumed" : "full");
	SSL_write(ssl, "hello\n", 6);
	SSL_shutdown(ssl);
out:
	fflush(stdout);
	SSL_free(ssl);
	close(fd);
}

int main(int argc, char **argv)
{
	SSL_CTX *ctx;
	int lfd, fd;

	if (argc != 6 || (strcmp(argv[5], "take") != 0 && strcmp(argv[5], "get") != 0)) {
		fprintf(stderr,
			"usage: %s <cache address> <cert.pem> <key.pem> <port> take|get\n",
			argv[0]);
		return 2;
	}
	use_take = strcmp(argv[5], "take") == 0;
	cache = DC_CTX_new(argv[1], DC_CTX_FLAG_PERSISTENT | DC_CTX_FLAG_PERSISTENT_RETRY);
	if (cache == NULL) {
		fprintf(stderr, "tls_server: cannot reach the cache at %s\n", argv[1]);
		return 1;
	}
	ctx = make_context(argv[2], argv[3]);
	if (ctx == NULL) {
		fprintf(stderr, "tls_server: cannot set up TLS with %s and %s\n", argv[2],
			argv[3]);
		ERR_print_errors_fp(stderr);
		return 1;
	}
	lfd = listen_on(atoi(argv[4]));
	if (lfd < 0) {
		perror("tls_server: listen");
		return 1;
	}
	for (;;) {
		fd = accept(lfd, NULL, NULL);
		if (fd >= 0)
			serve(ctx, fd);
	}
}
