/*
 * sigpipe: a C host with the default SIGPIPE disposition survives every write
 * the library makes into a peer that has gone.
 *
 * A plain C program does not ignore SIGPIPE; a write into a socket whose peer
 * has closed or reset raises it and the default action ends the process. Each
 * case below drives one of the library's write paths into a dead peer: on the
 * caller's thread (stream sends, the websocket close frame, jw_forward) and on
 * the library's own threads (the background flusher, websocket connection and
 * broadcast writer threads, the bridge, the port forward, the router client
 * and exporter, the jw-export thread), over plain TCP and over TLS (grpcs://,
 * wss://). The process must stay alive and each call that fails must
 * say so with a status (JW_ERR_CONNECTION or JW_ERR_IO; JW_ERR_CLOSED where
 * this side closed first).
 *
 * Prints one line per failed check and "N checks, 0 failed"; exits 1 if any
 * check failed. An alarm ends a hung run. Run by tests/suite/c_examples.rs against
 * the shared and the static library, with the arguments PYTHON WS_PEER_PY CERT
 * KEY for the wss:// server (a Python process, as jw_ws_serve has no TLS).
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define TIMEOUT_MS 5000
#define CHUNK (64 * 1024)

static int checks;
static int failures;
static char chunk[CHUNK];


/* A failure that says the peer is gone. */
static int peer_gone(jw_status st)
{
    return st == JW_ERR_CONNECTION || st == JW_ERR_IO;
}

/* Waits until *counter reaches want, at most ms; returns whether it did. */
static int wait_count(atomic_int *counter, int want, long ms)
{
    for (long waited = 0; waited < ms; waited += 5) {
        if (atomic_load(counter) >= want) {
            return 1;
        }
        sleep_ms(5);
    }
    return atomic_load(counter) >= want;
}

/* The port in "scheme://127.0.0.1:PORT[/]". */
static int port_of(const char *url)
{
    const char *colon = strrchr(url, ':');
    return colon ? atoi(colon + 1) : 0;
}

/* Sends CHUNKs until a send fails (at most 400 of them); returns that status. */
static jw_status send_until_error(jw_stream *s)
{
    jw_status st = JW_OK;
    for (int i = 0; i < 400 && st == JW_OK; i++) {
        st = jw_stream_send(s, chunk, sizeof chunk, TIMEOUT_MS);
    }
    return st;
}

/* A TCP target that accepts one connection, reads up to `before` bytes, then
 * resets it. */
struct resetter {
    int lfd;
    size_t before;
    pthread_t thread;
};

static void *resetter_main(void *arg)
{
    struct resetter *r = arg;
    int c = accept(r->lfd, NULL, NULL);
    if (c < 0) {
        return NULL;
    }
    size_t got = 0;
    while (got < r->before) {
        char buf[4096];
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    reset_close(c);
    return NULL;
}

/* Starts a resetter target; its URL goes to url. */
static void resetter_start(struct resetter *r, size_t before, char *url, size_t cap)
{
    int port;
    r->lfd = tcp_listen(&port);
    r->before = before;
    snprintf(url, cap, "tcp://127.0.0.1:%d", port);
    pthread_create(&r->thread, NULL, resetter_main, r);
}

/* Starts a resetter target (it resets after 4 KiB) and returns a network
 * of it. */
static jw_network *resetter_network(struct resetter *r)
{
    char url[64];
    resetter_start(r, 4096, url, sizeof url);
    jw_network *n = NULL;
    CHECK(jw_network_new(url, &n) == JW_OK);
    return n;
}

static void resetter_join(struct resetter *r)
{
    pthread_join(r->thread, NULL);
    close(r->lfd);
}

/* 1. A TCP stream whose peer has reset: every later send fails, none kills. */
static void tcp_stream_into_a_reset_peer(void)
{
    int port, lfd = tcp_listen(&port);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    jw_stream *s = NULL;
    CHECK(jw_connect(url, TIMEOUT_MS, &s) == JW_OK);
    reset_close(accept(lfd, NULL, NULL));
    sleep_ms(20);
    jw_status st = send_until_error(s);
    CHECK(peer_gone(st));
    CHECK(peer_gone(jw_stream_send(s, "x", 1, TIMEOUT_MS)));
    jw_stream_close(s);
    close(lfd);
}

/* 2. A Unix stream whose peer has closed (also the D-Bus transport). */
static void unix_and_dbus_streams_into_a_closed_peer(void)
{
    char path[108];
    snprintf(path, sizeof path, "/tmp/jw-sigpipe-%ld.sock", (long)getpid());
    unlink(path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4) != 0) {
        perror("sigpipe: unix listen");
        exit(2);
    }
    char url[160];
    const char *forms[] = {"unix:%s", "dbus:unix:path=%s"};
    for (int i = 0; i < 2; i++) {
        snprintf(url, sizeof url, forms[i], path);
        jw_stream *s = NULL;
        CHECK(jw_connect(url, TIMEOUT_MS, &s) == JW_OK);
        close(accept(lfd, NULL, NULL));
        CHECK(peer_gone(send_until_error(s)));
        jw_stream_close(s);
    }
    close(lfd);
    unlink(path);
}

