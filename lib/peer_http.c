/* peer_http: Binary HTTP messages over lib/peer records (see
 * peer_http.h). Reassembles peer-chosen bytes: every length is checked
 * before it is buffered. */
#include "peer_http.h"

#include <string.h>

#include "peer_fd.h"

at_err at_peer_http_seal(at_peer *p, at_span msg, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_buf rec;
    at_buf_init(&rec);
    size_t start = out->len;
    if (msg.len == 0)
        return at_fail(d, AT_E_BAD_FIELD, "message: expected 1 to %d bytes, got 0", AT_PEER_HTTP_MAX_MESSAGE);
    if (msg.len > AT_PEER_HTTP_MAX_MESSAGE)
        return at_fail(d, AT_E_TOO_LARGE, "message: %zu bytes, at most %d", msg.len,
                       AT_PEER_HTTP_MAX_MESSAGE);
    /* The first record: the length, then as much of the message as fits. */
    uint8_t first[AT_PEER_MAX_RECORD_PLAINTEXT];
    size_t n =
        msg.len < sizeof first - AT_PEER_HTTP_LEN_BYTES ? msg.len : sizeof first - AT_PEER_HTTP_LEN_BYTES;
    first[0] = (uint8_t)(msg.len >> 24);
    first[1] = (uint8_t)(msg.len >> 16);
    first[2] = (uint8_t)(msg.len >> 8);
    first[3] = (uint8_t)msg.len;
    memcpy(first + AT_PEER_HTTP_LEN_BYTES, msg.p, n);
    AT_TRY(at_peer_seal(p, false, AT_SPAN(first, AT_PEER_HTTP_LEN_BYTES + n), &rec, d));
    AT_TRY(at_peer_frame(at_buf_span(&rec), out));
    for (size_t off = n; off < msg.len; off += n) {
        n = msg.len - off < AT_PEER_MAX_RECORD_PLAINTEXT ? msg.len - off : AT_PEER_MAX_RECORD_PLAINTEXT;
        at_buf_reset(&rec);
        AT_TRY(at_peer_seal(p, false, AT_SPAN(msg.p + off, n), &rec, d));
        AT_TRY(at_peer_frame(at_buf_span(&rec), out));
    }
    rc = AT_OK;
out:
    at_wipe(first, sizeof first);
    at_buf_cleanup(&rec);
    if (rc != AT_OK)
        out->len = start;
    return rc;
}

void at_peer_http_rx_init(at_peer_http_rx *rx, size_t max)
{
    memset(rx, 0, sizeof *rx);
    rx->max = max < AT_PEER_HTTP_MAX_MESSAGE ? max : AT_PEER_HTTP_MAX_MESSAGE;
    at_buf_init_secret(&rx->msg);
}

void at_peer_http_rx_cleanup(at_peer_http_rx *rx) { at_buf_cleanup(&rx->msg); }

at_err at_peer_http_rx_feed(at_peer_http_rx *rx, at_span pt, bool *done, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    *done = false;
    if (rx->failed)
        return at_fail(d, AT_E_UNEXPECTED_MESSAGE, "message: the channel already failed");
    rx->failed = true; /* until this record is accepted */
    if (pt.len == 0)
        return at_fail(d, AT_E_BAD_FIELD, "record: empty, expected message bytes");
    if (!rx->inside) {
        at_buf_reset(&rx->msg);
        if (pt.len < AT_PEER_HTTP_LEN_BYTES)
            return at_fail(d, AT_E_BAD_FIELD, "message length: expected %d bytes, got %zu",
                           AT_PEER_HTTP_LEN_BYTES, pt.len);
        size_t want = (size_t)pt.p[0] << 24 | (size_t)pt.p[1] << 16 | (size_t)pt.p[2] << 8 | pt.p[3];
        if (want > rx->max)
            return at_fail(d, AT_E_TOO_LARGE, "message: %zu bytes announced, at most %zu", want, rx->max);
        if (want == 0)
            return at_fail(d, AT_E_BAD_FIELD, "message length: expected 1 to %zu, got 0", rx->max);
        AT_ENSURE(at_buf_reserve(&rx->msg, want) == AT_OK, d, AT_E_INTERNAL,
                  "message: %zu bytes: out of memory", want);
        rx->want = want;
        rx->inside = true;
        pt.p += AT_PEER_HTTP_LEN_BYTES;
        pt.len -= AT_PEER_HTTP_LEN_BYTES;
    }
    /* A record never spans two messages: the next one starts afresh. */
    if (pt.len > rx->want - rx->msg.len)
        return at_fail(d, AT_E_BAD_FIELD, "record: %zu bytes past the end of a %zu-byte message",
                       pt.len - (rx->want - rx->msg.len), rx->want);
    AT_TRY(at_buf_append(&rx->msg, pt.p, pt.len));
    if (rx->msg.len == rx->want) {
        rx->inside = false;
        *done = true;
    }
    rx->failed = false;
    rc = AT_OK;
out:
    return rc;
}

at_err at_peer_http_rx_end(const at_peer_http_rx *rx, at_diag *d)
{
    if (rx->inside)
        return at_fail(d, AT_E_TRUNCATED, "message: the channel closed after %zu of %zu bytes", rx->msg.len,
                       rx->want);
    return AT_OK;
}

at_err at_peer_http_send(int fd, at_peer *p, at_span msg, at_diag *d)
{
    at_buf out;
    at_buf_init(&out);
    at_err rc = at_peer_http_seal(p, msg, &out, d);
    /* The records are framed already: write them as they are. */
    for (size_t off = 0; rc == AT_OK && off < out.len;) {
        size_t n = (size_t)out.p[off] << 24 | (size_t)out.p[off + 1] << 16 | (size_t)out.p[off + 2] << 8 |
                   out.p[off + 3];
        rc = at_peer_fd_send(fd, AT_SPAN(out.p + off + 4, n), d);
        off += 4 + n;
    }
    at_buf_cleanup(&out);
    return rc;
}

at_err at_peer_http_recv(int fd, at_peer *p, at_peer_http_rx *rx, bool *closed, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_buf in, pt;
    at_buf_init(&in);
    at_buf_init_secret(&pt);
    bool done = false, end = false;
    while (!done) {
        AT_TRY(at_peer_fd_recv(fd, AT_PEER_MAX_RECORD, &in, d));
        at_buf_reset(&pt);
        AT_TRY(at_peer_open(p, at_buf_span(&in), &pt, &end, d));
        if (end) {
            AT_TRY(at_peer_http_rx_end(rx, d));
            break;
        }
        AT_TRY(at_peer_http_rx_feed(rx, at_buf_span(&pt), &done, d));
    }
    *closed = end;
    rc = AT_OK;
out:
    at_buf_cleanup(&in);
    at_buf_cleanup(&pt);
    return rc;
}
