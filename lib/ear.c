/* ear: EAR tokens over libcjose. Verification parses attacker-supplied
 * tokens (relying parties receive them over the network). */
#include "ear.h"

#include "clock.h"

#include <cjose/cjose.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hash.h"
#include "enc.h"
#include "ohttp_config.h"

#define MAX_KEYS 8
#define MAX_TOKEN_BYTES (64 * 1024)

struct at_signer {
    cjose_jwk_t *keys[MAX_KEYS];
    char *kids[MAX_KEYS];
    size_t n;
    int refs; /* at_signer_ref / at_signer_free */
    pthread_mutex_t lock;
};

/* RFC 7638: SHA-256 over {"crv","kty","x","y"} in that order, base64url. */
static char *thumbprint(const char *public_jwk_json)
{
    json_t *j = json_loads(public_jwk_json, 0, NULL);
    const char *crv = json_string_value(json_object_get(j, "crv"));
    const char *x = json_string_value(json_object_get(j, "x"));
    const char *y = json_string_value(json_object_get(j, "y"));
    char *out = NULL;
    if (crv && x && y) {
        at_buf b;
        at_buf_init(&b);
        at_buf_printf(&b, "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", crv, x, y);
        uint8_t h[32];
        if (at_buf_status(&b) == AT_OK && at_sha256(at_buf_span(&b), h, NULL) == AT_OK)
            out = at_b64url_encode_new(AT_SPAN(h, 32));
        at_buf_cleanup(&b);
    }
    json_decref(j);
    return out;
}

at_err at_signer_generate(char **jwk_json, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    cjose_err err;
    char *pub = NULL, *kid = NULL;
    cjose_jwk_t *k = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err);
    AT_ENSURE(k, d, AT_E_INTERNAL, "signing key: %s", err.message);
    AT_ENSURE((pub = cjose_jwk_to_json(k, false, &err)) && (kid = thumbprint(pub)), d, AT_E_INTERNAL,
              "signing key: export failed");
    AT_ENSURE(cjose_jwk_set_kid(k, kid, strlen(kid), &err), d, AT_E_INTERNAL, "signing key: kid");
    AT_ENSURE((*jwk_json = cjose_jwk_to_json(k, true, &err)), d, AT_E_INTERNAL, "signing key: export failed");
    rc = AT_OK;
out:
    free(pub);
    free(kid);
    cjose_jwk_release(k);
    return rc;
}

