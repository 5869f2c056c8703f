/*
 * router_idle_limit: a plaintext router whose process has few descriptors
 * is not locked out by connections that never open a call (issue 17, item 4).
 *
 * A child process lowers RLIMIT_NOFILE to 64 and serves a router; the parent
 * opens 150 TCP connections to it that never say a word (more than the child
 * has descriptors), then pairs two good router streams through it and
 * round-trips a message. The router closes idle connections (refusals are
 * counted: the child reports jw_router_refused when it ends) and keeps
 * serving. The parent makes no jumpwire call before the fork.
 *
 * Prints "N checks, 0 failed"; exits 1 if any check failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define KEY "idle-key"
#define IDLE 150

static int checks;
static int failures;


/* The child: a router with 64 descriptors; writes its port to `out`, runs
 * until `in` closes, then writes its refusal count. */
static int child(int out, int in)
{
    struct rlimit rl = {64, 64};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("router_idle_limit: child: setrlimit(RLIMIT_NOFILE, 64)");
        return 2;
    }
    jw_router *r = NULL;
    if (jw_router_serve("grpc://127.0.0.1:0?key=" KEY, &r) != JW_OK) {
        fprintf(stderr, "child: jw_router_serve: %s\n", jw_last_error());
        return 3;
    }
    char addr[128];
    jw_router_address(r, addr, sizeof addr);
    int port = atoi(strrchr(addr, ':') + 1);
    if (write(out, &port, sizeof port) != (ssize_t)sizeof port) {
        return 4;
    }
    char b;
    while (read(in, &b, 1) > 0) {
    }
    uint64_t refused = 0;
    jw_router_refused(r, &refused);
    if (write(out, &refused, sizeof refused) != (ssize_t)sizeof refused) {
        return 5;
    }
    jw_router_close(r);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    alarm(60);
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0) {
        perror("pipe");
        return 2;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        _exit(child(up[1], down[0]));
    }
    close(up[1]);
    close(down[0]);
    int port = 0;
    CHECK(read(up[0], &port, sizeof port) == (ssize_t)sizeof port && port > 0);

    /* Connections that never open a call. */
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    int idle[IDLE];
    int opened = 0;
    for (int i = 0; i < IDLE; i++) {
        idle[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (idle[i] >= 0 && connect(idle[i], (struct sockaddr *)&a, sizeof a) == 0) {
            opened++;
        }
    }
    CHECK(opened == IDLE);

    /* Two good callers still pair at once, and a message crosses. */
    char url[64], token[1024];
    snprintf(url, sizeof url, "grpc://127.0.0.1:%d", port);
    CHECK(jw_router_token(KEY, "idle-limit", 60, token, sizeof token) == JW_OK);
    double t0 = now_ms();
    jw_stream *x = NULL, *y = NULL;
    CHECK(jw_router_connect(url, token, 5000, &x) == JW_OK);
    CHECK(jw_router_connect(url, token, 5000, &y) == JW_OK);
    char buf[16];
    size_t n = 0;
    CHECK(x && jw_stream_send(x, "through", 7, 5000) == JW_OK);
    CHECK(y && jw_stream_receive(y, buf, sizeof buf, &n, 5000) == JW_OK && n == 7);
    double took = now_ms() - t0;
    printf("router_idle_limit: %d idle connections, a good pair served in %.1f ms\n", opened, took);
    CHECK(took < 3000);
    jw_stream_close(x);
    jw_stream_close(y);

    for (int i = 0; i < IDLE; i++) {
        close(idle[i]);
    }
    close(down[1]);
    uint64_t refused = 0;
    CHECK(read(up[0], &refused, sizeof refused) == (ssize_t)sizeof refused);
    printf("router_idle_limit: the router refused or closed %llu connections\n", (unsigned long long)refused);
    CHECK(refused > 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return summary("router_idle_limit");
}
