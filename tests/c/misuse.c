/*
 * misuse: every function of include/jumpwire.h called the wrong way, from C.
 *
 * Each check asserts the exact jw_status, that a failure leaves a non-empty
 * jw_last_error() (naming the wrong part where the contract says so), and that
 * out-pointers and buffers are not written on failure. Also covers
 * jw_status_str for every code, jw_version against JW_VERSION, and that
 * jw_last_error is per thread.
 *
 * Prints one line per failed check and a summary; exits 1 if any check failed.
 * Run by tests/suite/c_examples.rs against the shared and the static library.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jumpwire.h"

#define TIMEOUT_MS 5000

static int checks;
static int failures;

/* Records one check; prints where it failed. */
static int check(int line, int cond, const char *what)
{
    checks++;
    if (!cond) {
        failures++;
        fprintf(stderr, "FAIL misuse.c:%d: %s\n", line, what);
    }
    return cond;
}

/* Asserts that `got` is `want`; for failures (negative codes) also that
 * jw_last_error() is non-empty and, if `part` is not NULL, contains it. */
static void expect_status(int line, const char *call, jw_status got, jw_status want, const char *part)
{
    checks++;
    if (got != want) {
        failures++;
        fprintf(stderr, "FAIL misuse.c:%d: %s returned %s (%d), expected %s (%d); last error: %s\n", line, call,
                jw_status_str(got), (int)got, jw_status_str(want), (int)want, jw_last_error());
        return;
    }
    if (want >= 0) {
        return;
    }
    const char *msg = jw_last_error();
    checks++;
    if (msg == NULL || msg[0] == '\0') {
        failures++;
        fprintf(stderr, "FAIL misuse.c:%d: %s failed with %s but jw_last_error() is empty\n", line, call,
                jw_status_str(got));
    } else if (part != NULL && strstr(msg, part) == NULL) {
        failures++;
        fprintf(stderr, "FAIL misuse.c:%d: %s: the message \"%s\" does not mention \"%s\"\n", line, call, msg,
                part);
    }
}

/* EXPECT(call, status, part): run `call`, check its status and message. */
#define EXPECT(call, want, part) expect_status(__LINE__, #call, (call), (want), (part))
#define CHECK(cond) check(__LINE__, (cond), #cond)

/* Values that a failing call must leave alone in its out-pointers. */
static char marker;
#define NET_MARK ((jw_network *)(void *)&marker)
#define STREAM_MARK ((jw_stream *)(void *)&marker)
#define LISTENER_MARK ((jw_listener *)(void *)&marker)
#define LEN_MARK ((size_t)0x5a5a5a5a)

/* A loopback TCP port that refuses connections: bound, never listening. The
 * socket stays open (so nobody else gets the port) until close_port(). */
static int refusing_port(int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("misuse: binding a refusing port");
        exit(2);
    }
    *fd_out = fd;
    return ntohs(a.sin_port);
}

