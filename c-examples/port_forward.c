/*
 * port_forward: forward a local TCP port onto a network, then use it.
 *
 *     port_forward [TARGET_URL]      (default: echo:)
 *
 * jw_listen() binds a local port (port 0 picks a free one) and forwards every
 * connection it accepts to a new stream of the target network, each on its
 * own thread, until jw_listener_close(). Here the program is its own client:
 * it connects to the listener's address, sends a message through the forward,
 * reads it back (the target must echo, as `echo:` does), half-closes and waits
 * for the end of stream to come back through the forward.
 *
 * Build: cc port_forward.c -Iinclude -Ltarget/release -ljumpwire
 * Exits 0 after a good round trip, 1 on any failure or mismatch.
 */
#include <stdio.h>
#include <string.h>

#include "jumpwire.h"

#define TIMEOUT_MS 5000

/* Prints why a call failed: the status's fixed text and the last error. */
static int fail(const char *what, jw_status st)
{
    fprintf(stderr, "port_forward: %s failed with %s (%d): %s\n", what, jw_status_str(st), (int)st, jw_last_error());
    return 0;
}

/* Sends `msg` through `s` and checks that the same bytes come back. The
 * forward goes over TCP, a byte stream: the echo may arrive in pieces. */
static int round_trip(jw_stream *s, const char *msg)
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
            fprintf(stderr, "port_forward: end of stream after %zu of %zu bytes\n", got, len);
            return 0;
        }
        if (st != JW_OK) {
            return fail("receive", st);
        }
        got += n;
    }
    if (got != len || memcmp(back, msg, len) != 0) {
        fprintf(stderr, "port_forward: sent \"%s\", got back \"%.*s\"\n", msg, (int)got, back);
        return 0;
    }
    printf("round trip through the forward: \"%s\"\n", msg);
    return 1;
}

int main(int argc, char **argv)
{
    const char *target_url = argc > 1 ? argv[1] : "echo:";

    /* 1. The target: parsing only, no I/O happens until a connection comes. */
    jw_network *target = NULL;
    jw_status st = jw_network_new(target_url, &target);
    if (st != JW_OK) {
        fail("jw_network_new", st);
        return 1;
    }

    /* 2. The listener copies the target, so the network can be freed now. */
    jw_listener *listener = NULL;
    st = jw_listen("tcp://127.0.0.1:0", target, &listener);
    jw_network_free(target);
    if (st != JW_OK) {
        fail("jw_listen", st);
        return 1;
    }

    /* 3. The real address, with the port the system picked. */
    char address[128];
    st = jw_listener_address(listener, address, sizeof address);
    if (st != JW_OK) {
        fail("jw_listener_address", st);
        jw_listener_close(listener);
        return 1;
    }
    printf("forwarding %s -> %s\n", address, target_url);

    /* 4. Be a client of the forward: the address is a URL jw_connect takes. */
    jw_stream *s = NULL;
    st = jw_connect(address, TIMEOUT_MS, &s);
    if (st != JW_OK) {
        fail("jw_connect", st);
        jw_listener_close(listener);
        return 1;
    }
    int ok = round_trip(s, "hello through the forward") && round_trip(s, "and a second message");

    /* 5. Half-close: the forward passes our EOF to the target; the echo ends
     *    too, and its EOF comes back through the forward. */
    if (ok) {
        st = jw_stream_send_eof(s);
        ok = st == JW_OK || fail("send_eof", st);
    }
    if (ok) {
        uint8_t buf[64];
        size_t n = 0;
        st = jw_stream_receive(s, buf, sizeof buf, &n, TIMEOUT_MS);
        if (st == JW_EOF) {
            printf("end of stream came back through the forward\n");
        } else if (st == JW_OK) {
            fprintf(stderr, "port_forward: %zu unexpected bytes instead of the end of stream\n", n);
            ok = 0;
        } else {
            ok = fail("receive the end of stream", st);
        }
    }

    /* 6. Close the client, then the listener (which ends every forwarded
     *    connection and joins its threads). */
    jw_stream_close(s);
    jw_listener_close(listener);
    printf("%s\n", ok ? "port forward: OK" : "port forward: FAILED");
    return ok ? 0 : 1;
}
