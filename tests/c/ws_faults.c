/*
 * ws_faults: what a C host sees of websocket faults (issues 11 and 17), with
 * the default SIGPIPE disposition:
 *   - through a ws:// bridge whose target resets, the client's receive is
 *     JW_ERR_CONNECTION naming close code 1011 (not JW_EOF), every time, and
 *     its later sends fail;
 *   - a bridge whose listen URL restricts origins refuses our client (it
 *     sends no Origin) with JW_ERR_CONNECTION naming HTTP 403;
 *   - jw_stream_close on a client while another thread is blocked sending to a
 *     server that does not read returns within 100 ms (+ slack) and wakes the
 *     sender with an error;
 *   - jw_ws_server_close with handlers blocked sending to clients that do not
 *     read returns within 100 ms (+ slack);
 *   - jw_connect to a ws:// or wss:// server that accepts TCP but never
 *     answers returns JW_TIMEOUT within the timeout + 100 ms;
 *   - 20 connections that never send a handshake do not keep a good client
 *     out of a jw_ws_serve server (max_handshakes=4, max_connections=2), and
 *     max_connections still refuses a third served client with HTTP 503.
 *
 * Prints one line per failed check and a summary; exits 1 if any failed.
 * Run by tests/suite/c_examples.rs against the shared and the static library.
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

#define TIMEOUT_MS 5000
/* The promise (100 ms) plus scheduling slack for a loaded machine, plus
 * JW_TIMING_SLACK_MS (set by scripts/sanitize.sh: valgrind runs every
 * instruction many times slower). */
#define CLOSE_BOUND_MS (200 + slack_ms())


/* CHECK(cond, what): a check with its own wording. */
#undef CHECK
#define CHECK(cond, what) check_at(__FILE__, __LINE__, (cond), (what))

