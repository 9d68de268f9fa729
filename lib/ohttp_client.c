/* ohttp_client: the client end of an exchange (lib/ohttp_client.h).
 * Parses attacker-supplied responses (whole or chunked) through the bounded
 * reader; the HPKE context and response keys are wiped when freed. */
#include "ohttp_client.h"

#include <stdlib.h>
#include <string.h>

#include "enc.h"
#include "ohttp_chunked.h"
#include "ohttp_wire.h"
#include "testing.h"

struct at_ohttp_client {
    at_hpke_suite suite;
    bool chunked;
    uint8_t hdr[OHTTP_HDR_LEN];
    uint8_t enc[AT_HPKE_NENC];
    at_hpke_ctx *ctx;
    bool request_sent; /* whole request sealed, or header written */
    bool request_ended;
    /* response */
    uint8_t rnonce[OHTTP_ENTROPY_MAX];
    size_t rnonce_have;
    bool keys_ready;
    bool response_done;
    at_ohttp_resp_keys rk;
    at_ohttp_chunk_rx rx;
    at_err err;
};

static at_err client_new(const at_ohttp_key_config *kc, const at_hpke_suite *suite, bool chunked, at_span skE,
                         at_ohttp_client **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_ohttp_client *c = NULL;
    at_hpke_key *pkR = NULL, *eph = NULL;
    at_hpke_suite s;
    at_buf info;

    at_buf_init(&info);
    if (suite) {
        bool listed = false;
        for (size_t i = 0; i < kc->nsym; i++)
            listed |= kc->sym[i].kdf == suite->kdf && kc->sym[i].aead == suite->aead;
        AT_ENSURE(listed && suite->kem == kc->kem, d, AT_E_UNSUPPORTED_SUITE,
                  "suite 0x%04x/0x%04x/0x%04x: not offered by key config %u", suite->kem, suite->kdf,
                  suite->aead, kc->key_id);
        s = *suite;
    } else {
        AT_TRY(at_ohttp_key_config_suite(kc, &s, d));
    }
    AT_TRY(at_hpke_suite_check(s, d));
    AT_TRY(at_hpke_key_from_public(kc->kem, AT_SPAN(kc->pk, AT_HPKE_NPK), &pkR, d));
    c = calloc(1, sizeof *c);
    AT_ENSURE(c != NULL, d, AT_E_INTERNAL, "out of memory");
    at_ohttp_rx_init(&c->rx);
    c->suite = s;
    c->chunked = chunked;
    at_ohttp_put_hdr(c->hdr, kc->key_id, s);
    AT_TRY(at_ohttp_make_info(chunked ? OHTTP_LABEL_CREQ : OHTTP_LABEL_REQ, c->hdr, &info, d));
    at_hpke_params p = {.mode = AT_HPKE_MODE_BASE, .info = at_buf_span(&info)};
    if (skE.len) {
        AT_TRY(at_hpke_key_from_private(kc->kem, skE, &eph, d));
        AT_TRY(at_hpke_setup_sender_eph(s, &p, pkR, eph, c->enc, &c->ctx, d));
    } else {
        AT_TRY(at_hpke_setup_sender(s, &p, pkR, c->enc, &c->ctx, d));
    }
    *out = c;
    c = NULL;
    rc = AT_OK;
out:
    at_buf_cleanup(&info);
    at_hpke_key_free(pkR);
    at_hpke_key_free(eph);
    at_ohttp_client_free(c);
    return rc;
}

at_err at_ohttp_client_new(const at_ohttp_key_config *kc, const at_hpke_suite *suite, bool chunked,
                           at_ohttp_client **out, at_diag *d)
{
    return client_new(kc, suite, chunked, AT_SPAN_NULL, out, d);
}

at_err at_ohttp_client_new_det(const at_ohttp_key_config *kc, const at_hpke_suite *suite, bool chunked,
                               at_span skE, at_ohttp_client **out, at_diag *d)
{
    if (skE.len == 0)
        return at_fail(d, AT_E_KEY_REQUIRED, "skE: missing");
    return client_new(kc, suite, chunked, skE, out, d);
}

void at_ohttp_client_free(at_ohttp_client *c)
{
    if (!c)
        return;
    at_hpke_ctx_free(c->ctx);
    at_ohttp_rx_cleanup(&c->rx);
    at_wipe(c, sizeof *c);
    free(c);
}

at_hpke_suite at_ohttp_client_suite(const at_ohttp_client *c) { return c->suite; }

static at_err client_seal_request(at_ohttp_client *c, at_span bhttp, at_buf *out, at_diag *d)
{
    size_t mark = out->len;
    (void)at_buf_append(out, c->hdr, OHTTP_HDR_LEN);
    (void)at_buf_append(out, c->enc, AT_HPKE_NENC);
    at_err rc = at_buf_status(out);
    if (rc == AT_OK)
        rc = at_hpke_seal(c->ctx, AT_SPAN_NULL, bhttp, out, d);
    if (rc != AT_OK) {
        if (at_buf_status(out) == AT_OK)
            out->len = mark;
        return rc;
    }
    c->request_sent = c->request_ended = true;
    return AT_OK;
}

at_err at_ohttp_client_seal_request(at_ohttp_client *c, at_span bhttp, at_buf *out, at_diag *d)
{
    OHTTP_CHECK_LIVE(c);
    if (c->chunked || c->request_sent)
        return at_fail(d, AT_E_INTERNAL, "seal_request: %s",
                       c->chunked ? "chunked exchange" : "request already sealed");
    if (bhttp.len > AT_MAX_OHTTP_MESSAGE)
        return at_fail(d, AT_E_TOO_LARGE, "request: %zu bytes, limit %d", bhttp.len, AT_MAX_OHTTP_MESSAGE);
    OHTTP_RUN_STICKY(c, client_seal_request(c, bhttp, out, d));
}