/* 3. A send left to the background flusher (jw-flush) when the peer resets,
 *    and a close that waits for it. */
static void the_flusher_into_a_reset_peer(void)
{
    int port, lfd = tcp_listen(&port);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    jw_stream *s = NULL;
    CHECK(jw_connect(url, TIMEOUT_MS, &s) == JW_OK);
    int peer = accept(lfd, NULL, NULL);
    /* Nobody reads: part of the 64 MiB goes out (more than any socket
     * buffers hold), the rest is flushed in the background. */
    size_t big = 64u << 20;
    char *data = calloc(1, big);
    CHECK(jw_stream_send(s, data, big, 200) == JW_OK);
    /* jw_stream_flush tells whether it went: not yet... */
    CHECK(jw_stream_flush(s, 100) == JW_TIMEOUT);
    reset_close(peer);
    /* ...and then that it never will. */
    CHECK(peer_gone(jw_stream_flush(s, TIMEOUT_MS)));
    /* The socket's failure comes back at the next send too. */
    CHECK(peer_gone(jw_stream_send(s, "x", 1, TIMEOUT_MS)));
    jw_stream_close(s);
    free(data);

    /* The flusher's failure comes back at the next send when nobody asked. */
    big = 8u << 20;
    CHECK(jw_connect(url, TIMEOUT_MS, &s) == JW_OK);
    peer = accept(lfd, NULL, NULL);
    data = calloc(1, big);
    CHECK(jw_stream_send(s, data, big, 200) == JW_OK);
    reset_close(peer);
    sleep_ms(50);
    CHECK(peer_gone(jw_stream_send(s, "x", 1, TIMEOUT_MS)));
    jw_stream_close(s);
    free(data);

    /* The same, closed while the flusher still runs. */
    CHECK(jw_connect(url, TIMEOUT_MS, &s) == JW_OK);
    peer = accept(lfd, NULL, NULL);
    data = calloc(1, big);
    CHECK(jw_stream_send(s, data, big, 200) == JW_OK);
    reset_close(peer);
    jw_stream_close(s);
    free(data);
    close(lfd);
}

/* 4. A sender thread blocked in a send when another thread closes the
 *    stream, or when the peer resets under it. The send is larger than any
 *    socket buffer and the peer reads nothing, so once bytes have reached the
 *    peer the sender is inside jw_stream_send until something ends it (no
 *    call starts after the close: that would use a freed handle). */
struct sender {
    jw_stream *s;
    char *data;
    size_t len;
    jw_status last;
};

