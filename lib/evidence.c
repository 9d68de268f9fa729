/* evidence: orchestrates the checks of one attacker-supplied document in a
 * fixed order: structure, chain (with time), signature, timestamp within the
 * leaf's validity, clock skew, nonce, policy. A document is valid only when
 * every check ran and passed. */
#include "evidence.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "at_limits.h"
#include "clock.h"
#include "enc.h"
#include "hash.h"

/* Floor division so times before 1970 round the right way. */
static int64_t ms_to_s(int64_t ms) { return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000); }

static at_err run(at_trust *trust, at_span doc, const at_verify_opts *o, at_evidence *ev)
{
    at_diag *d = &ev->diag;
    at_err rc;
    EVP_PKEY *key = NULL;
    if (doc.len > AT_MAX_DOCUMENT_BYTES)
        return at_fail(d, AT_E_TOO_LARGE, "document: %zu bytes, at most %d accepted", doc.len,
                       AT_MAX_DOCUMENT_BYTES);
    if ((rc = at_cose_sign1_decode(doc, &ev->cose, d)) != AT_OK)
        return rc;
    if ((rc = at_nitro_payload_decode(ev->cose.payload, o->format, &ev->payload, d)) != AT_OK)
        return rc;
    ev->decoded = true;

    switch (o->time_mode) {
    case AT_TIME_GIVEN:
        ev->checked_at_ms = o->at_ms;
        break;
    case AT_TIME_DOCUMENT:
        ev->checked_at_ms = (int64_t)ev->payload.timestamp_ms;
        break;
    default:
        ev->checked_at_ms = at_now_ms();
        break;
    }
    rc = at_trust_verify(trust, ev->payload.certificate, ev->payload.cabundle, ev->payload.n_cabundle,
                         ms_to_s(ev->checked_at_ms), &ev->chain, &key, d);
    if (rc != AT_OK)
        return rc;
    ev->chain_checked = true;
    rc = at_cose_sign1_verify(&ev->cose, key, d);
    EVP_PKEY_free(key);
    if (rc != AT_OK)
        return rc;
    /* AWS's semantic validation: the document was made while its signing
     * certificate was valid (inclusive bounds, to the second). Whatever
     * time the chain was checked at, a timestamp outside that window (e.g.
     * seconds written as milliseconds, which reads as January 1970) is a
     * document that contradicts its own certificate. */
    int64_t ts_s = ms_to_s((int64_t)ev->payload.timestamp_ms);
    if (ts_s < ev->chain.not_before || ts_s > ev->chain.not_after) {
        char ts[40], nb[32], na[32];
        at_time_rfc3339_ms((int64_t)ev->payload.timestamp_ms, ts, sizeof ts);
        at_time_rfc3339(ev->chain.not_before, nb, sizeof nb);
        at_time_rfc3339(ev->chain.not_after, na, sizeof na);
        return at_fail(d, AT_E_TIMESTAMP_OUTSIDE_VALIDITY,
                       "timestamp: %s (%llu ms) is %s the validity of certificate (leaf), %s to "
                       "%s",
                       ts, (unsigned long long)ev->payload.timestamp_ms,
                       ts_s < ev->chain.not_before ? "before" : "after", nb, na);
    }

    int64_t skew = o->clock_skew_ms > 0 ? o->clock_skew_ms : AT_CLOCK_SKEW_MS;
    if (o->time_mode != AT_TIME_DOCUMENT && (int64_t)ev->payload.timestamp_ms > ev->checked_at_ms + skew)
        return at_fail(d, AT_E_CLOCK_SKEW,
                       "timestamp: document is %lld ms ahead of the check time, at most %lld "
                       "allowed",
                       (long long)((int64_t)ev->payload.timestamp_ms - ev->checked_at_ms), (long long)skew);
    if (o->check_nonce) {
        at_span got = ev->payload.has_nonce ? ev->payload.nonce : AT_SPAN_NULL;
        /* A document without a nonce (null) never matches, not even an
         * empty expected nonce: absence must not pass for freshness. */
        if (!ev->payload.has_nonce || !at_span_eq_ct(got, o->nonce)) {
            char want[2 * 64 + 1] = "", have[2 * 64 + 1] = "";
            at_hex_encode(o->nonce.p, o->nonce.len > 64 ? 64 : o->nonce.len, want);
            if (ev->payload.has_nonce)
                at_hex_encode(got.p, got.len > 64 ? 64 : got.len, have);
            return at_fail(d, AT_E_NONCE_MISMATCH, "nonce: expected %s, got %s", want,
                           ev->payload.has_nonce ? have : "none");
        }
    }
    if (o->policy) {
        ev->policy = o->policy;
        int64_t ref =
            o->time_mode == AT_TIME_DOCUMENT ? (int64_t)ev->payload.timestamp_ms : ev->checked_at_ms;
        if ((rc = at_policy_check(o->policy, &ev->payload, ref, &ev->pcr_report, d)) != AT_OK)
            return rc;
    }
    return AT_OK;
}

