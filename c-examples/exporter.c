/*
 * exporter: serve networks as a Jumpstarter exporter session.
 *
 *     exporter TCP_URL [SOCKET_PATH] [wait | lab [CONFIG]]
 *
 * jw_session_serve() serves a TCP service (TCP_URL, e.g.
 * tcp://127.0.0.1:22 for a board's SSH, or a serial-over-TCP bridge) as
 * the driver "tcp" and the echo network as "echo", children of a composite
 * root, on a Unix socket (default /tmp/jumpwire-exporter-PID.sock). The
 * program prints the JUMPSTARTER_HOST value for upstream's client: with
 *
 *     JUMPSTARTER_HOST=/tmp/jumpwire-exporter-PID.sock \
 *     JMP_DRIVERS_ALLOW='jumpstarter_driver_network.*,jumpstarter_driver_composite.*' \
 *     python -c 'from jumpstarter.utils.env import env; ...'
 *
 * upstream's Python client (or `j tcp address`, `j tcp forward-tcp 2222`)
 * sees two upstream NetworkClients, `tcp` and `echo`.
 *
 * Then it uses the session itself, as jumpwire's client
 * (jumpstarter:unix:PATH?driver=NAME): a round trip through `echo`, the
 * address of `tcp` (the session's `address` call), and a connection to the
 * TCP service through `tcp`. With `wait` it then serves until a line (or
 * end of file) comes on stdin; otherwise it closes the session and exits.
 *
 * With `lab` it serves the session through a Jumpstarter lab instead, as
 * upstream's `jmp run --exporter` does: jw_exporter_start() registers with
 * the controller of the exporter configuration CONFIG (upstream's
 * ExporterConfig YAML) or, without CONFIG, of the JMP_ENDPOINT, JMP_TOKEN,
 * JMP_NAMESPACE, JMP_NAME and JMP_TLS variables, and serves each lease's
 * clients through the lab's router until a line (or end of file) comes on
 * stdin. Clients then reach it with `jmp shell --lease ...` or jumpwire's
 * jumpstarter:lease?driver=tcp&lease=LEASE.
 *
 * Build: cc exporter.c -Iinclude -Ltarget/release -ljumpwire
 * Exits 0 when every step worked, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jumpwire.h"

#define TIMEOUT_MS 10000

/* Prints why a call failed: the status's fixed text and the last error. */
static int fail(const char *what, jw_status st)
{
    fprintf(stderr, "exporter: %s failed with %s (%d): %s\n", what, jw_status_str(st), (int)st, jw_last_error());
    return 0;
}

/* Opens a stream of the session's driver `name`, as jumpwire's client. */
static jw_stream *open_driver(const char *socket_path, const char *name)
{
    char url[600];
    snprintf(url, sizeof url, "jumpstarter:unix:%s?driver=%s", socket_path, name);
    jw_stream *s = NULL;
    jw_status st = jw_connect(url, TIMEOUT_MS, &s);
    if (st != JW_OK) {
        fail(url, st);
        return NULL;
    }
    return s;
}

/* Sends `msg` through the echo driver and checks that it comes back, then
 * half-closes and waits for the end of stream to come back too. */
static int echo_round_trip(const char *socket_path, const char *msg)
{
    jw_stream *s = open_driver(socket_path, "echo");
    if (!s) {
        return 0;
    }
    int ok = 0;
    size_t len = strlen(msg), got = 0;
    char back[256];
    jw_status st = jw_stream_send(s, (const uint8_t *)msg, len, TIMEOUT_MS);
    while (st == JW_OK && got < len) {
        size_t n = 0;
        st = jw_stream_receive(s, (uint8_t *)back + got, sizeof back - got, &n, TIMEOUT_MS);
        got += n;
    }
    if (st != JW_OK) {
        fail("echo round trip", st);
    } else if (memcmp(back, msg, len) != 0) {
        fprintf(stderr, "exporter: sent \"%s\", got back \"%.*s\"\n", msg, (int)got, back);
    } else if ((st = jw_stream_send_eof(s)) != JW_OK) {
        fail("jw_stream_send_eof", st);
    } else {
        size_t n = 0;
        st = jw_stream_receive(s, (uint8_t *)back, sizeof back, &n, TIMEOUT_MS);
        if (st == JW_EOF) {
            printf("echo through the session: \"%s\", then end of stream\n", msg);
            ok = 1;
        } else {
            fail("waiting for the end of stream", st);
        }
    }
    jw_stream_close(s);
    return ok;
}

/* The `tcp` driver's address, as the session answers it, and one
 * connection to the service through the driver. */
