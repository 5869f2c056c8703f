/*
 * close_wakes: jw_stream_close on the main thread while another thread is
 * blocked in a call on the same stream (issue 17, item 6: "close must wake
 * every call at once and finish within 100 ms when the peer is gone"), for
 * each stream kind: a router stream (grpc://), a ws:// client and TCP.
 *
 * For each kind:
 *   - receive: a thread blocked in jw_stream_receive (timeout -1) on an
 *     idle, live peer;
 *   - send: a thread blocked in a 32 MiB jw_stream_send (timeout -1) to a
 *     peer that does not read;
 *   - gone, receive / gone, send: the same, but the peer is gone first: the
 *     connection runs through a TCP proxy here that stops relaying (a peer
 *     that vanished without a word: nothing answers a goodbye);
 *   - reset: the proxy resets both sides under a blocked send; the send
 *     fails by itself, then the stream is closed.
 * The blocked call must return JW_ERR_CLOSED (JW_ERR_CONNECTION in the
 * reset case) within 100 ms + slack of the start of jw_stream_close, and
 * the close must return within 100 ms + slack when the peer is gone or
 * does not read; a router stream's close, while the peer's call is still
 * up, within its 2 s grace for the peer to end its direction (after a
 * reset, within 100 ms).
 *
 * The close starts only once the other thread is asleep inside its call
 * (its state in /proc is 'S'), as jumpwire.h requires of a close that
 * overlaps a call; the thread makes no call with the stream afterwards.
 *
 * alarm(60) bounds the whole program. Prints the measured times, one line
 * per failed check and a summary; exits 1 if any check failed. Run by
 * tests/suite/c_examples.rs against the shared and the static library.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

#define KEY "close-wakes-key"
#define TIMEOUT_MS 5000
#define BIG (32u << 20)
/* The promise: 100 ms (plus JW_TIMING_SLACK_MS under the sanitizers). */
#define BOUND_MS (100 + slack_ms())

enum kind { ROUTER, WS, TCP };
static const char *const kind_names[] = {"router", "ws", "tcp"};

/* ---- a TCP proxy that can go silent or reset ---------------------------- */

enum proxy_mode { RELAY, FROZEN, RESET, STOP };

struct proxy {
    int listen_fd;
    int port;        /* where clients dial */
    int target_port; /* what it dials */
    atomic_int mode;
    atomic_int frozen; /* the relay loop saw FROZEN and relays no more */
    pthread_t thread;
};

/* Writes buf[..n] to `to`, waiting for room while the proxy relays; 0 if
 * the socket failed or the proxy was told to leave RELAY meanwhile (the
 * rest is dropped: a gone or reset peer forwards nothing more). */
/* Resets both connections of the proxy (SO_LINGER 0, close) and forgets
 * them. */
static void reset_both(int *a, int *b)
{
    struct linger l = {1, 0};
    setsockopt(*a, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    setsockopt(*b, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(*a);
    close(*b);
    *a = *b = -1;
}

static int relay(struct proxy *p, int to, const char *buf, ssize_t n)
{
    for (ssize_t off = 0; off < n;) {
        ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (atomic_load(&p->mode) != RELAY) {
                return 0;
            }
            struct pollfd out = {to, POLLOUT, 0};
            poll(&out, 1, 5);
            continue;
        }
        if (w <= 0) {
            return 0;
        }
        off += w;
    }
    return 1;
}

static void *proxy_main(void *arg)
{
    struct proxy *p = arg;
    int a = accept(p->listen_fd, NULL, NULL);
    int b = a >= 0 ? tcp_dial(p->target_port) : -1;
    static char buf[65536];
    int done = a < 0 || b < 0;
    while (!done) {
        int mode = atomic_load(&p->mode);
        if (mode == STOP) {
            break;
        }
        if (mode == RESET) {
            reset_both(&a, &b);
            atomic_store(&p->frozen, 1);
            break;
        }
        if (mode == FROZEN) {
            /* Holds both connections open and reads nothing. */
            atomic_store(&p->frozen, 1);
            struct pollfd none;
            poll(&none, 0, 5);
            continue;
        }
        struct pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        if (poll(fds, 2, 5) < 0) {
            break;
        }
        for (int i = 0; i < 2 && !done; i++) {
            if (fds[i].revents == 0) {
                continue;
            }
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                done = 1;
                break;
            }
            done = !relay(p, i == 0 ? b : a, buf, n);
        }
    }
    /* Until told to stop, a gone peer stays gone (its sockets open); a
     * reset asked for after the relay ended resets them still. */
    while (atomic_load(&p->mode) != STOP) {
        if (atomic_load(&p->mode) == RESET && a >= 0) {
            reset_both(&a, &b);
        }
        if (atomic_load(&p->mode) != RELAY) {
            atomic_store(&p->frozen, 1);
        }
        struct pollfd none;
        poll(&none, 0, 5);
    }
    if (a >= 0) {
        close(a);
    }
    if (b >= 0) {
        close(b);
    }
    return NULL;
}

