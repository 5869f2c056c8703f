/*
 * ws_bridge: serve websocket clients and bridge each to a new stream of a
 * target network -- the websockify case: a browser's noVNC reaches a device's
 * VNC port.
 *
 *     ws_bridge                                 self-test onto echo:
 *     ws_bridge ws://0.0.0.0:6080 tcp://dut:5900 SECS   bridge for SECS seconds
 *
 * jw_listen() with a ws:// listen URL answers each client's websocket
 * handshake, connects a new stream of the target and forwards both ways:
 * each message from the client goes to the target as bytes, and the target's
 * bytes come back as binary messages.
 *
 * Build: cc ws_bridge.c -Iinclude -Ltarget/release -ljumpwire
 * Exits 0 after a good round trip through the bridge, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jumpwire.h"

#define TIMEOUT_MS 5000

static int fail(const char *what, jw_status st)
{
    fprintf(stderr, "ws_bridge: %s failed with %s (%d): %s\n", what, jw_status_str(st), (int)st, jw_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    const char *listen_url = argc > 1 ? argv[1] : "ws://127.0.0.1:0";
    const char *target_url = argc > 2 ? argv[2] : "echo:";
    jw_network *target = NULL;
    jw_status st = jw_network_new(target_url, &target);
    if (st != JW_OK) {
        return fail("jw_network_new", st);
    }
    jw_listener *l = NULL;
    st = jw_listen(listen_url, target, &l);
    jw_network_free(target); /* jw_listen copied it */
    if (st != JW_OK) {
        return fail("jw_listen", st);
    }
    char address[128];
    st = jw_listener_address(l, address, sizeof address);
    if (st != JW_OK) {
        jw_listener_close(l);
        return fail("jw_listener_address", st);
    }
    printf("bridging %s -> %s\n", address, target_url);
    fflush(stdout);

    if (argc > 3) {
        time_t end = time(NULL) + atoi(argv[3]);
        while (time(NULL) < end) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        jw_listener_close(l);
        return 0;
    }

    /* Self-test: a websocket client of our own through the bridge. */
    jw_stream *s = NULL;
    st = jw_connect(address, TIMEOUT_MS, &s);
    if (st != JW_OK) {
        jw_listener_close(l);
        return fail("connect", st);
    }
    const char *msg = "through the websocket bridge";
    int rc = 0;
    st = jw_stream_send(s, msg, strlen(msg), TIMEOUT_MS);
    if (st != JW_OK) {
        rc = fail("send", st);
    }
    /* The target is a byte stream: its reply may come as several messages. */
    char back[256];
    size_t got = 0;
    while (rc == 0 && got < strlen(msg)) {
        size_t n = 0;
        st = jw_stream_receive(s, back + got, sizeof back - got, &n, TIMEOUT_MS);
        if (st != JW_OK) {
            rc = fail("receive", st);
        }
        got += n;
    }
    if (rc == 0 && (got != strlen(msg) || memcmp(back, msg, got) != 0)) {
        fprintf(stderr, "ws_bridge: got back \"%.*s\"\n", (int)got, back);
        rc = 1;
    }
    if (rc == 0) {
        printf("round trip through the bridge: \"%.*s\"\n", (int)got, back);
        printf("ws bridge: OK\n");
    }
    jw_stream_close(s);
    jw_listener_close(l);
    return rc;
}
