/*
 * router_forward: forward a local TCP port onto router streams, the way
 * `j network forward-tcp` reaches a device behind an exporter.
 *
 *     router_forward [TARGET_URL] [CONNECTIONS]
 *         TARGET_URL   the network the exporter exports: echo: (the default)
 *                      or e.g. tcp://127.0.0.1:7 (a TCP echo service)
 *         CONNECTIONS  how many local connections to make, one after the
 *                      other (default 2)
 *
 * 1. jw_router_serve() starts an embedded router. This pairing of raw router
 *    streams by one token works only with jumpwire at both ends (this
 *    program's exporter thread): in a Jumpstarter lab the exporter is
 *    upstream's, whose router streams carry an HTTP/2 session, not the
 *    device's bytes, and whose tokens the controller mints per Dial. There,
 *    reach a device's driver through the session instead:
 *    `jumpstarter:?driver=NAME` (see lab_connect.c);
 * 2. jw_network_router() makes a network whose streams go through that router
 *    with a stream token; jw_listen() forwards a local port onto it: every
 *    connection accepted dials the router with the token;
 * 3. an exporter thread calls jw_router_export() once per connection: the
 *    router pairs each of its calls with the next forwarded connection (the
 *    same token pairs again once a pair has ended);
 * 4. a plain TCP client (it could be any program: telnet, a VNC viewer)
 *    connects to the local port and talks to the target.
 *
 * Build: cc router_forward.c -Iinclude -Ltarget/release -ljumpwire -pthread
 * Exits 0 when every connection made its round trip and saw the end of
 * stream come back, 1 otherwise.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jumpwire.h"

#define TIMEOUT_MS 10000
#define KEY "router-forward-key"

static char router_url[128];
static char token[1024];
static jw_network *target;
static int connections = 2;
static jw_status export_status = JW_OK;

static int fail(const char *what, jw_status st)
{
    fprintf(stderr, "router_forward: %s failed with %s (%d): %s\n", what, jw_status_str(st), (int)st, jw_last_error());
    return 1;
}

/* The exporter: one jw_router_export per connection, one after the other. */
static void *exporter(void *arg)
{
    (void)arg;
    for (int i = 0; i < connections && export_status == JW_OK; i++) {
        export_status = jw_router_export(router_url, token, target, TIMEOUT_MS);
    }
    return NULL;
}

/* One local connection: a round trip, a half-close, the end coming back. */
static int use_connection(const char *address, int i)
{
    jw_stream *s = NULL;
    jw_status st = jw_connect(address, TIMEOUT_MS, &s);
    if (st != JW_OK) {
        return fail("jw_connect", st);
    }
    char msg[64];
    int len = snprintf(msg, sizeof msg, "connection %d through the router", i + 1);
    st = jw_stream_send(s, msg, (size_t)len, TIMEOUT_MS);
    if (st != JW_OK) {
        jw_stream_close(s);
        return fail("send", st);
    }
    char back[64];
    size_t got = 0;
    while (got < (size_t)len) {
        size_t n = 0;
        st = jw_stream_receive(s, back + got, (size_t)len - got, &n, TIMEOUT_MS);
        if (st != JW_OK) {
            jw_stream_close(s);
            return fail("receive", st);
        }
        got += n;
    }
    if (memcmp(back, msg, (size_t)len) != 0) {
        fprintf(stderr, "router_forward: sent \"%s\", got back \"%.*s\"\n", msg, len, back);
        jw_stream_close(s);
        return 1;
    }
    printf("round trip: \"%.*s\"\n", len, back);
    st = jw_stream_send_eof(s);
    if (st == JW_OK) {
        size_t n = 0;
        st = jw_stream_receive(s, back, sizeof back, &n, TIMEOUT_MS);
    }
    jw_stream_close(s);
    if (st != JW_EOF) {
        return fail("waiting for the end of stream", st);
    }
    printf("end of stream came back\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *target_url = argc > 1 ? argv[1] : "echo:";
    if (argc > 2) {
        connections = atoi(argv[2]);
        if (connections < 1) {
            fprintf(stderr, "router_forward: CONNECTIONS must be a positive number\n");
            return 1;
        }
    }
    jw_router *router = NULL;
    jw_status st = jw_router_serve("grpc://127.0.0.1:0?key=" KEY, &router);
    if (st != JW_OK) {
        return fail("jw_router_serve", st);
    }
    st = jw_router_address(router, router_url, sizeof router_url);
    if (st == JW_OK) {
        st = jw_router_token(KEY, "forward-stream", 60, token, sizeof token);
    }
    if (st != JW_OK) {
        jw_router_close(router);
        return fail("setting up the router", st);
    }

    /* The routed network, and a local port forwarded onto it. The listener
     * copies the network, so it can be freed at once. */
    jw_network *routed = NULL;
    st = jw_network_router(router_url, token, &routed);
    if (st != JW_OK) {
        jw_router_close(router);
        return fail("jw_network_router", st);
    }
    jw_listener *listener = NULL;
    st = jw_listen("tcp://127.0.0.1:0", routed, &listener);
    jw_network_free(routed);
    char address[128];
    if (st == JW_OK) {
        st = jw_listener_address(listener, address, sizeof address);
    }
    if (st != JW_OK) {
        jw_listener_close(listener);
        jw_router_close(router);
        return fail("jw_listen", st);
    }
    printf("forwarding %s -> %s -> exporter -> %s\n", address, router_url, target_url);

    st = jw_network_new(target_url, &target);
    if (st != JW_OK) {
        jw_listener_close(listener);
        jw_router_close(router);
        return fail("jw_network_new", st);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, exporter, NULL) != 0) {
        fprintf(stderr, "router_forward: pthread_create failed\n");
        return 1;
    }

    int failed = 0;
    for (int i = 0; i < connections && !failed; i++) {
        failed = use_connection(address, i);
    }
    /* Closing the router ends an exporter call still waiting for a peer. */
    jw_listener_close(listener);
    jw_router_close(router);
    pthread_join(t, NULL);
    jw_network_free(target);
    if (!failed && export_status != JW_OK) {
        failed = fail("jw_router_export", export_status);
    }
    if (!failed) {
        printf("router forward: OK\n");
    }
    return failed;
}
