/* ohttp_wire: header, HPKE info and response keys shared by both ends of
 * an exchange (lib/ohttp_wire.h). Handles derived secrets (wiped on every
 * path); parses nothing. */
#include "ohttp_wire.h"

#include <string.h>

#include "enc.h"

size_t at_ohttp_entropy_len(uint16_t aead)
{
    size_t nk = at_hpke_aead_nk(aead);
    return nk > AT_HPKE_NN ? nk : AT_HPKE_NN;
}

void at_ohttp_put_hdr(uint8_t hdr[OHTTP_HDR_LEN], uint8_t key_id, at_hpke_suite s)
{
    hdr[0] = key_id;
    hdr[1] = (uint8_t)(s.kem >> 8);
    hdr[2] = (uint8_t)s.kem;
    hdr[3] = (uint8_t)(s.kdf >> 8);
    hdr[4] = (uint8_t)s.kdf;
    hdr[5] = (uint8_t)(s.aead >> 8);
    hdr[6] = (uint8_t)s.aead;
}

/* info = label || 0x00 || hdr (RFC 9458 §4.3; chunked draft §6.1) */
at_err at_ohttp_make_info(const char *label, const uint8_t hdr[OHTTP_HDR_LEN], at_buf *info, at_diag *d)
{
    (void)at_buf_append(info, label, strlen(label));
    (void)at_buf_u8(info, 0);
    (void)at_buf_append(info, hdr, OHTTP_HDR_LEN);
    at_err rc = at_buf_status(info);
    return rc == AT_OK ? AT_OK : at_fail(d, rc, "info: buffer failed");
}

at_err at_ohttp_resp_derive(const at_hpke_ctx *ctx, const char *label, at_span enc, at_span response_nonce,
                            at_ohttp_resp_keys *rk, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_hpke_suite s = at_hpke_ctx_suite(ctx);
    size_t el = at_ohttp_entropy_len(s.aead);
    uint8_t secret[OHTTP_ENTROPY_MAX], prk[AT_HPKE_NH], salt[AT_HPKE_NENC + OHTTP_ENTROPY_MAX];

    AT_ENSURE(response_nonce.len == el && enc.len == AT_HPKE_NENC, d, AT_E_INTERNAL,
              "response nonce of %zu bytes", response_nonce.len);
    AT_TRY(at_hpke_export(ctx, AT_SPAN(label, strlen(label)), el, secret, d));
    memcpy(salt, enc.p, enc.len);
    memcpy(salt + enc.len, response_nonce.p, el);
    AT_TRY(at_hpke_kdf_extract(s.kdf, AT_SPAN(salt, enc.len + el), AT_SPAN(secret, el), prk, d));
    rk->aead = s.aead;
    rk->nk = at_hpke_aead_nk(s.aead);
    rk->counter = 0;
    AT_TRY(at_hpke_kdf_expand(s.kdf, AT_SPAN(prk, sizeof prk), AT_SPAN("key", 3), rk->key, rk->nk, d));
    AT_TRY(
        at_hpke_kdf_expand(s.kdf, AT_SPAN(prk, sizeof prk), AT_SPAN("nonce", 5), rk->nonce, AT_HPKE_NN, d));
    rc = AT_OK;
out:
    at_wipe(secret, sizeof secret);
    at_wipe(prk, sizeof prk);
    return rc;
}

/* chunk_nonce = aead_nonce XOR encode(Nn, counter); counter 0 is the
 * non-chunked nonce. */
at_err at_ohttp_resp_crypt(at_ohttp_resp_keys *rk, bool seal, bool final, at_span in, at_buf *out, at_diag *d)
{
    uint8_t nonce[AT_HPKE_NN];
    at_span aad = final ? AT_SPAN(OHTTP_AAD_FINAL, sizeof OHTTP_AAD_FINAL - 1) : AT_SPAN_NULL;
    if (rk->counter == UINT64_MAX)
        return at_fail(d, AT_E_SEQUENCE_OVERFLOW, "response chunk counter exhausted");
    memcpy(nonce, rk->nonce, AT_HPKE_NN);
    for (int i = 0; i < 8; i++)
        nonce[AT_HPKE_NN - 1 - i] ^= (uint8_t)(rk->counter >> (8 * i));
    at_span key = AT_SPAN(rk->key, rk->nk), ns = AT_SPAN(nonce, sizeof nonce);
    at_err rc = seal ? at_hpke_aead_seal(rk->aead, key, ns, aad, in, out, d)
                     : at_hpke_aead_open(rk->aead, key, ns, aad, in, out, d);
    if (rc == AT_OK)
        rk->counter++;
    return rc;
}
