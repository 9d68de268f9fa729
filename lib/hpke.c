/* hpke: RFC 9180 on OpenSSL 3.0 primitives (X25519, HKDF, AEADs), with
 * OpenSSL's OSSL_HPKE_* running base-mode contexts where it exists.
 * Reads attacker-supplied enc values and ciphertexts; every secret derived
 * here is wiped before its memory is released. */
#include "config.h"

#include "hpke.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef AT_HAVE_OSSL_HPKE
#include <openssl/hpke.h>
#endif

#include "testing.h"

/* EVP lengths are int. (<limits.h> is avoided: a pkg-config -I of the
 * multiarch include dir breaks its include_next chain on Debian.) */
#define EVP_LEN_MAX ((size_t)0x7fffffff)

/* Room for n more bytes in out, with the refusal in the diagnostics. */
static at_err reserve(at_buf *out, size_t n, const char *what, at_diag *d)
{
    at_err rc = at_buf_reserve(out, n);
    if (rc != AT_OK)
        return at_fail(d, rc, "%s: the output buffer refused %zu more bytes (it holds %zu)", what, n,
                       out->len);
    return AT_OK;
}

/* ---- algorithm objects, fetched once (implicit fetches per call are slow) */

static pthread_once_t algs_once = PTHREAD_ONCE_INIT;
static EVP_KDF *alg_hkdf;
static EVP_CIPHER *alg_aes128gcm, *alg_aes256gcm, *alg_chacha;

static void algs_init(void)
{
    alg_hkdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
    alg_aes128gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    alg_aes256gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    alg_chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
}

static const EVP_CIPHER *aead_cipher(uint16_t aead)
{
    pthread_once(&algs_once, algs_init);
    switch (aead) {
    case AT_HPKE_AEAD_AES_128_GCM:
        return alg_aes128gcm;
    case AT_HPKE_AEAD_AES_256_GCM:
        return alg_aes256gcm;
    case AT_HPKE_AEAD_CHACHA20_POLY1305:
        return alg_chacha;
    default:
        return NULL;
    }
}

size_t at_hpke_aead_nk(uint16_t aead)
{
    switch (aead) {
    case AT_HPKE_AEAD_AES_128_GCM:
        return 16;
    case AT_HPKE_AEAD_AES_256_GCM:
    case AT_HPKE_AEAD_CHACHA20_POLY1305:
        return 32;
    default:
        return 0;
    }
}

const char *at_hpke_aead_name(uint16_t aead)
{
    switch (aead) {
    case AT_HPKE_AEAD_AES_128_GCM:
        return "AES-128-GCM";
    case AT_HPKE_AEAD_AES_256_GCM:
        return "AES-256-GCM";
    case AT_HPKE_AEAD_CHACHA20_POLY1305:
        return "ChaCha20-Poly1305";
    default:
        return "unknown";
    }
}

at_err at_hpke_suite_check(at_hpke_suite s, at_diag *d)
{
    if (s.kem != AT_HPKE_KEM_X25519_SHA256)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE, "kem_id: expected 0x0020 (X25519), got 0x%04x", s.kem);
    if (s.kdf != AT_HPKE_KDF_HKDF_SHA256)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE, "kdf_id: expected 0x0001 (HKDF-SHA256), got 0x%04x", s.kdf);
    if (at_hpke_aead_nk(s.aead) == 0)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE, "aead_id: expected 0x0001, 0x0002 or 0x0003, got 0x%04x",
                       s.aead);
    return AT_OK;
}

const char *at_hpke_backend(void)
{
#ifdef AT_HAVE_OSSL_HPKE
    return "openssl-ossl-hpke";
#else
    return "openssl-3.0-primitives";
#endif
}

/* ---- HKDF ---------------------------------------------------------------- */

static const uint8_t empty_byte;

static at_err hkdf(int mode, at_span salt, at_span key, at_span info, uint8_t *out, size_t L, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[6], *p = params;

    pthread_once(&algs_once, algs_init);
    AT_ENSURE(alg_hkdf != NULL, d, AT_E_INTERNAL, "openssl: HKDF is unavailable");
    kctx = EVP_KDF_CTX_new(alg_hkdf);
    AT_ENSURE(kctx != NULL, d, AT_E_INTERNAL, "openssl: EVP_KDF_CTX_new failed");
    *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(key.len ? key.p : &empty_byte),
                                             key.len);
    /* An absent salt is Nh zero bytes for HMAC: RFC 5869 §2.2. */
    if (salt.len)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt.p, salt.len);
    if (info.len)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info.p, info.len);
    *p = OSSL_PARAM_construct_end();
    AT_OSSL(EVP_KDF_derive(kctx, out, L, params), d);
    rc = AT_OK;
out:
    EVP_KDF_CTX_free(kctx);
    return rc;
}

at_err at_hpke_kdf_extract(uint16_t kdf, at_span salt, at_span ikm, uint8_t prk[AT_HPKE_NH], at_diag *d)
{
    if (kdf != AT_HPKE_KDF_HKDF_SHA256)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE, "kdf_id: unsupported 0x%04x", kdf);
    return hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, salt, ikm, AT_SPAN_NULL, prk, AT_HPKE_NH, d);
}