at_err at_signer_new(const char *const *jwks, size_t n, at_signer **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    cjose_err err;
    at_signer *s = calloc(1, sizeof *s);
    AT_ENSURE(s, d, AT_E_INTERNAL, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    s->refs = 1;
    AT_ENSURE(n >= 1 && n <= MAX_KEYS, d, AT_E_INTERNAL, "signing keys: %zu, expected 1..%d", n, MAX_KEYS);
    for (size_t i = 0; i < n; i++) {
        cjose_jwk_t *k = cjose_jwk_import(jwks[i], strlen(jwks[i]), &err);
        AT_ENSURE(k, d, AT_E_INTERNAL, "signing key %zu: %s", i, err.message);
        s->keys[s->n] = k;
        s->n++;
        AT_ENSURE(cjose_jwk_get_kty(k, &err) == CJOSE_JWK_KTY_EC && cjose_jwk_get_keysize(k, &err) == 256, d,
                  AT_E_INTERNAL, "signing key %zu: not an EC P-256 key", i);
        const char *kid = cjose_jwk_get_kid(k, &err);
        AT_ENSURE(kid && (s->kids[i] = strdup(kid)), d, AT_E_INTERNAL, "signing key %zu: no kid", i);
    }
    *out = s;
    s = NULL;
    rc = AT_OK;
out:
    at_signer_free(s);
    return rc;
}

at_signer *at_signer_ref(at_signer *s)
{
    if (s)
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

void at_signer_free(at_signer *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < s->n; i++) {
        cjose_jwk_release(s->keys[i]);
        free(s->kids[i]);
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

const char *at_signer_kid(const at_signer *s) { return s->kids[0]; }

at_err at_signer_sign(at_signer *s, json_t *claims, char **jws, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    cjose_err err;
    cjose_header_t *h = NULL;
    cjose_jws_t *sig = NULL;
    char *payload = json_dumps(claims, JSON_COMPACT);
    const char *ser = NULL;
    AT_ENSURE(payload && (h = cjose_header_new(&err)), d, AT_E_INTERNAL, "sign: out of memory");
    AT_ENSURE(cjose_header_set(h, CJOSE_HDR_ALG, CJOSE_HDR_ALG_ES256, &err) &&
                  cjose_header_set(h, CJOSE_HDR_KID, s->kids[0], &err) &&
                  cjose_header_set(h, "typ", "JWT", &err),
              d, AT_E_INTERNAL, "sign: header: %s", err.message);
    pthread_mutex_lock(&s->lock);
    sig = cjose_jws_sign(s->keys[0], h, (const uint8_t *)payload, strlen(payload), &err);
    pthread_mutex_unlock(&s->lock);
    AT_ENSURE(sig, d, AT_E_INTERNAL, "sign: %s", err.message);
    AT_ENSURE(cjose_jws_export(sig, &ser, &err) && ser, d, AT_E_INTERNAL, "sign: %s", err.message);
    AT_ENSURE((*jws = strdup(ser)), d, AT_E_INTERNAL, "out of memory");
    rc = AT_OK;
out:
    cjose_jws_release(sig);
    cjose_header_release(h);
    free(payload);
    return rc;
}

json_t *at_signer_jwks(const at_signer *s)
{
    json_t *keys = json_array();
    cjose_err err;
    for (size_t i = 0; i < s->n; i++) {
        char *pub = cjose_jwk_to_json(s->keys[i], false, &err);
        json_t *k = pub ? json_loads(pub, 0, NULL) : NULL;
        free(pub);
        if (!k)
            continue;
        json_object_set_new(k, "use", json_string("sig"));
        json_object_set_new(k, "alg", json_string("ES256"));
        json_array_append_new(keys, k);
    }
    json_t *o = json_object();
    json_object_set_new(o, "keys", keys);
    return o;
}

at_err at_ear_verify(const char *jws, json_t *jwks, int64_t now_s, json_t **claims, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    cjose_err err;
    cjose_jws_t *j = NULL;
    cjose_jwk_t *key = NULL;
    json_t *c = NULL;
    char *kjson = NULL;
    size_t len = jws ? strnlen(jws, MAX_TOKEN_BYTES + 1) : 0;
    AT_ENSURE(len > 0 && len <= MAX_TOKEN_BYTES, d, AT_E_BAD_FIELD, "token: empty or too long");
    AT_ENSURE((j = cjose_jws_import(jws, len, &err)), d, AT_E_BAD_FIELD, "token: not a compact JWS (%s)",
              err.message);
    cjose_header_t *h = cjose_jws_get_protected(j);
    const char *alg = cjose_header_get(h, CJOSE_HDR_ALG, &err);
    const char *kid = cjose_header_get(h, CJOSE_HDR_KID, &err);
    AT_ENSURE(alg && strcmp(alg, "ES256") == 0, d, AT_E_UNSUPPORTED_ALG, "token: alg %s, expected ES256",
              alg ? alg : "(none)");
    AT_ENSURE(kid, d, AT_E_BAD_FIELD, "token: no kid in the header");
    json_t *keys = json_object_get(jwks, "keys"), *k;
    size_t i;
    json_array_foreach(keys, i, k)
    {
        const char *kk = json_string_value(json_object_get(k, "kid"));
        if (kk && strcmp(kk, kid) == 0) {
            kjson = json_dumps(k, JSON_COMPACT);
            break;
        }
    }
    AT_ENSURE(kjson, d, AT_E_BAD_SIGNATURE, "token: kid %.64s is not in the verifier's JWKS", kid);
    AT_ENSURE((key = cjose_jwk_import(kjson, strlen(kjson), &err)), d, AT_E_BAD_FIELD,
              "token: unusable JWK for kid %.64s", kid);
    AT_ENSURE(cjose_jwk_get_kty(key, &err) == CJOSE_JWK_KTY_EC, d, AT_E_UNSUPPORTED_ALG,
              "token: key %.64s is not EC", kid);
    AT_ENSURE(cjose_jws_verify(j, key, &err), d, AT_E_BAD_SIGNATURE, "token: signature does not verify");
    uint8_t *pt = NULL;
    size_t ptlen = 0;
    AT_ENSURE(cjose_jws_get_plaintext(j, &pt, &ptlen, &err), d, AT_E_BAD_FIELD, "token: no payload");
    json_error_t je;
    AT_ENSURE((c = json_loadb((const char *)pt, ptlen, JSON_REJECT_DUPLICATES, &je)) && json_is_object(c), d,
              AT_E_BAD_FIELD, "token: claims are not a JSON object");
    json_t *exp = json_object_get(c, "exp"), *iat = json_object_get(c, "iat");
    AT_ENSURE(json_is_integer(exp) && json_is_integer(iat), d, AT_E_BAD_FIELD,
              "token: exp and iat must be integers");
    /* Times in messages as RFC 3339, never raw epoch numbers. */
    char t_exp[40], t_iat[40], t_now[40];
    at_time_rfc3339(json_integer_value(exp), t_exp, sizeof t_exp);
    at_time_rfc3339(json_integer_value(iat), t_iat, sizeof t_iat);
    at_time_rfc3339(now_s, t_now, sizeof t_now);
    AT_ENSURE(json_integer_value(exp) + 60 >= now_s, d, AT_E_SESSION_EXPIRED, "token: expired at %s, now %s",
              t_exp, t_now);
    AT_ENSURE(json_integer_value(iat) <= now_s + 60, d, AT_E_CLOCK_SKEW,
              "token: issued in the future (at %s, now %s)", t_iat, t_now);
    const char *prof = json_string_value(json_object_get(c, "eat_profile"));
    AT_ENSURE(prof && strcmp(prof, AT_EAR_PROFILE) == 0, d, AT_E_BAD_FIELD,
              "token: eat_profile %s, expected %s", prof ? prof : "(none)", AT_EAR_PROFILE);
    *claims = c;
    c = NULL;
    rc = AT_OK;
out:
    json_decref(c);
    free(kjson);
    cjose_jwk_release(key);
    cjose_jws_release(j);
    return rc;
}

/* Each claim: affirming only when its own check and the chain (which makes
 * the document's fields the hardware's word) passed; contraindicated when
 * its check failed; none when it did not run. */
static int tier(at_check own, at_check chain)
{
    if (own == AT_CHECK_FAILED)
        return AT_TIER_CONTRAINDICATED;
    return own == AT_CHECK_PASSED && chain == AT_CHECK_PASSED ? AT_TIER_AFFIRMING : AT_TIER_NONE;
}

json_t *at_ear_tvector(const at_ear_checks *c)
{
    json_t *tv = json_object();
    int conf = tier(c->binding, c->chain);
    if (conf == AT_TIER_AFFIRMING && !c->policy_lint_ok)
        conf = AT_TIER_WARNING; /* appraised under a policy the lint refused */
    json_object_set_new(tv, "instance-identity", json_integer(tier(c->identity, c->chain)));
    json_object_set_new(tv, "configuration", json_integer(conf));
    json_object_set_new(tv, "executables", json_integer(tier(c->pcrs, c->chain)));
    json_object_set_new(tv, "hardware", json_integer(tier(c->chain, c->chain)));
    return tv;
}

const char *at_ear_status(const json_t *tvector)
{
    json_int_t worst = AT_TIER_NONE;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)tvector, k, v)
    {
        json_int_t t = json_integer_value(v);
        if (!json_is_integer(v) || t < -128 || t > 127)
            return "contraindicated"; /* not a tier: fail closed */
        if (t > worst)
            worst = t;
    }
    /* AR4SI ranges: 2..31 affirming, 32..95 warning, 96..127 contraindicated. */
    if (worst >= AT_TIER_CONTRAINDICATED)
        return "contraindicated";
    if (worst >= AT_TIER_WARNING)
        return "warning";
    return worst >= AT_TIER_AFFIRMING ? "affirming" : "none";
}

at_err at_ear_akpub(at_span key_config, char **akpub, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_ohttp_key_config kc;
    EVP_PKEY *pk = NULL;
    unsigned char *der = NULL;
    AT_TRY(at_ohttp_key_config_parse(key_config, &kc, d));
    AT_ENSURE(kc.kem == AT_HPKE_KEM_X25519_SHA256, d, AT_E_UNSUPPORTED_SUITE,
              "key_config: KEM 0x%04x, expected X25519 (0x0020)", kc.kem);
    AT_ENSURE((pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, kc.pk, 32)), d, AT_E_BAD_FIELD,
              "key_config: not an X25519 public key");
    int n = i2d_PUBKEY(pk, &der);
    AT_ENSURE(n > 0, d, AT_E_INTERNAL, "key_config: SubjectPublicKeyInfo encoding failed");
    AT_ENSURE((*akpub = at_b64url_encode_new(AT_SPAN(der, (size_t)n))), d, AT_E_INTERNAL, "out of memory");
    rc = AT_OK;
out:
    OPENSSL_free(der);
    EVP_PKEY_free(pk);
    return rc;
}
