/* nonce: authenticated, expiring challenge nonces. Checks attacker-supplied
 * nonce bytes with a constant-time MAC comparison. */
#include "nonce.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

#define RAND_LEN 12
#define MAC_LEN 16
static const char label[] = "attest nonce v1";

static int mac(const uint8_t key[AT_NONCE_KEY_LEN], const uint8_t *body, uint8_t out[MAC_LEN])
{
    uint8_t msg[sizeof label - 1 + RAND_LEN + 4], full[32];
    unsigned int n = 0;
    memcpy(msg, label, sizeof label - 1);
    memcpy(msg + sizeof label - 1, body, RAND_LEN + 4);
    if (!HMAC(EVP_sha256(), key, AT_NONCE_KEY_LEN, msg, sizeof msg, full, &n) || n != 32)
        return 0;
    memcpy(out, full, MAC_LEN);
    OPENSSL_cleanse(full, sizeof full);
    return 1;
}

at_err at_nonce_issue(const uint8_t key[AT_NONCE_KEY_LEN], int64_t now_ms, int ttl_s,
                      uint8_t out[AT_NONCE_LEN], int64_t *expires_ms)
{
    if (ttl_s <= 0 || now_ms < 0)
        return AT_E_INTERNAL;
    int64_t exp_s = now_ms / 1000 + ttl_s;
    if (exp_s > UINT32_MAX)
        return AT_E_INTERNAL;
    if (RAND_bytes(out, RAND_LEN) != 1)
        return AT_E_INTERNAL;
    out[RAND_LEN] = (uint8_t)(exp_s >> 24);
    out[RAND_LEN + 1] = (uint8_t)(exp_s >> 16);
    out[RAND_LEN + 2] = (uint8_t)(exp_s >> 8);
    out[RAND_LEN + 3] = (uint8_t)exp_s;
    if (!mac(key, out, out + RAND_LEN + 4))
        return AT_E_INTERNAL;
    if (expires_ms)
        *expires_ms = exp_s * 1000;
    return AT_OK;
}

at_err at_nonce_check(const uint8_t (*keys)[AT_NONCE_KEY_LEN], size_t n_keys, at_span nonce, int64_t now_ms,
                      int64_t *expires_ms, at_diag *d)
{
    if (nonce.len != AT_NONCE_LEN)
        return at_fail(d, AT_E_NONCE_UNKNOWN, "nonce: %zu bytes, this verifier issues %d-byte nonces",
                       nonce.len, AT_NONCE_LEN);
    bool known = false;
    for (size_t i = 0; i < n_keys; i++) {
        uint8_t want[MAC_LEN];
        if (!mac(keys[i], nonce.p, want))
            return at_fail(d, AT_E_INTERNAL, "nonce: MAC failed");
        known |= CRYPTO_memcmp(want, nonce.p + RAND_LEN + 4, MAC_LEN) == 0;
    }
    if (!known)
        return at_fail(d, AT_E_NONCE_UNKNOWN,
                       "nonce: not issued by this verifier (MAC does not match any of %zu keys)", n_keys);
    const uint8_t *e = nonce.p + RAND_LEN;
    int64_t exp_ms =
        (int64_t)((uint32_t)e[0] << 24 | (uint32_t)e[1] << 16 | (uint32_t)e[2] << 8 | e[3]) * 1000;
    if (now_ms > exp_ms)
        return at_fail(d, AT_E_NONCE_EXPIRED, "nonce: expired %lld ms ago", (long long)(now_ms - exp_ms));
    if (expires_ms)
        *expires_ms = exp_ms;
    return AT_OK;
}
