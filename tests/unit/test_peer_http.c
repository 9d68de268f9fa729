/* Unit tests for lib/peer_http.c: a message is split over records with
 * its length first and joins back byte-exact (at the record boundaries
 * and across them); several messages follow each other; a length over the
 * receiver's maximum is refused with too_large before anything is
 * buffered, and an oversized message is refused by the sender; a close
 * inside a message is truncated (between messages it is fine); a record
 * past the announced end, an empty record or a short first record is
 * bad_field, and a failure is sticky. The fd functions run over a
 * socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "peer.h"
#include "peer_fd.h"
#include "peer_http.h"

typedef struct {
    at_peer *a, *b;
} pair;

static int setup(void **state)
{
    static pair pr;
    at_peer_keys k;
    at_diag d = {{0}};
    memset(&k, 0x5a, sizeof k);
    if (at_peer_new_established(AT_PEER_INITIATOR, &k, &pr.a, &d) != AT_OK ||
        at_peer_new_established(AT_PEER_RESPONDER, &k, &pr.b, &d) != AT_OK)
        return -1;
    *state = &pr;
    return 0;
}

static int teardown(void **state)
{
    pair *pr = *state;
    at_peer_free(pr->a);
    at_peer_free(pr->b);
    return 0;
}

/* Open each framed record of `wire` at b and feed it to rx; the number of
 * records, and whether the last feed completed a message. */
static size_t deliver(at_peer *b, at_span wire, at_peer_http_rx *rx, bool *done, at_err *rc)
{
    at_buf pt;
    at_buf_init(&pt);
    size_t off = 0, n = 0;
    at_diag d = {{0}};
    *rc = AT_OK;
    while (off < wire.len && *rc == AT_OK) {
        size_t len = (size_t)wire.p[off] << 24 | (size_t)wire.p[off + 1] << 16 |
                     (size_t)wire.p[off + 2] << 8 | wire.p[off + 3];
        bool closed = false;
        at_buf_reset(&pt);
        assert_int_equal(at_peer_open(b, AT_SPAN(wire.p + off + 4, len), &pt, &closed, &d), AT_OK);
        assert_false(closed);
        assert_true(pt.len <= AT_PEER_MAX_RECORD_PLAINTEXT);
        *rc = at_peer_http_rx_feed(rx, at_buf_span(&pt), done, &d);
        off += 4 + len;
        n++;
    }
    at_buf_cleanup(&pt);
    return n;
}

static void split_join(void **state)
{
    pair *pr = *state;
    /* Sizes around the record boundaries: the first record holds 4 length
     * bytes, later ones AT_PEER_MAX_RECORD_PLAINTEXT. */
    const size_t R = AT_PEER_MAX_RECORD_PLAINTEXT;
    const size_t sizes[] = {1, R - 4, R - 3, 2 * R - 4, 2 * R - 3, 100 * 1024};
    const size_t records[] = {1, 1, 2, 2, 3, 7};
    at_peer_http_rx rx;
    at_peer_http_rx_init(&rx, AT_PEER_HTTP_MAX_MESSAGE);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        uint8_t *m = malloc(sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++)
            m[j] = (uint8_t)(j * 7 + i);
        at_buf wire;
        at_buf_init(&wire);
        at_diag d = {{0}};
        assert_int_equal(at_peer_http_seal(pr->a, AT_SPAN(m, sizes[i]), &wire, &d), AT_OK);
        bool done = false;
        at_err rc;
        assert_int_equal(deliver(pr->b, at_buf_span(&wire), &rx, &done, &rc), records[i]);
        assert_int_equal(rc, AT_OK);
        assert_true(done);
        assert_int_equal(rx.msg.len, sizes[i]);
        assert_memory_equal(rx.msg.p, m, sizes[i]);
        assert_int_equal(at_peer_http_rx_end(&rx, &d), AT_OK); /* between messages */
        at_buf_cleanup(&wire);
        free(m);
    }
    at_peer_http_rx_cleanup(&rx);
}