static void proxy_start(struct proxy *p, int target_port)
{
    p->listen_fd = tcp_listen(&p->port);
    p->target_port = target_port;
    atomic_store(&p->mode, RELAY);
    atomic_store(&p->frozen, 0);
    pthread_create(&p->thread, NULL, proxy_main, p);
}

/* Sets the mode and waits (at most 5 s) until the relay loop has left RELAY. */
static void proxy_set(struct proxy *p, enum proxy_mode mode)
{
    atomic_store(&p->mode, mode);
    for (int i = 0; i < 5000 && !atomic_load(&p->frozen); i++) {
        struct pollfd none;
        poll(&none, 0, 1);
    }
    CHECK(atomic_load(&p->frozen));
}

static void proxy_stop(struct proxy *p)
{
    atomic_store(&p->mode, STOP);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
}

/* ---- the peers ---------------------------------------------------------- */

/* The ws handler: holds its connection, reading nothing, until released. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int release_handlers;

static void holding_handler(jw_stream *conn, void *user)
{
    (void)conn;
    (void)user;
    pthread_mutex_lock(&mu);
    while (!release_handlers) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
}

struct servers {
    jw_router *router;
    char router_url[128];
    int router_port;
    jw_ws_server *ws;
    char ws_url[128];
    int ws_port;
    int tcp_fd;
    int tcp_port;
};

/* What one case has open: the stream under test and its peer. */
struct conn {
    jw_stream *s;
    jw_stream *router_peer; /* ROUTER: the other caller, never reading */
    int tcp_peer;           /* TCP: the accepted socket, never read */
};

static int port_of(const char *url)
{
    return atoi(strrchr(url, ':') + 1);
}

/* Opens a stream of `kind`, through `p` (if not NULL) or directly. */
static int open_conn(struct servers *sv, enum kind kind, struct proxy *p, int round, struct conn *c)
{
    memset(c, 0, sizeof *c);
    c->tcp_peer = -1;
    int target = kind == ROUTER ? sv->router_port : kind == WS ? sv->ws_port : sv->tcp_port;
    int port = target;
    if (p != NULL) {
        proxy_start(p, target);
        port = p->port;
    }
    char url[160];
    jw_status st;
    if (kind == ROUTER) {
        char tok[1024], id[32];
        snprintf(id, sizeof id, "wake-%d", round);
        if (jw_router_token(KEY, id, 60, tok, sizeof tok) != JW_OK) {
            fprintf(stderr, "jw_router_token: %s\n", jw_last_error());
            exit(2);
        }
        snprintf(url, sizeof url, "grpc://127.0.0.1:%d", port);
        st = jw_router_connect(url, tok, TIMEOUT_MS, &c->s);
        CHECK(st == JW_OK);
        CHECK(jw_router_connect(sv->router_url, tok, TIMEOUT_MS, &c->router_peer) == JW_OK);
        /* Paired: a byte goes across. */
        char b;
        size_t n = 0;
        CHECK(c->s != NULL && jw_stream_send(c->s, "x", 1, TIMEOUT_MS) == JW_OK);
        CHECK(c->router_peer != NULL &&
              jw_stream_receive(c->router_peer, &b, 1, &n, TIMEOUT_MS) == JW_OK && n == 1);
    } else if (kind == WS) {
        snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
        st = jw_connect(url, TIMEOUT_MS, &c->s);
        CHECK(st == JW_OK);
    } else {
        snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
        st = jw_connect(url, TIMEOUT_MS, &c->s);
        CHECK(st == JW_OK);
        c->tcp_peer = accept(sv->tcp_fd, NULL, NULL);
        CHECK(c->tcp_peer >= 0);
    }
    return c->s != NULL;
}

static void close_peer(struct conn *c)
{
    if (c->router_peer != NULL) {
        jw_stream_close(c->router_peer);
    }
    if (c->tcp_peer >= 0) {
        close(c->tcp_peer);
    }
}

/* ---- the blocked call --------------------------------------------------- */

enum op { RECEIVE, SEND };

struct blocked {
    jw_stream *s;
    enum op op;
    atomic_int tid;
    atomic_int started;
    jw_status result;
    double returned_at;
};

static void *blocked_main(void *arg)
{
    struct blocked *b = arg;
    static char buf[BIG];
    atomic_store(&b->tid, (int)syscall(SYS_gettid));
    atomic_store(&b->started, 1);
    if (b->op == RECEIVE) {
        size_t n = 0;
        b->result = jw_stream_receive(b->s, buf, 4096, &n, -1);
    } else {
        b->result = jw_stream_send(b->s, buf, BIG, -1);
    }
    b->returned_at = now_ms();
    return NULL;
}

/* The scheduler state of thread `tid` of this process ('S' asleep, 'R'
 * running), or 0 if it cannot be read. */
static char thread_state(int tid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    const char *paren = strrchr(line, ')');
    return paren != NULL && paren[1] == ' ' ? paren[2] : 0;
}

/* Waits (at most 5 s) until the thread is asleep inside its call: it has
 * set `started` just before calling, and nothing else can put it to sleep.
 * Several readings in a row, so a short wait on a lock inside the call
 * does not count as the blocking wait. */
