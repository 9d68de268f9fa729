/* ohttp_server: the server end of an exchange (lib/ohttp_server.h).
 * Parses encapsulated requests from anonymous senders (whole or chunked)
 * through the bounded reader; the HPKE context and response keys are wiped
 * when freed, the key set's private keys are only borrowed. */
#include "ohttp_server.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "enc.h"
#include "ohttp_chunked.h"
#include "ohttp_wire.h"
#include "testing.h"

struct at_ohttp_server {
    const at_ohttp_keyset *ks;
    bool chunked;
    uint8_t hdr[OHTTP_HDR_LEN + AT_HPKE_NENC];
    size_t hdr_have;
    bool ready;
    uint8_t key_id;
    at_hpke_suite suite;
    at_hpke_ctx *ctx;
    at_ohttp_chunk_rx rx;
    /* response */
    uint8_t test_nonce[OHTTP_ENTROPY_MAX];
    bool have_test_nonce;
    bool response_started, response_ended;
    at_ohttp_resp_keys rk;
    at_err err;
};

static at_ohttp_server *server_alloc(const at_ohttp_keyset *ks, bool chunked)
{
    at_ohttp_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->ks = ks;
    s->chunked = chunked;
    at_ohttp_rx_init(&s->rx);
    return s;
}

void at_ohttp_server_free(at_ohttp_server *s)
{
    if (!s)
        return;
    at_hpke_ctx_free(s->ctx);
    at_ohttp_rx_cleanup(&s->rx);
    at_wipe(s, sizeof *s);
    free(s);
}

uint8_t at_ohttp_server_key_id(const at_ohttp_server *s) { return s->key_id; }
at_hpke_suite at_ohttp_server_suite(const at_ohttp_server *s) { return s->suite; }
bool at_ohttp_server_ready(const at_ohttp_server *s) { return s->ready; }
at_span at_ohttp_server_encapsulation(const at_ohttp_server *s)
{
    return s->ready ? AT_SPAN(s->hdr, sizeof s->hdr) : AT_SPAN_NULL;
}

/* Key and suite from the 7-byte header (RFC 9458 §4.1). */
static at_err server_header(at_ohttp_server *s, const uint8_t *hdr, const at_hpke_key **entry, at_diag *d)
{
    uint8_t id = hdr[0];
    at_hpke_suite su = {(uint16_t)(hdr[1] << 8 | hdr[2]), (uint16_t)(hdr[3] << 8 | hdr[4]),
                        (uint16_t)(hdr[5] << 8 | hdr[6])};
    const at_hpke_key *e = at_ohttp_keyset_key(s->ks, id);
    if (!e)
        return at_fail(d, AT_E_UNKNOWN_KEY_ID, "key_id: %u is not one of this gateway's %zu keys", id,
                       at_ohttp_keyset_count(s->ks));
    if (!at_ohttp_keyset_offers(s->ks, id, su))
        return at_fail(d, AT_E_UNSUPPORTED_SUITE,
                       "suite kem 0x%04x kdf 0x%04x aead 0x%04x: not offered for key %u", su.kem, su.kdf,
                       su.aead, id);
    s->key_id = id;
    s->suite = su;
    *entry = e;
    return AT_OK;
}

static at_err server_setup(at_ohttp_server *s, const at_hpke_key *e, const uint8_t *hdr, at_span enc,
                           at_diag *d)
{
    at_buf info;
    at_buf_init(&info);
    at_err rc = at_ohttp_make_info(s->chunked ? OHTTP_LABEL_CREQ : OHTTP_LABEL_REQ, hdr, &info, d);
    if (rc == AT_OK) {
        at_hpke_params p = {.mode = AT_HPKE_MODE_BASE, .info = at_buf_span(&info)};
        rc = at_hpke_setup_recipient(s->suite, &p, e, enc, &s->ctx, d);
    }
    at_buf_cleanup(&info);
    if (rc == AT_OK) {
        memcpy(s->hdr + OHTTP_HDR_LEN, enc.p, AT_HPKE_NENC);
        s->ready = true;
    }
    return rc;
}