at_err at_hpke_kdf_expand(uint16_t kdf, at_span prk, at_span info, uint8_t *out, size_t L, at_diag *d)
{
    if (kdf != AT_HPKE_KDF_HKDF_SHA256)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE, "kdf_id: unsupported 0x%04x", kdf);
    if (L == 0 || L > AT_HPKE_MAX_EXPORT)
        return at_fail(d, AT_E_BAD_FIELD, "expand length: expected 1..%d, got %zu", AT_HPKE_MAX_EXPORT, L);
    if (prk.len < AT_HPKE_NH)
        return at_fail(d, AT_E_INTERNAL, "prk: expected %d bytes, got %zu", AT_HPKE_NH, prk.len);
    return hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, AT_SPAN_NULL, prk, info, out, L, d);
}

/* suite_id (RFC 9180 §4.1 and §5.1): "KEM" || kem, or "HPKE" || kem || kdf || aead. */
typedef struct {
    uint8_t b[10];
    size_t len;
} suite_id;

static suite_id kem_suite_id(uint16_t kem)
{
    suite_id s = {{'K', 'E', 'M', (uint8_t)(kem >> 8), (uint8_t)kem}, 5};
    return s;
}

static suite_id hpke_suite_id(at_hpke_suite su)
{
    suite_id s = {{'H', 'P', 'K', 'E', (uint8_t)(su.kem >> 8), (uint8_t)su.kem, (uint8_t)(su.kdf >> 8),
                   (uint8_t)su.kdf, (uint8_t)(su.aead >> 8), (uint8_t)su.aead},
                  10};
    return s;
}

static const char hpke_v1[] = "HPKE-v1";

/* LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite_id || label || ikm) */
static at_err labeled_extract(const suite_id *sid, at_span salt, const char *label, at_span ikm,
                              uint8_t prk[AT_HPKE_NH], at_diag *d)
{
    at_buf b;
    at_buf_init_secret(&b);
    (void)at_buf_append(&b, hpke_v1, sizeof hpke_v1 - 1);
    (void)at_buf_append(&b, sid->b, sid->len);
    (void)at_buf_append(&b, label, strlen(label));
    (void)at_buf_append_span(&b, ikm);
    at_err rc = at_buf_status(&b);
    if (rc != AT_OK)
        rc = at_fail(d, rc, "labeled extract: out of memory");
    else
        rc = hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, salt, at_buf_span(&b), AT_SPAN_NULL, prk, AT_HPKE_NH, d);
    at_buf_cleanup(&b);
    return rc;
}

/* LabeledExpand(prk, label, info, L) =
 *   Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L) */
static at_err labeled_expand(const suite_id *sid, at_span prk, const char *label, at_span info, uint8_t *out,
                             size_t L, at_diag *d)
{
    if (L == 0 || L > AT_HPKE_MAX_EXPORT)
        return at_fail(d, AT_E_BAD_FIELD, "expand length: expected 1..%d, got %zu", AT_HPKE_MAX_EXPORT, L);
    at_buf b;
    at_buf_init_secret(&b);
    (void)at_buf_u16(&b, (uint16_t)L);
    (void)at_buf_append(&b, hpke_v1, sizeof hpke_v1 - 1);
    (void)at_buf_append(&b, sid->b, sid->len);
    (void)at_buf_append(&b, label, strlen(label));
    (void)at_buf_append_span(&b, info);
    at_err rc = at_buf_status(&b);
    if (rc != AT_OK)
        rc = at_fail(d, rc, "labeled expand: out of memory");
    else
        rc = hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, AT_SPAN_NULL, prk, at_buf_span(&b), out, L, d);
    at_buf_cleanup(&b);
    return rc;
}

/* ---- AEAD ---------------------------------------------------------------- */

