/*
 * log_callback: a C host receives the library's log lines through
 * jw_set_log_callback instead of stderr.
 *
 * Checks the level filter, the target and message of lines from the
 * library's own threads and from the caller's, the user pointer, that a
 * jumpwire call made from inside the callback works and logs nothing back
 * into it, that jw_set_log_callback refuses to run from inside the callback
 * and refuses a level out of range, and that NULL goes back to the default.
 *
 * Prints "N checks, 0 failed"; exits 1 if any check failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

static int checks;
static int failures;


struct seen {
    pthread_mutex_t lock;
    int lines;
    int too_detailed;
    int listening;
    int bad_target;
    int nested_status;
    int nested_calls;
    char sample[256];
};

static void on_log(int level, const char *target, const char *message, void *user)
{
    struct seen *s = user;
    pthread_mutex_lock(&s->lock);
    s->lines++;
    if (level > JW_LOG_INFO) {
        s->too_detailed++;
    }
    if (strncmp(target, "jumpwire", 8) != 0) {
        s->bad_target++;
    }
    if (strstr(message, "listening") != NULL) {
        s->listening++;
        snprintf(s->sample, sizeof s->sample, "%d %s: %s", level, target, message);
    }
    int first = s->nested_calls++ == 0;
    pthread_mutex_unlock(&s->lock);
    if (first) {
        /* Not allowed from inside the callback... */
        s->nested_status = jw_set_log_callback(NULL, NULL, 0);
        /* ...but other calls are, and what they log is not passed back. */
        jw_stream *e = NULL;
        if (jw_connect("echo:", 1000, &e) == JW_OK) {
            jw_stream_close(e);
        }
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    static struct seen seen = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, 0, {0}};

    CHECK(jw_set_log_callback(on_log, &seen, 6) == JW_ERR_INVALID_ARGUMENT);
    CHECK(jw_set_log_callback(on_log, &seen, -1) == JW_ERR_INVALID_ARGUMENT);
    CHECK(jw_set_log_callback(on_log, &seen, JW_LOG_INFO) == JW_OK);

    /* Listening (caller's thread) and a connection (library threads). */
    jw_network *echo = NULL;
    jw_listener *l = NULL;
    CHECK(jw_network_new("echo:", &echo) == JW_OK);
    CHECK(jw_listen("tcp://127.0.0.1:0", echo, &l) == JW_OK);
    char addr[128];
    CHECK(jw_listener_address(l, addr, sizeof addr) == JW_OK);
    jw_stream *s = NULL;
    CHECK(jw_connect(addr, 5000, &s) == JW_OK);
    CHECK(jw_stream_send(s, "hi", 2, 5000) == JW_OK);
    char buf[8];
    size_t n = 0;
    CHECK(jw_stream_receive(s, buf, sizeof buf, &n, 5000) == JW_OK && n == 2);
    jw_stream_close(s);
    jw_listener_close(l);

    CHECK(jw_set_log_callback(NULL, NULL, 0) == JW_OK);
    pthread_mutex_lock(&seen.lock);
    int lines = seen.lines;
    pthread_mutex_unlock(&seen.lock);
    /* After the reset, no more lines reach it. */
    CHECK(jw_listen("tcp://127.0.0.1:0", echo, &l) == JW_OK);
    jw_listener_close(l);
    jw_network_free(echo);

    CHECK(lines > 0);
    CHECK(seen.lines == lines);
    CHECK(seen.listening >= 1);
    CHECK(seen.too_detailed == 0);
    CHECK(seen.bad_target == 0);
    CHECK(seen.nested_status == JW_ERR_INVALID_ARGUMENT);
    printf("log_callback: first listening line: %s\n", seen.sample);
    printf("log_callback: %d lines\n", lines);
    return summary("log_callback");
}
