/*
 * router_export: the whole routed path in one program.
 *
 *     router_export [TARGET_URL]
 *         TARGET_URL  the network the exporter exports: echo: (the default)
 *                     or e.g. tcp://127.0.0.1:7 (a TCP echo service)
 *
 * 1. jw_router_serve() starts an embedded router on a free port;
 * 2. jw_router_token() mints a stream token, as the Jumpstarter controller
 *    does, signed with the router's key;
 * 3. an exporter thread calls jw_router_export(): it dials the router with
 *    the token, opens a stream of TARGET_URL and forwards both ways;
 * 4. the client dials the router with the same token (jw_router_connect), so
 *    the router pairs it with the exporter, and exchanges data with the
 *    target through router and exporter; jw_stream_send_eof() ends it, and
 *    the end comes back once the target has finished.
 *
 * Build: cc router_export.c -Iinclude -Ltarget/release -ljumpwire -pthread
 * Exits 0 when the round trip and the end of stream came back, 1 otherwise.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "jumpwire.h"

#define TIMEOUT_MS 10000
#define KEY "router-example-key"

static char router_url[128];
static char token[1024];
static jw_network *target;
static jw_status export_status;

static int fail(const char *what, jw_status st)
{
    fprintf(stderr, "router_export: %s failed with %s (%d): %s\n", what, jw_status_str(st), (int)st, jw_last_error());
    return 1;
}

static void *exporter(void *arg)
{
    (void)arg;
    export_status = jw_router_export(router_url, token, target, TIMEOUT_MS);
    return NULL;
}

/* Receives exactly len bytes into buf; 0 on success. */
static int receive_all(jw_stream *s, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        size_t n = 0;
        jw_status st = jw_stream_receive(s, buf + got, len - got, &n, TIMEOUT_MS);
        if (st != JW_OK) {
            return fail("receive", st);
        }
        got += n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *target_url = argc > 1 ? argv[1] : "echo:";
    jw_router *router = NULL;
    jw_status st = jw_router_serve("grpc://127.0.0.1:0?key=" KEY, &router);
    if (st != JW_OK) {
        return fail("jw_router_serve", st);
    }
    st = jw_router_address(router, router_url, sizeof router_url);
    if (st != JW_OK) {
        return fail("jw_router_address", st);
    }
    printf("router listening on %s\n", router_url);
    st = jw_router_token(KEY, "example-stream", 60, token, sizeof token);
    if (st != JW_OK) {
        return fail("jw_router_token", st);
    }
    printf("minted a %zu-byte token for stream \"example-stream\"\n", strlen(token));
    st = jw_network_new(target_url, &target);
    if (st != JW_OK) {
        return fail("jw_network_new", st);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, exporter, NULL) != 0) {
        fprintf(stderr, "router_export: pthread_create failed\n");
        return 1;
    }
    printf("exporter exporting %s through the router\n", target_url);

    jw_stream *s = NULL;
    st = jw_router_connect(router_url, token, TIMEOUT_MS, &s);
    if (st != JW_OK) {
        return fail("jw_router_connect", st);
    }
    static const char msg[] = "hello through the router";
    char back[sizeof msg];
    st = jw_stream_send(s, msg, sizeof msg - 1, TIMEOUT_MS);
    if (st != JW_OK) {
        return fail("send", st);
    }
    if (receive_all(s, back, sizeof msg - 1) != 0) {
        return 1;
    }
    back[sizeof msg - 1] = '\0';
    if (strcmp(back, msg) != 0) {
        fprintf(stderr, "router_export: got \"%s\" back\n", back);
        return 1;
    }
    printf("round trip through router and exporter: \"%s\"\n", back);
    st = jw_stream_send_eof(s);
    if (st != JW_OK) {
        return fail("send_eof", st);
    }
    size_t n = 0;
    st = jw_stream_receive(s, back, sizeof back, &n, TIMEOUT_MS);
    if (st != JW_EOF) {
        return fail("waiting for the end of stream", st);
    }
    printf("end of stream came back\n");
    jw_stream_close(s);
    pthread_join(t, NULL);
    if (export_status != JW_OK) {
        return fail("jw_router_export", export_status);
    }
    printf("exporter finished\n");
    jw_network_free(target);
    jw_router_close(router);
    printf("router export: OK\n");
    return 0;
}