static at_err client_open_response(at_ohttp_client *c, at_span body, at_buf *out, at_diag *d)
{
    at_err rc;
    size_t el = at_ohttp_entropy_len(c->suite.aead);
    if (body.len < el + AT_HPKE_NT)
        return at_fail(d, AT_E_TRUNCATED,
                       "encapsulated response: %zu bytes, at least %zu (nonce and tag) needed", body.len,
                       el + AT_HPKE_NT);
    if (body.len - el > (size_t)AT_MAX_OHTTP_MESSAGE + AT_HPKE_NT)
        return at_fail(d, AT_E_TOO_LARGE, "encapsulated response: %zu bytes", body.len);
    rc = at_ohttp_resp_derive(c->ctx, OHTTP_LABEL_RES, AT_SPAN(c->enc, AT_HPKE_NENC), AT_SPAN(body.p, el),
                              &c->rk, d);
    if (rc == AT_OK)
        rc = at_ohttp_resp_crypt(&c->rk, false, false, AT_SPAN(body.p + el, body.len - el), out, d);
    if (rc == AT_OK)
        c->response_done = true;
    return rc;
}

at_err at_ohttp_client_open_response(at_ohttp_client *c, at_span body, at_buf *out, at_diag *d)
{
    OHTTP_CHECK_LIVE(c);
    if (c->chunked || !c->request_sent || c->response_done)
        return at_fail(d, AT_E_INTERNAL, "open_response: %s",
                       c->chunked ? "chunked exchange" : "no request, or already opened");
    OHTTP_RUN_STICKY(c, client_open_response(c, body, out, d));
}

static at_err client_chunk_seal(void *self, bool final, at_span pt, at_buf *out, at_diag *d)
{
    at_ohttp_client *c = self;
    at_span aad = final ? AT_SPAN(OHTTP_AAD_FINAL, sizeof OHTTP_AAD_FINAL - 1) : AT_SPAN_NULL;
    return at_hpke_seal(c->ctx, aad, pt, out, d);
}

static at_err client_seal_chunk(at_ohttp_client *c, at_span piece, bool final, at_buf *out, at_diag *d)
{
    if (!c->request_sent) {
        (void)at_buf_append(out, c->hdr, OHTTP_HDR_LEN);
        (void)at_buf_append(out, c->enc, AT_HPKE_NENC);
        if (at_buf_status(out) != AT_OK)
            return at_fail(d, at_buf_status(out), "request header: buffer failed");
        c->request_sent = true;
    }
    return at_ohttp_tx_chunks(&c->request_ended, piece, final, client_chunk_seal, c, out, d);
}

at_err at_ohttp_client_seal_chunk(at_ohttp_client *c, at_span piece, bool final, at_buf *out, at_diag *d)
{
    OHTTP_CHECK_LIVE(c);
    at_err rc = at_ohttp_tx_usage(c->chunked, c->request_ended, piece, final, d);
    if (rc != AT_OK)
        return rc;
    OHTTP_RUN_STICKY(c, client_seal_chunk(c, piece, final, out, d));
}

static at_err client_chunk_open(void *self, bool final, at_span ct, at_buf *out, at_diag *d)
{
    return at_ohttp_resp_crypt(&((at_ohttp_client *)self)->rk, false, final, ct, out, d);
}

static at_err client_feed(at_ohttp_client *c, at_span in, at_buf *out, at_diag *d)
{
    if (!c->keys_ready) {
        size_t el = at_ohttp_entropy_len(c->suite.aead);
        size_t n = el - c->rnonce_have;
        if (n > in.len)
            n = in.len;
        if (n)
            memcpy(c->rnonce + c->rnonce_have, in.p, n);
        c->rnonce_have += n;
        in.p += n;
        in.len -= n;
        if (c->rnonce_have < el)
            return AT_OK;
        at_err rc = at_ohttp_resp_derive(c->ctx, OHTTP_LABEL_CRES, AT_SPAN(c->enc, AT_HPKE_NENC),
                                         AT_SPAN(c->rnonce, el), &c->rk, d);
        if (rc != AT_OK)
            return rc;
        c->keys_ready = true;
    }
    return at_ohttp_rx_feed(&c->rx, in, client_chunk_open, c, out, d);
}

at_err at_ohttp_client_feed(at_ohttp_client *c, at_span in, at_buf *out, at_diag *d)
{
    OHTTP_CHECK_LIVE(c);
    at_err rc = at_ohttp_rx_usage(c->chunked, c->request_sent, d);
    if (rc != AT_OK)
        return rc;
    OHTTP_RUN_STICKY(c, client_feed(c, in, out, d));
}

static at_err client_finish(at_ohttp_client *c, at_buf *out, at_diag *d)
{
    if (!c->keys_ready)
        return at_fail(d, AT_E_TRUNCATED, "response nonce: %zu of %zu bytes", c->rnonce_have,
                       at_ohttp_entropy_len(c->suite.aead));
    return at_ohttp_rx_finish(&c->rx, client_chunk_open, c, out, d);
}

at_err at_ohttp_client_finish(at_ohttp_client *c, at_buf *out, at_diag *d)
{
    OHTTP_CHECK_LIVE(c);
    at_err rc = at_ohttp_rx_usage(c->chunked, c->request_sent, d);
    if (rc != AT_OK)
        return rc;
    OHTTP_RUN_STICKY(c, client_finish(c, out, d));
}