static void status_strings(void)
{
    static const struct {
        int code;
        const char *text;
    } known[] = {
        {JW_OK, "ok"},
        {JW_EOF, "end of stream"},
        {JW_TIMEOUT, "timed out"},
        {JW_ERR_INVALID_ARGUMENT, "invalid argument"},
        {JW_ERR_IO, "I/O error"},
        {JW_ERR_CONNECTION, "connection error"},
        {JW_ERR_CLOSED, "closed"},
        {JW_ERR_UNSUPPORTED, "unsupported"},
        {JW_ERR_PROTOCOL, "protocol error"},
        {JW_ERR_UNAUTHENTICATED, "unauthenticated"},
        {JW_ERR_DISABLED, "disabled"},
        {JW_ERR_TOO_LARGE, "too large"},
        {JW_ERR_INTERNAL, "internal error"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const char *s = jw_status_str(known[i].code);
        if (!check(__LINE__, s != NULL && strcmp(s, known[i].text) == 0, "jw_status_str(known code)")) {
            fprintf(stderr, "  jw_status_str(%d) = \"%s\", expected \"%s\"\n", known[i].code, s ? s : "(null)",
                    known[i].text);
        }
        /* Static strings: the same pointer every time. */
        CHECK(jw_status_str(known[i].code) == s);
    }
    const int unknown[] = {3, 100, -10, -98, -100, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = jw_status_str(unknown[i]);
        if (!check(__LINE__, s != NULL && strcmp(s, "unknown status") == 0, "jw_status_str(unknown code)")) {
            fprintf(stderr, "  jw_status_str(%d) = \"%s\"\n", unknown[i], s ? s : "(null)");
        }
    }
}

static void version(void)
{
    const char *v = jw_version();
    char macros[32];
    snprintf(macros, sizeof macros, "%d.%d.%d", JW_VERSION_MAJOR, JW_VERSION_MINOR, JW_VERSION_PATCH);
    CHECK(v != NULL && strcmp(v, JW_VERSION) == 0);
    CHECK(strcmp(macros, JW_VERSION) == 0);
    CHECK(JW_VERSION_NUM == ((JW_VERSION_MAJOR << 16) | (JW_VERSION_MINOR << 8) | JW_VERSION_PATCH));
    CHECK(JW_AT_LEAST_VERSION(JW_VERSION_MAJOR, JW_VERSION_MINOR, JW_VERSION_PATCH));
    CHECK(!JW_AT_LEAST_VERSION(JW_VERSION_MAJOR + 1, 0, 0));
    CHECK(jw_version() == v);
}

static void network_new(void)
{
    jw_network *n = NET_MARK;
    EXPECT(jw_network_new(NULL, &n), JW_ERR_INVALID_ARGUMENT, "url");
    EXPECT(jw_network_new("echo:", NULL), JW_ERR_INVALID_ARGUMENT, "out");
    EXPECT(jw_network_new("", &n), JW_ERR_INVALID_ARGUMENT, NULL);
    EXPECT(jw_network_new("bogus://127.0.0.1:80", &n), JW_ERR_INVALID_ARGUMENT, "bogus");
    EXPECT(jw_network_new("127.0.0.1:80", &n), JW_ERR_INVALID_ARGUMENT, NULL);
    EXPECT(jw_network_new("tcp://127.0.0.1", &n), JW_ERR_INVALID_ARGUMENT, "port");
    EXPECT(jw_network_new("tcp://127.0.0.1:65536", &n), JW_ERR_INVALID_ARGUMENT, "port");
    EXPECT(jw_network_new("tcp://127.0.0.1:0", &n), JW_ERR_INVALID_ARGUMENT, "port");
    EXPECT(jw_network_new("tcp://127.0.0.1:http", &n), JW_ERR_INVALID_ARGUMENT, "port");
    EXPECT(jw_network_new("tcp://127.0.0.1:-1", &n), JW_ERR_INVALID_ARGUMENT, "port");
    EXPECT(jw_network_new("udp://127.0.0.1:99999", &n), JW_ERR_INVALID_ARGUMENT, "port");
    EXPECT(jw_network_new("tcp://127.0.0.1:80?frobnicate=1", &n), JW_ERR_INVALID_ARGUMENT, "frobnicate");
    EXPECT(jw_network_new("tcp://127.0.0.1:80?nodelay=maybe", &n), JW_ERR_INVALID_ARGUMENT, "nodelay");
    EXPECT(jw_network_new("echo:?frobnicate=1", &n), JW_ERR_INVALID_ARGUMENT, "frobnicate");
    EXPECT(jw_network_new("tcp://\xff\xfe:80", &n), JW_ERR_INVALID_ARGUMENT, "UTF-8");
    EXPECT(jw_network_new("echo:\xc3", &n), JW_ERR_INVALID_ARGUMENT, "UTF-8");
    CHECK(n == NET_MARK);
    jw_network_free(NULL);
}

static void connect_calls(int refused_port)
{
    char refused[64];
    snprintf(refused, sizeof refused, "tcp://127.0.0.1:%d", refused_port);
    jw_stream *s = STREAM_MARK;

    EXPECT(jw_connect(NULL, TIMEOUT_MS, &s), JW_ERR_INVALID_ARGUMENT, "url");
    EXPECT(jw_connect("echo:", TIMEOUT_MS, NULL), JW_ERR_INVALID_ARGUMENT, "out");
    EXPECT(jw_connect("bogus:", TIMEOUT_MS, &s), JW_ERR_INVALID_ARGUMENT, "bogus");
    EXPECT(jw_connect("tcp://127.0.0.1:99999", TIMEOUT_MS, &s), JW_ERR_INVALID_ARGUMENT, "port");
    EXPECT(jw_connect("tcp://127.0.0.1:80?frobnicate=1", TIMEOUT_MS, &s), JW_ERR_INVALID_ARGUMENT, "frobnicate");
    EXPECT(jw_connect("tcp://\xff:80", TIMEOUT_MS, &s), JW_ERR_INVALID_ARGUMENT, "UTF-8");
    EXPECT(jw_connect("echo:", -2, &s), JW_ERR_INVALID_ARGUMENT, "timeout_ms");
    EXPECT(jw_connect("echo:", INT_MIN, &s), JW_ERR_INVALID_ARGUMENT, "timeout_ms");
    EXPECT(jw_connect(refused, TIMEOUT_MS, &s), JW_ERR_CONNECTION, refused);
    EXPECT(jw_connect(refused, -1, &s), JW_ERR_CONNECTION, refused);
    CHECK(s == STREAM_MARK);

    jw_network *n = NULL;
    EXPECT(jw_network_new(refused, &n), JW_OK, NULL);
    EXPECT(jw_network_connect(NULL, TIMEOUT_MS, &s), JW_ERR_INVALID_ARGUMENT, "network");
    EXPECT(jw_network_connect(n, TIMEOUT_MS, NULL), JW_ERR_INVALID_ARGUMENT, "out");
    EXPECT(jw_network_connect(n, -2, &s), JW_ERR_INVALID_ARGUMENT, "timeout_ms");
    EXPECT(jw_network_connect(n, -1000, &s), JW_ERR_INVALID_ARGUMENT, "timeout_ms");
    EXPECT(jw_network_connect(n, TIMEOUT_MS, &s), JW_ERR_CONNECTION, refused);
    CHECK(s == STREAM_MARK);
    jw_network_free(n);
}

/* Checks a jw_*_address function against too-small buffers: JW_ERR_TOO_LARGE
 * and nothing written past `cap` (the canary byte right after it survives).
 * Returns the full address's length. */
static size_t address_buffers(const char *name, jw_status (*address)(const void *, char *, size_t), const void *obj)
{
    char full[256];
    jw_status st = address(obj, full, sizeof full);
    if (!check(__LINE__, st == JW_OK, name)) {
        fprintf(stderr, "  %s: %s: %s\n", name, jw_status_str(st), jw_last_error());
        return 0;
    }
    size_t len = strlen(full);
    const size_t caps[] = {1, 2, len / 2, len};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        char buf[256 + 1];
        size_t cap = caps[i];
        memset(buf, '#', sizeof buf);
        EXPECT(address(obj, buf, cap), JW_ERR_TOO_LARGE, NULL);
        if (!check(__LINE__, buf[cap] == '#', "nothing written past cap")) {
            fprintf(stderr, "  %s with cap %zu wrote past it\n", name, cap);
        }
        /* The buffer holds at most an empty string: never a cut-off address. */
        CHECK(buf[0] == '#' || buf[0] == '\0');
    }
    /* Exactly len + 1 bytes fit, and the NUL is the last one written. */
    char exact[256 + 1];
    memset(exact, '#', sizeof exact);
    EXPECT(address(obj, exact, len + 1), JW_OK, NULL);
    CHECK(exact[len] == '\0' && exact[len + 1] == '#' && memcmp(exact, full, len) == 0);
    return len;
}