at_err at_evidence_verify(at_trust *trust, at_span doc, const at_verify_opts *opts, at_evidence *ev)
{
    memset(ev, 0, sizeof *ev);
    at_verify_opts none = {0};
    ev->result = run(trust, doc, opts ? opts : &none, ev);
    if (ev->result == AT_OK)
        ev->diag.msg[0] = '\0';
    return ev->result;
}

void at_evidence_cleanup(at_evidence *ev)
{
    at_nitro_payload_cleanup(&ev->payload);
    at_cose_sign1_cleanup(&ev->cose);
    memset(ev, 0, sizeof *ev);
}

static json_t *b64_or_null(bool has, at_span s)
{
    if (!has)
        return json_null();
    char *b = at_b64_encode_new(s);
    json_t *j = b ? json_string(b) : json_null();
    free(b);
    return j;
}

static json_t *time_json(int64_t unix_s)
{
    char buf[40];
    at_time_rfc3339(unix_s, buf, sizeof buf);
    return json_string(buf);
}

static json_t *name_json(const X509_NAME *n)
{
    char buf[512];
    BIO *b = BIO_new(BIO_s_mem());
    int len = b ? X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) : -1;
    len = len >= 0 ? BIO_read(b, buf, sizeof buf - 1) : -1;
    BIO_free(b);
    buf[len > 0 ? len : 0] = '\0';
    return json_string(buf);
}

/* One certificate as the document carries it, for display only: parsed
 * with d2i over exactly its bytes, nothing about it trusted. */
static json_t *cert_json(at_span der, const char *position)
{
    json_t *o = json_object();
    char hex[65];
    uint8_t h[32];
    json_object_set_new(o, "position", json_string(position));
    json_object_set_new(o, "bytes", json_integer((json_int_t)der.len));
    if (at_sha256(der, h, NULL) == AT_OK) {
        at_hex_encode(h, 32, hex);
        json_object_set_new(o, "sha256", json_string(hex));
    }
    const unsigned char *p = der.p;
    X509 *x = der.len <= LONG_MAX ? d2i_X509(NULL, &p, (long)der.len) : NULL;
    int64_t nb = 0, na = 0;
    if (!x || p != der.p + der.len || !at_asn1_time_unix(X509_get0_notBefore(x), &nb) ||
        !at_asn1_time_unix(X509_get0_notAfter(x), &na)) {
        json_object_set_new(o, "parsed", json_false());
        X509_free(x);
        ERR_clear_error();
        return o;
    }
    json_object_set_new(o, "parsed", json_true());
    json_object_set_new(o, "subject", name_json(X509_get_subject_name(x)));
    json_object_set_new(o, "issuer", name_json(X509_get_issuer_name(x)));
    json_object_set_new(o, "not_before", time_json(nb));
    json_object_set_new(o, "not_after", time_json(na));
    json_object_set_new(o, "not_before_s", json_integer(nb));
    json_object_set_new(o, "not_after_s", json_integer(na));
    X509_free(x);
    return o;
}

