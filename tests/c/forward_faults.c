/*
 * forward_faults: a failure on one side of a forward reaches the other side
 * as a failure, never as a clean end, seen from a plain C host (default
 * SIGPIPE disposition):
 *  1. jw_listen, the target resets mid-transfer: the client gets
 *     JW_ERR_CONNECTION (on a send or the receive), never JW_EOF;
 *  2. jw_listen, the client resets: the target's recv() fails with
 *     ECONNRESET, it does not read a clean end;
 *  3. jw_forward(a, b), b's peer resets: jw_forward returns
 *     JW_ERR_CONNECTION (not JW_OK), and a's peer gets ECONNRESET once a is
 *     closed;
 *  4. jw_forward(a, b) where both peers finish cleanly: JW_OK, and each
 *     peer reads everything then a clean end (0).
 * Every peer is a BSD socket on 127.0.0.1 written here.
 *
 * Prints one line per failed check and a summary; exits 1 if any failed.
 * Run by tests/suite/c_examples.rs against the shared and the static library.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common.h"

#define TIMEOUT_MS 5000
#define MIB (1024 * 1024)



static void die(const char *what)
{
    perror(what);
    exit(2);
}

/* A listening socket on 127.0.0.1 with a free port; writes "tcp://..." to url. */
static int listen_local(char *url, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        die("listening");
    }
    snprintf(url, cap, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    return fd;
}

/* Sets a receive timeout so that no read here can hang. */
static void bound_reads(int fd)
{
    struct timeval tv = {TIMEOUT_MS / 1000, 0};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
        die("SO_RCVTIMEO");
    }
}

static int accept_one(int l)
{
    int c = accept(l, NULL, NULL);
    if (c < 0) {
        die("accept");
    }
    bound_reads(c);
    return c;
}

/* Reads exactly `len` bytes; 0 on success. */
static int read_exact(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        die("connect");
    }
    bound_reads(fd);
    return fd;
}

/* ------------------------------------------------------------ 1 */

/* The target: reads 1 MiB, then resets. */
static void *resetting_target(void *arg)
{
    int l = *(int *)arg;
    int c = accept_one(l);
    static char buf[MIB];
    if (read_exact(c, buf, sizeof buf) != 0) {
        fprintf(stderr, "the target did not get its 1 MiB\n");
    }
    reset_close(c);
    return NULL;
}

static void listen_target_reset(void)
{
    char target_url[64], addr[128];
    int l = listen_local(target_url, sizeof target_url);
    pthread_t t;
    pthread_create(&t, NULL, resetting_target, &l);

    jw_network *net = NULL;
    jw_listener *lis = NULL;
    jw_stream *s = NULL;
    CHECK(jw_network_new(target_url, &net) == JW_OK);
    CHECK(jw_listen("tcp://127.0.0.1:0", net, &lis) == JW_OK);
    CHECK(jw_listener_address(lis, addr, sizeof addr) == JW_OK);
    CHECK(jw_connect(addr, TIMEOUT_MS, &s) == JW_OK);

    /* 2 MiB out; the target takes 1 MiB and resets. */
    static char chunk[64 * 1024];
    memset(chunk, 'x', sizeof chunk);
    jw_status st = JW_OK;
    for (int i = 0; i < 32 && st == JW_OK; i++) {
        st = jw_stream_send(s, chunk, sizeof chunk, TIMEOUT_MS);
    }
    if (st == JW_OK) {
        char buf[64];
        size_t n = 0;
        st = jw_stream_receive(s, buf, sizeof buf, &n, TIMEOUT_MS);
    }
    CHECK(st != JW_EOF);
    CHECK(st == JW_ERR_CONNECTION);
    printf("jw_listen, target reset: the client got %s\n", jw_status_str(st));

    pthread_join(t, NULL);
    jw_stream_close(s);
    jw_listener_close(lis);
    jw_network_free(net);
    close(l);
}

/* ------------------------------------------------------------ 2 */

static int got_1000;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

/* The target: reads 1000 bytes, says so, then reads once more; returns the
 * errno of that read (0 for a clean end). */
static void *reading_target(void *arg)
{
    int l = *(int *)arg;
    int c = accept_one(l);
    char buf[1000];
    int ok = read_exact(c, buf, sizeof buf) == 0;
    pthread_mutex_lock(&mu);
    got_1000 = ok ? 1 : -1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    ssize_t n = recv(c, buf, sizeof buf, 0);
    static int result;
    result = n < 0 ? errno : 0;
    close(c);
    return &result;
}