at_err at_ohttp_server_open_request(const at_ohttp_keyset *ks, at_span body, at_buf *out,
                                    at_ohttp_server **srv, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_ohttp_server *s = NULL;
    const at_hpke_key *e = NULL;
    at_reader r;
    at_span hdr, enc;

    AT_ENSURE(body.len <= (size_t)AT_MAX_OHTTP_MESSAGE + OHTTP_HDR_LEN + AT_HPKE_NENC + AT_HPKE_NT, d,
              AT_E_TOO_LARGE, "encapsulated request: %zu bytes, limit %d", body.len, AT_MAX_OHTTP_MESSAGE);
    s = server_alloc(ks, false);
    AT_ENSURE(s != NULL, d, AT_E_INTERNAL, "out of memory");
    at_reader_init(&r, body.p, body.len);
    AT_ENSURE(at_reader_take(&r, OHTTP_HDR_LEN, &hdr), d, AT_E_TRUNCATED,
              "encapsulated request: header: expected %d bytes, got %zu", OHTTP_HDR_LEN, body.len);
    memcpy(s->hdr, hdr.p, OHTTP_HDR_LEN);
    AT_TRY(server_header(s, hdr.p, &e, d));
    AT_ENSURE(at_reader_take(&r, AT_HPKE_NENC, &enc), d, AT_E_TRUNCATED,
              "encapsulated request: enc: expected %d bytes, got %zu", AT_HPKE_NENC, at_reader_left(&r));
    AT_TRY(server_setup(s, e, hdr.p, enc, d));
    rc = at_hpke_open(s->ctx, AT_SPAN_NULL, at_reader_rest(&r), out, d);
    if (rc != AT_OK) {
        at_diag_prefix(d, "encapsulated request: ");
        goto out;
    }
    *srv = s;
    s = NULL;
    rc = AT_OK;
out:
    at_ohttp_server_free(s);
    return rc;
}

at_err at_ohttp_server_open_bhttp(const at_ohttp_keyset *ks, at_span body, at_bhttp_msg **req,
                                  at_ohttp_server **srv, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_ohttp_server *s = NULL;
    at_buf plain;

    at_buf_init_secret(&plain);
    AT_TRY(at_ohttp_server_open_request(ks, body, &plain, &s, d));
    rc = at_bhttp_decode(at_buf_span(&plain), AT_BHTTP_REQUEST, req, d);
    if (rc != AT_OK) {
        at_diag_prefix(d, "binary http request: ");
        goto out;
    }
    *srv = s;
    s = NULL;
out:
    at_buf_cleanup(&plain);
    at_ohttp_server_free(s);
    return rc;
}

at_err at_ohttp_server_set_nonce_for_tests(at_ohttp_server *s, at_span nonce, at_diag *d)
{
    size_t el = at_ohttp_entropy_len(s->suite.aead);
    if (!s->ready || s->response_started)
        return at_fail(d, AT_E_INTERNAL, "test nonce: request not opened, or response started");
    if (nonce.len != el)
        return at_fail(d, AT_E_BAD_FIELD, "test nonce: expected %zu bytes, got %zu", el, nonce.len);
    memcpy(s->test_nonce, nonce.p, el);
    s->have_test_nonce = true;
    return AT_OK;
}

/* Writes the response nonce and derives the response keys. */
static at_err server_begin_response(at_ohttp_server *s, at_buf *out, at_diag *d)
{
    uint8_t nonce[OHTTP_ENTROPY_MAX];
    size_t el = at_ohttp_entropy_len(s->suite.aead);
    if (!s->ready)
        return at_fail(d, AT_E_INTERNAL, "response before the request header");
    if (s->have_test_nonce)
        memcpy(nonce, s->test_nonce, el);
    else if (RAND_bytes(nonce, (int)el) != 1)
        return at_fail(d, AT_E_INTERNAL, "openssl: RAND_bytes failed");
    at_err rc =
        at_ohttp_resp_derive(s->ctx, s->chunked ? OHTTP_LABEL_CRES : OHTTP_LABEL_RES,
                             AT_SPAN(s->hdr + OHTTP_HDR_LEN, AT_HPKE_NENC), AT_SPAN(nonce, el), &s->rk, d);
    if (rc != AT_OK)
        return rc;
    rc = at_buf_append(out, nonce, el);
    if (rc != AT_OK)
        return at_fail(d, rc, "response nonce: buffer failed");
    s->response_started = true;
    return AT_OK;
}

static at_err server_seal_response(at_ohttp_server *s, at_span bhttp, at_buf *out, at_diag *d)
{
    size_t mark = out->len;
    at_err rc = server_begin_response(s, out, d);
    if (rc == AT_OK)
        rc = at_ohttp_resp_crypt(&s->rk, true, false, bhttp, out, d);
    if (rc != AT_OK && at_buf_status(out) == AT_OK)
        out->len = mark;
    if (rc == AT_OK)
        s->response_ended = true;
    return rc;
}