/* Adapters with a common signature for address_buffers(). */
static jw_status network_address(const void *n, char *buf, size_t cap)
{
    return jw_network_address((const jw_network *)n, buf, cap);
}

static jw_status listener_address(const void *l, char *buf, size_t cap)
{
    return jw_listener_address((const jw_listener *)l, buf, cap);
}

static void network_address_calls(void)
{
    jw_network *n = NULL;
    char buf[64];
    EXPECT(jw_network_new("tcp://127.0.0.1:5201", &n), JW_OK, NULL);
    EXPECT(jw_network_address(NULL, buf, sizeof buf), JW_ERR_INVALID_ARGUMENT, "network");
    EXPECT(jw_network_address(n, NULL, sizeof buf), JW_ERR_INVALID_ARGUMENT, "buf");
    buf[0] = '#';
    EXPECT(jw_network_address(n, buf, 0), JW_ERR_INVALID_ARGUMENT, "cap");
    CHECK(buf[0] == '#');
    CHECK(address_buffers("jw_network_address", network_address, n) == strlen("tcp://127.0.0.1:5201"));
    EXPECT(jw_network_address(n, buf, sizeof buf), JW_OK, NULL);
    CHECK(strcmp(buf, "tcp://127.0.0.1:5201") == 0);
    jw_network_free(n);

    n = NULL;
    EXPECT(jw_network_new("tcp://127.0.0.1:5201?enable_address=false", &n), JW_OK, NULL);
    memset(buf, '#', sizeof buf);
    EXPECT(jw_network_address(n, buf, sizeof buf), JW_ERR_DISABLED, "enable_address");
    CHECK(buf[0] == '#');
    jw_network_free(n);

    n = NULL;
    EXPECT(jw_network_new("echo:", &n), JW_OK, NULL);
    EXPECT(jw_network_address(n, buf, sizeof buf), JW_ERR_UNSUPPORTED, "echo");
    CHECK(buf[0] == '#');
    jw_network_free(n);
}