static void *sender_main(void *arg)
{
    struct sender *x = arg;
    x->last = jw_stream_send(x->s, x->data, x->len, -1);
    return NULL;
}

/* Waits until bytes are queued at fd (at most ms). */
static int wait_readable(int fd, long ms)
{
    for (long waited = 0; waited < ms; waited += 5) {
        char b;
        if (recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1) {
            return 1;
        }
        sleep_ms(5);
    }
    return 0;
}

static void a_sender_while_another_thread_closes(void)
{
    int port, lfd = tcp_listen(&port);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    size_t len = 64u << 20;
    char *data = calloc(1, len);
    for (int round = 0; round < 10; round++) {
        struct sender x = {NULL, data, len, JW_OK};
        CHECK(jw_connect(url, TIMEOUT_MS, &x.s) == JW_OK);
        int peer = accept(lfd, NULL, NULL);
        pthread_t t;
        pthread_create(&t, NULL, sender_main, &x);
        CHECK(wait_readable(peer, TIMEOUT_MS));
        if (round % 2) {
            /* The peer resets under the blocked send. */
            reset_close(peer);
            pthread_join(t, NULL);
            CHECK(peer_gone(x.last));
            jw_stream_close(x.s);
        } else {
            /* Another thread closes the stream under the blocked send. */
            jw_stream_close(x.s);
            pthread_join(t, NULL);
            CHECK(x.last == JW_ERR_CLOSED || peer_gone(x.last));
            close(peer);
        }
    }
    free(data);
    close(lfd);
}

/* Websocket helpers: a raw client that does the upgrade by hand. */
static const char UPGRADE[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";

/* Sends the upgrade request and, if wait_reply, reads the 101 answer. */
static int ws_raw_client(int port, int wait_reply)
{
    int fd = tcp_dial(port);
    if (write(fd, UPGRADE, sizeof UPGRADE - 1) != (ssize_t)(sizeof UPGRADE - 1)) {
        return fd;
    }
    if (wait_reply) {
        char buf[1024];
        size_t got = 0;
        while (got < sizeof buf - 1) {
            ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
            if (n <= 0) {
                break;
            }
            got += (size_t)n;
            buf[got] = 0;
            if (strstr(buf, "\r\n\r\n")) {
                break;
            }
        }
        CHECK(strncmp(buf, "HTTP/1.1 101", 12) == 0);
    }
    return fd;
}

struct ws_counts {
    atomic_int joined;
    atomic_int ended;
};

/* Echoes every message back until the connection ends. */
static void echo_handler(jw_stream *conn, void *user)
{
    struct ws_counts *c = user;
    atomic_fetch_add(&c->joined, 1);
    char buf[4096];
    size_t n;
    while (jw_stream_receive(conn, buf, sizeof buf, &n, TIMEOUT_MS) == JW_OK) {
        if (jw_stream_send(conn, buf, n, TIMEOUT_MS) != JW_OK) {
            break;
        }
    }
    atomic_fetch_add(&c->ended, 1);
}

/* 5. Websocket server: a client that sends one ping or one message to an
 *    echo handler and leaves without reading (a remote denial of service
 *    if it killed the host). */
static void ws_clients_that_leave_without_reading(void)
{
    static struct ws_counts counts;
    jw_ws_server *w = NULL;
    CHECK(jw_ws_serve("ws://127.0.0.1:0", echo_handler, &counts, &w) == JW_OK);
    char addr[128];
    CHECK(jw_ws_server_address(w, addr, sizeof addr) == JW_OK);
    int port = port_of(addr);
    /* A masked text frame "hi" and a masked empty ping (mask key 0). */
    static const unsigned char message[] = {0x81, 0x82, 0, 0, 0, 0, 'h', 'i'};
    static const unsigned char ping[] = {0x89, 0x80, 0, 0, 0, 0};
    int rounds = 40;
    for (int i = 0; i < rounds; i++) {
        int fd = ws_raw_client(port, i % 2);
        const unsigned char *frame = (i % 4 < 2) ? message : ping;
        size_t len = (i % 4 < 2) ? sizeof message : sizeof ping;
        if (write(fd, frame, len) != (ssize_t)len) {
            CHECK(0);
        }
        if (i % 3 == 0) {
            reset_close(fd);
        } else {
            close(fd);
        }
    }
    CHECK(wait_count(&counts.ended, atomic_load(&counts.joined), 3 * TIMEOUT_MS));
    jw_ws_server_close(w);
}

/* 6. Broadcast clients that leave: the writer threads write into dead peers. */
static void blocking_handler(jw_stream *conn, void *user)
{
    struct ws_counts *c = user;
    atomic_fetch_add(&c->joined, 1);
    char buf[256];
    size_t n;
    while (jw_stream_receive(conn, buf, sizeof buf, &n, -1) == JW_OK) {
    }
    atomic_fetch_add(&c->ended, 1);
}

static void broadcast_to_clients_that_left(void)
{
    static struct ws_counts counts;
    jw_ws_server *w = NULL;
    CHECK(jw_ws_serve("ws://127.0.0.1:0?queue=64", blocking_handler, &counts, &w) == JW_OK);
    char addr[128];
    CHECK(jw_ws_server_address(w, addr, sizeof addr) == JW_OK);
    int port = port_of(addr);
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = ws_raw_client(port, 1);
    }
    CHECK(wait_count(&counts.joined, 8, TIMEOUT_MS));
    for (int i = 0; i < 8; i++) {
        if (i % 2) {
            reset_close(fds[i]);
        } else {
            close(fds[i]);
        }
    }
    for (int i = 0; i < 200; i++) {
        jw_status st = jw_ws_broadcast(w, chunk, 16 * 1024);
        CHECK(st == JW_OK);
    }
    CHECK(wait_count(&counts.ended, 8, 3 * TIMEOUT_MS));
    jw_ws_server_close(w);
}