/* A listening TCP socket on 127.0.0.1 (a free port); its port in *port. */
static int listen_local(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("listen_local");
        exit(2);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- 1011 through the bridge ---------------------------------------- */

static void *reset_target(void *arg)
{
    int l = *(int *)arg;
    int c = accept(l, NULL, NULL);
    char one;
    if (c >= 0 && recv(c, &one, 1, 0) == 1) {
        struct linger lg = {1, 0};
        setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (c >= 0) {
        close(c);
    }
    return NULL;
}

static void target_reset_is_an_error(void)
{
    int port;
    int l = listen_local(&port);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    jw_network *net = NULL;
    jw_listener *bridge = NULL;
    CHECK(jw_network_new(url, &net) == JW_OK, "jw_network_new");
    CHECK(jw_listen("ws://127.0.0.1:0", net, &bridge) == JW_OK, "jw_listen ws://");
    char addr[128];
    CHECK(jw_listener_address(bridge, addr, sizeof addr) == JW_OK, "bridge address");
    pthread_t t;
    pthread_create(&t, NULL, reset_target, &l);
    jw_stream *s = NULL;
    CHECK(jw_connect(addr, TIMEOUT_MS, &s) == JW_OK, "connect to the bridge");
    CHECK(jw_stream_send(s, "go", 2, TIMEOUT_MS) == JW_OK, "send");
    pthread_join(t, NULL);
    for (int i = 0; i < 2; i++) {
        char buf[16];
        size_t n = 0;
        jw_status st = jw_stream_receive(s, buf, sizeof buf, &n, TIMEOUT_MS);
        CHECK(st == JW_ERR_CONNECTION, "receive after a target reset is JW_ERR_CONNECTION");
        CHECK(strstr(jw_last_error(), "1011") != NULL, "the error names close code 1011");
    }
    CHECK(jw_stream_send(s, "more", 4, TIMEOUT_MS) != JW_OK, "a send after 1011 fails");
    jw_stream_close(s);
    jw_listener_close(bridge);
    jw_network_free(net);
    close(l);
}

static void forbidden_origin(void)
{
    int port;
    int l = listen_local(&port);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    jw_network *net = NULL;
    jw_listener *bridge = NULL;
    CHECK(jw_network_new(url, &net) == JW_OK, "jw_network_new");
    CHECK(jw_listen("ws://127.0.0.1:0?origins=https://lab.example", net, &bridge) == JW_OK,
          "jw_listen ws:// with origins");
    char addr[128];
    CHECK(jw_listener_address(bridge, addr, sizeof addr) == JW_OK, "bridge address");
    jw_stream *s = NULL;
    CHECK(jw_connect(addr, TIMEOUT_MS, &s) == JW_ERR_CONNECTION, "a refused origin: JW_ERR_CONNECTION");
    CHECK(strstr(jw_last_error(), "403") != NULL, "the error names HTTP 403");
    CHECK(s == NULL, "no stream on failure");
    jw_listener_close(bridge);
    jw_network_free(net);
    close(l);
}

/* ---- closes with stuck peers ------------------------------------------ */

static volatile int stop_handlers;
static int handlers_blocked;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* Sends 256 KiB messages (50 ms at most each) until one cannot go. */
static int fill(jw_stream *s)
{
    static char big[256 << 10];
    for (int i = 0; i < 1000; i++) {
        jw_status st = jw_stream_send(s, big, sizeof big, 50);
        if (st == JW_TIMEOUT) {
            return 1;
        }
        if (st != JW_OK) {
            return 0;
        }
    }
    return 0;
}

/* Never reads; returns when told. */
static void idle_handler(jw_stream *conn, void *user)
{
    (void)conn;
    (void)user;
    while (!stop_handlers) {
        sleep_ms(5);
    }
}

struct sender {
    jw_stream *s;
    jw_status result;
};

static void *blocked_send(void *arg)
{
    struct sender *snd = arg;
    static char msg[1 << 20];
    snd->result = jw_stream_send(snd->s, msg, sizeof msg, -1);
    return NULL;
}

static void client_close_beside_a_blocked_sender(void)
{
    jw_ws_server *w = NULL;
    stop_handlers = 0;
    CHECK(jw_ws_serve("ws://127.0.0.1:0", idle_handler, NULL, &w) == JW_OK, "jw_ws_serve");
    char addr[128];
    CHECK(jw_ws_server_address(w, addr, sizeof addr) == JW_OK, "server address");
    jw_stream *s = NULL;
    CHECK(jw_connect(addr, TIMEOUT_MS, &s) == JW_OK, "connect");
    CHECK(fill(s), "the server's buffers fill");
    struct sender snd = {s, JW_OK};
    pthread_t t;
    pthread_create(&t, NULL, blocked_send, &snd);
    sleep_ms(20); /* blocked or not yet: the close must end it either way */
    double t0 = now_ms();
    jw_stream_close(s);
    double took = now_ms() - t0;
    pthread_join(t, NULL);
    printf("client close beside a blocked sender: %.1f ms\n", took);
    CHECK(took < CLOSE_BOUND_MS, "jw_stream_close returns at once");
    CHECK(snd.result != JW_OK, "the blocked send fails");
    stop_handlers = 1;
    jw_ws_server_close(w);
}

/* Fills its client, then blocks in a send until the server closes. */
static void stuck_handler(jw_stream *conn, void *user)
{
    (void)user;
    static char msg[1 << 20];
    int full = fill(conn);
    pthread_mutex_lock(&mu);
    handlers_blocked += full;
    pthread_mutex_unlock(&mu);
    jw_stream_send(conn, msg, sizeof msg, -1);
}

static void server_close_with_blocked_handlers(void)
{
    jw_ws_server *w = NULL;
    handlers_blocked = 0;
    CHECK(jw_ws_serve("ws://127.0.0.1:0", stuck_handler, NULL, &w) == JW_OK, "jw_ws_serve");
    char addr[128];
    CHECK(jw_ws_server_address(w, addr, sizeof addr) == JW_OK, "server address");
    enum { CLIENTS = 4 };
    jw_stream *c[CLIENTS] = {0};
    for (int i = 0; i < CLIENTS; i++) {
        CHECK(jw_connect(addr, TIMEOUT_MS, &c[i]) == JW_OK, "connect");
    }
    int blocked = 0;
    for (int i = 0; i < 1000 && blocked < CLIENTS; i++) {
        sleep_ms(5);
        pthread_mutex_lock(&mu);
        blocked = handlers_blocked;
        pthread_mutex_unlock(&mu);
    }
    CHECK(blocked == CLIENTS, "every handler is blocked sending");
    double t0 = now_ms();
    jw_ws_server_close(w);
    double took = now_ms() - t0;
    printf("server close with %d blocked handlers: %.1f ms\n", CLIENTS, took);
    CHECK(took < CLOSE_BOUND_MS, "jw_ws_server_close returns at once");
    for (int i = 0; i < CLIENTS; i++) {
        jw_stream_close(c[i]);
    }
}

/* ---- timeouts against a silent server --------------------------------- */

static void silent_server_connects_time_out(void)
{
    int port;
    int l = listen_local(&port); /* never accepts: the kernel completes TCP */
    const char *forms[] = {"ws://127.0.0.1:%d/", "wss://127.0.0.1:%d/#insecure=1"};
    for (int f = 0; f < 2; f++) {
        char url[96];
        snprintf(url, sizeof url, forms[f], port);
        for (int timeout = 100; timeout <= 300; timeout += 200) {
            jw_stream *s = NULL;
            double t0 = now_ms();
            jw_status st = jw_connect(url, timeout, &s);
            double took = now_ms() - t0;
            printf("%s with %d ms: %s after %.1f ms\n", url, timeout, jw_status_str(st), took);
            CHECK(st == JW_TIMEOUT, "a silent server: JW_TIMEOUT");
            CHECK(took >= timeout && took < timeout + 100 + slack_ms(), "within the timeout + 100 ms");
            CHECK(s == NULL, "no stream on timeout");
        }
    }
    close(l);
}

/* Echoes every message. */
static void echo_handler(jw_stream *conn, void *user)
{
    (void)user;
    char buf[256];
    size_t n = 0;
    while (jw_stream_receive(conn, buf, sizeof buf, &n, -1) == JW_OK) {
        if (jw_stream_send(conn, buf, n, TIMEOUT_MS) != JW_OK) {
            break;
        }
    }
}

static void silent_handshakes_do_not_lock_out_good_clients(void)
{
    jw_ws_server *w = NULL;
    CHECK(jw_ws_serve("ws://127.0.0.1:0?max_handshakes=4&max_connections=2&handshake_timeout_ms=60000",
                      echo_handler, NULL, &w) == JW_OK,
          "jw_ws_serve with max_handshakes");
    char addr[128];
    CHECK(jw_ws_server_address(w, addr, sizeof addr) == JW_OK, "server address");
    int port = 0;
    CHECK(sscanf(addr, "ws://127.0.0.1:%d/", &port) == 1, "the server's port");
    enum { SILENT = 20 };
    int silent[SILENT];
    for (int i = 0; i < SILENT; i++) {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons((unsigned short)port);
        silent[i] = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(silent[i] >= 0 && connect(silent[i], (struct sockaddr *)&a, sizeof a) == 0,
              "a silent connection");
    }
    jw_stream *good[2] = {0};
    double t0 = now_ms();
    for (int i = 0; i < 2; i++) {
        CHECK(jw_connect(addr, TIMEOUT_MS, &good[i]) == JW_OK, "a good client gets in");
    }
    double took = now_ms() - t0;
    printf("two good clients beside %d silent ones: %.1f ms\n", SILENT, took);
    CHECK(took < 1000 + slack_ms(), "the good clients got in at once");
    for (int i = 0; i < 2; i++) {
        char buf[8];
        size_t n = 0;
        CHECK(jw_stream_send(good[i], "hi", 2, TIMEOUT_MS) == JW_OK, "send");
        CHECK(jw_stream_receive(good[i], buf, sizeof buf, &n, TIMEOUT_MS) == JW_OK && n == 2, "echo");
    }
    jw_stream *third = NULL;
    CHECK(jw_connect(addr, TIMEOUT_MS, &third) == JW_ERR_CONNECTION, "a third served client: refused");
    CHECK(strstr(jw_last_error(), "503") != NULL, "the error names HTTP 503");
    uint64_t refused = 0;
    CHECK(jw_ws_server_refused(w, &refused) == JW_OK && refused >= 1, "the 503 is counted");
    for (int i = 0; i < SILENT; i++) {
        close(silent[i]);
    }
    for (int i = 0; i < 2; i++) {
        jw_stream_close(good[i]);
    }
    jw_ws_server_close(w);
}

int main(void)
{
    /* As a plain C host: the default disposition, so SIGPIPE would kill us. */
    signal(SIGPIPE, SIG_DFL);
    target_reset_is_an_error();
    forbidden_origin();
    client_close_beside_a_blocked_sender();
    server_close_with_blocked_handlers();
    silent_server_connects_time_out();
    silent_handshakes_do_not_lock_out_good_clients();
    printf("ws_faults: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