static at_err aead_crypt(bool encrypt, uint16_t aead, at_span key, at_span nonce, at_span aad, at_span in,
                         at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    EVP_CIPHER_CTX *cc = NULL;
    const EVP_CIPHER *ciph = aead_cipher(aead);
    size_t body = 0, total = 0;
    uint8_t *dst = NULL;
    int outl = 0;

    if (at_hpke_aead_nk(aead) == 0)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE, "aead_id: unsupported 0x%04x", aead);
    AT_ENSURE(ciph != NULL, d, AT_E_INTERNAL, "openssl: %s is unavailable", at_hpke_aead_name(aead));
    AT_ENSURE(key.len == at_hpke_aead_nk(aead) && nonce.len == AT_HPKE_NN, d, AT_E_INTERNAL,
              "aead: key or nonce of the wrong size");
    if (!encrypt)
        AT_ENSURE(in.len >= AT_HPKE_NT, d, AT_E_TRUNCATED,
                  "ciphertext: expected at least %d bytes (the tag), got %zu", AT_HPKE_NT, in.len);
    AT_ENSURE(in.len <= EVP_LEN_MAX - AT_HPKE_NT && aad.len <= EVP_LEN_MAX, d, AT_E_TOO_LARGE,
              "aead input: %zu bytes is more than one call takes", in.len);
    body = encrypt ? in.len : in.len - AT_HPKE_NT;
    total = encrypt ? body + AT_HPKE_NT : body;
    AT_TRY(reserve(out, total ? total : 1, at_hpke_aead_name(aead), d));
    dst = out->p + out->len;
    cc = EVP_CIPHER_CTX_new();
    AT_ENSURE(cc != NULL, d, AT_E_INTERNAL, "openssl: EVP_CIPHER_CTX_new failed");
    if (encrypt)
        AT_OSSL(EVP_EncryptInit_ex2(cc, ciph, key.p, nonce.p, NULL), d);
    else
        AT_OSSL(EVP_DecryptInit_ex2(cc, ciph, key.p, nonce.p, NULL), d);
    if (aad.len)
        AT_OSSL(EVP_CipherUpdate(cc, NULL, &outl, aad.p, (int)aad.len), d);
    size_t done = 0;
    if (body) {
        AT_OSSL(EVP_CipherUpdate(cc, dst, &outl, in.p, (int)body), d);
        done = (size_t)outl;
    }
    if (encrypt) {
        AT_OSSL(EVP_CipherFinal_ex(cc, dst + done, &outl), d);
        AT_OSSL(EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_AEAD_GET_TAG, AT_HPKE_NT, dst + body), d);
    } else {
        AT_OSSL(EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_AEAD_SET_TAG, AT_HPKE_NT, (void *)(in.p + body)), d);
        if (EVP_CipherFinal_ex(cc, dst + done, &outl) != 1) {
            ERR_clear_error();
            rc = at_fail(d, AT_E_DECRYPT_FAILED, "%s: authentication tag does not verify",
                         at_hpke_aead_name(aead));
            goto out;
        }
    }
    out->len += total;
    rc = AT_OK;
out:
    /* Unverified plaintext never stays in the caller's buffer. */
    if (rc != AT_OK && dst && total)
        at_wipe(dst, total);
    EVP_CIPHER_CTX_free(cc);
    return rc;
}

at_err at_hpke_aead_seal(uint16_t aead, at_span key, at_span nonce, at_span aad, at_span pt, at_buf *out,
                         at_diag *d)
{
    return aead_crypt(true, aead, key, nonce, aad, pt, out, d);
}

at_err at_hpke_aead_open(uint16_t aead, at_span key, at_span nonce, at_span aad, at_span ct, at_buf *out,
                         at_diag *d)
{
    return aead_crypt(false, aead, key, nonce, aad, ct, out, d);
}

/* ---- keys ---------------------------------------------------------------- */

struct at_hpke_key {
    uint16_t kem;
    bool has_private;
    EVP_PKEY *pkey;
    uint8_t pk[AT_HPKE_NPK];
};

static at_err check_kem(uint16_t kem, at_diag *d)
{
    if (kem != AT_HPKE_KEM_X25519_SHA256)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE, "kem_id: expected 0x0020 (X25519), got 0x%04x", kem);
    return AT_OK;
}

/* Takes pkey (freed on failure too). */
static at_err key_wrap(uint16_t kem, EVP_PKEY *pkey, bool priv, at_hpke_key **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_hpke_key *k = NULL;
    size_t len = AT_HPKE_NPK;

    AT_ENSURE(pkey != NULL, d, AT_E_INTERNAL, "openssl: X25519 key creation failed");
    k = calloc(1, sizeof *k);
    AT_ENSURE(k != NULL, d, AT_E_INTERNAL, "out of memory");
    AT_OSSL(EVP_PKEY_get_raw_public_key(pkey, k->pk, &len), d);
    AT_ENSURE(len == AT_HPKE_NPK, d, AT_E_INTERNAL, "X25519 public key of %zu bytes", len);
    k->kem = kem;
    k->has_private = priv;
    k->pkey = pkey;
    pkey = NULL;
    *out = k;
    k = NULL;
    rc = AT_OK;
out:
    if (rc != AT_OK)
        at_diag_add_openssl(d);
    EVP_PKEY_free(pkey);
    free(k);
    return rc;
}

at_err at_hpke_key_generate(uint16_t kem, at_hpke_key **out, at_diag *d)
{
    at_err rc = check_kem(kem, d);
    if (rc != AT_OK)
        return rc;
    return key_wrap(kem, EVP_PKEY_Q_keygen(NULL, NULL, "X25519"), true, out, d);
}

at_err at_hpke_key_from_private(uint16_t kem, at_span sk, at_hpke_key **out, at_diag *d)
{
    at_err rc = check_kem(kem, d);
    if (rc != AT_OK)
        return rc;
    if (sk.len != AT_HPKE_NSK)
        return at_fail(d, AT_E_BAD_FIELD, "X25519 private key: expected %d bytes, got %zu", AT_HPKE_NSK,
                       sk.len);
    return key_wrap(kem, EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL, sk.p, sk.len), true, out, d);
}

