/* ohttp_chunked: chunk framing (lib/ohttp_chunked.h). Cuts attacker-
 * supplied streams into chunks through the bounded reader, in slices, with
 * every length capped before anything is buffered. */
#include "ohttp_chunked.h"

#include <string.h>

#include "at_limits.h"
#include "hpke.h"

enum { RX_LEN, RX_BODY, RX_FINAL, RX_DONE };
#define RX_SLICE (16 * 1024)
#define RX_MAX_CT ((uint64_t)AT_MAX_OHTTP_CHUNK + AT_HPKE_NT)

void at_ohttp_rx_init(at_ohttp_chunk_rx *rx)
{
    memset(rx, 0, sizeof *rx);
    at_buf_set_max(&rx->in, (size_t)RX_MAX_CT + RX_SLICE + 16);
    rx->state = RX_LEN;
}

static at_err rx_process(at_ohttp_chunk_rx *rx, at_ohttp_open_fn fn, void *self, at_buf *out, at_diag *d)
{
    for (;;) {
        at_reader r;
        uint64_t len;
        at_span ct;
        at_err rc;
        at_reader_init(&r, rx->in.p + rx->off, rx->in.len - rx->off);
        switch (rx->state) {
        case RX_LEN:
            if (!at_reader_varint(&r, &len))
                return AT_OK;
            if (len == 0) {
                rx->state = RX_FINAL;
            } else if (len > RX_MAX_CT) {
                return at_fail(d, AT_E_TOO_LARGE, "chunk %llu: length %llu, limit %llu",
                               (unsigned long long)rx->chunks, (unsigned long long)len,
                               (unsigned long long)RX_MAX_CT);
            } else if (len <= AT_HPKE_NT) {
                /* The draft: an empty non-final chunk is a decryption error. */
                return at_fail(d, AT_E_DECRYPT_FAILED, "chunk %llu: %llu bytes holds no data",
                               (unsigned long long)rx->chunks, (unsigned long long)len);
            } else {
                rx->body_len = len;
                rx->state = RX_BODY;
            }
            rx->off += r.off;
            break;
        case RX_BODY:
            if (!at_reader_take(&r, (size_t)rx->body_len, &ct))
                return AT_OK;
            rc = fn(self, false, ct, out, d);
            if (rc != AT_OK) {
                at_diag_prefix(d, "chunk %llu: ", (unsigned long long)rx->chunks);
                return rc;
            }
            rx->chunks++;
            rx->off += r.off;
            rx->state = RX_LEN;
            break;
        case RX_FINAL:
            /* The final chunk runs to the end of the stream. */
            if (at_reader_left(&r) > RX_MAX_CT)
                return at_fail(d, AT_E_TOO_LARGE, "final chunk: over %llu bytes",
                               (unsigned long long)RX_MAX_CT);
            return AT_OK;
        default:
            if (at_reader_left(&r))
                return at_fail(d, AT_E_BAD_FIELD, "data after the final chunk");
            return AT_OK;
        }
    }
}

at_err at_ohttp_rx_feed(at_ohttp_chunk_rx *rx, at_span in, at_ohttp_open_fn fn, void *self, at_buf *out,
                        at_diag *d)
{
    if (rx->state == RX_DONE && in.len)
        return at_fail(d, AT_E_BAD_FIELD, "data after the end of the stream");
    while (in.len) {
        size_t n = in.len < RX_SLICE ? in.len : RX_SLICE;
        if (rx->off) {
            size_t left = rx->in.len - rx->off;
            memmove(rx->in.p, rx->in.p + rx->off, left);
            rx->in.len = left;
            rx->off = 0;
        }
        at_err rc = at_buf_append(&rx->in, in.p, n);
        if (rc != AT_OK)
            return at_fail(d, rc, "chunk buffer refused %zu bytes", n);
        in.p += n;
        in.len -= n;
        rc = rx_process(rx, fn, self, out, d);
        if (rc != AT_OK)
            return rc;
    }
    return AT_OK;
}

at_err at_ohttp_rx_finish(at_ohttp_chunk_rx *rx, at_ohttp_open_fn fn, void *self, at_buf *out, at_diag *d)
{
    size_t pending = rx->in.len - rx->off;
    at_err rc;
    switch (rx->state) {
    case RX_LEN:
        if (pending)
            return at_fail(d, AT_E_TRUNCATED, "chunk %llu: length truncated", (unsigned long long)rx->chunks);
        return at_fail(d, AT_E_TRUNCATED, "stream ended after %llu chunks without the final one",
                       (unsigned long long)rx->chunks);
    case RX_BODY:
        return at_fail(d, AT_E_TRUNCATED, "chunk %llu: %zu of %llu bytes", (unsigned long long)rx->chunks,
                       pending, (unsigned long long)rx->body_len);
    case RX_FINAL:
        if (pending < AT_HPKE_NT)
            return at_fail(d, AT_E_TRUNCATED, "final chunk: %zu bytes, shorter than a tag", pending);
        rc = fn(self, true, AT_SPAN(rx->in.p + rx->off, pending), out, d);
        if (rc != AT_OK) {
            at_diag_prefix(d, "final chunk: ");
            return rc;
        }
        rx->off += pending;
        rx->state = RX_DONE;
        return AT_OK;
    default:
        return at_fail(d, AT_E_BAD_FIELD, "stream already finished");
    }
}

void at_ohttp_rx_cleanup(at_ohttp_chunk_rx *rx) { at_buf_cleanup(&rx->in); }

at_err at_ohttp_tx_chunks(bool *ended, at_span piece, bool final, at_ohttp_seal_fn fn, void *self,
                          at_buf *out, at_diag *d)
{
    for (;;) {
        size_t n = piece.len < AT_OHTTP_SEND_CHUNK ? piece.len : AT_OHTTP_SEND_CHUNK;
        bool last = n == piece.len, is_final = final && last;
        (void)at_buf_varint(out, is_final ? 0 : n + AT_HPKE_NT);
        at_err rc = at_buf_status(out);
        if (rc == AT_OK)
            rc = fn(self, is_final, AT_SPAN(piece.p, n), out, d);
        if (rc != AT_OK)
            return rc;
        if (last)
            break; /* before advancing: piece.p may be NULL (an empty piece) */
        piece.p += n;
        piece.len -= n;
    }
    *ended = final;
    return AT_OK;
}

at_err at_ohttp_tx_usage(bool chunked, bool ended, at_span piece, bool final, at_diag *d)
{
    if (!chunked)
        return at_fail(d, AT_E_INTERNAL, "seal_chunk: not a chunked exchange");
    if (ended)
        return at_fail(d, AT_E_BAD_FIELD, "chunk after the final chunk");
    if (!final && piece.len == 0)
        return at_fail(d, AT_E_BAD_FIELD, "non-final chunk: empty (forbidden by the draft)");
    return AT_OK;
}

at_err at_ohttp_rx_usage(bool chunked, bool started, at_diag *d)
{
    if (!chunked)
        return at_fail(d, AT_E_INTERNAL, "not a chunked exchange");
    if (!started)
        return at_fail(d, AT_E_INTERNAL, "no request sent yet");
    return AT_OK;
}