/* 7. A websocket client whose server went away, then the close frame that
 *    jw_stream_close sends after the error. */
static void ws_client_after_the_server_went_away(void)
{
    static struct ws_counts counts;
    jw_ws_server *w = NULL;
    CHECK(jw_ws_serve("ws://127.0.0.1:0", blocking_handler, &counts, &w) == JW_OK);
    char addr[128];
    CHECK(jw_ws_server_address(w, addr, sizeof addr) == JW_OK);
    jw_stream *s = NULL;
    CHECK(jw_connect(addr, TIMEOUT_MS, &s) == JW_OK);
    CHECK(wait_count(&counts.joined, 1, TIMEOUT_MS));
    jw_ws_server_close(w);
    jw_status st = send_until_error(s);
    CHECK(peer_gone(st) || st == JW_EOF);
    jw_stream_close(s);
}

/* 8. and 9. A listener whose target resets: the websocket bridge (the
 *    jw-conn thread writes into the target, then the close frame 1011 into
 *    the client), and the port forward (splice on the connection thread). */
static void listener_into_a_reset_target(const char *listen_url)
{
    struct resetter r;
    jw_network *target = resetter_network(&r);
    jw_listener *l = NULL;
    CHECK(jw_listen(listen_url, target, &l) == JW_OK);
    char addr[128];
    CHECK(jw_listener_address(l, addr, sizeof addr) == JW_OK);
    jw_stream *s = NULL;
    CHECK(jw_connect(addr, TIMEOUT_MS, &s) == JW_OK);
    CHECK(peer_gone(send_until_error(s)));
    if (strncmp(listen_url, "ws:", 3) == 0) {
        /* The bridge answers the reset with close 1011 and cuts the client:
         * its sends keep failing. */
        CHECK(peer_gone(jw_stream_send(s, "x", 1, TIMEOUT_MS)));
    }
    jw_stream_close(s);
    resetter_join(&r);
    jw_listener_close(l);
    jw_network_free(target);
}

