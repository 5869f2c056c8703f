/*
 * router_faults: what a C host sees when the far side of a router stream
 * fails (issues 11 and 17), with the default SIGPIPE disposition.
 *
 * 1. Blocking calls against peers that never answer return within their
 *    timeout + 100 ms: jw_router_connect and jw_router_export to a server
 *    that accepts TCP and never speaks HTTP/2, and jw_router_export with no
 *    client coming.
 * 2. An exporter whose TCP target resets mid-stream: the client's receive
 *    (timeout -1) returns JW_ERR_CONNECTION, never a clean JW_EOF, and a
 *    later send fails.
 * 3. A pair whose one caller's connection is cut (a proxy in between drops
 *    it with RST): the survivor's receive (timeout -1) returns
 *    JW_ERR_CONNECTION within 1 s; its close, with data still unsent, takes
 *    less than 100 ms.
 *
 * alarm(60) bounds the whole program (a hang is a failure, not a wait).
 * Prints one line per failed check and a summary; exits 1 if any failed.
 * Run by tests/suite/c_examples.rs against the shared and the static library.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define KEY "faults-key"


/* CHECK(cond, what): a check with its own wording. */
#undef CHECK
#define CHECK(cond, what) check_at(__FILE__, __LINE__, (cond), (what))

/* A TCP listener on 127.0.0.1 with a free port; its port in *port. */
static int listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("listener");
        exit(2);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("dial");
        exit(2);
    }
    return fd;
}

/* Closes `fd` with RST (SO_LINGER 0). */
static void token(const char *id, char *buf, size_t cap)
{
    if (jw_router_token(KEY, id, 60, buf, cap) != JW_OK) {
        fprintf(stderr, "jw_router_token: %s\n", jw_last_error());
        exit(2);
    }
}

/* --- 1. timeouts ---------------------------------------------------------- */

static void timeouts(const char *router)
{
    int port;
    int silent = listener(&port); /* accepts (the backlog does), says nothing */
    char url[128], tok[1024];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", port);
    token("t", tok, sizeof tok);
    jw_network *target = NULL;
    char target_url[64];
    snprintf(target_url, sizeof target_url, "tcp://127.0.0.1:%d", port);
    CHECK(jw_network_new(target_url, &target) == JW_OK, "jw_network_new");

    jw_stream *s = NULL;
    double t0 = now_ms();
    jw_status st = jw_router_connect(url, tok, 500, &s);
    double took = now_ms() - t0;
    CHECK(st == JW_TIMEOUT, "jw_router_connect to a server that never speaks HTTP/2: JW_TIMEOUT");
    CHECK(took < 600 + slack_ms(), "jw_router_connect returned within 500 + 100 ms");
    printf("connect to a silent server: %s after %.0f ms\n", jw_status_str(st), took);

    t0 = now_ms();
    st = jw_router_export(url, tok, target, 500);
    took = now_ms() - t0;
    CHECK(st == JW_TIMEOUT, "jw_router_export to a server that never speaks HTTP/2: JW_TIMEOUT");
    CHECK(took < 600 + slack_ms(), "jw_router_export returned within 500 + 100 ms");
    printf("export to a silent server: %s after %.0f ms\n", jw_status_str(st), took);

    /* A real router, and no client coming. */
    t0 = now_ms();
    st = jw_router_export(router, tok, target, 500);
    took = now_ms() - t0;
    CHECK(st == JW_TIMEOUT, "jw_router_export with no client coming: JW_TIMEOUT");
    CHECK(took < 600 + slack_ms(), "jw_router_export returned within 500 + 100 ms");
    printf("export with no client: %s after %.0f ms\n", jw_status_str(st), took);

    jw_network_free(target);
    close(silent);
}

/* --- 2. a target that resets ----------------------------------------------- */

struct exporter {
    const char *router;
    const char *tok;
    jw_network *target;
    jw_status status;
};

static void *export_thread(void *arg)
{
    struct exporter *e = arg;
    e->status = jw_router_export(e->router, e->tok, e->target, 10000);
    return NULL;
}

struct target {
    int fd;
};

/* Accepts one connection, reads 5 bytes, answers, and resets it. */
static void *target_thread(void *arg)
{
    struct target *t = arg;
    int c = accept(t->fd, NULL, NULL);
    if (c >= 0) {
        char buf[5];
        size_t got = 0;
        while (got < sizeof buf) {
            ssize_t n = read(c, buf + got, sizeof buf - got);
            if (n <= 0) {
                break;
            }
            got += (size_t)n;
        }
        ssize_t w = write(c, "bye", 3);
        (void)w;
        reset_close(c);
    }
    return NULL;
}

