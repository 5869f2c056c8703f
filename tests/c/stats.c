/*
 * stats: jw_stream_stats counts what a stream carried: sends and receives on
 * the caller's thread, and the bytes jw_forward moved (spliced, never seen
 * by a send or receive); jw_listener_stats and jw_ws_server_stats count a
 * server's connections and the bytes they carried.
 *
 * Prints "N checks, 0 failed"; exits 1 if any check failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static int checks;
static int failures;


/* A one-connection TCP server: sends 1000 bytes, ends its side, then counts
 * what comes back until the end. */
struct server {
    int lfd;
    size_t got_back;
    pthread_t thread;
};

static void *server_main(void *arg)
{
    struct server *s = arg;
    int c = accept(s->lfd, NULL, NULL);
    if (c < 0) {
        return NULL;
    }
    static char kb[1000];
    if (write(c, kb, sizeof kb) == (ssize_t)sizeof kb) {
        shutdown(c, SHUT_WR);
        char buf[4096];
        ssize_t n;
        while ((n = read(c, buf, sizeof buf)) > 0) {
            s->got_back += (size_t)n;
        }
    }
    close(c);
    return NULL;
}

static void server_start(struct server *s, char *url, size_t cap)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    s->got_back = 0;
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->lfd, 1) != 0 ||
        getsockname(s->lfd, (struct sockaddr *)&a, &len) != 0) {
        perror("stats: server");
    }
    snprintf(url, cap, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    pthread_create(&s->thread, NULL, server_main, s);
}

/* Polls the server counts (what a relay counts may lag the bytes the client
 * already has) until `ok` holds, for at most 5 s. */
typedef jw_status (*stats_fn)(const void *, jw_server_stats_t *);

static jw_status listener_stats(const void *l, jw_server_stats_t *out)
{
    return jw_listener_stats(l, out);
}

static jw_status ws_stats(const void *w, jw_server_stats_t *out)
{
    return jw_ws_server_stats(w, out);
}

static jw_status router_stats(const void *r, jw_server_stats_t *out)
{
    return jw_router_stats(r, out);
}

static int stats_reach(stats_fn f, const void *h, uint64_t accepted, uint64_t active, uint64_t refused,
                       uint64_t received, uint64_t sent)
{
    jw_server_stats_t s;
    for (int i = 0; i < 500; i++) {
        memset(&s, 0x5a, sizeof s);
        if (f(h, &s) != JW_OK) {
            return 0;
        }
        if (s.accepted == accepted && s.active == active && s.refused == refused && s.bytes_received == received &&
            s.bytes_sent == sent) {
            return 1;
        }
        struct timespec ten = {0, 10000000L};
        nanosleep(&ten, NULL);
    }
    fprintf(stderr,
            "stats: accepted %llu active %llu refused %llu received %llu sent %llu, "
            "expected %llu %llu %llu %llu %llu\n",
            (unsigned long long)s.accepted, (unsigned long long)s.active, (unsigned long long)s.refused,
            (unsigned long long)s.bytes_received, (unsigned long long)s.bytes_sent, (unsigned long long)accepted,
            (unsigned long long)active, (unsigned long long)refused, (unsigned long long)received,
            (unsigned long long)sent);
    return 0;
}

/* A websocket handler that echoes each message until the client ends. */
static void echo_handler(jw_stream *conn, void *user)
{
    (void)user;
    char buf[256];
    size_t n;
    while (jw_stream_receive(conn, buf, sizeof buf, &n, -1) == JW_OK) {
        if (jw_stream_send(conn, buf, n, 5000) != JW_OK) {
            return;
        }
    }
}

struct fwd {
    jw_stream *a, *b;
    jw_status st;
};