/* 10. jw_forward between echo: and a TCP peer that resets. */
struct forwarding {
    jw_stream *a, *b;
    jw_status status;
};

static void *forward_main(void *arg)
{
    struct forwarding *f = arg;
    f->status = jw_forward(f->a, f->b);
    return NULL;
}

static void jw_forward_from_echo_into_a_reset_peer(void)
{
    struct resetter r;
    char target_url[64];
    resetter_start(&r, 4096, target_url, sizeof target_url);
    struct forwarding f = {NULL, NULL, JW_OK};
    CHECK(jw_connect("echo:", TIMEOUT_MS, &f.a) == JW_OK);
    CHECK(jw_connect(target_url, TIMEOUT_MS, &f.b) == JW_OK);
    pthread_t t;
    pthread_create(&t, NULL, forward_main, &f);
    /* What goes into the echo comes back out of it and is forwarded to b. */
    jw_status st = JW_OK;
    for (int i = 0; i < 400 && st == JW_OK; i++) {
        st = jw_stream_send(f.a, chunk, sizeof chunk, 200);
        if (st == JW_TIMEOUT) {
            st = JW_OK; /* the forward stopped reading: it has seen the reset */
            break;
        }
    }
    resetter_join(&r);
    jw_stream_close(f.b); /* ends the forward if it still waits on the echo */
    jw_stream_close(f.a);
    pthread_join(t, NULL);
    CHECK(f.status != JW_OK);
}

/* Serves a router at listen_url (key "sigpipe-key") into *router, its
 * address into addr and a token of stream id `id` into token. */
static void router_with_token(const char *listen_url, const char *id, jw_router **router,
                              char *addr, size_t addr_cap, char *token, size_t token_cap)
{
    CHECK(jw_router_serve(listen_url, router) == JW_OK);
    CHECK(jw_router_address(*router, addr, addr_cap) == JW_OK);
    CHECK(jw_router_token("sigpipe-key", id, 60, token, token_cap) == JW_OK);
}

/* 10b. jw_forward between a router stream and a TCP peer that resets: both
 *     directions run on the calling thread (on the router stream's runtime),
 *     which writes the router peer's bytes into the dead socket. The router
 *     peer then gets an error, not an end of stream. */
static void jw_forward_from_a_router_stream_into_a_reset_peer(void)
{
    jw_router *router = NULL;
    char addr[128], token[1024];
    router_with_token("grpc://127.0.0.1:0?key=sigpipe-key", "stream-fwd", &router, addr,
                      sizeof addr, token, sizeof token);
    struct resetter r;
    char target_url[64];
    resetter_start(&r, 4096, target_url, sizeof target_url);
    struct forwarding f = {NULL, NULL, JW_OK};
    jw_stream *peer = NULL;
    CHECK(jw_router_connect(addr, token, TIMEOUT_MS, &f.a) == JW_OK);
    CHECK(jw_router_connect(addr, token, TIMEOUT_MS, &peer) == JW_OK);
    CHECK(jw_connect(target_url, TIMEOUT_MS, &f.b) == JW_OK);
    pthread_t t;
    pthread_create(&t, NULL, forward_main, &f);
    for (int i = 0; i < 400; i++) {
        if (jw_stream_send(peer, chunk, sizeof chunk, 200) != JW_OK) {
            break; /* the forward stopped reading, or the pair failed */
        }
    }
    resetter_join(&r);
    pthread_join(t, NULL);
    CHECK(peer_gone(f.status));
    char buf[64];
    size_t n = 0;
    CHECK(peer_gone(jw_stream_receive(peer, buf, sizeof buf, &n, TIMEOUT_MS)));
    jw_stream_close(f.b);
    jw_stream_close(f.a);
    jw_stream_close(peer);
    jw_router_close(router);
}

/* 11. The router client and exporter: the exporter writes into a target that
 *     resets; the client writes to a router that has gone. */
