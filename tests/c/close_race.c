/*
 * close_race: the _close of a server, listener or router racing calls on the
 * same handle from another thread, 1,000 rounds each.
 *
 * jw_ws_broadcast is thread-safe, so a host may broadcast on one thread while
 * another closes the server; the same holds for the _address and counter
 * calls of listeners and routers. A call that overlaps the close finishes
 * safely; a call made with the handle after the close returns JW_ERR_CLOSED
 * (the handle names a closed object, it is not dangling memory); closing it a
 * second time is a no-op. Run under AddressSanitizer and valgrind by
 * scripts/sanitize.sh, any use after free is reported there.
 *
 * Prints one line per failed check and "N checks, 0 failed"; exits 1 if any
 * check failed. Run by tests/suite/c_examples.rs against both libraries.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static int checks;
static int failures;


enum kind { WS_SERVER, LISTENER, ROUTER };

struct racer {
    enum kind kind;
    void *handle;
    atomic_int calls;
    int ok_calls;
    jw_status last;
};

/* One call on the handle, as another thread of the host would make it. */
static jw_status call_once(struct racer *r, int i)
{
    char buf[256];
    uint64_t count;
    switch (r->kind) {
    case WS_SERVER:
        switch (i % 4) {
        case 0:
            return jw_ws_broadcast(r->handle, "tick", 4);
        case 1:
            return jw_ws_server_address(r->handle, buf, sizeof buf);
        case 2:
            return jw_ws_server_dropped(r->handle, &count);
        default:
            return jw_ws_server_refused(r->handle, &count);
        }
    case LISTENER:
        return jw_listener_address(r->handle, buf, sizeof buf);
    case ROUTER:
        return jw_router_address(r->handle, buf, sizeof buf);
    }
    return JW_ERR_INTERNAL;
}

/* Calls until a call fails; the first failure must be JW_ERR_CLOSED. */
static void *racer_main(void *arg)
{
    struct racer *r = arg;
    jw_status st = JW_OK;
    for (int i = 0; st == JW_OK; i++) {
        st = call_once(r, i);
        if (st == JW_OK) {
            r->ok_calls++;
        }
        atomic_fetch_add(&r->calls, 1);
    }
    r->last = st;
    return NULL;
}

static void ignore(jw_stream *conn, void *user)
{
    (void)conn;
    (void)user;
}

static void *open_one(enum kind kind, jw_network *echo)
{
    void *h = NULL;
    jw_status st = JW_ERR_INTERNAL;
    switch (kind) {
    case WS_SERVER:
        st = jw_ws_serve("ws://127.0.0.1:0", ignore, NULL, (jw_ws_server **)&h);
        break;
    case LISTENER:
        st = jw_listen("tcp://127.0.0.1:0", echo, (jw_listener **)&h);
        break;
    case ROUTER:
        st = jw_router_serve("grpc://127.0.0.1:0?key=race", (jw_router **)&h);
        break;
    }
    CHECK(st == JW_OK);
    return h;
}

static void close_one(enum kind kind, void *h)
{
    switch (kind) {
    case WS_SERVER:
        jw_ws_server_close(h);
        break;
    case LISTENER:
        jw_listener_close(h);
        break;
    case ROUTER:
        jw_router_close(h);
        break;
    }
}

static void race(enum kind kind, const char *name, int rounds, jw_network *echo)
{
    int overlapped = 0;
    for (int round = 0; round < rounds; round++) {
        struct racer r;
        memset(&r, 0, sizeof r);
        r.kind = kind;
        r.handle = open_one(kind, echo);
        if (r.handle == NULL) {
            return;
        }
        pthread_t t;
        pthread_create(&t, NULL, racer_main, &r);
        /* Close once the other thread is calling, at a varying point. */
        while (atomic_load(&r.calls) < 1 + round % 7) {
            sched_yield();
        }
        close_one(kind, r.handle);
        pthread_join(t, NULL);
        check_at(__FILE__, __LINE__, r.last == JW_ERR_CLOSED, name);
        if (r.last != JW_ERR_CLOSED) {
            fprintf(stderr, "  round %d: %s after close returned %s\n", round, name, jw_status_str(r.last));
        }
        overlapped += r.ok_calls > 0;
        /* The closed handle is refused, and closing it again is a no-op. */
        CHECK(call_once(&r, 1) == JW_ERR_CLOSED);
        close_one(kind, r.handle);
    }
    printf("close_race: %s: %d rounds, calls succeeded before the close in %d\n", name, rounds, overlapped);
    CHECK(overlapped > 0);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_DFL);
    alarm(240);
    int rounds = argc > 1 ? atoi(argv[1]) : 1000;
    jw_network *echo = NULL;
    CHECK(jw_network_new("echo:", &echo) == JW_OK);

    race(WS_SERVER, "jw_ws_server", rounds, echo);
    race(LISTENER, "jw_listener", rounds, echo);
    race(ROUTER, "jw_router", rounds, echo);

    /* A value that was never a handle is refused, not dereferenced. */
    char buf[64];
    CHECK(jw_ws_server_address((jw_ws_server *)(uintptr_t)0x10, buf, sizeof buf) == JW_ERR_INVALID_ARGUMENT);
    CHECK(jw_listener_address((jw_listener *)(uintptr_t)0x10, buf, sizeof buf) == JW_ERR_INVALID_ARGUMENT);
    jw_router_close((jw_router *)(uintptr_t)0x10);

    jw_network_free(echo);
    return summary("close_race");
}
