/*
 * lab_connect: reach a device's network driver through a Jumpstarter
 * session by its name, as `j` does inside `jmp shell`, then forward a local
 * port onto it (upstream's `j network forward-tcp`).
 *
 *     lab_connect [DRIVER]        (default: tcp)
 *
 * Run it where JUMPSTARTER_HOST names the session: inside `jmp shell` (a
 * lease through a controller, or `jmp shell --exporter-config` serving one
 * locally). DRIVER is the driver's name as `jmp` shows it, dot-separated for
 * nested ones (`dut.console`).
 *
 * 1. jw_network_new("jumpstarter:?driver=DRIVER"): parsing only; the
 *    session is looked up (JUMPSTARTER_HOST read) at each connect;
 * 2. jw_network_address(): the driver's own address, as the session reports
 *    it (`tcp://HOST:PORT`; drivers without one say JW_ERR_UNSUPPORTED);
 * 3. jw_network_connect(): a stream of the driver; a round trip and a
 *    half-close (this example expects the target to echo, as the echo
 *    servers of the tests do);
 * 4. jw_listen(): a local port whose every connection is its own stream of
 *    the driver, all on the one connection to the session; the program is
 *    its own client of it.
 *
 * Build: cc lab_connect.c -Iinclude -Ltarget/release -ljumpwire
 * Exits 0 after both round trips, 1 on any failure (the message says why:
 * an unknown driver name lists the names the session has).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "jumpwire.h"

#define TIMEOUT_MS 10000

static int fail(const char *what, jw_status st)
{
    fprintf(stderr, "lab_connect: %s failed with %s (%d): %s\n", what, jw_status_str(st), (int)st, jw_last_error());
    return 0;
}

/* Sends `msg`, reads the same bytes back, half-closes and waits for the
 * end of stream. */
static int round_trip(jw_stream *s, const char *msg, const char *via)
{
    size_t len = strlen(msg);
    jw_status st = jw_stream_send(s, (const uint8_t *)msg, len, TIMEOUT_MS);
    if (st != JW_OK) {
        return fail("send", st);
    }
    char back[256];
    size_t got = 0;
    while (got < len) {
        size_t n = 0;
        st = jw_stream_receive(s, (uint8_t *)back + got, sizeof back - got, &n, TIMEOUT_MS);
        if (st == JW_EOF) {
            fprintf(stderr, "lab_connect: end of stream after %zu of %zu bytes\n", got, len);
            return 0;
        }
        if (st != JW_OK) {
            return fail("receive", st);
        }
        got += n;
    }
    if (memcmp(back, msg, len) != 0) {
        fprintf(stderr, "lab_connect: sent \"%s\", got back \"%.*s\"\n", msg, (int)got, back);
        return 0;
    }
    printf("round trip %s: \"%s\"\n", via, msg);
    st = jw_stream_send_eof(s);
    if (st != JW_OK) {
        return fail("send_eof", st);
    }
    uint8_t rest[64];
    size_t n = 0;
    st = jw_stream_receive(s, rest, sizeof rest, &n, TIMEOUT_MS);
    if (st != JW_EOF) {
        return st == JW_OK ? (fprintf(stderr, "lab_connect: %zu bytes instead of the end of stream\n", n), 0)
                           : fail("receive the end of stream", st);
    }
    printf("end of stream came back %s\n", via);
    return 1;
}

int main(int argc, char **argv)
{
    /* A plain C host: a write to a closed socket would end it, as any. */
    signal(SIGPIPE, SIG_DFL);
    const char *driver = argc > 1 ? argv[1] : "tcp";

    /* 1. The network: no I/O, JUMPSTARTER_HOST is read at each connect. */
    char url[256];
    snprintf(url, sizeof url, "jumpstarter:?driver=%s", driver);
    jw_network *net = NULL;
    jw_status st = jw_network_new(url, &net);
    if (st != JW_OK) {
        fail("jw_network_new", st);
        return 1;
    }

    /* 2. The driver's address, when it has one. */
    char address[256];
    st = jw_network_address(net, address, sizeof address);
    if (st == JW_OK) {
        printf("driver %s: address %s\n", driver, address);
    } else if (st == JW_ERR_UNSUPPORTED || st == JW_ERR_DISABLED) {
        printf("driver %s: no address (%s)\n", driver, jw_status_str(st));
    } else {
        fail("jw_network_address", st);
        jw_network_free(net);
        return 1;
    }

    /* 3. A stream of the driver. */
    jw_stream *s = NULL;
    st = jw_network_connect(net, TIMEOUT_MS, &s);
    if (st != JW_OK) {
        fail("jw_network_connect", st);
        jw_network_free(net);
        return 1;
    }
    int ok = round_trip(s, "hello from the lab", "through the session");
    jw_stream_close(s);

    /* 4. A local port onto the driver. */
    jw_listener *listener = NULL;
    if (ok) {
        st = jw_listen("tcp://127.0.0.1:0", net, &listener);
        ok = st == JW_OK || fail("jw_listen", st);
    }
    char local[128];
    if (ok) {
        st = jw_listener_address(listener, local, sizeof local);
        ok = st == JW_OK || fail("jw_listener_address", st);
    }
    if (ok) {
        printf("forwarding %s -> %s\n", local, url);
        jw_stream *c = NULL;
        st = jw_connect(local, TIMEOUT_MS, &c);
        ok = st == JW_OK ? round_trip(c, "hello through the forward", "through the forward")
                         : fail("jw_connect", st);
        jw_stream_close(c);
    }
    jw_listener_close(listener);
    jw_network_free(net);
    printf("%s\n", ok ? "lab connect: OK" : "lab connect: FAILED");
    return ok ? 0 : 1;
}
