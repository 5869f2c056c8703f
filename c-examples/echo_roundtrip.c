/*
 * echo_roundtrip: the stream semantics, shown on the in-memory `echo:` stream
 * (what you send comes back; no network needed).
 *
 *     echo_roundtrip
 *
 * - Every send comes back whole and in order; a receive never returns bytes
 *   of two sends at once.
 * - A message bigger than the receive buffer comes out over several receives.
 * - A receive with timeout 0 polls: JW_TIMEOUT when nothing is waiting.
 * - jw_stream_send_eof() half-closes: once everything sent before has been
 *   received, the next receive returns JW_EOF (and keeps returning it).
 *
 * Build: cc echo_roundtrip.c -Iinclude -Ltarget/release -ljumpwire
 * Exits 0 if everything came back as expected, 1 on the first mismatch.
 */
#include <stdio.h>
#include <string.h>

#include "jumpwire.h"

#define TIMEOUT_MS 2000
#define RECV_BUF 64    /* deliberately small */
#define BIG_LEN 1000   /* a message that takes several receives */

/* Checks a call's status; on a mismatch prints what happened and returns 0. */
static int expect(const char *what, jw_status got, jw_status want)
{
    if (got == want) {
        return 1;
    }
    fprintf(stderr, "echo_roundtrip: %s: got %s (%d), expected %s (%d); last error: %s\n", what,
            jw_status_str(got), (int)got, jw_status_str(want), (int)want, jw_last_error());
    return 0;
}

/* Receives one whole message of `len` bytes into `out`, through a buffer of
 * RECV_BUF bytes, and returns how many receives it took (0 on failure). */
static int receive_message(jw_stream *s, uint8_t *out, size_t len)
{
    uint8_t buf[RECV_BUF];
    size_t got = 0;
    int calls = 0;
    while (got < len) {
        size_t n = 0;
        if (!expect("receive", jw_stream_receive(s, buf, sizeof buf, &n, TIMEOUT_MS), JW_OK)) {
            return 0;
        }
        calls++;
        if (n == 0 || n > sizeof buf || n > len - got) {
            fprintf(stderr, "echo_roundtrip: receive returned %zu bytes with %zu of %zu left\n", n,
                    len - got, len);
            return 0;
        }
        memcpy(out + got, buf, n);
        got += n;
    }
    return calls;
}

int main(void)
{
    printf("jumpwire %s (header %s)\n", jw_version(), JW_VERSION);

    jw_stream *s = NULL;
    if (!expect("connect echo:", jw_connect("echo:", TIMEOUT_MS, &s), JW_OK)) {
        return 1;
    }
    int ok = 1;

    /* 1. Several small messages, sent before any is received: each comes back
     *    on its own, in order, although all of them would fit in one buffer. */
    const char *messages[] = {"hello", "jumpwire", "third message"};
    const size_t count = sizeof messages / sizeof messages[0];
    for (size_t i = 0; ok && i < count; i++) {
        ok = expect("send", jw_stream_send(s, (const uint8_t *)messages[i], strlen(messages[i]), TIMEOUT_MS), JW_OK);
    }
    for (size_t i = 0; ok && i < count; i++) {
        uint8_t buf[RECV_BUF];
        size_t n = 0;
        ok = expect("receive", jw_stream_receive(s, buf, sizeof buf, &n, TIMEOUT_MS), JW_OK);
        if (ok && (n != strlen(messages[i]) || memcmp(buf, messages[i], n) != 0)) {
            fprintf(stderr, "echo_roundtrip: message %zu: got %zu bytes \"%.*s\", expected \"%s\"\n", i, n,
                    (int)n, (const char *)buf, messages[i]);
            ok = 0;
        }
        if (ok) {
            printf("message %zu came back: %.*s\n", i, (int)n, (const char *)buf);
        }
    }

    /* 2. Nothing is waiting now: a poll (timeout 0) says so at once. */
    if (ok) {
        uint8_t buf[RECV_BUF];
        size_t n = 0;
        ok = expect("poll an empty stream", jw_stream_receive(s, buf, sizeof buf, &n, 0), JW_TIMEOUT);
    }

    /* 3. A message larger than the receive buffer comes out in pieces. */
    if (ok) {
        static uint8_t big[BIG_LEN], back[BIG_LEN];
        for (size_t i = 0; i < BIG_LEN; i++) {
            big[i] = (uint8_t)(i * 7 + 3);
        }
        ok = expect("send big", jw_stream_send(s, big, sizeof big, TIMEOUT_MS), JW_OK);
        int calls = ok ? receive_message(s, back, sizeof back) : 0;
        if (ok && calls == 0) {
            ok = 0;
        } else if (ok && memcmp(big, back, sizeof big) != 0) {
            fprintf(stderr, "echo_roundtrip: the big message came back different\n");
            ok = 0;
        } else if (ok && calls < 2) {
            fprintf(stderr, "echo_roundtrip: %d bytes came out of a %d-byte buffer in one receive\n", BIG_LEN,
                    RECV_BUF);
            ok = 0;
        } else if (ok) {
            printf("a %d-byte message came back over %d receives of at most %d bytes\n", BIG_LEN, calls,
                   RECV_BUF);
        }
    }

    /* 4. Half-close: a last message, then EOF. The message still comes back
     *    first; then every receive reports the end of the stream. */
    if (ok) {
        ok = expect("send last", jw_stream_send(s, (const uint8_t *)"bye", 3, TIMEOUT_MS), JW_OK) &&
             expect("send_eof", jw_stream_send_eof(s), JW_OK);
    }
    if (ok) {
        uint8_t buf[RECV_BUF];
        size_t n = 0;
        ok = expect("receive last", jw_stream_receive(s, buf, sizeof buf, &n, TIMEOUT_MS), JW_OK);
        if (ok && (n != 3 || memcmp(buf, "bye", 3) != 0)) {
            fprintf(stderr, "echo_roundtrip: the last message came back as %zu bytes \"%.*s\"\n", n, (int)n,
                    (const char *)buf);
            ok = 0;
        }
        ok = ok && expect("receive after send_eof", jw_stream_receive(s, buf, sizeof buf, &n, TIMEOUT_MS), JW_EOF);
        ok = ok && expect("receive again after EOF", jw_stream_receive(s, buf, sizeof buf, &n, TIMEOUT_MS), JW_EOF);
        if (ok) {
            printf("end of stream after the last message\n");
        }
    }

    jw_stream_close(s);
    printf("%s\n", ok ? "echo round trip: OK" : "echo round trip: FAILED");
    return ok ? 0 : 1;
}