static void listener_calls(void)
{
    jw_network *echo = NULL;
    jw_listener *l = LISTENER_MARK;
    EXPECT(jw_network_new("echo:", &echo), JW_OK, NULL);

    EXPECT(jw_listen(NULL, echo, &l), JW_ERR_INVALID_ARGUMENT, "listen_url");
    EXPECT(jw_listen("tcp://127.0.0.1:0", NULL, &l), JW_ERR_INVALID_ARGUMENT, "network");
    EXPECT(jw_listen("tcp://127.0.0.1:0", echo, NULL), JW_ERR_INVALID_ARGUMENT, "out");
    EXPECT(jw_listen("bogus://127.0.0.1:0", echo, &l), JW_ERR_INVALID_ARGUMENT, "bogus");
    EXPECT(jw_listen("echo:", echo, &l), JW_ERR_INVALID_ARGUMENT, "echo");
    EXPECT(jw_listen("tcp://127.0.0.1:65536", echo, &l), JW_ERR_INVALID_ARGUMENT, "port");
    EXPECT(jw_listen("tcp://127.0.0.1", echo, &l), JW_ERR_INVALID_ARGUMENT, "port");
    EXPECT(jw_listen("tcp://127.0.0.1:0?frobnicate=1", echo, &l), JW_ERR_INVALID_ARGUMENT, "frobnicate");
    EXPECT(jw_listen("tcp://\xff:0", echo, &l), JW_ERR_INVALID_ARGUMENT, "UTF-8");
    CHECK(l == LISTENER_MARK);

    /* A port that is already listening cannot be bound again. */
    l = NULL;
    EXPECT(jw_listen("tcp://127.0.0.1:0", echo, &l), JW_OK, NULL);
    char addr[128];
    EXPECT(jw_listener_address(l, addr, sizeof addr), JW_OK, NULL);
    CHECK(strncmp(addr, "tcp://127.0.0.1:", strlen("tcp://127.0.0.1:")) == 0);
    jw_listener *again = LISTENER_MARK;
    EXPECT(jw_listen(addr, echo, &again), JW_ERR_IO, NULL);
    CHECK(again == LISTENER_MARK);

    EXPECT(jw_listener_address(NULL, addr, sizeof addr), JW_ERR_INVALID_ARGUMENT, "listener");
    EXPECT(jw_listener_address(l, NULL, sizeof addr), JW_ERR_INVALID_ARGUMENT, "buf");
    addr[0] = '#';
    EXPECT(jw_listener_address(l, addr, 0), JW_ERR_INVALID_ARGUMENT, "cap");
    CHECK(addr[0] == '#');
    CHECK(address_buffers("jw_listener_address", listener_address, l) > strlen("tcp://127.0.0.1:"));

    jw_listener_close(l);
    jw_listener_close(NULL);
    jw_network_free(echo);
}

