/*
 * tcp_client: connect to a TCP server, send one line, print the reply line.
 *
 *     tcp_client tcp://HOST:PORT [MESSAGE] [TIMEOUT_MS]
 *
 * Shows the basic jumpwire calls and every outcome a receive can have:
 *   JW_OK       bytes arrived (*out_len of them),
 *   JW_EOF      the peer finished sending and everything before was delivered,
 *   JW_TIMEOUT  nothing arrived in time (nothing was consumed: call again),
 *   < 0         a failure; jw_status_str() names it, jw_last_error() explains it.
 *
 * Build (shared):  cc tcp_client.c -Iinclude -Ltarget/release -ljumpwire
 *                  LD_LIBRARY_PATH=target/release ./a.out tcp://127.0.0.1:7
 * Build (static):  cc tcp_client.c -Iinclude target/release/libjumpwire.a \
 *                     -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
 *
 * Exits 0 when a reply line arrived, 1 otherwise (with a message on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jumpwire.h"

/* Prints why a call failed: the status's fixed text, then this thread's last
 * error message (it names the endpoint and the cause). */
static int fail(const char *what, jw_status st)
{
    fprintf(stderr, "tcp_client: %s failed with %s (%d): %s\n", what, jw_status_str(st), (int)st, jw_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s tcp://HOST:PORT [MESSAGE] [TIMEOUT_MS]\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    const char *message = argc > 2 ? argv[2] : "hello from jumpwire";
    int timeout_ms = argc > 3 ? atoi(argv[3]) : 5000; /* -1 would wait forever */

    /* Connect, waiting at most timeout_ms (name resolution included). A bad URL
     * gives JW_ERR_INVALID_ARGUMENT, a refused port JW_ERR_CONNECTION. */
    jw_stream *s = NULL;
    jw_status st = jw_connect(url, timeout_ms, &s);
    if (st != JW_OK) {
        return fail("connect", st);
    }
    printf("connected to %s\n", url);

    /* Send the message and a newline. A send delivers all bytes or none: on
     * JW_TIMEOUT nothing was sent and the same call may be repeated. */
    char line[1024];
    int len = snprintf(line, sizeof line, "%s\n", message);
    if (len < 0 || (size_t)len >= sizeof line) {
        fprintf(stderr, "tcp_client: the message is too long\n");
        jw_stream_close(s);
        return 1;
    }
    st = jw_stream_send(s, (const uint8_t *)line, (size_t)len, timeout_ms);
    if (st != JW_OK) {
        int rc = fail("send", st);
        jw_stream_close(s);
        return rc;
    }
    printf("sent %d bytes\n", len);

    /* Receive until a newline. TCP is a byte stream: the reply may come in
     * several pieces, so keep receiving into the rest of the buffer. */
    char reply[1024];
    size_t got = 0;
    int rc = 0;
    while (memchr(reply, '\n', got) == NULL) {
        if (got == sizeof reply - 1) {
            fprintf(stderr, "tcp_client: the reply line is longer than %zu bytes\n", got);
            rc = 1;
            break;
        }
        size_t n = 0;
        st = jw_stream_receive(s, (uint8_t *)reply + got, sizeof reply - 1 - got, &n, timeout_ms);
        if (st == JW_OK) {
            got += n;
        } else if (st == JW_EOF) {
            /* The server finished. Whatever came before EOF is all there is. */
            if (got == 0) {
                fprintf(stderr, "tcp_client: the server ended the connection without replying (%s)\n",
                        jw_status_str(st));
                rc = 1;
            }
            break;
        } else if (st == JW_TIMEOUT) {
            fprintf(stderr, "tcp_client: no reply within %d ms (%s)\n", timeout_ms, jw_status_str(st));
            rc = 1;
            break;
        } else {
            rc = fail("receive", st);
            break;
        }
    }
    if (rc == 0) {
        reply[got] = '\0';
        printf("reply: %s%s", reply, reply[got - 1] == '\n' ? "" : "\n");
    }

    /* Close gracefully and free the stream; never use it afterwards. */
    jw_stream_close(s);
    return rc;
}
