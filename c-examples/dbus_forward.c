/*
 * dbus_forward: expose a device's D-Bus bus locally, then list its names.
 *
 *     dbus_forward [BUS_URL [LISTEN_URL]]
 *         BUS_URL     dbus:system, dbus:session (the default) or dbus:ADDRESS,
 *                     e.g. dbus:unix:path=/run/dbus/system_bus_socket
 *         LISTEN_URL  where to expose it: tcp://127.0.0.1:0 (the default) or
 *                     unix:/PATH
 *
 * jw_listen() forwards every connection to the listener onto a new stream to
 * the bus; the stream carries the raw bus protocol, so ordinary D-Bus clients
 * work through it. jw_listener_dbus_address() gives the listener's address in
 * D-Bus form (unix:path=... or tcp:host=...,port=...), what a client puts in
 * DBUS_SESSION_BUS_ADDRESS or passes to `dbus-send --bus=`.
 *
 * The program checks the forward twice: with jumpwire itself (it opens the
 * SASL exchange by hand and prints the authentication mechanisms the bus
 * offers), then, when dbus-send is installed, by asking the bus for its
 * names (org.freedesktop.DBus.ListNames) through the forward.
 *
 * Build: cc dbus_forward.c -Iinclude -Ltarget/release -ljumpwire
 * Exits 0 when both checks pass (or dbus-send is missing), 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jumpwire.h"

#define TIMEOUT_MS 5000

/* Prints why a call failed: the status's fixed text and the last error. */
static int fail(const char *what, jw_status st)
{
    fprintf(stderr, "dbus_forward: %s failed with %s (%d): %s\n", what, jw_status_str(st), (int)st, jw_last_error());
    return 0;
}

/* Connects to the forward and starts the D-Bus authentication: a client
 * first sends one NUL byte, then "AUTH" without a mechanism, to which a bus
 * answers "REJECTED <the mechanisms it supports>". */
static int probe_auth(const char *listen_address)
{
    jw_stream *s = NULL;
    jw_status st = jw_connect(listen_address, TIMEOUT_MS, &s);
    if (st != JW_OK) {
        return fail("jw_connect to the forward", st);
    }
    static const char hello[] = "\0AUTH\r\n"; /* the NUL byte is part of the protocol */
    st = jw_stream_send(s, (const uint8_t *)hello, sizeof hello - 1, TIMEOUT_MS);
    if (st != JW_OK) {
        jw_stream_close(s);
        return fail("send", st);
    }
    /* The reply is one line ending in "\r\n"; it may come in pieces. */
    char line[256];
    size_t got = 0;
    while (got < 2 || memcmp(line + got - 2, "\r\n", 2) != 0) {
        size_t n = 0;
        if (got == sizeof line - 1) {
            fprintf(stderr, "dbus_forward: the bus's answer is longer than %zu bytes\n", got);
            jw_stream_close(s);
            return 0;
        }
        st = jw_stream_receive(s, (uint8_t *)line + got, sizeof line - 1 - got, &n, TIMEOUT_MS);
        if (st != JW_OK) {
            jw_stream_close(s);
            return fail(st == JW_EOF ? "receive (the bus hung up)" : "receive", st);
        }
        got += n;
    }
    jw_stream_close(s);
    line[got - 2] = '\0';
    if (strncmp(line, "REJECTED ", 9) != 0) {
        fprintf(stderr, "dbus_forward: unexpected answer to AUTH: \"%s\"\n", line);
        return 0;
    }
    printf("the bus offers: %s\n", line + 9);
    return 1;
}

/* Lists the bus's names with dbus-send through the forward, if dbus-send is
 * installed. Its output goes straight to our stdout. */
static int list_names(const char *dbus_address)
{
    if (system("command -v dbus-send >/dev/null 2>&1") != 0) {
        printf("dbus-send not found: ListNames skipped\n");
        return 1;
    }
    /* A D-Bus address never holds a quote: anything outside
     * [-0-9A-Za-z_/.\*] in it is %-escaped. */
    char cmd[1024];
    int len = snprintf(cmd, sizeof cmd,
                       "dbus-send --bus='%s' --print-reply --reply-timeout=%d --dest=org.freedesktop.DBus "
                       "/org/freedesktop/DBus org.freedesktop.DBus.ListNames",
                       dbus_address, TIMEOUT_MS);
    if (len < 0 || (size_t)len >= sizeof cmd) {
        fprintf(stderr, "dbus_forward: the address is too long for the command line\n");
        return 0;
    }
    printf("$ %s\n", cmd);
    fflush(stdout); /* before dbus-send writes to the same stdout */
    if (system(cmd) != 0) {
        fprintf(stderr, "dbus_forward: dbus-send failed\n");
        return 0;
    }
    printf("dbus-send listed the names through the forward\n");
    return 1;
}

int main(int argc, char **argv)
{
    const char *bus_url = argc > 1 ? argv[1] : "dbus:session";
    const char *listen_url = argc > 2 ? argv[2] : "tcp://127.0.0.1:0";
    if (argc > 3) {
        fprintf(stderr, "usage: dbus_forward [BUS_URL [LISTEN_URL]]\n");
        return 2;
    }

    /* 1. The bus. dbus:system and dbus:session read DBUS_SYSTEM_BUS_ADDRESS /
     *    DBUS_SESSION_BUS_ADDRESS (or their defaults) now and at each connect;
     *    a malformed dbus:ADDRESS is refused here. */
    jw_network *bus = NULL;
    jw_status st = jw_network_new(bus_url, &bus);
    if (st != JW_OK) {
        fail("jw_network_new", st);
        return 1;
    }
    char bus_address[512];
    st = jw_network_address(bus, bus_address, sizeof bus_address);
    if (st != JW_OK) {
        fail("jw_network_address", st);
        jw_network_free(bus);
        return 1;
    }
    printf("bus: %s\n", bus_address);

    /* 2. The forward. The listener copies the network, which can go now. */
    jw_listener *listener = NULL;
    st = jw_listen(listen_url, bus, &listener);
    jw_network_free(bus);
    if (st != JW_OK) {
        fail("jw_listen", st);
        return 1;
    }
    char listen_address[512], dbus_address[512];
    st = jw_listener_address(listener, listen_address, sizeof listen_address);
    if (st == JW_OK) {
        st = jw_listener_dbus_address(listener, dbus_address, sizeof dbus_address);
    }
    if (st != JW_OK) {
        fail("reading the listener's addresses", st);
        jw_listener_close(listener);
        return 1;
    }
    printf("forwarding %s -> %s\n", listen_address, bus_url);
    printf("DBUS_SESSION_BUS_ADDRESS=%s\n", dbus_address);

    /* 3. Use it: by hand through jumpwire, then with an ordinary client. */
    int ok = probe_auth(listen_address) && list_names(dbus_address);

    /* 4. Closing the listener ends every forwarded connection. */
    jw_listener_close(listener);
    printf("%s\n", ok ? "dbus forward: OK" : "dbus forward: FAILED");
    return ok ? 0 : 1;
}