static int use_tcp(const char *socket_path)
{
    char url[600], address[256];
    snprintf(url, sizeof url, "jumpstarter:unix:%s?driver=tcp", socket_path);
    jw_network *n = NULL;
    jw_status st = jw_network_new(url, &n);
    if (st != JW_OK) {
        return fail("jw_network_new", st);
    }
    st = jw_network_address(n, address, sizeof address);
    jw_network_free(n);
    if (st != JW_OK) {
        return fail("the tcp driver's address", st);
    }
    printf("tcp driver's address: %s\n", address);
    jw_stream *s = open_driver(socket_path, "tcp");
    if (!s) {
        return 0;
    }
    printf("connected to the TCP service through the session\n");
    jw_stream_close(s);
    return 1;
}

/* Blocks until a line or the end of input comes on stdin. */
static void wait_for_enter(void)
{
    char line[16];
    if (!fgets(line, sizeof line, stdin)) {
        /* End of input: stop as well. */
    }
}

/* Serves `session` through the lab of `config` (NULL: the JMP_* variables)
 * until Enter. jw_exporter_start returns once the controller registered the
 * exporter; a thread of the library then follows its leases. */
static int serve_through_lab(jw_session *session, const char *config)
{
    jw_exporter *e = NULL;
    jw_status st = jw_exporter_start(config, session, &e);
    if (st != JW_OK) {
        return fail("jw_exporter_start", st);
    }
    printf("registered with the lab (%s); press Enter to stop\n",
           config ? config : "the JMP_* variables");
    fflush(stdout);
    wait_for_enter();
    /* The exporter goes first (offline, unregistered), then the session. */
    jw_exporter_close(e);
    printf("left the lab\n");
    return 1;
}

int main(int argc, char **argv)
{
    /* A C host: SIGPIPE as the default (jumpwire never raises it). */
    signal(SIGPIPE, SIG_DFL);
    if (argc < 2) {
        fprintf(stderr, "usage: exporter TCP_URL [SOCKET_PATH] [wait | lab [CONFIG]]\n");
        return 1;
    }
    char socket_path[512];
    if (argc > 2) {
        snprintf(socket_path, sizeof socket_path, "%s", argv[2]);
    } else {
        snprintf(socket_path, sizeof socket_path, "/tmp/jumpwire-exporter-%ld.sock", (long)getpid());
    }
    int wait = argc > 3 && strcmp(argv[3], "wait") == 0;
    int lab = argc > 3 && strcmp(argv[3], "lab") == 0;
    const char *lab_config = argc > 4 ? argv[4] : NULL;

    /* 1. The networks: parsing only, no I/O until a client opens a stream. */
    jw_network *tcp = NULL, *echo = NULL;
    jw_status st = jw_network_new(argv[1], &tcp);
    if (st != JW_OK) {
        fail("jw_network_new (TCP_URL)", st);
        return 1;
    }
    st = jw_network_new("echo:", &echo);
    if (st != JW_OK) {
        jw_network_free(tcp);
        fail("jw_network_new (echo:)", st);
        return 1;
    }

    /* 2. The session copies names and networks: both can go at once. */
    const char *names[] = {"tcp", "echo"};
    const jw_network *networks[] = {tcp, echo};
    char listen_url[600];
    snprintf(listen_url, sizeof listen_url, "unix:%s", socket_path);
    jw_session *session = NULL;
    st = jw_session_serve(listen_url, names, networks, 2, &session);
    jw_network_free(tcp);
    jw_network_free(echo);
    if (st != JW_OK) {
        fail("jw_session_serve", st);
        return 1;
    }
    char address[600];
    st = jw_session_address(session, address, sizeof address);
    if (st != JW_OK) {
        fail("jw_session_address", st);
        jw_session_close(session);
        return 1;
    }
    printf("session listening on %s\n", address);
    /* JUMPSTARTER_HOST takes the socket's path, without "unix:". */
    printf("JUMPSTARTER_HOST=%s\n", address + strlen("unix:"));
    fflush(stdout);

    /* 3. The session as jumpwire's client sees it. */
    int ok = echo_round_trip(socket_path, "hello through the session") && use_tcp(socket_path);

    if (ok && wait) {
        printf("serving; press Enter to stop\n");
        fflush(stdout);
        wait_for_enter();
    }
    if (ok && lab) {
        ok = serve_through_lab(session, lab_config);
    }

    /* 4. Close: open driver streams end, threads are joined, the socket
     * file is removed. */
    jw_session_close(session);
    if (access(socket_path, F_OK) == 0) {
        fprintf(stderr, "exporter: %s is still there after the close\n", socket_path);
        ok = 0;
    }
    printf("exporter: %s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}