at_err at_hpke_key_from_public(uint16_t kem, at_span pk, at_hpke_key **out, at_diag *d)
{
    at_err rc = check_kem(kem, d);
    if (rc != AT_OK)
        return rc;
    if (pk.len != AT_HPKE_NPK)
        return at_fail(d, AT_E_BAD_FIELD, "X25519 public key: expected %d bytes, got %zu", AT_HPKE_NPK,
                       pk.len);
    return key_wrap(kem, EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, pk.p, pk.len), false, out, d);
}

at_err at_hpke_key_derive(uint16_t kem, at_span ikm, at_hpke_key **out, at_diag *d)
{
    at_err rc = check_kem(kem, d);
    uint8_t prk[AT_HPKE_NH], sk[AT_HPKE_NSK];
    if (rc != AT_OK)
        return rc;
    /* RFC 9180 §7.1.3: for X25519 the secret key is one LabeledExpand; the
     * clamping happens inside the scalar multiplication. */
    suite_id sid = kem_suite_id(kem);
    rc = labeled_extract(&sid, AT_SPAN_NULL, "dkp_prk", ikm, prk, d);
    if (rc == AT_OK)
        rc = labeled_expand(&sid, AT_SPAN(prk, sizeof prk), "sk", AT_SPAN_NULL, sk, sizeof sk, d);
    if (rc == AT_OK)
        rc = at_hpke_key_from_private(kem, AT_SPAN(sk, sizeof sk), out, d);
    at_wipe(prk, sizeof prk);
    at_wipe(sk, sizeof sk);
    return rc;
}

at_span at_hpke_key_public(const at_hpke_key *k) { return AT_SPAN(k->pk, sizeof k->pk); }
bool at_hpke_key_has_private(const at_hpke_key *k) { return k->has_private; }
uint16_t at_hpke_key_kem(const at_hpke_key *k) { return k->kem; }

at_err at_hpke_key_private(const at_hpke_key *k, at_secret **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_secret *s = NULL;
    size_t len = AT_HPKE_NSK;

    AT_ENSURE(k->has_private, d, AT_E_KEY_REQUIRED, "X25519 key: no private part");
    s = at_secret_new(AT_HPKE_NSK);
    AT_ENSURE(s != NULL, d, AT_E_INTERNAL, "out of memory");
    AT_OSSL(EVP_PKEY_get_raw_private_key(k->pkey, s->p, &len), d);
    AT_ENSURE(len == AT_HPKE_NSK, d, AT_E_INTERNAL, "X25519 private key of %zu bytes", len);
    *out = s;
    s = NULL;
    rc = AT_OK;
out:
    at_secret_free(s);
    return rc;
}

void at_hpke_key_free(at_hpke_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    OPENSSL_cleanse(k, sizeof *k);
    free(k);
}

/* ---- DHKEM(X25519, HKDF-SHA256), RFC 9180 §4.1 --------------------------- */

static at_err dh(const at_hpke_key *priv, const at_hpke_key *peer, uint8_t out[32], at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_pkey(NULL, priv->pkey, NULL);
    size_t len = 32;
    uint8_t acc = 0;

    AT_ENSURE(pc != NULL, d, AT_E_INTERNAL, "openssl: EVP_PKEY_CTX_new_from_pkey failed");
    AT_OSSL(EVP_PKEY_derive_init(pc), d);
    AT_OSSL(EVP_PKEY_derive_set_peer(pc, peer->pkey), d);
    /* OpenSSL refuses an all-zero X25519 output (a low-order peer point),
     * which RFC 9180 §7.1.4 requires us to refuse. */
    if (EVP_PKEY_derive(pc, out, &len) != 1) {
        rc = at_fail(d, AT_E_BAD_FIELD, "X25519: public value is a low-order point");
        at_diag_add_openssl(d);
        goto out;
    }
    AT_ENSURE(len == 32, d, AT_E_INTERNAL, "X25519 output of %zu bytes", len);
    for (size_t i = 0; i < 32; i++)
        acc |= out[i];
    AT_ENSURE(acc != 0, d, AT_E_BAD_FIELD, "X25519: shared secret is all zero");
    rc = AT_OK;
out:
    EVP_PKEY_CTX_free(pc);
    if (rc != AT_OK)
        at_wipe(out, 32);
    return rc;
}

/* ExtractAndExpand(dh, kem_context) -> shared_secret (Nsecret = 32). */
static at_err extract_and_expand(uint16_t kem, at_span dhv, at_span kem_context, uint8_t ss[AT_HPKE_NH],
                                 at_diag *d)
{
    suite_id sid = kem_suite_id(kem);
    uint8_t prk[AT_HPKE_NH];
    at_err rc = labeled_extract(&sid, AT_SPAN_NULL, "eae_prk", dhv, prk, d);
    if (rc == AT_OK)
        rc = labeled_expand(&sid, AT_SPAN(prk, sizeof prk), "shared_secret", kem_context, ss, AT_HPKE_NH, d);
    at_wipe(prk, sizeof prk);
    return rc;
}

/* Encap / AuthEncap: skS NULL for Encap. The ephemeral key is skE when
 * given (tests), else DeriveKeyPair(ikmE) when ikmE is non-empty (tests),
 * else fresh. */
