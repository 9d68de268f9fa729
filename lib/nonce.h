/* nonce: challenge nonces a verifier can check without a lookup. 32 bytes:
 * random[12] || expiry (UNIX seconds, u32 BE) || HMAC-SHA256(key,
 * "attest nonce v1" || random || expiry)[0..16]. Any replica holding the
 * MAC key (it lives in the shared database) checks origin and expiry;
 * single use is enforced where the nonce is consumed (unique insert). */
#ifndef AT_NONCE_H
#define AT_NONCE_H

#include <stdint.h>

#include "buf.h"
#include "err.h"

#define AT_NONCE_LEN 32
#define AT_NONCE_KEY_LEN 32

/* Mint a nonce valid for ttl_s seconds from now_ms. */
at_err at_nonce_issue(const uint8_t key[AT_NONCE_KEY_LEN], int64_t now_ms, int ttl_s,
                      uint8_t out[AT_NONCE_LEN], int64_t *expires_ms) AT_MUST_USE;

/* Check a nonce read from a document against the current and previous MAC
 * keys (n_keys of them). AT_E_NONCE_UNKNOWN when no key made it (or the
 * length is wrong), AT_E_NONCE_EXPIRED when past its expiry. */
at_err at_nonce_check(const uint8_t (*keys)[AT_NONCE_KEY_LEN], size_t n_keys, at_span nonce, int64_t now_ms,
                      int64_t *expires_ms, at_diag *d) AT_MUST_USE;

#endif