static void target_resets(const char *router)
{
    int port;
    struct target t;
    t.fd = listener(&port);
    char target_url[64], tok[1024];
    snprintf(target_url, sizeof target_url, "tcp://127.0.0.1:%d", port);
    token("reset", tok, sizeof tok);
    struct exporter e = {router, tok, NULL, JW_OK};
    CHECK(jw_network_new(target_url, &e.target) == JW_OK, "jw_network_new");
    pthread_t et, tt;
    pthread_create(&tt, NULL, target_thread, &t);
    pthread_create(&et, NULL, export_thread, &e);

    jw_stream *c = NULL;
    CHECK(jw_router_connect(router, tok, 10000, &c) == JW_OK, "jw_router_connect");
    CHECK(jw_stream_send(c, "hello", 5, 10000) == JW_OK, "send hello");
    char buf[64];
    size_t n = 0;
    size_t total = 0;
    jw_status st;
    while ((st = jw_stream_receive(c, buf, sizeof buf, &n, -1)) == JW_OK) {
        total += n;
    }
    CHECK(st == JW_ERR_CONNECTION, "receive after the target reset: JW_ERR_CONNECTION, not JW_EOF");
    printf("target reset: the client's receive returned %s after %zu bytes\n", jw_status_str(st), total);
    st = jw_stream_send(c, "more", 4, 1000);
    CHECK(st != JW_OK && st != JW_TIMEOUT, "a send after the failure fails");
    jw_stream_close(c);
    pthread_join(et, NULL);
    pthread_join(tt, NULL);
    CHECK(e.status == JW_ERR_CONNECTION || e.status == JW_ERR_IO, "the export failed");
    printf("target reset: the export returned %s\n", jw_status_str(e.status));
    jw_network_free(e.target);
    close(t.fd);
}

/* --- 3. a cut connection ----------------------------------------------------- */

/* A one-connection TCP proxy in front of the router; `cut` resets both
 * of its sockets. */
struct proxy {
    int listen_fd;
    int router_port;
    int a, b;
    pthread_mutex_t lock;
};

static void *proxy_thread(void *arg)
{
    struct proxy *p = arg;
    int a = accept(p->listen_fd, NULL, NULL);
    int b = dial(p->router_port);
    pthread_mutex_lock(&p->lock);
    p->a = a;
    p->b = b;
    pthread_mutex_unlock(&p->lock);
    char buf[65536];
    for (;;) {
        struct pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
        if (poll(fds, 2, 20000) <= 0) {
            break;
        }
        int stop = 0;
        for (int i = 0; i < 2 && !stop; i++) {
            if (fds[i].revents == 0) {
                continue;
            }
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                stop = 1;
                break;
            }
            int to = i == 0 ? b : a;
            for (ssize_t off = 0; off < n;) {
                ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
                if (w <= 0) {
                    stop = 1;
                    break;
                }
                off += w;
            }
        }
        if (stop) {
            break;
        }
    }
    return NULL;
}

static void cut(struct proxy *p)
{
    pthread_mutex_lock(&p->lock);
    struct linger l = {1, 0};
    setsockopt(p->a, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    setsockopt(p->b, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    shutdown(p->a, SHUT_RDWR);
    shutdown(p->b, SHUT_RDWR);
    pthread_mutex_unlock(&p->lock);
}

static void peer_cut(const char *router, int router_port)
{
    struct proxy p;
    int port;
    p.listen_fd = listener(&port);
    p.router_port = router_port;
    p.a = p.b = -1;
    pthread_mutex_init(&p.lock, NULL);
    pthread_t pt;
    pthread_create(&pt, NULL, proxy_thread, &p);
    char via[64], tok[1024];
    snprintf(via, sizeof via, "grpc://127.0.0.1:%d", port);
    token("cut", tok, sizeof tok);

    jw_stream *a = NULL, *b = NULL;
    CHECK(jw_router_connect(router, tok, 10000, &a) == JW_OK, "connect a");
    CHECK(jw_router_connect(via, tok, 10000, &b) == JW_OK, "connect b through the proxy");
    CHECK(jw_stream_send(b, "hi", 2, 10000) == JW_OK, "b sends hi");
    char buf[16];
    size_t n = 0;
    CHECK(jw_stream_receive(a, buf, sizeof buf, &n, 10000) == JW_OK && n == 2, "a receives hi");
    /* More than the windows hold: data left unsent when the peer goes. */
    size_t big = 12u << 20;
    char *data = calloc(big, 1);
    jw_status st = jw_stream_send(a, data, big, 300);
    CHECK(st == JW_OK || st == JW_TIMEOUT, "a sends 12 MiB (all or part)");
    free(data);

    cut(&p);
    double t0 = now_ms();
    while ((st = jw_stream_receive(a, buf, sizeof buf, &n, -1)) == JW_OK) {
    }
    double took = now_ms() - t0;
    CHECK(st == JW_ERR_CONNECTION, "the survivor's receive: JW_ERR_CONNECTION");
    CHECK(took < 1000 + slack_ms(), "the survivor's receive returned within 1 s");
    printf("peer cut: the survivor's receive returned %s after %.0f ms\n", jw_status_str(st), took);
    t0 = now_ms();
    jw_stream_close(a);
    took = now_ms() - t0;
    CHECK(took < 100 + slack_ms(), "close with unsent data, the peer gone: under 100 ms");
    printf("peer cut: the survivor's close took %.1f ms\n", took);
    jw_stream_close(b);
    pthread_join(pt, NULL);
    close(p.a);
    close(p.b);
    close(p.listen_fd);
    pthread_mutex_destroy(&p.lock);
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
    char router[128];
    CHECK(jw_router_address(r, router, sizeof router) == JW_OK, "jw_router_address");
    int router_port = atoi(strrchr(router, ':') + 1);

    timeouts(router);
    target_resets(router);
    peer_cut(router, router_port);

    jw_router_close(r);
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
