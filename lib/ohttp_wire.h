/* ohttp_wire: internals shared by the two ends of an Oblivious HTTP
 * exchange (ohttp_client.c, ohttp_server.c): labels, the request header,
 * the HPKE info, the response keys (RFC 9458 §4.4; chunked draft §6.2) and
 * the sticky-failure rule. Not part of the public API. */
#ifndef AT_OHTTP_WIRE_H
#define AT_OHTTP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "hpke.h"

#define OHTTP_LABEL_REQ "message/bhttp request"
#define OHTTP_LABEL_RES "message/bhttp response"
#define OHTTP_LABEL_CREQ "message/bhttp chunked request"
#define OHTTP_LABEL_CRES "message/bhttp chunked response"
#define OHTTP_AAD_FINAL "final"

#define OHTTP_HDR_LEN 7 /* key_id(1) kem_id(2) kdf_id(2) aead_id(2) */
#define OHTTP_ENTROPY_MAX AT_HPKE_MAX_NK

/* max(Nn, Nk): the response nonce and exported secret length (§4.4). */
size_t at_ohttp_entropy_len(uint16_t aead);
/* The request header for key_id and suite s. */
void at_ohttp_put_hdr(uint8_t hdr[OHTTP_HDR_LEN], uint8_t key_id, at_hpke_suite s);
/* info = label || 0x00 || hdr (RFC 9458 §4.3; chunked draft §6.1), appended. */
at_err at_ohttp_make_info(const char *label, const uint8_t hdr[OHTTP_HDR_LEN], at_buf *info,
                          at_diag *d) AT_MUST_USE;

/* Response keys: secret, wiped by the owner of the exchange. */
typedef struct {
    uint16_t aead;
    size_t nk;
    uint8_t key[AT_HPKE_MAX_NK];
    uint8_t nonce[AT_HPKE_NN];
    uint64_t counter;
} at_ohttp_resp_keys;

/* Derive the response key and nonce from the exchange's HPKE context, the
 * request's enc and the response nonce; counter starts at 0. */
at_err at_ohttp_resp_derive(const at_hpke_ctx *ctx, const char *label, at_span enc, at_span response_nonce,
                            at_ohttp_resp_keys *rk, at_diag *d) AT_MUST_USE;
/* Seal or open one response message or chunk (AAD "final" when final) with
 * the next nonce; the counter advances only on success. */
at_err at_ohttp_resp_crypt(at_ohttp_resp_keys *rk, bool seal, bool final, at_span in, at_buf *out,
                           at_diag *d) AT_MUST_USE;

/* Sticky failure: once an exchange failed mid-stream it stays failed.
 * Misuse caught before any state changed (checked in the public wrappers)
 * is reported without failing the exchange. */
#define OHTTP_CHECK_LIVE(obj)                                                                      \
    do {                                                                                           \
        if ((obj)->err != AT_OK)                                                                   \
            return at_fail(d, (obj)->err, "exchange failed earlier (%s)", at_err_str((obj)->err)); \
    } while (0)
#define OHTTP_RUN_STICKY(obj, expr)  \
    do {                             \
        at_err sticky_rc_ = (expr);  \
        if (sticky_rc_ != AT_OK)     \
            (obj)->err = sticky_rc_; \
        return sticky_rc_;           \
    } while (0)

#endif