static void too_large(void **state)
{
    pair *pr = *state;
    at_diag d = {{0}};
    at_buf wire;
    at_buf_init(&wire);
    /* The sender refuses before sealing anything. */
    uint8_t *big = calloc(1, AT_PEER_HTTP_MAX_MESSAGE + 1);
    assert_int_equal(at_peer_http_seal(pr->a, AT_SPAN(big, AT_PEER_HTTP_MAX_MESSAGE + 1), &wire, &d),
                     AT_E_TOO_LARGE);
    assert_int_equal(wire.len, 0);
    assert_int_equal(at_peer_http_seal(pr->a, AT_SPAN(big, 0), &wire, &d), AT_E_BAD_FIELD);
    /* The receiver refuses an announced length over its maximum before
     * buffering anything, and stays refused. */
    at_peer_http_rx rx;
    at_peer_http_rx_init(&rx, 1000);
    assert_int_equal(at_peer_http_seal(pr->a, AT_SPAN(big, 1001), &wire, &d), AT_OK);
    bool done = true;
    at_err rc;
    deliver(pr->b, at_buf_span(&wire), &rx, &done, &rc);
    assert_int_equal(rc, AT_E_TOO_LARGE);
    assert_false(done);
    assert_int_equal(rx.msg.len, 0);
    assert_null(rx.msg.p);
    uint8_t x[8] = {0, 0, 0, 1, 'x'};
    assert_int_equal(at_peer_http_rx_feed(&rx, AT_SPAN(x, 5), &done, &d), AT_E_UNEXPECTED_MESSAGE);
    at_peer_http_rx_cleanup(&rx);
    /* The exact maximum passes. */
    at_peer_http_rx_init(&rx, 1000);
    assert_int_equal(at_peer_http_rx_feed(&rx, AT_SPAN(x, 5), &done, &d), AT_OK);
    assert_true(done);
    at_peer_http_rx_cleanup(&rx);
    at_buf_cleanup(&wire);
    free(big);
}

static void bad_framing(void **state)
{
    (void)state;
    at_diag d = {{0}};
    bool done;
    at_peer_http_rx rx;
    /* A close inside a message is a truncation. */
    at_peer_http_rx_init(&rx, 100);
    uint8_t m[] = {0, 0, 0, 10, 'a', 'b', 'c'};
    assert_int_equal(at_peer_http_rx_end(&rx, &d), AT_OK);
    assert_int_equal(at_peer_http_rx_feed(&rx, AT_SPAN(m, sizeof m), &done, &d), AT_OK);
    assert_false(done);
    assert_int_equal(at_peer_http_rx_end(&rx, &d), AT_E_TRUNCATED);
    /* A record past the announced end (bytes of two messages). */
    uint8_t more[] = {'d', 'e', 'f', 'g', 'h', 'i', 'j', 0, 0, 0, 1, 'k'};
    assert_int_equal(at_peer_http_rx_feed(&rx, AT_SPAN(more, sizeof more), &done, &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "past the end"));
    at_peer_http_rx_cleanup(&rx);
    /* An empty record, a short first record, a zero length. */
    static const struct {
        uint8_t b[4];
        size_t n;
    } bad[] = {{{0}, 0}, {{0, 0, 1}, 3}, {{0, 0, 0, 0}, 4}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        at_peer_http_rx_init(&rx, 100);
        assert_int_equal(at_peer_http_rx_feed(&rx, AT_SPAN(bad[i].b, bad[i].n), &done, &d), AT_E_BAD_FIELD);
        at_peer_http_rx_cleanup(&rx);
    }
    /* An empty record inside a message. */
    at_peer_http_rx_init(&rx, 100);
    assert_int_equal(at_peer_http_rx_feed(&rx, AT_SPAN(m, sizeof m), &done, &d), AT_OK);
    assert_int_equal(at_peer_http_rx_feed(&rx, AT_SPAN(m, 0), &done, &d), AT_E_BAD_FIELD);
    at_peer_http_rx_cleanup(&rx);
}

/* Over a socket pair: two messages, then the peer's close between
 * messages; then a stream that ends (or closes) inside a message. */