static void stream_calls(void)
{
    jw_stream *s = NULL;
    uint8_t buf[16];
    size_t n = LEN_MARK;
    EXPECT(jw_connect("echo:", TIMEOUT_MS, &s), JW_OK, NULL);

    /* jw_stream_send */
    EXPECT(jw_stream_send(NULL, (const uint8_t *)"x", 1, TIMEOUT_MS), JW_ERR_INVALID_ARGUMENT, "stream");
    EXPECT(jw_stream_send(s, NULL, 1, TIMEOUT_MS), JW_ERR_INVALID_ARGUMENT, "data");
    EXPECT(jw_stream_send(s, (const uint8_t *)"x", 1, -2), JW_ERR_INVALID_ARGUMENT, "timeout_ms");
    EXPECT(jw_stream_send(s, (const uint8_t *)"x", 1, INT_MIN), JW_ERR_INVALID_ARGUMENT, "timeout_ms");

    /* jw_stream_receive: nothing was sent above, so nothing may come back. */
    EXPECT(jw_stream_receive(NULL, buf, sizeof buf, &n, 0), JW_ERR_INVALID_ARGUMENT, "stream");
    EXPECT(jw_stream_receive(s, NULL, sizeof buf, &n, 0), JW_ERR_INVALID_ARGUMENT, "buf");
    EXPECT(jw_stream_receive(s, buf, 0, &n, 0), JW_ERR_INVALID_ARGUMENT, "cap");
    EXPECT(jw_stream_receive(s, buf, sizeof buf, NULL, 0), JW_ERR_INVALID_ARGUMENT, "out");
    EXPECT(jw_stream_receive(s, buf, sizeof buf, &n, -2), JW_ERR_INVALID_ARGUMENT, "timeout_ms");
    EXPECT(jw_stream_receive(s, buf, sizeof buf, &n, 0), JW_TIMEOUT, NULL);
    CHECK(n == LEN_MARK);

    /* A message, then cap 0 must not consume it: it still comes whole. */
    EXPECT(jw_stream_send(s, (const uint8_t *)"kept", 4, TIMEOUT_MS), JW_OK, NULL);
    EXPECT(jw_stream_receive(s, buf, 0, &n, TIMEOUT_MS), JW_ERR_INVALID_ARGUMENT, "cap");
    EXPECT(jw_stream_receive(s, buf, sizeof buf, NULL, TIMEOUT_MS), JW_ERR_INVALID_ARGUMENT, "out");
    CHECK(n == LEN_MARK);
    EXPECT(jw_stream_receive(s, buf, sizeof buf, &n, TIMEOUT_MS), JW_OK, NULL);
    CHECK(n == 4 && memcmp(buf, "kept", 4) == 0);

    /* NULL data is allowed with length 0. */
    EXPECT(jw_stream_send(s, NULL, 0, TIMEOUT_MS), JW_OK, NULL);

    /* jw_stream_send_eof: NULL, then twice (the second is a no-op), then a
     * send is refused, while receiving goes on until EOF. */
    EXPECT(jw_stream_send_eof(NULL), JW_ERR_INVALID_ARGUMENT, "stream");
    EXPECT(jw_stream_send_eof(s), JW_OK, NULL);
    EXPECT(jw_stream_send_eof(s), JW_OK, NULL);
    EXPECT(jw_stream_send(s, (const uint8_t *)"late", 4, TIMEOUT_MS), JW_ERR_CLOSED, "send_eof");
    EXPECT(jw_stream_send(s, (const uint8_t *)"late", 4, 0), JW_ERR_CLOSED, "send_eof");
    EXPECT(jw_stream_send(s, NULL, 0, TIMEOUT_MS), JW_ERR_CLOSED, "send_eof");
    n = LEN_MARK;
    jw_status st = jw_stream_receive(s, buf, sizeof buf, &n, TIMEOUT_MS);
    if (st == JW_OK) {
        /* The empty message sent above. */
        CHECK(n == 0);
        st = jw_stream_receive(s, buf, sizeof buf, &n, TIMEOUT_MS);
    }
    EXPECT(st, JW_EOF, NULL);
    EXPECT(jw_stream_receive(s, buf, sizeof buf, &n, 0), JW_EOF, NULL);

    /* jw_forward with NULL streams. */
    EXPECT(jw_forward(NULL, s), JW_ERR_INVALID_ARGUMENT, "stream");
    EXPECT(jw_forward(s, NULL), JW_ERR_INVALID_ARGUMENT, "stream");
    EXPECT(jw_forward(NULL, NULL), JW_ERR_INVALID_ARGUMENT, "stream");

    jw_stream_close(s);
    jw_stream_close(NULL);
}

