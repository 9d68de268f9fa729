/* vclient: the verifier protocol from the attested side (agent, attestctl).
 * Trust boundary: every answer is peer input; fields are checked for type
 * and size before use, sealed values open only with the caller's key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc.h"
#include "httpc.h"
#include "seal.h"
#include "vclient.h"

at_err at_vclient_call(const at_vclient *c, const char *method, const char *path, json_t *body, long *status,
                       json_t **answer, at_diag *d)
{
    char url[1400];
    long st = 0;
    json_t *resp = NULL;
    if (status)
        *status = 0;
    if (snprintf(url, sizeof url, "%s%s", c->url, path) >= (int)sizeof url)
        return at_fail(d, AT_E_BAD_REQUEST, "verifier: URL of %zu bytes, expected at most %zu",
                       strlen(c->url) + strlen(path), sizeof url - 1);
    at_err rc = at_httpc_json(method, url, c->bearer && c->bearer[0] ? c->bearer : NULL, body, &st, &resp, d);
    if (rc != AT_OK)
        return rc;
    if (status)
        *status = st;
    if (st < 200 || st >= 300) {
        json_t *e = json_object_get(resp, "error");
        const char *code = json_string_value(json_object_get(e, "code"));
        rc = at_fail(d, code ? at_err_from_str(code) : AT_E_UNAVAILABLE, "verifier: %s %s: HTTP %ld %s: %s",
                     method, path, st, code ? code : "",
                     json_string_value(json_object_get(e, "message")) ?: "");
    }
    if (answer)
        *answer = resp;
    else
        json_decref(resp);
    return rc;
}

/* A base64 string field into a new buffer of at most max bytes. */
static bool b64_field(json_t *o, const char *name, size_t max, uint8_t **out, size_t *len)
{
    const char *s = json_string_value(json_object_get(o, name));
    if (!s || at_b64_decode_new(s, strlen(s), out, len) != AT_OK)
        return false;
    if (*len == 0 || *len > max) {
        at_wipe_free(*out, *len);
        *out = NULL;
        return false;
    }
    return true;
}

at_err at_vclient_challenge(const at_vclient *c, uint8_t nonce[AT_VCLIENT_NONCE_MAX], size_t *len,
                            long *status, at_diag *d)
{
    json_t *ans = NULL;
    uint8_t *n = NULL;
    size_t nl = 0;
    at_err rc = at_vclient_call(c, "POST", "/v1/challenge", NULL, status, &ans, d);
    if (rc == AT_OK && !b64_field(ans, "nonce", AT_VCLIENT_NONCE_MAX, &n, &nl))
        rc = at_fail(d, AT_E_BAD_FIELD,
                     "verifier: challenge without a usable nonce (expected"
                     " base64 of 1 to %d bytes)",
                     AT_VCLIENT_NONCE_MAX);
    if (rc == AT_OK) {
        memcpy(nonce, n, nl);
        *len = nl;
    }
    free(n);
    json_decref(ans);
    return rc;
}

at_err at_vclient_attest(const at_vclient *c, at_span evidence, const char *policy, const char *endpoint,
                         const at_hpke_key *key, at_vclient_session *out, long *status, json_t **answer,
                         at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    json_t *body = NULL, *ans = NULL;
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    char *ev = NULL;
    at_buf sk;
    at_buf_init_secret(&sk);
    if (answer)
        *answer = NULL;
    AT_ENSURE((ev = at_b64_encode_new(evidence)), d, AT_E_INTERNAL, "out of memory");
    body = endpoint ? json_pack("{s:s,s:s,s:s}", "evidence", ev, "policy", policy, "endpoint", endpoint)
                    : json_pack("{s:s,s:s}", "evidence", ev, "policy", policy);
    AT_ENSURE(body, d, AT_E_INTERNAL, "out of memory");
    rc = at_vclient_call(c, "POST", "/v1/attestations", body, status, &ans, d);
    if (rc != AT_OK)
        goto out;
    rc = AT_E_INTERNAL;
    json_t *sess = json_object_get(ans, "session");
    const char *sid = json_string_value(json_object_get(sess, "id"));
    json_t *exp = json_object_get(sess, "expires_at_ms");
    AT_ENSURE(sid && strlen(sid) < sizeof out->id && json_is_integer(exp), d, AT_E_BAD_FIELD,
              "verifier: attestation answer without session id (under %zu characters), sealed key"
              " or expiry",
              sizeof out->id);
    AT_ENSURE(b64_field(sess, "key_sealed", 4096, &sealed, &sealed_len), d, AT_E_BAD_FIELD,
              "verifier: session.key_sealed: expected base64 of 1 to 4096 bytes");
    AT_TRY(at_seal_open(key, AT_SEAL_INFO_SESSION, AT_SPAN(sealed, sealed_len), &sk, d));
    AT_ENSURE(sk.len == AT_VCLIENT_SESSION_KEY_LEN, d, AT_E_BAD_FIELD,
              "verifier: session key of %zu bytes, expected %d", sk.len, AT_VCLIENT_SESSION_KEY_LEN);
    snprintf(out->id, sizeof out->id, "%s", sid);
    memcpy(out->key, sk.p, AT_VCLIENT_SESSION_KEY_LEN);
    out->expires_ms = json_integer_value(exp);
    json_object_del(sess, "key_sealed");
    rc = AT_OK;
out:
    if (answer)
        *answer = ans;
    else
        json_decref(ans);
    json_decref(body);
    free(ev);
    free(sealed);
    at_buf_cleanup(&sk);
    return rc;
}

at_err at_vclient_release(const at_vclient *c, const char *session_id,
                          const uint8_t session_key[AT_VCLIENT_SESSION_KEY_LEN], const char *name,
                          int64_t ts_ms, const at_hpke_key *key, at_buf *out, long *status, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t proof_key[32], *sealed = NULL;
    size_t sealed_len = 0;
    char proof[128], path[300], info[300];
    json_t *body = NULL, *ans = NULL;
    if (status)
        *status = 0;
    AT_ENSURE(strlen(name) < 200, d, AT_E_BAD_REQUEST,
              "release: secret name of %zu characters,"
              " expected under 200",
              strlen(name));
    at_session_proof_key(AT_SPAN(session_key, AT_VCLIENT_SESSION_KEY_LEN), proof_key);
    AT_TRY(at_release_proof_make(AT_SPAN(proof_key, 32), name, session_id, ts_ms, proof, sizeof proof));
    body = json_pack("{s:s,s:s}", "session", session_id, "proof", proof);
    AT_ENSURE(body, d, AT_E_INTERNAL, "out of memory");
    snprintf(path, sizeof path, "/v1/secrets/%s/release", name);
    AT_TRY(at_vclient_call(c, "POST", path, body, status, &ans, d));
    AT_ENSURE(b64_field(ans, "sealed", 1 << 20, &sealed, &sealed_len), d, AT_E_BAD_FIELD,
              "verifier: release answer without a sealed value (expected base64 in \"sealed\")");
    snprintf(info, sizeof info, "%s%s", AT_SEAL_INFO_SECRET_PREFIX, name);
    AT_TRY(at_seal_open(key, info, AT_SPAN(sealed, sealed_len), out, d));
    rc = AT_OK;
out:
    at_wipe(proof_key, sizeof proof_key);
    at_wipe(proof, sizeof proof);
    json_decref(body);
    json_decref(ans);
    free(sealed);
    return rc;
}