static at_err encap(const at_hpke_key *pkR, const at_hpke_key *skS, at_span ikmE, const at_hpke_key *skE,
                    uint8_t enc[AT_HPKE_NENC], uint8_t ss[AT_HPKE_NH], at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_hpke_key *owned = NULL;
    const at_hpke_key *eph = skE;
    uint8_t dhv[64], kem_context[3 * AT_HPKE_NPK];
    size_t dhlen = 32, kclen = 0;

    if (!eph) {
        if (ikmE.len)
            AT_TRY(at_hpke_key_derive(pkR->kem, ikmE, &owned, d));
        else
            AT_TRY(at_hpke_key_generate(pkR->kem, &owned, d));
        eph = owned;
    }
    AT_ENSURE(eph->has_private && eph->kem == pkR->kem, d, AT_E_KEY_REQUIRED,
              "ephemeral key: a private key of the suite's KEM is needed");
    AT_TRY(dh(eph, pkR, dhv, d));
    if (skS) {
        AT_TRY(dh(skS, pkR, dhv + 32, d));
        dhlen = 64;
    }
    memcpy(kem_context, eph->pk, AT_HPKE_NPK);
    memcpy(kem_context + AT_HPKE_NPK, pkR->pk, AT_HPKE_NPK);
    kclen = 2 * AT_HPKE_NPK;
    if (skS) {
        memcpy(kem_context + kclen, skS->pk, AT_HPKE_NPK);
        kclen += AT_HPKE_NPK;
    }
    AT_TRY(extract_and_expand(pkR->kem, AT_SPAN(dhv, dhlen), AT_SPAN(kem_context, kclen), ss, d));
    memcpy(enc, eph->pk, AT_HPKE_NENC);
    rc = AT_OK;
out:
    at_wipe(dhv, sizeof dhv);
    at_hpke_key_free(owned);
    return rc;
}

/* Decap / AuthDecap: pkS NULL for Decap. enc is attacker-supplied. */
static at_err decap(at_span enc, const at_hpke_key *skR, const at_hpke_key *pkS, uint8_t ss[AT_HPKE_NH],
                    at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_hpke_key *pkE = NULL;
    uint8_t dhv[64], kem_context[3 * AT_HPKE_NPK];
    size_t dhlen = 32, kclen = 0;

    AT_ENSURE(enc.len == AT_HPKE_NENC, d, AT_E_BAD_FIELD, "enc: expected %d bytes, got %zu", AT_HPKE_NENC,
              enc.len);
    AT_TRY(at_hpke_key_from_public(skR->kem, enc, &pkE, d));
    rc = dh(skR, pkE, dhv, d);
    if (rc != AT_OK) {
        at_diag_prefix(d, "enc: ");
        goto out;
    }
    if (pkS) {
        AT_TRY(dh(skR, pkS, dhv + 32, d));
        dhlen = 64;
    }
    memcpy(kem_context, enc.p, AT_HPKE_NENC);
    memcpy(kem_context + AT_HPKE_NENC, skR->pk, AT_HPKE_NPK);
    kclen = AT_HPKE_NENC + AT_HPKE_NPK;
    if (pkS) {
        memcpy(kem_context + kclen, pkS->pk, AT_HPKE_NPK);
        kclen += AT_HPKE_NPK;
    }
    AT_TRY(extract_and_expand(skR->kem, AT_SPAN(dhv, dhlen), AT_SPAN(kem_context, kclen), ss, d));
    rc = AT_OK;
out:
    at_wipe(dhv, sizeof dhv);
    at_hpke_key_free(pkE);
    return rc;
}

/* ---- contexts ------------------------------------------------------------ */

struct at_hpke_ctx {
    at_hpke_suite suite;
    suite_id sid;
    bool sender;
    size_t nk;
    uint64_t seq;
    uint8_t key[AT_HPKE_MAX_NK];
    uint8_t base_nonce[AT_HPKE_NN];
    uint8_t exporter_secret[AT_HPKE_NH];
#ifdef AT_HAVE_OSSL_HPKE
    OSSL_HPKE_CTX *ossl;
#endif
};

void at_hpke_ctx_free(at_hpke_ctx *c)
{
    if (!c)
        return;
#ifdef AT_HAVE_OSSL_HPKE
    OSSL_HPKE_CTX_free(c->ossl);
#endif
    OPENSSL_cleanse(c, sizeof *c);
    free(c);
}

at_hpke_suite at_hpke_ctx_suite(const at_hpke_ctx *c) { return c->suite; }
uint64_t at_hpke_ctx_seq(const at_hpke_ctx *c) { return c->seq; }
void at_hpke_ctx_set_seq_for_tests(at_hpke_ctx *c, uint64_t seq)
{
    c->seq = seq;
#ifdef AT_HAVE_OSSL_HPKE
    /* OpenSSL refuses to move a sender's sequence number; our own check
     * below refuses overflow before OpenSSL is called, so the mirror is
     * what matters for senders. */
    if (c->ossl && !c->sender)
        (void)OSSL_HPKE_CTX_set_seq(c->ossl, seq);
#endif
}

