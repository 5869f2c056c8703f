/*
 * ws_client: open a websocket, send one message, print the reply message.
 *
 *     ws_client ws://HOST:PORT/PATH [MESSAGE] [TIMEOUT_MS]
 *     ws_client "wss://HOST/PATH#ca=/etc/my-ca.pem" ...
 *
 * A websocket stream carries messages: each jw_stream_send() is one binary
 * message, and each jw_stream_receive() returns bytes of one message only (a
 * message larger than the buffer comes out over several calls). Text messages
 * from the server arrive as their UTF-8 bytes; pings are answered while you
 * receive; the server's close frame is JW_EOF. The URL's query goes to the
 * server; jumpwire's own options (ca, insecure) go in the fragment.
 *
 * Build: cc ws_client.c -Iinclude -Ltarget/release -ljumpwire
 * Exits 0 when a reply arrived, 1 otherwise (with a message on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jumpwire.h"

static int fail(const char *what, jw_status st)
{
    fprintf(stderr, "ws_client: %s failed with %s (%d): %s\n", what, jw_status_str(st), (int)st, jw_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s ws://HOST:PORT/PATH [MESSAGE] [TIMEOUT_MS]\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    const char *message = argc > 2 ? argv[2] : "hello over a websocket";
    int timeout_ms = argc > 3 ? atoi(argv[3]) : 5000;

    /* TCP connect (and TLS for wss://) plus the HTTP upgrade, all bounded by
     * timeout_ms. A server that refuses the upgrade gives JW_ERR_CONNECTION
     * with its HTTP status in jw_last_error(). */
    jw_stream *s = NULL;
    jw_status st = jw_connect(url, timeout_ms, &s);
    if (st != JW_OK) {
        return fail("connect", st);
    }
    printf("connected to %s\n", url);

    st = jw_stream_send(s, message, strlen(message), timeout_ms);
    if (st != JW_OK) {
        int rc = fail("send", st);
        jw_stream_close(s);
        return rc;
    }
    printf("sent one message of %zu bytes\n", strlen(message));

    /* One receive returns (part of) one message; with a buffer larger than
     * the reply, the whole message. */
    char reply[4096];
    size_t n = 0;
    st = jw_stream_receive(s, reply, sizeof reply, &n, timeout_ms);
    int rc = 0;
    if (st == JW_OK) {
        printf("reply: %.*s\n", (int)n, reply);
    } else if (st == JW_EOF) {
        fprintf(stderr, "ws_client: the server closed the websocket without a reply\n");
        rc = 1;
    } else {
        rc = fail("receive", st);
    }
    /* Sends a close frame and waits briefly for the server's. */
    jw_stream_close(s);
    return rc;
}