struct exporter {
    char router[128];
    char token[1024];
    jw_network *target;
    jw_status status;
};

static void *exporter_main(void *arg)
{
    struct exporter *e = arg;
    e->status = jw_router_export(e->router, e->token, e->target, TIMEOUT_MS);
    return NULL;
}

static void router_paths_into_dead_peers(void)
{
    jw_router *router = NULL;
    struct exporter e;
    memset(&e, 0, sizeof e);
    router_with_token("grpc://127.0.0.1:0?key=sigpipe-key", "stream-1", &router, e.router,
                      sizeof e.router, e.token, sizeof e.token);
    struct resetter r;
    e.target = resetter_network(&r);
    pthread_t t;
    pthread_create(&t, NULL, exporter_main, &e);
    jw_stream *s = NULL;
    CHECK(jw_router_connect(e.router, e.token, TIMEOUT_MS, &s) == JW_OK);
    jw_status st = send_until_error(s);
    (void)st; /* the target's reset ends the exporter; the client may see it later */
    pthread_join(t, NULL);
    CHECK(peer_gone(e.status));
    resetter_join(&r);
    jw_stream_close(s);

    /* A client whose router goes away under it. */
    char token2[1024];
    CHECK(jw_router_token("sigpipe-key", "stream-2", 60, token2, sizeof token2) == JW_OK);
    CHECK(jw_router_connect(e.router, token2, TIMEOUT_MS, &s) == JW_OK);
    jw_router_close(router);
    st = send_until_error(s);
    CHECK(peer_gone(st) || st == JW_EOF);
    jw_stream_close(s);
    jw_network_free(e.target);
}

/* 12. A grpcs:// router pair whose router goes away: the survivor's TLS
 *     writes go into a dead peer. */
static void grpcs_router_pair_after_the_router_went_away(void)
{
    jw_router *router = NULL;
    char addr[128], url[160], token[1024];
    router_with_token("grpcs://127.0.0.1:0?key=sigpipe-key", "stream-tls", &router, addr,
                      sizeof addr, token, sizeof token);
    CHECK(strncmp(addr, "grpcs://", 8) == 0);
    snprintf(url, sizeof url, "%s?insecure=1", addr);
    jw_stream *a = NULL, *b = NULL;
    CHECK(jw_router_connect(url, token, TIMEOUT_MS, &a) == JW_OK);
    CHECK(jw_router_connect(url, token, TIMEOUT_MS, &b) == JW_OK);
    /* Paired: a's message reaches b. */
    char buf[8];
    size_t n = 0;
    CHECK(jw_stream_send(a, "ping", 4, TIMEOUT_MS) == JW_OK);
    CHECK(jw_stream_receive(b, buf, sizeof buf, &n, TIMEOUT_MS) == JW_OK && n > 0);
    jw_router_close(router);
    CHECK(peer_gone(send_until_error(a)));
    jw_stream_close(a);
    jw_stream_close(b);
}

/* 13. The stoppable export (its jw-export thread) into a target that resets
 *     under it; the export goes on and closes cleanly. */
static void router_export_thread_into_a_reset_target(void)
{
    jw_router *router = NULL;
    char addr[128], token[1024];
    router_with_token("grpc://127.0.0.1:0?key=sigpipe-key", "stream-x", &router, addr,
                      sizeof addr, token, sizeof token);
    struct resetter r;
    jw_network *target = resetter_network(&r);
    jw_router_exporter *x = NULL;
    CHECK(jw_router_export_start(addr, token, target, &x) == JW_OK);
    jw_network_free(target);
    jw_stream *s = NULL;
    CHECK(jw_router_connect(addr, token, TIMEOUT_MS, &s) == JW_OK);
    /* The target's reset reaches the client as an error. */
    CHECK(peer_gone(send_until_error(s)));
    resetter_join(&r);
    jw_stream_close(s);
    /* A failed pairing is followed by the next: the export still runs. */
    CHECK(jw_router_export_running(x) == 1);
    double t0 = now_ms();
    jw_router_export_close(x);
    CHECK(now_ms() - t0 < 3000 + slack_ms());
    jw_router_close(router);
}

