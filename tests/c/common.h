/*
 * common.h: what the C test programs in tests/c/ share: the check counters
 * and the summary line, clocks, the timing slack for runs under the
 * sanitizers, and plain BSD sockets on 127.0.0.1 for peers written in C.
 * Header-only (static inline): each test program is one translation unit.
 */
#ifndef JW_TESTS_C_COMMON_H
#define JW_TESTS_C_COMMON_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jumpwire.h"

static int checks;
static int failures;

/* Records one check; prints where it failed, with this thread's last error. */
static inline int check_at(const char *file, int line, int cond, const char *what)
{
    checks++;
    if (!cond) {
        failures++;
        const char *base = strrchr(file, '/');
        fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", base ? base + 1 : file, line, what, jw_last_error());
    }
    return cond;
}
#define CHECK(cond) check_at(__FILE__, __LINE__, (cond), #cond)

/* Prints "NAME: N checks, F failed"; the program's exit code. */
static inline int summary(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, checks, failures);
    return failures ? 1 : 0;
}

static inline double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000.0 + t.tv_nsec / 1e6;
}

static inline void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* Extra time for timing bounds: JW_TIMING_SLACK_MS, set by
 * scripts/sanitize.sh (valgrind runs every instruction many times slower). */
static inline double slack_ms(void)
{
    const char *v = getenv("JW_TIMING_SLACK_MS");
    return v ? atof(v) : 0;
}

/* A TCP listening socket on 127.0.0.1 with a free port (to *port); exits 2
 * if it cannot be made. */
static inline int tcp_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("tcp_listen");
        exit(2);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* A TCP connection to 127.0.0.1:port; -1 if refused. */
static inline int tcp_dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Closes fd with a reset (RST) instead of a FIN. */
static inline void reset_close(int fd)
{
    struct linger l = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

#endif
