/*
 * session: the C side of jw_session (a Jumpstarter exporter session):
 * every argument error, the networks freed right after the serve, the
 * session used through jumpwire's own client (jumpstarter:unix:PATH),
 * its address, driver streams left open at the close (they end, the close
 * returns promptly), and the handle after the close.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define TIMEOUT_MS 10000

static jw_network *net(const char *url)
{
    jw_network *n = NULL;
    if (!CHECK(jw_network_new(url, &n) == JW_OK)) {
        exit(2);
    }
    return n;
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    char path[128], url[160], driver[256], buf[256];
    snprintf(path, sizeof path, "/tmp/jw-c-session-%ld.sock", (long)getpid());
    snprintf(url, sizeof url, "unix:%s", path);
    unlink(path);

    jw_network *echo = net("echo:");
    jw_network *tcp = net("tcp://127.0.0.1:9?enable_address=false");
    const char *names[] = {"echo", "tcp"};
    const jw_network *nets[] = {echo, tcp};
    jw_session *s = NULL;

    /* Argument errors. */
    CHECK(jw_session_serve(NULL, names, nets, 2, &s) == JW_ERR_INVALID_ARGUMENT);
    CHECK(jw_session_serve(url, names, nets, 2, NULL) == JW_ERR_INVALID_ARGUMENT);
    CHECK(jw_session_serve(url, NULL, nets, 2, &s) == JW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(jw_last_error(), "names") != NULL);
    CHECK(jw_session_serve(url, names, NULL, 2, &s) == JW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(jw_last_error(), "networks") != NULL);
    const char *null_name[] = {"echo", NULL};
    CHECK(jw_session_serve(url, null_name, nets, 2, &s) == JW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(jw_last_error(), "names[1]") != NULL);
    const char *empty_name[] = {"", "tcp"};
    CHECK(jw_session_serve(url, empty_name, nets, 2, &s) == JW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(jw_last_error(), "empty") != NULL);
    const char *twice[] = {"x", "x"};
    CHECK(jw_session_serve(url, twice, nets, 2, &s) == JW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(jw_last_error(), "twice") != NULL);
    const jw_network *null_net[] = {echo, NULL};
    CHECK(jw_session_serve(url, names, null_net, 2, &s) == JW_ERR_INVALID_ARGUMENT);
    CHECK(strstr(jw_last_error(), "networks[1]") != NULL);
    CHECK(jw_session_serve("ws://127.0.0.1:0", names, nets, 2, &s) == JW_ERR_INVALID_ARGUMENT);
    CHECK(jw_session_serve("nope", names, nets, 2, &s) == JW_ERR_INVALID_ARGUMENT);
    CHECK(s == NULL);
    CHECK(access(path, F_OK) != 0);

    /* No drivers at all is a session too; NULL arrays with count 0. */
    jw_session *empty = NULL;
    CHECK(jw_session_serve("tcp://127.0.0.1:0", NULL, NULL, 0, &empty) == JW_OK);
    CHECK(jw_session_address(empty, buf, sizeof buf) == JW_OK);
    CHECK(strncmp(buf, "tcp://127.0.0.1:", 16) == 0);
    jw_session_close(empty);

    /* The session copies the networks: they go at once. */
    CHECK(jw_session_serve(url, names, nets, 2, &s) == JW_OK);
    jw_network_free(echo);
    jw_network_free(tcp);
    CHECK(jw_session_address(s, buf, sizeof buf) == JW_OK);
    CHECK(strcmp(buf, url) == 0);
    CHECK(jw_session_address(s, buf, 4) == JW_ERR_TOO_LARGE);
    CHECK(jw_session_address(s, NULL, 4) == JW_ERR_INVALID_ARGUMENT);
    CHECK(jw_session_address(NULL, buf, sizeof buf) == JW_ERR_INVALID_ARGUMENT);
    /* The socket path is taken. */
    jw_session *again = NULL;
    CHECK(jw_session_serve(url, names, nets, 0, &again) == JW_ERR_IO);

    /* jumpwire's client: a round trip through `echo`. */
    snprintf(driver, sizeof driver, "jumpstarter:unix:%s?driver=echo", path);
    jw_stream *a = NULL, *b = NULL;
    CHECK(jw_connect(driver, TIMEOUT_MS, &a) == JW_OK);
    CHECK(jw_connect(driver, TIMEOUT_MS, &b) == JW_OK);
    if (a && b) {
        size_t n = 0;
        CHECK(jw_stream_send(a, (const uint8_t *)"ping", 4, TIMEOUT_MS) == JW_OK);
        CHECK(jw_stream_receive(a, (uint8_t *)buf, sizeof buf, &n, TIMEOUT_MS) == JW_OK);
        CHECK(n == 4 && memcmp(buf, "ping", 4) == 0);
    }
    /* `tcp`'s address is disabled, as upstream's enable_address: false. */
    jw_network *t = NULL;
    snprintf(driver, sizeof driver, "jumpstarter:unix:%s?driver=tcp", path);
    CHECK(jw_network_new(driver, &t) == JW_OK);
    CHECK(jw_network_address(t, buf, sizeof buf) == JW_ERR_DISABLED);
    jw_network_free(t);
    snprintf(driver, sizeof driver, "jumpstarter:unix:%s?driver=echo", path);
    CHECK(jw_network_new(driver, &t) == JW_OK);
    CHECK(jw_network_address(t, buf, sizeof buf) == JW_ERR_UNSUPPORTED);
    jw_network_free(t);

    /* Closing with two streams open: it returns promptly, the streams end. */
    double t0 = now_ms();
    jw_session_close(s);
    CHECK(now_ms() - t0 < 4000 + slack_ms());
    CHECK(access(path, F_OK) != 0);
    if (a && b) {
        size_t n = 0;
        jw_status st = jw_stream_receive(b, (uint8_t *)buf, sizeof buf, &n, TIMEOUT_MS);
        CHECK(st != JW_OK && st != JW_TIMEOUT);
        st = jw_stream_receive(a, (uint8_t *)buf, sizeof buf, &n, TIMEOUT_MS);
        CHECK(st != JW_OK && st != JW_TIMEOUT);
    }
    jw_stream_close(a);
    jw_stream_close(b);

    /* The handle after the close. */
    CHECK(jw_session_address(s, buf, sizeof buf) == JW_ERR_CLOSED);
    jw_session_close(s);
    jw_session_close(NULL);
    return summary("session");
}