/* 14. A wss:// client whose server was killed: the TLS writes go into a dead
 *     peer. jw_ws_serve has no TLS, so the server is the Python websockets
 *     echo (tests/python/ws_peer.py tls-server), started here and killed by
 *     its pid; argv: PYTHON WS_PEER_PY CERT KEY. */
static void wss_client_after_the_server_was_killed(char **argv)
{
    int out[2], in[2];
    if (pipe(out) != 0 || pipe(in) != 0) {
        perror("sigpipe: pipe");
        exit(2);
    }
    fcntl(out[0], F_SETFD, FD_CLOEXEC);
    fcntl(in[1], F_SETFD, FD_CLOEXEC);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    char *args[] = {argv[1], argv[2], "tls-server", argv[3], argv[4], NULL};
    extern char **environ;
    pid_t pid;
    if (posix_spawn(&pid, argv[1], &fa, NULL, args, environ) != 0) {
        perror("sigpipe: starting the Python wss server");
        exit(2);
    }
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    /* Its first line is "PORT N" (within 20 s). */
    char line[64] = {0};
    size_t got = 0;
    struct pollfd p = {out[0], POLLIN, 0};
    while (got < sizeof line - 1 && !strchr(line, '\n') && poll(&p, 1, 20000) == 1 &&
           read(out[0], line + got, 1) == 1) {
        got++;
    }
    int port = 0;
    CHECK(sscanf(line, "PORT %d", &port) == 1);
    char url[96];
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/#insecure=1", port);
    jw_stream *s = NULL;
    CHECK(jw_connect(url, TIMEOUT_MS, &s) == JW_OK);
    CHECK(jw_stream_send(s, "hello", 5, TIMEOUT_MS) == JW_OK);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(peer_gone(send_until_error(s)));
    jw_stream_close(s);
    close(out[0]);
    close(in[1]);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: sigpipe PYTHON WS_PEER_PY CERT KEY\n");
        return 2;
    }
    /* Run as a plain C host does, whatever the parent left us. */
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    alarm(120);
    memset(chunk, 'x', sizeof chunk);

    tcp_stream_into_a_reset_peer();
    unix_and_dbus_streams_into_a_closed_peer();
    the_flusher_into_a_reset_peer();
    a_sender_while_another_thread_closes();
    ws_clients_that_leave_without_reading();
    broadcast_to_clients_that_left();
    ws_client_after_the_server_went_away();
    listener_into_a_reset_target("ws://127.0.0.1:0");
    listener_into_a_reset_target("tcp://127.0.0.1:0");
    jw_forward_from_echo_into_a_reset_peer();
    jw_forward_from_a_router_stream_into_a_reset_peer();
    router_paths_into_dead_peers();
    router_export_thread_into_a_reset_target();
    /* The TLS cases. scripts/sanitize.sh sets JW_C_NO_TLS under valgrind
     * only: ring's assembly (AES-GCM, ChaCha20) writes memory valgrind
     * cannot follow, so it reports the encrypted records as uninitialised.
     * They run everywhere else, AddressSanitizer included. */
    const char *no_tls = getenv("JW_C_NO_TLS");
    if (no_tls && *no_tls && strcmp(no_tls, "0") != 0) {
        printf("sigpipe: the TLS cases (12, 14) not run: JW_C_NO_TLS is set\n");
    } else {
        grpcs_router_pair_after_the_router_went_away();
        wss_client_after_the_server_was_killed(argv);
    }

    struct sigaction now;
    sigaction(SIGPIPE, NULL, &now);
    CHECK(now.sa_handler == SIG_DFL);
    return summary("sigpipe");
}