/* RFC 9180 §5.1 VerifyPSKInputs, plus the auth key's presence. */
static at_err check_params(const at_hpke_params *p, bool sender, uint16_t kem, at_diag *d)
{
    bool got_psk = p->psk.len != 0, got_id = p->psk_id.len != 0;
    bool psk_mode = p->mode == AT_HPKE_MODE_PSK || p->mode == AT_HPKE_MODE_AUTH_PSK;
    bool auth_mode = p->mode == AT_HPKE_MODE_AUTH || p->mode == AT_HPKE_MODE_AUTH_PSK;

    if ((unsigned)p->mode > AT_HPKE_MODE_AUTH_PSK)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE, "mode: expected 0..3, got %d", (int)p->mode);
    if (got_psk != got_id)
        return at_fail(d, AT_E_BAD_FIELD, "psk and psk_id: both or neither");
    if (got_psk != psk_mode)
        return at_fail(d, AT_E_BAD_FIELD, "psk: %s in mode %d", psk_mode ? "missing" : "unexpected",
                       (int)p->mode);
    if (auth_mode != (p->auth != NULL))
        return at_fail(d, AT_E_KEY_REQUIRED, "auth key: %s in mode %d", auth_mode ? "missing" : "unexpected",
                       (int)p->mode);
    if (p->auth) {
        if (p->auth->kem != kem)
            return at_fail(d, AT_E_UNSUPPORTED_SUITE, "auth key: KEM 0x%04x, suite has 0x%04x", p->auth->kem,
                           kem);
        if (sender && !p->auth->has_private)
            return at_fail(d, AT_E_KEY_REQUIRED, "auth key: the sender needs its private key");
    }
    return AT_OK;
}

/* KeySchedule (RFC 9180 §5.1). */
static at_err key_schedule(at_hpke_ctx *c, const at_hpke_params *p, const uint8_t ss[AT_HPKE_NH], at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t ksc[1 + 2 * AT_HPKE_NH], secret[AT_HPKE_NH];
    at_span ksc_s = AT_SPAN(ksc, sizeof ksc), secret_s = AT_SPAN(secret, sizeof secret);

    ksc[0] = (uint8_t)p->mode;
    AT_TRY(labeled_extract(&c->sid, AT_SPAN_NULL, "psk_id_hash", p->psk_id, ksc + 1, d));
    AT_TRY(labeled_extract(&c->sid, AT_SPAN_NULL, "info_hash", p->info, ksc + 1 + AT_HPKE_NH, d));
    AT_TRY(labeled_extract(&c->sid, AT_SPAN(ss, AT_HPKE_NH), "secret", p->psk, secret, d));
    AT_TRY(labeled_expand(&c->sid, secret_s, "key", ksc_s, c->key, c->nk, d));
    AT_TRY(labeled_expand(&c->sid, secret_s, "base_nonce", ksc_s, c->base_nonce, AT_HPKE_NN, d));
    AT_TRY(labeled_expand(&c->sid, secret_s, "exp", ksc_s, c->exporter_secret, AT_HPKE_NH, d));
    rc = AT_OK;
out:
    at_wipe(secret, sizeof secret);
    return rc;
}

#ifdef AT_HAVE_OSSL_HPKE
/* Base mode through OpenSSL's own HPKE (OpenSSL >= 3.2). */
static at_err ossl_setup(at_hpke_ctx *c, const at_hpke_params *p, const at_hpke_key *key, at_span enc_in,
                         at_span ikmE, uint8_t *enc_out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    OSSL_HPKE_SUITE s = {c->suite.kem, c->suite.kdf, c->suite.aead};

    c->ossl = OSSL_HPKE_CTX_new(OSSL_HPKE_MODE_BASE, s,
                                c->sender ? OSSL_HPKE_ROLE_SENDER : OSSL_HPKE_ROLE_RECEIVER, NULL, NULL);
    AT_ENSURE(c->ossl != NULL, d, AT_E_INTERNAL, "openssl: OSSL_HPKE_CTX_new failed");
    if (c->sender) {
        size_t enclen = AT_HPKE_NENC;
        if (ikmE.len)
            AT_OSSL(OSSL_HPKE_CTX_set1_ikme(c->ossl, ikmE.p, ikmE.len), d);
        AT_OSSL(OSSL_HPKE_encap(c->ossl, enc_out, &enclen, key->pk, AT_HPKE_NPK, p->info.p, p->info.len), d);
        AT_ENSURE(enclen == AT_HPKE_NENC, d, AT_E_INTERNAL, "enc of %zu bytes", enclen);
    } else {
        AT_ENSURE(enc_in.len == AT_HPKE_NENC, d, AT_E_BAD_FIELD, "enc: expected %d bytes, got %zu",
                  AT_HPKE_NENC, enc_in.len);
        if (OSSL_HPKE_decap(c->ossl, enc_in.p, enc_in.len, key->pkey, p->info.p, p->info.len) != 1) {
            rc = at_fail(d, AT_E_BAD_FIELD, "enc: decapsulation failed");
            at_diag_add_openssl(d);
            goto out;
        }
    }
    rc = AT_OK;
out:
    return rc;
}
#endif