at_err at_ohttp_server_seal_response(at_ohttp_server *s, at_span bhttp, at_buf *out, at_diag *d)
{
    OHTTP_CHECK_LIVE(s);
    if (s->chunked || s->response_started)
        return at_fail(d, AT_E_INTERNAL, "seal_response: %s",
                       s->chunked ? "chunked exchange" : "response already sealed");
    OHTTP_RUN_STICKY(s, server_seal_response(s, bhttp, out, d));
}

at_err at_ohttp_server_new_chunked(const at_ohttp_keyset *ks, at_ohttp_server **out, at_diag *d)
{
    at_ohttp_server *s = server_alloc(ks, true);
    if (!s)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    *out = s;
    return AT_OK;
}

static at_err server_chunk_open(void *self, bool final, at_span ct, at_buf *out, at_diag *d)
{
    at_ohttp_server *s = self;
    at_span aad = final ? AT_SPAN(OHTTP_AAD_FINAL, sizeof OHTTP_AAD_FINAL - 1) : AT_SPAN_NULL;
    return at_hpke_open(s->ctx, aad, ct, out, d);
}

static at_err server_feed(at_ohttp_server *s, at_span in, at_buf *out, at_diag *d)
{
    if (!s->ready) {
        const at_hpke_key *e = NULL;
        size_t want = sizeof s->hdr - s->hdr_have;
        size_t n = want < in.len ? want : in.len;
        bool had_hdr = s->hdr_have >= OHTTP_HDR_LEN;
        if (n)
            memcpy(s->hdr + s->hdr_have, in.p, n);
        s->hdr_have += n;
        in.p += n;
        in.len -= n;
        /* Refuse an unknown key id or suite as soon as the 7 bytes are in. */
        if (!had_hdr && s->hdr_have >= OHTTP_HDR_LEN) {
            at_err rc = server_header(s, s->hdr, &e, d);
            if (rc != AT_OK)
                return rc;
        }
        if (s->hdr_have < sizeof s->hdr)
            return AT_OK;
        at_err rc = server_header(s, s->hdr, &e, d);
        if (rc == AT_OK)
            rc = server_setup(s, e, s->hdr, AT_SPAN(s->hdr + OHTTP_HDR_LEN, AT_HPKE_NENC), d);
        if (rc != AT_OK)
            return rc;
    }
    return at_ohttp_rx_feed(&s->rx, in, server_chunk_open, s, out, d);
}

at_err at_ohttp_server_feed(at_ohttp_server *s, at_span in, at_buf *out, at_diag *d)
{
    OHTTP_CHECK_LIVE(s);
    at_err rc = at_ohttp_rx_usage(s->chunked, true, d);
    if (rc != AT_OK)
        return rc;
    OHTTP_RUN_STICKY(s, server_feed(s, in, out, d));
}

static at_err server_finish(at_ohttp_server *s, at_buf *out, at_diag *d)
{
    if (!s->ready)
        return at_fail(d, AT_E_TRUNCATED, "request header: %zu of %zu bytes", s->hdr_have, sizeof s->hdr);
    return at_ohttp_rx_finish(&s->rx, server_chunk_open, s, out, d);
}

at_err at_ohttp_server_finish(at_ohttp_server *s, at_buf *out, at_diag *d)
{
    OHTTP_CHECK_LIVE(s);
    at_err rc = at_ohttp_rx_usage(s->chunked, true, d);
    if (rc != AT_OK)
        return rc;
    OHTTP_RUN_STICKY(s, server_finish(s, out, d));
}

static at_err server_chunk_seal(void *self, bool final, at_span pt, at_buf *out, at_diag *d)
{
    return at_ohttp_resp_crypt(&((at_ohttp_server *)self)->rk, true, final, pt, out, d);
}

static at_err server_seal_chunk(at_ohttp_server *s, at_span piece, bool final, at_buf *out, at_diag *d)
{
    if (!s->response_started) {
        at_err rc = server_begin_response(s, out, d);
        if (rc != AT_OK)
            return rc;
    }
    return at_ohttp_tx_chunks(&s->response_ended, piece, final, server_chunk_seal, s, out, d);
}

at_err at_ohttp_server_seal_chunk(at_ohttp_server *s, at_span piece, bool final, at_buf *out, at_diag *d)
{
    OHTTP_CHECK_LIVE(s);
    at_err rc = at_ohttp_tx_usage(s->chunked, s->response_ended, piece, final, d);
    if (rc == AT_OK && !s->ready)
        rc = at_fail(d, AT_E_INTERNAL, "response before the request header");
    if (rc != AT_OK)
        return rc;
    OHTTP_RUN_STICKY(s, server_seal_chunk(s, piece, final, out, d));
}
