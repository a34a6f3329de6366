/* client.c: the distcache client API in a few lines.
 *
 * Build (after `make install PREFIX=/usr/local` or against a staged tree):
 *     cc -Wall -o client client.c -ldistcache
 * Run against a dc_server:
 *     dc_server -listen UNIX:/tmp/dc.sock &
 *     ./client UNIX:/tmp/dc.sock            (or IP:127.0.0.1:9001)
 *
 * A TLS server stores each new session under its session id (add), looks
 * it up when a client asks to resume (get), checks a session it still holds
 * is valid (has), and invalidates it when it must not be resumed (remove). */
#include <distcache/dc_client.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	/* A session id (up to 64 bytes) and its session data (any bytes). */
	static const unsigned char id[] = "example-session-id";
	static const unsigned char session[] =
		"serialised TLS session state would go here";
	unsigned char buf[1024];
	unsigned int used = 0;
	DC_CTX *ctx;
	int ok, failures = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s <address>\n"
				"  e.g. UNIX:/tmp/dc.sock or IP:127.0.0.1:9001\n",
			argv[0]);
		return 2;
	}

	/* Flags 0 would open a connection per operation. PERSISTENT keeps one
	 * open; RETRY reconnects once if the server dropped it; LATE connects
	 * at the first operation rather than here; PIDCHECK makes a forked
	 * child open its own connection instead of sharing the parent's. */
	ctx = DC_CTX_new(argv[1], DC_CTX_FLAG_PERSISTENT |
					  DC_CTX_FLAG_PERSISTENT_RETRY |
					  DC_CTX_FLAG_PERSISTENT_LATE |
					  DC_CTX_FLAG_PERSISTENT_PIDCHECK);
	if (ctx == NULL) {
		fprintf(stderr, "cannot use address %s\n", argv[1]);
		return 1;
	}
#ifdef DISTCACHE_HAVE_SET_TIMEOUT
	/* An extension of this library (the original had no timeouts): no
	 * operation blocks longer than this. The default is 1000 ms, or
	 * DISTCACHE_TIMEOUT_MS from the environment. */
	DC_CTX_set_timeout(ctx, 2000);
#endif

	/* Store the session for 5 minutes (the timeout is in milliseconds).
	 * The id is a byte string: pass its length, here without the NUL. */
	ok = DC_CTX_add_session(ctx, id, sizeof(id) - 1, session,
				sizeof(session), 300000);
	printf("add:    %s\n", ok ? "stored" : "failed (already there, or "
					     "server unreachable)");
	failures += !ok;

	/* Fetch it back. On a hit, used is set to the full session length,
	 * even when it is bigger than the buffer (then only the first
	 * sizeof(buf) bytes are copied and DC_CTX_reget_session() can fetch
	 * the whole session without asking the server again). */
	ok = DC_CTX_get_session(ctx, id, sizeof(id) - 1, buf, sizeof(buf),
				&used);
	if (ok && used <= sizeof(buf))
		printf("get:    %u bytes: \"%s\"\n", used, (const char *)buf);
	else if (ok)
		printf("get:    %u bytes (buffer too small)\n", used);
	else
		printf("get:    not found\n");
	failures += !ok;

	/* Ask only whether it is there: 1 yes, 0 no, -1 server unreachable. */
	printf("has:    %d\n", DC_CTX_has_session(ctx, id, sizeof(id) - 1));

	/* Invalidate it; afterwards it is gone. */
	ok = DC_CTX_remove_session(ctx, id, sizeof(id) - 1);
	printf("remove: %s\n", ok ? "removed" : "failed");
	failures += !ok;
	printf("has:    %d\n", DC_CTX_has_session(ctx, id, sizeof(id) - 1));

	DC_CTX_free(ctx);
	return failures ? 1 : 0;
}