static void over_fds(void **state)
{
    (void)state;
    at_peer_keys k;
    memset(&k, 0x33, sizeof k);
    at_peer *a, *b;
    at_diag d = {{0}};
    assert_int_equal(at_peer_new_established(AT_PEER_INITIATOR, &k, &a, &d), AT_OK);
    assert_int_equal(at_peer_new_established(AT_PEER_RESPONDER, &k, &b, &d), AT_OK);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    const size_t n = 40000; /* three records, within the socket buffer */
    uint8_t *m = malloc(n);
    for (size_t i = 0; i < n; i++)
        m[i] = (uint8_t)(i % 251);
    assert_int_equal(at_peer_http_send(sv[0], a, AT_SPAN(m, n), &d), AT_OK);
    assert_int_equal(at_peer_http_send(sv[0], a, AT_SPAN("second", 6), &d), AT_OK);
    at_buf cl;
    at_buf_init(&cl);
    assert_int_equal(at_peer_seal(a, true, AT_SPAN_NULL, &cl, &d), AT_OK);
    assert_int_equal(at_peer_fd_send(sv[0], at_buf_span(&cl), &d), AT_OK);
    at_peer_http_rx rx;
    at_peer_http_rx_init(&rx, AT_PEER_HTTP_MAX_MESSAGE);
    bool closed = true;
    assert_int_equal(at_peer_http_recv(sv[1], b, &rx, &closed, &d), AT_OK);
    assert_false(closed);
    assert_int_equal(rx.msg.len, n);
    assert_memory_equal(rx.msg.p, m, n);
    assert_int_equal(at_peer_http_recv(sv[1], b, &rx, &closed, &d), AT_OK);
    assert_false(closed);
    assert_int_equal(rx.msg.len, 6);
    assert_memory_equal(rx.msg.p, "second", 6);
    assert_int_equal(at_peer_http_recv(sv[1], b, &rx, &closed, &d), AT_OK);
    assert_true(closed);
    at_peer_free(a);
    at_peer_free(b);
    at_peer_http_rx_cleanup(&rx);

    /* The stream ends after the first of three records. */
    assert_int_equal(at_peer_new_established(AT_PEER_INITIATOR, &k, &a, &d), AT_OK);
    assert_int_equal(at_peer_new_established(AT_PEER_RESPONDER, &k, &b, &d), AT_OK);
    at_buf wire;
    at_buf_init(&wire);
    assert_int_equal(at_peer_http_seal(a, AT_SPAN(m, n), &wire, &d), AT_OK);
    size_t first = 4 + ((size_t)wire.p[2] << 8 | wire.p[3]);
    int sv2[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
    assert_int_equal(write(sv2[0], wire.p, first), (ssize_t)first);
    close(sv2[0]);
    at_peer_http_rx_init(&rx, AT_PEER_HTTP_MAX_MESSAGE);
    assert_int_equal(at_peer_http_recv(sv2[1], b, &rx, &closed, &d), AT_E_TRUNCATED);
    at_peer_http_rx_cleanup(&rx);
    close(sv2[1]);
    at_peer_free(b);

    /* The peer's CLOSE after the first record. */
    assert_int_equal(at_peer_new_established(AT_PEER_RESPONDER, &k, &b, &d), AT_OK);
    at_peer *a2;
    assert_int_equal(at_peer_new_established(AT_PEER_INITIATOR, &k, &a2, &d), AT_OK);
    static const uint8_t part[] = {0, 0, 0, 100, 'a', 'b'}; /* 2 of 100 bytes */
    at_buf_reset(&wire);
    assert_int_equal(at_peer_seal(a2, false, AT_SPAN(part, sizeof part), &wire, &d), AT_OK);
    assert_int_equal(at_peer_fd_send(sv[0], at_buf_span(&wire), &d), AT_OK);
    at_buf_reset(&cl);
    assert_int_equal(at_peer_seal(a2, true, AT_SPAN_NULL, &cl, &d), AT_OK);
    assert_int_equal(at_peer_fd_send(sv[0], at_buf_span(&cl), &d), AT_OK);
    at_peer_http_rx_init(&rx, AT_PEER_HTTP_MAX_MESSAGE);
    assert_int_equal(at_peer_http_recv(sv[1], b, &rx, &closed, &d), AT_E_TRUNCATED);
    assert_non_null(strstr(d.msg, "closed after"));
    at_peer_http_rx_cleanup(&rx);
    at_buf_cleanup(&wire);
    at_buf_cleanup(&cl);
    at_peer_free(a);
    at_peer_free(a2);
    at_peer_free(b);
    close(sv[0]);
    close(sv[1]);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_join),
        cmocka_unit_test(too_large),
        cmocka_unit_test(bad_framing),
        cmocka_unit_test(over_fds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