static void listen_client_reset(void)
{
    char target_url[64], addr[128];
    int l = listen_local(target_url, sizeof target_url);
    pthread_t t;
    pthread_create(&t, NULL, reading_target, &l);

    jw_network *net = NULL;
    jw_listener *lis = NULL;
    CHECK(jw_network_new(target_url, &net) == JW_OK);
    CHECK(jw_listen("tcp://127.0.0.1:0", net, &lis) == JW_OK);
    CHECK(jw_listener_address(lis, addr, sizeof addr) == JW_OK);
    int port = atoi(strrchr(addr, ':') + 1);

    int c = connect_to(port);
    char out[1000];
    memset(out, 'y', sizeof out);
    CHECK(send(c, out, sizeof out, MSG_NOSIGNAL) == (ssize_t)sizeof out);
    pthread_mutex_lock(&mu);
    while (got_1000 == 0) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    CHECK(got_1000 == 1);
    reset_close(c);

    void *res = NULL;
    pthread_join(t, &res);
    int err = *(int *)res;
    CHECK(err == ECONNRESET);
    printf("jw_listen, client reset: the target's read failed with %s\n", err ? strerror(err) : "a clean end");

    jw_listener_close(lis);
    jw_network_free(net);
    close(l);
}

/* ------------------------------------------------------------ 3 and 4 */

struct fwd {
    jw_stream *a, *b;
    jw_status status;
};

static void *forwarding(void *arg)
{
    struct fwd *f = arg;
    f->status = jw_forward(f->a, f->b);
    return NULL;
}

/* Two streams a and b, each connected to a socket here (pa, pb). */
static void pair_up(jw_stream **a, int *pa, jw_stream **b, int *pb)
{
    char url[64];
    int la = listen_local(url, sizeof url);
    CHECK(jw_connect(url, TIMEOUT_MS, a) == JW_OK);
    *pa = accept_one(la);
    close(la);
    int lb = listen_local(url, sizeof url);
    CHECK(jw_connect(url, TIMEOUT_MS, b) == JW_OK);
    *pb = accept_one(lb);
    close(lb);
}

static void forward_reset(void)
{
    struct fwd f = {NULL, NULL, JW_OK};
    int pa, pb;
    pair_up(&f.a, &pa, &f.b, &pb);
    pthread_t t;
    pthread_create(&t, NULL, forwarding, &f);

    char buf[8];
    CHECK(send(pa, "through", 7, MSG_NOSIGNAL) == 7);
    CHECK(read_exact(pb, buf, 7) == 0);
    reset_close(pb);
    pthread_join(t, NULL);
    CHECK(f.status == JW_ERR_CONNECTION);
    printf("jw_forward, b's peer reset: jw_forward returned %s\n", jw_status_str(f.status));

    /* a was reset: its peer gets ECONNRESET once a is closed. */
    jw_stream_close(f.a);
    jw_stream_close(f.b);
    ssize_t n = recv(pa, buf, sizeof buf, 0);
    CHECK(n < 0 && errno == ECONNRESET);
    printf("jw_forward, b's peer reset: a's peer read %s\n", n < 0 ? strerror(errno) : "a clean end");
    close(pa);
}

static void forward_clean(void)
{
    struct fwd f = {NULL, NULL, JW_ERR_INTERNAL};
    int pa, pb;
    pair_up(&f.a, &pa, &f.b, &pb);
    pthread_t t;
    pthread_create(&t, NULL, forwarding, &f);

    char buf[8];
    CHECK(send(pa, "to b", 4, MSG_NOSIGNAL) == 4);
    CHECK(shutdown(pa, SHUT_WR) == 0);
    CHECK(read_exact(pb, buf, 4) == 0 && memcmp(buf, "to b", 4) == 0);
    CHECK(recv(pb, buf, sizeof buf, 0) == 0);
    CHECK(send(pb, "to a", 4, MSG_NOSIGNAL) == 4);
    CHECK(shutdown(pb, SHUT_WR) == 0);
    CHECK(read_exact(pa, buf, 4) == 0 && memcmp(buf, "to a", 4) == 0);
    CHECK(recv(pa, buf, sizeof buf, 0) == 0);
    pthread_join(t, NULL);
    CHECK(f.status == JW_OK);
    printf("jw_forward, clean ends: jw_forward returned %s\n", jw_status_str(f.status));
    jw_stream_close(f.a);
    jw_stream_close(f.b);
    close(pa);
    close(pb);
}

int main(void)
{
    /* As a plain C host runs: SIGPIPE kills unless the library keeps it away. */
    signal(SIGPIPE, SIG_DFL);
    listen_target_reset();
    listen_client_reset();
    forward_reset();
    forward_clean();
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
