/*
 * ws_chat: a websocket chat server; every message a client sends goes to all.
 *
 *     ws_chat                      self-test: serve, connect 3 clients, chat
 *     ws_chat ws://HOST:PORT SECS  serve for SECS seconds (try it from a
 *                                  browser: new WebSocket("ws://HOST:PORT/"))
 *
 * jw_ws_serve() runs the handler on each connection's own thread with a
 * jw_stream for it; when the handler returns, the server closes that
 * connection (close frame). jw_ws_broadcast() queues a message to every open
 * connection and returns at once: a client too slow to keep up is dropped
 * (close 1008), so one stuck browser tab cannot stall the others.
 * jw_ws_path() tells the handler which path the client asked for.
 *
 * Build: cc ws_chat.c -Iinclude -Ltarget/release -ljumpwire
 * Exits 0 when every client got every message, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jumpwire.h"

#define TIMEOUT_MS 5000
#define CLIENTS 3

struct chat {
    jw_ws_server *server; /* set before any client connects */
};

/* Runs once per connection, on its own thread: every message received is
 * broadcast to everyone (the sender included). Returns at the client's close
 * (JW_EOF) or when the server closes the connection (JW_ERR_CLOSED). */
static void on_connection(jw_stream *conn, void *user)
{
    struct chat *chat = user;
    char path[256];
    if (jw_ws_path(conn, path, sizeof path) == JW_OK) {
        printf("a client joined on %s\n", path);
        fflush(stdout);
    }
    char msg[4096];
    for (;;) {
        size_t n = 0;
        jw_status st = jw_stream_receive(conn, msg, sizeof msg, &n, -1);
        if (st != JW_OK) {
            return;
        }
        jw_ws_broadcast(chat->server, msg, n);
    }
}

static int fail(const char *what, jw_status st)
{
    fprintf(stderr, "ws_chat: %s failed with %s (%d): %s\n", what, jw_status_str(st), (int)st, jw_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    const char *listen_url = argc > 1 ? argv[1] : "ws://127.0.0.1:0";
    struct chat chat = {NULL};
    jw_status st = jw_ws_serve(listen_url, on_connection, &chat, &chat.server);
    if (st != JW_OK) {
        return fail("jw_ws_serve", st);
    }
    char address[128];
    st = jw_ws_server_address(chat.server, address, sizeof address);
    if (st != JW_OK) {
        jw_ws_server_close(chat.server);
        return fail("jw_ws_server_address", st);
    }
    printf("chat server on %s\n", address);
    fflush(stdout);

    if (argc > 2) { /* serve for a while */
        time_t end = time(NULL) + atoi(argv[2]);
        while (time(NULL) < end) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        jw_ws_server_close(chat.server);
        return 0;
    }

    /* Self-test: three clients in rooms of their own; the first says hello. */
    jw_stream *c[CLIENTS] = {NULL};
    int rc = 0;
    for (int i = 0; i < CLIENTS && rc == 0; i++) {
        char url[200];
        snprintf(url, sizeof url, "%sroom%d", address, i);
        st = jw_connect(url, TIMEOUT_MS, &c[i]);
        if (st != JW_OK) {
            rc = fail("connect", st);
        }
    }
    /* A handler may not be running yet when jw_connect returns: each client
     * says "ready N" and waits for its own words to come back (then its
     * handler is up). Other clients' "ready" messages are skipped below. */
    for (int i = 0; i < CLIENTS && rc == 0; i++) {
        char ready[16], buf[64];
        int len = snprintf(ready, sizeof ready, "ready %d", i);
        st = jw_stream_send(c[i], ready, (size_t)len, TIMEOUT_MS);
        size_t n = 0;
        while (st == JW_OK) {
            st = jw_stream_receive(c[i], buf, sizeof buf, &n, TIMEOUT_MS);
            if (st == JW_OK && n == (size_t)len && memcmp(buf, ready, n) == 0) {
                break;
            }
        }
        if (st != JW_OK) {
            rc = fail("waiting for the handler", st);
        }
    }
    const char *hello = "hello, everyone";
    if (rc == 0 && (st = jw_stream_send(c[0], hello, strlen(hello), TIMEOUT_MS)) != JW_OK) {
        rc = fail("send", st);
    }
    for (int i = 0; i < CLIENTS && rc == 0; i++) {
        char buf[64];
        size_t n = 0;
        do {
            st = jw_stream_receive(c[i], buf, sizeof buf, &n, TIMEOUT_MS);
        } while (st == JW_OK && n > 6 && memcmp(buf, "ready ", 6) == 0);
        if (st != JW_OK) {
            rc = fail("receive", st);
        } else if (n != strlen(hello) || memcmp(buf, hello, n) != 0) {
            fprintf(stderr, "ws_chat: client %d got \"%.*s\"\n", i, (int)n, buf);
            rc = 1;
        } else {
            printf("client %d got \"%.*s\"\n", i, (int)n, buf);
        }
    }
    /* Closing the server sends every client a close frame: JW_EOF. */
    jw_ws_server_close(chat.server);
    for (int i = 0; i < CLIENTS; i++) {
        if (c[i] == NULL) {
            continue;
        }
        char buf[64];
        size_t n = 0;
        while ((st = jw_stream_receive(c[i], buf, sizeof buf, &n, TIMEOUT_MS)) == JW_OK) {
        }
        if (rc == 0 && st != JW_EOF) {
            rc = fail("receive after the server closed", st);
        }
        jw_stream_close(c[i]);
    }
    if (rc == 0) {
        printf("chat: OK\n");
    }
    return rc;
}