static at_err setup(at_hpke_suite suite, const at_hpke_params *params, bool sender, const at_hpke_key *key,
                    at_span enc_in, at_span ikmE, const at_hpke_key *skE, uint8_t *enc_out, at_hpke_ctx **out,
                    at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_hpke_ctx *c = NULL;
    const at_hpke_params base = {0};
    const at_hpke_params *p = params ? params : &base;
    uint8_t ss[AT_HPKE_NH];

    AT_TRY(at_hpke_suite_check(suite, d));
    AT_ENSURE(key != NULL && key->kem == suite.kem, d, AT_E_UNSUPPORTED_SUITE,
              "key: KEM does not match the suite");
    AT_ENSURE(sender || key->has_private, d, AT_E_KEY_REQUIRED, "recipient key: the private key is needed");
    AT_TRY(check_params(p, sender, suite.kem, d));
    c = calloc(1, sizeof *c);
    AT_ENSURE(c != NULL, d, AT_E_INTERNAL, "out of memory");
    c->suite = suite;
    c->sid = hpke_suite_id(suite);
    c->sender = sender;
    c->nk = at_hpke_aead_nk(suite.aead);
#ifdef AT_HAVE_OSSL_HPKE
    if (p->mode == AT_HPKE_MODE_BASE && !skE) {
        AT_TRY(ossl_setup(c, p, key, enc_in, ikmE, enc_out, d));
        goto done;
    }
#endif
    if (sender)
        AT_TRY(encap(key, p->auth, ikmE, skE, enc_out, ss, d));
    else
        AT_TRY(decap(enc_in, key, p->auth, ss, d));
    AT_TRY(key_schedule(c, p, ss, d));
#ifdef AT_HAVE_OSSL_HPKE
done:
#endif
    *out = c;
    c = NULL;
    rc = AT_OK;
out:
    at_wipe(ss, sizeof ss);
    at_hpke_ctx_free(c);
    return rc;
}

at_err at_hpke_setup_sender(at_hpke_suite suite, const at_hpke_params *params, const at_hpke_key *pkR,
                            uint8_t enc[AT_HPKE_NENC], at_hpke_ctx **out, at_diag *d)
{
    return setup(suite, params, true, pkR, AT_SPAN_NULL, AT_SPAN_NULL, NULL, enc, out, d);
}

at_err at_hpke_setup_sender_det(at_hpke_suite suite, const at_hpke_params *params, const at_hpke_key *pkR,
                                at_span ikmE, uint8_t enc[AT_HPKE_NENC], at_hpke_ctx **out, at_diag *d)
{
    if (ikmE.len == 0)
        return at_fail(d, AT_E_BAD_FIELD, "ikmE: empty");
    return setup(suite, params, true, pkR, AT_SPAN_NULL, ikmE, NULL, enc, out, d);
}

at_err at_hpke_setup_sender_eph(at_hpke_suite suite, const at_hpke_params *params, const at_hpke_key *pkR,
                                const at_hpke_key *skE, uint8_t enc[AT_HPKE_NENC], at_hpke_ctx **out,
                                at_diag *d)
{
    if (!skE)
        return at_fail(d, AT_E_KEY_REQUIRED, "skE: missing");
    return setup(suite, params, true, pkR, AT_SPAN_NULL, AT_SPAN_NULL, skE, enc, out, d);
}

at_err at_hpke_setup_recipient(at_hpke_suite suite, const at_hpke_params *params, const at_hpke_key *skR,
                               at_span enc, at_hpke_ctx **out, at_diag *d)
{
    return setup(suite, params, false, skR, enc, AT_SPAN_NULL, NULL, NULL, out, d);
}

/* ComputeNonce(seq) = base_nonce XOR I2OSP(seq, Nn) */
static void compute_nonce(const at_hpke_ctx *c, uint8_t nonce[AT_HPKE_NN])
{
    memcpy(nonce, c->base_nonce, AT_HPKE_NN);
    for (int i = 0; i < 8; i++)
        nonce[AT_HPKE_NN - 1 - i] ^= (uint8_t)(c->seq >> (8 * i));
}

/* The RFC refuses at 2^96 - 1; a 64-bit counter refuses at 2^64 - 1,
 * which no real sender reaches and keeps the check exact. */
static at_err check_seq(const at_hpke_ctx *c, at_diag *d)
{
    if (c->seq == UINT64_MAX)
        return at_fail(d, AT_E_SEQUENCE_OVERFLOW, "sequence number: exhausted at %llu",
                       (unsigned long long)c->seq);
    return AT_OK;
}