static int wait_blocked(struct blocked *b)
{
    int asleep = 0;
    for (int i = 0; i < 5000; i++) {
        if (atomic_load(&b->started) && thread_state(atomic_load(&b->tid)) == 'S') {
            if (++asleep >= 20) {
                return 1;
            }
        } else {
            asleep = 0;
        }
        struct pollfd none;
        poll(&none, 0, 1);
    }
    return 0;
}

/* ---- the cases ------------------------------------------------------------ */

enum peer { LIVE, GONE, RESETS };

static void one_case(struct servers *sv, enum kind kind, enum op op, enum peer peer, int round)
{
    const char *what = op == RECEIVE ? "receive" : "send";
    const char *how = peer == LIVE ? (op == RECEIVE ? "idle peer" : "peer not reading")
                                   : peer == GONE ? "peer gone" : "peer reset";
    struct proxy p;
    struct conn c;
    if (!open_conn(sv, kind, peer == LIVE ? NULL : &p, round, &c)) {
        if (peer != LIVE) {
            proxy_stop(&p);
        }
        close_peer(&c);
        return;
    }
    if (peer == GONE) {
        proxy_set(&p, FROZEN);
    }
    struct blocked b;
    memset(&b, 0, sizeof b);
    b.s = c.s;
    b.op = op;
    pthread_t t;
    pthread_create(&t, NULL, blocked_main, &b);
    int blocked = wait_blocked(&b);
    check_at(__FILE__, __LINE__, blocked, "the other thread is blocked in its call");
    if (peer == RESETS) {
        /* The reset ends the call by itself; the close comes after. */
        proxy_set(&p, RESET);
        pthread_join(t, NULL);
        double t0 = now_ms();
        jw_stream_close(c.s);
        double took = now_ms() - t0;
        printf("close_wakes: %s, %s blocked, %s: the call returned %s; close took %.1f ms\n",
               kind_names[kind], what, how, jw_status_str(b.result), took);
        check_at(__FILE__, __LINE__, b.result == JW_ERR_CONNECTION, "the reset fails the call: JW_ERR_CONNECTION");
        check_at(__FILE__, __LINE__, took < BOUND_MS, "close after a reset: within 100 ms");
    } else {
        double t0 = now_ms();
        jw_stream_close(c.s);
        double took = now_ms() - t0;
        pthread_join(t, NULL);
        double woke = b.returned_at - t0;
        printf("close_wakes: %s, %s blocked, %s: the call returned %s %.1f ms after the close began; "
               "close took %.1f ms\n",
               kind_names[kind], what, how, jw_status_str(b.result), woke, took);
        check_at(__FILE__, __LINE__, b.result == JW_ERR_CLOSED, "the blocked call returns JW_ERR_CLOSED");
        check_at(__FILE__, __LINE__, woke < BOUND_MS, "the blocked call wakes within 100 ms of the close");
        if (kind == ROUTER) {
            /* A router stream's close gives a peer whose call is still up
             * (idle, or behind a link gone silent: nothing tells the
             * library it went) up to its 2 s grace to end its direction, so
             * that what was sent reaches it and it sees a clean end (see
             * jw_stream_close). A peer whose call ended: the reset case. */
            check_at(__FILE__, __LINE__, took < 2000 + BOUND_MS,
                     "a router stream's close with the peer's call up: within its 2 s grace");
        } else {
            check_at(__FILE__, __LINE__, took < BOUND_MS, "jw_stream_close returns within 100 ms");
        }
    }
    if (peer != LIVE) {
        proxy_stop(&p);
    }
    close_peer(&c);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(60);
    struct servers sv;
    memset(&sv, 0, sizeof sv);
    if (jw_router_serve("grpc://127.0.0.1:0?key=" KEY, &sv.router) != JW_OK ||
        jw_ws_serve("ws://127.0.0.1:0", holding_handler, NULL, &sv.ws) != JW_OK) {
        fprintf(stderr, "serve: %s\n", jw_last_error());
        return 2;
    }
    CHECK(jw_router_address(sv.router, sv.router_url, sizeof sv.router_url) == JW_OK);
    CHECK(jw_ws_server_address(sv.ws, sv.ws_url, sizeof sv.ws_url) == JW_OK);
    sv.router_port = port_of(sv.router_url);
    sv.ws_port = port_of(sv.ws_url);
    sv.tcp_fd = tcp_listen(&sv.tcp_port);

    int round = 0;
    for (int k = ROUTER; k <= TCP; k++) {
        one_case(&sv, (enum kind)k, RECEIVE, LIVE, round++);
        one_case(&sv, (enum kind)k, SEND, LIVE, round++);
        one_case(&sv, (enum kind)k, RECEIVE, GONE, round++);
        one_case(&sv, (enum kind)k, SEND, GONE, round++);
        one_case(&sv, (enum kind)k, SEND, RESETS, round++);
    }

    pthread_mutex_lock(&mu);
    release_handlers = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    jw_ws_server_close(sv.ws);
    jw_router_close(sv.router);
    close(sv.tcp_fd);
    return summary("close_wakes");
}
