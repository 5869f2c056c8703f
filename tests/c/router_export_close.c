/*
 * router_export_close: the stoppable router export (jw_router_export_start,
 * _running, _close) and the lab exporter's argument checks, from C.
 *
 * 1. An export of the echo network (freed by the caller right after the
 *    start: the export holds a copy) serves one client, then the next with
 *    the same token; jw_router_export_close with a client paired returns
 *    within 3 s and that client's stream ends or fails.
 * 2. An export with no client coming closes at once (within 1 s).
 * 3. Bad arguments: not a router URL, NULL out, a missing exporter
 *    configuration, a NULL session.
 *
 * alarm(60) bounds the program. Prints one line per failed check and a
 * summary; exits 1 if any failed. Run by tests/suite/c_examples.rs.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define KEY "export-close-key"

#undef CHECK
#define CHECK(cond, what) check_at(__FILE__, __LINE__, (cond), (what))

static jw_stream *client(const char *router, const char *tok, const char *msg)
{
    jw_stream *c = NULL;
    if (!CHECK(jw_router_connect(router, tok, 10000, &c) == JW_OK, "client connects")) {
        fprintf(stderr, "  %s\n", jw_last_error());
        return NULL;
    }
    size_t len = strlen(msg), got = 0, n = 0;
    char buf[64];
    CHECK(jw_stream_send(c, msg, len, 10000) == JW_OK, "client sends");
    while (got < len && jw_stream_receive(c, buf + got, sizeof buf - got, &n, 10000) == JW_OK) {
        got += n;
    }
    CHECK(got == len && memcmp(buf, msg, len) == 0, "the echo comes back");
    return c;
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    alarm(60);
    jw_router *r = NULL;
    if (jw_router_serve("grpc://127.0.0.1:0?key=" KEY, &r) != JW_OK) {
        fprintf(stderr, "jw_router_serve: %s\n", jw_last_error());
        return 2;
    }
    char router[128], tok[1024];
    CHECK(jw_router_address(r, router, sizeof router) == JW_OK, "jw_router_address");
    CHECK(jw_router_token(KEY, "export-close", 60, tok, sizeof tok) == JW_OK, "jw_router_token");

    /* 1. Two clients one after another, then a close with one paired. */
    jw_network *echo = NULL;
    CHECK(jw_network_new("echo:", &echo) == JW_OK, "jw_network_new echo:");
    jw_router_exporter *x = NULL;
    CHECK(jw_router_export_start(router, tok, echo, &x) == JW_OK, "jw_router_export_start");
    jw_network_free(echo);
    CHECK(jw_router_export_running(x) == 1, "the export runs");
    jw_stream *c = client(router, tok, "first client");
    if (c != NULL) {
        jw_stream_close(c);
    }
    c = client(router, tok, "second client");
    double t0 = now_ms();
    jw_router_export_close(x);
    double took = now_ms() - t0;
    CHECK(took < 3000 + slack_ms(), "close with a client paired returns within 3 s");
    if (c != NULL) {
        char buf[16];
        size_t n = 0;
        jw_status st = jw_stream_send(c, "after", 5, 2000);
        if (st == JW_OK) {
            st = jw_stream_receive(c, buf, sizeof buf, &n, 5000);
        }
        CHECK(st != JW_OK && st != JW_TIMEOUT, "the paired client's stream ends or fails");
        jw_stream_close(c);
    }
    CHECK(jw_router_export_running(x) == 0, "a closed handle is not running");

    /* 2. No client: close at once. */
    CHECK(jw_network_new("echo:", &echo) == JW_OK, "jw_network_new echo:");
    CHECK(jw_router_export_start(router, tok, echo, &x) == JW_OK, "jw_router_export_start");
    t0 = now_ms();
    jw_router_export_close(x);
    took = now_ms() - t0;
    CHECK(took < 1000 + slack_ms(), "close while waiting for a client returns within 1 s");

    /* 3. Bad arguments. */
    CHECK(jw_router_export_start("http://127.0.0.1:1", tok, echo, &x) == JW_ERR_INVALID_ARGUMENT,
          "not a router URL");
    CHECK(jw_router_export_start(router, tok, echo, NULL) == JW_ERR_INVALID_ARGUMENT, "NULL out");
    CHECK(jw_router_export_start(router, "", echo, &x) == JW_ERR_INVALID_ARGUMENT, "empty token");
    jw_network_free(echo);
    jw_session *s = NULL;
    CHECK(jw_session_serve("tcp://127.0.0.1:0", NULL, NULL, 0, &s) == JW_OK, "jw_session_serve");
    jw_exporter *e = NULL;
    CHECK(jw_exporter_start("/nonexistent/exporter.yaml", s, &e) == JW_ERR_INVALID_ARGUMENT,
          "a missing exporter configuration");
    CHECK(jw_exporter_start("/nonexistent/exporter.yaml", NULL, &e) == JW_ERR_INVALID_ARGUMENT,
          "a NULL session");
    jw_exporter_close(NULL);
    jw_router_export_close(NULL);
    jw_session_close(s);

    jw_router_close(r);
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
