/* seal: HPKE sealing to attested key configurations and the session-key
 * proofs of secret release. Key configurations and proofs are attacker
 * input; MACs are compared in constant time. */
#include "seal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc.h"
#include "ohttp.h"

static const at_hpke_suite seal_suite = {AT_HPKE_KEM_X25519_SHA256, AT_HPKE_KDF_HKDF_SHA256,
                                         AT_HPKE_AEAD_AES_128_GCM};

at_err at_seal_to_key_config(at_span key_config, const char *info, at_span pt, at_buf *out, at_diag *d)
{
    at_ohttp_key_config kc;
    at_hpke_key *pk = NULL;
    at_err rc = at_ohttp_key_config_parse(key_config, &kc, d);
    if (rc != AT_OK)
        return rc;
    if (kc.kem != AT_HPKE_KEM_X25519_SHA256)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE, "key config: KEM 0x%04x, expected 0x0020 (X25519)", kc.kem);
    if ((rc = at_hpke_key_from_public(kc.kem, AT_SPAN(kc.pk, AT_HPKE_NPK), &pk, d)) != AT_OK)
        return rc;
    at_hpke_params params = {.mode = AT_HPKE_MODE_BASE, .info = AT_SPAN(info, strlen(info))};
    rc = at_hpke_seal_single(seal_suite, &params, pk, AT_SPAN_NULL, pt, out, d);
    at_hpke_key_free(pk);
    return rc;
}

at_err at_seal_open(const at_hpke_key *sk, const char *info, at_span sealed, at_buf *out, at_diag *d)
{
    at_hpke_params params = {.mode = AT_HPKE_MODE_BASE, .info = AT_SPAN(info, strlen(info))};
    return at_hpke_open_single(seal_suite, &params, sk, AT_SPAN_NULL, sealed, out, d);
}

void at_session_proof_key(at_span session_key, uint8_t out[32])
{
    static const char label[] = "attest session proof v1";
    unsigned int n = 32;
    HMAC(EVP_sha256(), session_key.p, (int)session_key.len, (const uint8_t *)label, sizeof label - 1, out,
         &n);
}

static bool proof_mac(at_span key, const char *name, const char *session, int64_t ts, uint8_t out[32])
{
    at_buf m;
    at_buf_init(&m);
    at_buf_printf(&m, "attest release v1\n%s\n%s\n%lld", name, session, (long long)ts);
    unsigned int n = 32;
    bool ok =
        at_buf_status(&m) == AT_OK && HMAC(EVP_sha256(), key.p, (int)key.len, m.p, m.len, out, &n) != NULL;
    at_buf_cleanup(&m);
    return ok;
}

at_err at_release_proof_make(at_span key, const char *name, const char *session, int64_t ts, char *out,
                             size_t outlen)
{
    uint8_t mac[32];
    if (!proof_mac(key, name, session, ts, mac))
        return AT_E_INTERNAL;
    char *b = at_b64url_encode_new(AT_SPAN(mac, 32));
    if (!b)
        return AT_E_INTERNAL;
    int n = snprintf(out, outlen, "%lld.%s", (long long)ts, b);
    free(b);
    return n > 0 && (size_t)n < outlen ? AT_OK : AT_E_TOO_LARGE;
}

at_err at_release_proof_parse(const char *proof, int64_t *ts, uint8_t mac[32], at_diag *d)
{
    const char *dot = strchr(proof, '.');
    if (!dot || dot == proof || dot - proof > 15)
        return at_fail(d, AT_E_BAD_REQUEST, "proof: expected \"<unix ms>.<base64url MAC>\"");
    int64_t t = 0;
    for (const char *p = proof; p < dot; p++) {
        if (*p < '0' || *p > '9')
            return at_fail(d, AT_E_BAD_REQUEST, "proof: timestamp is not a number");
        t = t * 10 + (*p - '0');
    }
    uint8_t *m = NULL;
    size_t mlen = 0;
    if (strlen(dot + 1) > 64 || at_b64_decode_new(dot + 1, strlen(dot + 1), &m, &mlen) != AT_OK ||
        mlen != 32) {
        free(m);
        return at_fail(d, AT_E_BAD_REQUEST, "proof: MAC must be 32 bytes of base64url");
    }
    memcpy(mac, m, 32);
    free(m);
    *ts = t;
    return AT_OK;
}

bool at_release_proof_check(at_span key, const char *name, const char *session, int64_t ts,
                            const uint8_t mac[32])
{
    uint8_t want[32];
    if (!proof_mac(key, name, session, ts, want))
        return false;
    bool ok = CRYPTO_memcmp(want, mac, 32) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}

static void storage_aad(at_buf *aad, const char *name, const char *policy)
{
    at_buf_printf(aad, "attest secret at rest v1\n%s\n%s", name, policy);
}

at_err at_storage_seal(const uint8_t key[AT_STORAGE_KEY_LEN], const char *name, const char *policy,
                       at_span pt, at_buf *out, at_diag *d)
{
    uint8_t nonce[12];
    at_buf aad;
    at_buf_init(&aad);
    storage_aad(&aad, name, policy);
    at_err rc = AT_E_INTERNAL;
    if (RAND_bytes(nonce, sizeof nonce) != 1 || at_buf_status(&aad) != AT_OK)
        goto out;
    at_buf_u8(out, 1);
    at_buf_append(out, nonce, sizeof nonce);
    rc = at_hpke_aead_seal(AT_HPKE_AEAD_AES_256_GCM, AT_SPAN(key, AT_STORAGE_KEY_LEN),
                           AT_SPAN(nonce, sizeof nonce), at_buf_span(&aad), pt, out, d);
out:
    at_buf_cleanup(&aad);
    return rc;
}

at_err at_storage_open(const uint8_t key[AT_STORAGE_KEY_LEN], const char *name, const char *policy,
                       at_span stored, at_buf *out, at_diag *d)
{
    if (stored.len < 1 + 12 + 16 || stored.p[0] != 1)
        return at_fail(d, AT_E_DECRYPT_FAILED, "secret at rest: unknown format");
    at_buf aad;
    at_buf_init(&aad);
    storage_aad(&aad, name, policy);
    at_err rc = at_buf_status(&aad) != AT_OK
                    ? AT_E_INTERNAL
                    : at_hpke_aead_open(AT_HPKE_AEAD_AES_256_GCM, AT_SPAN(key, AT_STORAGE_KEY_LEN),
                                        AT_SPAN(stored.p + 1, 12), at_buf_span(&aad),
                                        AT_SPAN(stored.p + 13, stored.len - 13), out, d);
    at_buf_cleanup(&aad);
    if (rc == AT_E_DECRYPT_FAILED)
        at_fail(d, rc, "secret at rest: does not open with this verifier's storage key");
    return rc;
}