static void *run_forward(void *arg)
{
    struct fwd *f = arg;
    f->st = jw_forward(f->a, f->b);
    return NULL;
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    jw_stream_stats_t st;
    memset(&st, 0x5a, sizeof st);

    /* Sends and receives on an echo stream. */
    jw_stream *e = NULL;
    CHECK(jw_connect("echo:", 1000, &e) == JW_OK);
    CHECK(jw_stream_stats(e, &st) == JW_OK);
    CHECK(st.bytes_sent == 0 && st.bytes_received == 0 && st.messages_sent == 0 && st.messages_received == 0);
    CHECK(jw_stream_send(e, "abc", 3, 1000) == JW_OK);
    CHECK(jw_stream_send(e, "defgh", 5, 1000) == JW_OK);
    char buf[64];
    size_t n = 0, got = 0;
    while (got < 8 && jw_stream_receive(e, buf, sizeof buf, &n, 1000) == JW_OK) {
        got += n;
    }
    CHECK(jw_stream_stats(e, &st) == JW_OK);
    CHECK(st.bytes_sent == 8 && st.messages_sent == 2);
    CHECK(st.bytes_received == 8 && st.messages_received >= 1);
    CHECK(jw_stream_stats(e, NULL) == JW_ERR_INVALID_ARGUMENT);
    CHECK(jw_stream_stats(NULL, &st) == JW_ERR_INVALID_ARGUMENT);
    jw_stream_close(e);

    /* jw_forward between two sockets (spliced, no send or receive sees the
     * bytes): a's peer is a raw server that sends 1000 bytes, ends, and reads
     * what comes back; b's peer is a listener onto echo:. */
    jw_network *echo = NULL;
    jw_listener *l = NULL;
    char addr[128];
    CHECK(jw_network_new("echo:", &echo) == JW_OK);
    CHECK(jw_listen("tcp://127.0.0.1:0", echo, &l) == JW_OK);
    CHECK(jw_listener_address(l, addr, sizeof addr) == JW_OK);
    struct server srv;
    char url[64];
    server_start(&srv, url, sizeof url);
    struct fwd f = {NULL, NULL, JW_OK};
    CHECK(jw_connect(url, 5000, &f.a) == JW_OK);
    CHECK(jw_connect(addr, 5000, &f.b) == JW_OK);
    pthread_t t;
    pthread_create(&t, NULL, run_forward, &f);
    pthread_join(t, NULL);
    pthread_join(srv.thread, NULL);
    close(srv.lfd);
    CHECK(f.st == JW_OK);
    CHECK(srv.got_back == 1000);
    jw_stream_stats_t sa, sb;
    jw_server_stats_t ss;
    CHECK(jw_stream_stats(f.a, &sa) == JW_OK);
    CHECK(jw_stream_stats(f.b, &sb) == JW_OK);
    printf("stats: jw_forward moved %llu bytes out of a and %llu into it\n", (unsigned long long)sa.bytes_received,
           (unsigned long long)sa.bytes_sent);
    CHECK(sa.bytes_received == 1000 && sa.bytes_sent == 1000);
    CHECK(sb.bytes_received == 1000 && sb.bytes_sent == 1000);
    jw_stream_close(f.a);
    jw_stream_close(f.b);
    jw_listener_close(l);
    jw_network_free(echo);

    /* Listener and router counts. */
    CHECK(jw_network_new("echo:", &echo) == JW_OK);
    CHECK(jw_listen("tcp://127.0.0.1:0?max_connections=1", echo, &l) == JW_OK);
    CHECK(jw_listener_address(l, addr, sizeof addr) == JW_OK);
    uint64_t count = 99;
    CHECK(jw_listener_connections(l, &count) == JW_OK && count == 0);
    jw_stream *c1 = NULL, *c2 = NULL;
    CHECK(jw_connect(addr, 5000, &c1) == JW_OK);
    CHECK(jw_stream_send(c1, "x", 1, 5000) == JW_OK);
    CHECK(jw_stream_receive(c1, buf, sizeof buf, &n, 5000) == JW_OK);
    CHECK(jw_listener_connections(l, &count) == JW_OK && count == 1);
    CHECK(stats_reach(listener_stats, l, 1, 1, 0, 1, 1));
    /* The second is over max_connections: reset (the reset may already
     * reach the connect on a slow machine), and counted before that. */
    jw_status st2 = jw_connect(addr, 5000, &c2);
    if (st2 == JW_OK) {
        st2 = jw_stream_receive(c2, buf, sizeof buf, &n, 5000);
    }
    CHECK(st2 == JW_ERR_CONNECTION || st2 == JW_EOF);
    CHECK(jw_listener_refused(l, &count) == JW_OK && count == 1);
    CHECK(jw_listener_refused(l, NULL) == JW_ERR_INVALID_ARGUMENT);
    CHECK(jw_listener_stats(l, NULL) == JW_ERR_INVALID_ARGUMENT);
    CHECK(jw_listener_stats(NULL, &ss) == JW_ERR_INVALID_ARGUMENT);
    jw_stream_close(c2);
    /* More bytes, then the end: the counts keep an ended connection's
     * bytes. */
    CHECK(jw_stream_send(c1, "yz", 2, 5000) == JW_OK);
    for (got = 0; got < 2 && jw_stream_receive(c1, buf, sizeof buf, &n, 5000) == JW_OK;) {
        got += n;
    }
    CHECK(got == 2);
    jw_stream_close(c1);
    CHECK(stats_reach(listener_stats, l, 1, 0, 1, 3, 3));
    jw_listener_close(l);
    CHECK(jw_listener_refused(l, &count) == JW_ERR_CLOSED);
    CHECK(jw_listener_stats(l, &ss) == JW_ERR_CLOSED);
    jw_network_free(echo);

    /* A websocket server: what handlers and broadcasts carried. */
    jw_ws_server *w = NULL;
    CHECK(jw_ws_serve("ws://127.0.0.1:0", echo_handler, NULL, &w) == JW_OK);
    CHECK(jw_ws_server_address(w, addr, sizeof addr) == JW_OK);
    CHECK(stats_reach(ws_stats, w, 0, 0, 0, 0, 0));
    jw_stream *wc = NULL;
    CHECK(jw_connect(addr, 5000, &wc) == JW_OK);
    CHECK(jw_stream_send(wc, "hello", 5, 5000) == JW_OK);
    CHECK(jw_stream_receive(wc, buf, sizeof buf, &n, 5000) == JW_OK && n == 5);
    CHECK(stats_reach(ws_stats, w, 1, 1, 0, 5, 5));
    CHECK(jw_ws_broadcast(w, "all", 3) == JW_OK);
    CHECK(jw_stream_receive(wc, buf, sizeof buf, &n, 5000) == JW_OK && n == 3);
    CHECK(stats_reach(ws_stats, w, 1, 1, 0, 5, 8));
    jw_stream_close(wc);
    CHECK(stats_reach(ws_stats, w, 1, 0, 0, 5, 8));
    CHECK(jw_ws_server_stats(w, NULL) == JW_ERR_INVALID_ARGUMENT);
    jw_ws_server_close(w);
    CHECK(jw_ws_server_stats(w, &ss) == JW_ERR_CLOSED);

    jw_router *r = NULL;
    CHECK(jw_router_serve("grpc://127.0.0.1:0?key=k", &r) == JW_OK);
    CHECK(jw_router_refused(r, &count) == JW_OK && count == 0);
    CHECK(jw_router_address(r, addr, sizeof addr) == JW_OK);
    /* Garbage instead of HTTP/2: closed and counted. */
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in ra;
    memset(&ra, 0, sizeof ra);
    ra.sin_family = AF_INET;
    ra.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ra.sin_port = htons((unsigned short)atoi(colon + 1));
    int g = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(g, (struct sockaddr *)&ra, sizeof ra) == 0);
    CHECK(write(g, "garbage, not HTTP/2\r\n\r\n", 23) == 23);
    char tmp[64];
    while (read(g, tmp, sizeof tmp) > 0) {
    }
    close(g);
    for (int i = 0; i < 300 && jw_router_refused(r, &count) == JW_OK && count == 0; i++) {
        struct timespec ten = {0, 10000000L};
        nanosleep(&ten, NULL);
    }
    CHECK(count == 1);
    /* A pair: two calls admitted and open, the bytes relayed counted. */
    char token[1024];
    CHECK(jw_router_token("k", "pair-1", 60, token, sizeof token) == JW_OK);
    jw_stream *pa = NULL, *pb = NULL;
    CHECK(jw_router_connect(addr, token, 5000, &pa) == JW_OK);
    CHECK(jw_router_connect(addr, token, 5000, &pb) == JW_OK);
    CHECK(jw_stream_send(pa, "hello", 5, 5000) == JW_OK);
    for (got = 0; got < 5 && jw_stream_receive(pb, buf, sizeof buf, &n, 5000) == JW_OK;) {
        got += n;
    }
    CHECK(got == 5);
    CHECK(stats_reach(router_stats, r, 2, 2, 1, 5, 5));
    jw_stream_close(pa);
    jw_stream_close(pb);
    CHECK(stats_reach(router_stats, r, 2, 0, 1, 5, 5));
    CHECK(jw_router_stats(r, NULL) == JW_ERR_INVALID_ARGUMENT);
    jw_router_close(r);
    CHECK(jw_router_stats(r, &ss) == JW_ERR_CLOSED);

    return summary("stats");
}