/* ---- jw_last_error is per thread ---- */

#define ROUNDS 500

struct worker {
    int id;     /* 0: fails with a NULL url, 1: with cap 0 */
    int bad;    /* rounds where its own message was not its own */
    char first[256];
};

static void *worker_main(void *arg)
{
    struct worker *w = (struct worker *)arg;
    /* A new thread starts with no error. */
    snprintf(w->first, sizeof w->first, "%s", jw_last_error());
    for (int i = 0; i < ROUNDS; i++) {
        jw_network *n = NULL;
        jw_status st;
        const char *part;
        if (w->id == 0) {
            st = jw_network_new(NULL, &n);
            part = "url";
        } else {
            char b[4];
            jw_network *tcp = NULL;
            if (jw_network_new("tcp://127.0.0.1:5201", &tcp) != JW_OK) {
                w->bad++;
                continue;
            }
            st = jw_network_address(tcp, b, 0);
            jw_network_free(tcp);
            part = "cap";
        }
        const char *msg = jw_last_error();
        if (st != JW_ERR_INVALID_ARGUMENT || strstr(msg, part) == NULL) {
            w->bad++;
        }
    }
    return NULL;
}

static void last_error_per_thread(void)
{
    /* The main thread fails with one message... */
    jw_network *n = NULL;
    EXPECT(jw_network_new("bogus:", &n), JW_ERR_INVALID_ARGUMENT, "bogus");
    char mine[512];
    snprintf(mine, sizeof mine, "%s", jw_last_error());

    /* ...two threads fail many times with others, at the same time... */
    struct worker w[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i;
        if (pthread_create(&t[i], NULL, worker_main, &w[i]) != 0) {
            fprintf(stderr, "misuse: pthread_create failed\n");
            exit(2);
        }
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        if (!check(__LINE__, w[i].first[0] == '\0', "a new thread's jw_last_error() is empty")) {
            fprintf(stderr, "  thread %d started with \"%s\"\n", i, w[i].first);
        }
        if (!check(__LINE__, w[i].bad == 0, "each thread sees its own last error")) {
            fprintf(stderr, "  thread %d: %d of %d rounds saw another message\n", i, w[i].bad, ROUNDS);
        }
    }

    /* ...and the main thread's message is unchanged. */
    if (!check(__LINE__, strcmp(jw_last_error(), mine) == 0, "another thread's failure leaves this one's message")) {
        fprintf(stderr, "  was \"%s\", now \"%s\"\n", mine, jw_last_error());
    }
    /* A success does not clear it either (it lasts until the next failure). */
    EXPECT(jw_network_new("echo:", &n), JW_OK, NULL);
    jw_network_free(n);
    CHECK(strcmp(jw_last_error(), mine) == 0);
}

int main(void)
{
    int fd = -1;
    int port = refusing_port(&fd);

    status_strings();
    version();
    network_new();
    connect_calls(port);
    network_address_calls();
    listener_calls();
    stream_calls();
    last_error_per_thread();
    close(fd);

    /* Closing NULL handles is a no-op, always. */
    jw_stream_close(NULL);
    jw_listener_close(NULL);
    jw_network_free(NULL);

    printf("misuse: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