at_err at_hpke_seal(at_hpke_ctx *c, at_span aad, at_span pt, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t nonce[AT_HPKE_NN];

    AT_ENSURE(c->sender, d, AT_E_INTERNAL, "seal: not a sender context");
    AT_TRY(check_seq(c, d));
#ifdef AT_HAVE_OSSL_HPKE
    if (c->ossl) {
        size_t ctlen;
        AT_ENSURE(pt.len <= SIZE_MAX - AT_HPKE_NT, d, AT_E_TOO_LARGE, "plaintext too large");
        ctlen = pt.len + AT_HPKE_NT;
        AT_TRY(reserve(out, ctlen, "seal", d));
        AT_OSSL(OSSL_HPKE_seal(c->ossl, out->p + out->len, &ctlen, aad.p, aad.len, pt.p, pt.len), d);
        out->len += ctlen;
        c->seq++;
        rc = AT_OK;
        goto out;
    }
#endif
    compute_nonce(c, nonce);
    AT_TRY(aead_crypt(true, c->suite.aead, AT_SPAN(c->key, c->nk), AT_SPAN(nonce, sizeof nonce), aad, pt, out,
                      d));
    c->seq++;
    rc = AT_OK;
out:
    return rc;
}

at_err at_hpke_open(at_hpke_ctx *c, at_span aad, at_span ct, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t nonce[AT_HPKE_NN];

    AT_ENSURE(!c->sender, d, AT_E_INTERNAL, "open: not a recipient context");
    AT_TRY(check_seq(c, d));
#ifdef AT_HAVE_OSSL_HPKE
    if (c->ossl) {
        size_t ptlen;
        AT_ENSURE(ct.len >= AT_HPKE_NT, d, AT_E_TRUNCATED,
                  "ciphertext: expected at least %d bytes (the tag), got %zu", AT_HPKE_NT, ct.len);
        ptlen = ct.len - AT_HPKE_NT;
        AT_TRY(reserve(out, ptlen ? ptlen : 1, "open", d));
        if (OSSL_HPKE_open(c->ossl, out->p + out->len, &ptlen, aad.p, aad.len, ct.p, ct.len) != 1) {
            ERR_clear_error();
            at_wipe(out->p + out->len, ct.len - AT_HPKE_NT);
            rc = at_fail(d, AT_E_DECRYPT_FAILED, "%s: authentication tag does not verify",
                         at_hpke_aead_name(c->suite.aead));
            goto out;
        }
        out->len += ptlen;
        c->seq++;
        rc = AT_OK;
        goto out;
    }
#endif
    compute_nonce(c, nonce);
    AT_TRY(aead_crypt(false, c->suite.aead, AT_SPAN(c->key, c->nk), AT_SPAN(nonce, sizeof nonce), aad, ct,
                      out, d));
    c->seq++;
    rc = AT_OK;
out:
    return rc;
}

at_err at_hpke_export(const at_hpke_ctx *c, at_span exporter_context, size_t L, uint8_t *out, at_diag *d)
{
    if (L == 0 || L > AT_HPKE_MAX_EXPORT)
        return at_fail(d, AT_E_BAD_FIELD, "export length: expected 1..%d, got %zu", AT_HPKE_MAX_EXPORT, L);
#ifdef AT_HAVE_OSSL_HPKE
    if (c->ossl) {
        if (OSSL_HPKE_export(c->ossl, out, L, exporter_context.p, exporter_context.len) != 1) {
            at_err rc = at_fail(d, AT_E_INTERNAL, "openssl: OSSL_HPKE_export failed");
            at_diag_add_openssl(d);
            return rc;
        }
        return AT_OK;
    }
#endif
    return labeled_expand(&c->sid, AT_SPAN(c->exporter_secret, AT_HPKE_NH), "sec", exporter_context, out, L,
                          d);
}

/* ---- single-shot (RFC 9180 §6.1) ----------------------------------------- */

at_err at_hpke_seal_single(at_hpke_suite suite, const at_hpke_params *params, const at_hpke_key *pkR,
                           at_span aad, at_span pt, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_hpke_ctx *c = NULL;
    uint8_t enc[AT_HPKE_NENC];
    size_t mark = out->len;

    AT_TRY(at_hpke_setup_sender(suite, params, pkR, enc, &c, d));
    AT_TRY(reserve(out, sizeof enc, "enc", d));
    memcpy(out->p + out->len, enc, sizeof enc);
    out->len += sizeof enc;
    AT_TRY(at_hpke_seal(c, aad, pt, out, d));
    rc = AT_OK;
out:
    if (rc != AT_OK && out->status == AT_OK)
        out->len = mark;
    at_hpke_ctx_free(c);
    return rc;
}

at_err at_hpke_open_single(at_hpke_suite suite, const at_hpke_params *params, const at_hpke_key *skR,
                           at_span aad, at_span sealed, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_hpke_ctx *c = NULL;

    AT_ENSURE(sealed.len >= AT_HPKE_NENC + AT_HPKE_NT, d, AT_E_TRUNCATED,
              "sealed: expected at least %d bytes (enc and tag), got %zu", AT_HPKE_NENC + AT_HPKE_NT,
              sealed.len);
    AT_TRY(at_hpke_setup_recipient(suite, params, skR, AT_SPAN(sealed.p, AT_HPKE_NENC), &c, d));
    AT_TRY(at_hpke_open(c, aad, AT_SPAN(sealed.p + AT_HPKE_NENC, sealed.len - AT_HPKE_NENC), out, d));
    rc = AT_OK;
out:
    at_hpke_ctx_free(c);
    return rc;
}