json_t *at_evidence_chain_json(const at_evidence *ev)
{
    json_t *a = json_array();
    if (!a || !ev->decoded)
        return a;
    const at_nitro_payload *p = &ev->payload;
    for (size_t i = 0; i < p->n_cabundle; i++)
        json_array_append_new(a, cert_json(p->cabundle[i], i == 0 ? "root" : "intermediate"));
    json_array_append_new(a, cert_json(p->certificate, "leaf"));
    return a;
}

json_t *at_nitro_pcrs_json(const at_nitro_payload *p)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < p->n_pcrs; i++) {
        char key[8], hex[2 * AT_MAX_PCR_LEN + 1];
        snprintf(key, sizeof key, "%u", p->pcrs[i].index);
        at_hex_encode(p->pcrs[i].value, p->pcrs[i].len, hex);
        json_object_set_new(o, key, json_string(hex));
    }
    return o;
}

json_t *at_evidence_json(const at_evidence *ev)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "valid", json_boolean(ev->result == AT_OK));
    if (ev->result == AT_OK) {
        json_object_set_new(o, "error", json_null());
    } else {
        json_t *e = json_object();
        json_object_set_new(e, "code", json_string(at_err_str(ev->result)));
        json_object_set_new(e, "message", json_string(ev->diag.msg));
        if (ev->result == AT_E_PCR_MISMATCH && ev->policy)
            json_object_set_new(e, "pcrs", at_pcr_report_json(ev->policy, &ev->pcr_report));
        json_object_set_new(o, "error", e);
    }
    if (!ev->decoded)
        return o;
    const at_nitro_payload *p = &ev->payload;
    json_object_set_new(o, "format", json_string(at_format_name(p->format)));
    json_object_set_new(o, "module_id", json_string(p->module_id));
    json_object_set_new(o, "timestamp_ms", json_integer((json_int_t)p->timestamp_ms));
    json_object_set_new(o, "timestamp", time_json((int64_t)(p->timestamp_ms / 1000)));
    json_object_set_new(o, "digest", json_string("SHA384"));
    json_object_set_new(o, "pcrs", at_nitro_pcrs_json(p));
    json_object_set_new(o, "nonce", b64_or_null(p->has_nonce, p->nonce));
    json_object_set_new(o, "user_data", b64_or_null(p->has_user_data, p->user_data));
    json_object_set_new(o, "public_key", b64_or_null(p->has_public_key, p->public_key));
    json_object_set_new(o, "chain_length", json_integer((json_int_t)p->n_cabundle + 1));
    json_object_set_new(o, "cose_tagged", json_boolean(ev->cose.tagged));
    json_object_set_new(o, "payload_map", json_string(p->map_indefinite ? "indefinite" : "definite"));
    json_object_set_new(o, "checked_at", time_json(ms_to_s(ev->checked_at_ms)));
    if (ev->chain_checked) {
        json_t *c = json_object();
        json_object_set_new(c, "subject", json_string(ev->chain.subject));
        json_object_set_new(c, "not_before", time_json(ev->chain.not_before));
        json_object_set_new(c, "not_after", time_json(ev->chain.not_after));
        json_object_set_new(o, "certificate", c);
        char hex[65];
        at_hex_encode(ev->chain.root_sha256, 32, hex);
        json_object_set_new(o, "root_sha256", json_string(hex));
        json_object_set_new(o, "aws_root",
                            json_boolean(memcmp(ev->chain.root_sha256, at_aws_root_g1_sha256, 32) == 0));
    } else {
        json_object_set_new(o, "certificate", json_null());
    }
    if (ev->policy) {
        uint8_t h[32];
        char hex[65];
        if (at_policy_sha256(ev->policy, h) == AT_OK) {
            at_hex_encode(h, 32, hex);
            json_object_set_new(o, "policy_sha256", json_string(hex));
        }
    }
    return o;
}
