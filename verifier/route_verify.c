/* POST /v1/verify: stateless check of a document at now or a given time,
 * against an optional policy (by name or inline) and nonce. Answers the
 * same JSON as `attestctl verify`; stores nothing but its audit row (an
 * authenticated caller's), or a count in the per-minute aggregate
 * (anonymous callers: the check changes no state). Rate-limited per client
 * address like the other anonymous routes. */
#include <stdlib.h>
#include <string.h>

#include "at_limits.h"
#include "enc.h"
#include "evidence.h"
#include "verifier.h"

/* Decode the "evidence" member: base64 of at most a maximal document. */
at_err decode_evidence(json_t *body, uint8_t **doc, size_t *len, at_diag *d)
{
    json_t *e = json_object_get(body, "evidence");
    if (!e)
        return at_fail(d, AT_E_BAD_REQUEST, "evidence: missing (base64 of the COSE_Sign1 document)");
    if (!json_is_string(e))
        return at_fail(d, AT_E_BAD_REQUEST, "evidence: expected a base64 string");
    size_t n = json_string_length(e);
    if (n > (AT_MAX_DOCUMENT_BYTES + 2) / 3 * 4)
        return at_fail(d, AT_E_TOO_LARGE, "evidence: %zu base64 characters, a document is at most %d bytes",
                       n, AT_MAX_DOCUMENT_BYTES);
    if (at_b64_decode_new(json_string_value(e), n, doc, len) != AT_OK)
        return at_fail(d, AT_E_BAD_REQUEST, "evidence: not valid base64");
    return AT_OK;
}

void route_verify(verifier *v, at_http_req *req, at_http_resp *resp)
{
    static const char *const keys[] = {"evidence", "at", "nonce", "policy", "format", NULL};
    caller who;
    identify(v, req, &who);
    json_t *body = NULL;
    uint8_t *doc = NULL, *nonce = NULL;
    size_t doc_len = 0, nonce_len = 0;
    at_policy *policy = NULL;
    char policy_ref[200] = "";
    at_diag d = {{0}};
    at_err rc;
    at_verify_opts o = {.clock_skew_ms = v->cfg.clock_skew_ms};
    at_trust *trust = NULL;

    if (!ratelimit_allow(v->rl, req->client, at_monotonic_ns())) {
        rc = at_fail(&d, AT_E_RATE_LIMITED, "rate: too many verifications from this client, retry later");
        goto refused;
    }
    if ((rc = at_http_body_json(req, &body, &d)) != AT_OK || (rc = only_keys(body, keys, &d)) != AT_OK ||
        (rc = decode_evidence(body, &doc, &doc_len, &d)) != AT_OK)
        goto refused;
    json_t *at = json_object_get(body, "at");
    if (at) {
        if (!json_is_integer(at) || json_integer_value(at) < 0 || json_integer_value(at) > 253402300799LL) {
            rc = at_fail(&d, AT_E_BAD_REQUEST, "at: expected UNIX seconds");
            goto refused;
        }
        o.time_mode = AT_TIME_GIVEN;
        o.at_ms = json_integer_value(at) * 1000;
    }
    json_t *fmt = json_object_get(body, "format");
    if (fmt && (!json_is_string(fmt) || !at_format_parse(json_string_value(fmt), &o.format))) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "format: expected auto, nitro-enclave or nitro-tpm");
        goto refused;
    }
    json_t *jn = json_object_get(body, "nonce");
    if (jn) {
        if (!json_is_string(jn) ||
            at_b64_decode_new(json_string_value(jn), json_string_length(jn), &nonce, &nonce_len) != AT_OK ||
            nonce_len > AT_MAX_OPTIONAL_FIELD) {
            rc = at_fail(&d, AT_E_BAD_REQUEST, "nonce: expected base64 of at most %d bytes",
                         AT_MAX_OPTIONAL_FIELD);
            goto refused;
        }
        o.check_nonce = true;
        o.nonce = AT_SPAN(nonce, nonce_len);
    }
    json_t *jp = json_object_get(body, "policy");
    if (jp && json_is_string(jp)) {
        if (!valid_name(json_string_value(jp))) {
            rc = at_fail(&d, AT_E_BAD_REQUEST, "policy: invalid name");
            goto refused;
        }
        at_db_conn *c = at_db_read_acquire(v->db);
        int64_t ver = 0;
        char sha[65];
        rc = c ? policy_load(c, json_string_value(jp), 0, &policy, &ver, sha, &d)
               : at_fail(&d, AT_E_INTERNAL, "database unavailable");
        at_db_read_release(v->db, c);
        if (rc != AT_OK)
            goto refused;
        snprintf(policy_ref, sizeof policy_ref, "%s@%lld", json_string_value(jp), (long long)ver);
    } else if (jp && json_is_object(jp)) {
        if ((rc = at_policy_from_json(jp, &policy, &d)) != AT_OK) {
            at_diag_prefix(&d, "policy.");
            goto refused;
        }
        snprintf(policy_ref, sizeof policy_ref, "inline");
    } else if (jp) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "policy: expected a name or a policy object");
        goto refused;
    }
    o.policy = policy;

    trust = verifier_trust(v);
    at_evidence ev;
    at_err vrc = at_evidence_verify(trust, AT_SPAN(doc, doc_len), &o, &ev);
    json_t *out = at_evidence_json(&ev);
    json_object_set_new(out, "chain", at_evidence_chain_json(&ev));
    char labels[96];
    snprintf(labels, sizeof labels, "outcome=\"%s\",code=\"%s\"", vrc == AT_OK ? "valid" : "invalid",
             at_err_str(vrc));
    at_metrics_add(v->metrics, "attest_verifications_total", labels, 1);

    char ev_sha[65];
    bool have_sha = at_sha256_hex(AT_SPAN(doc, doc_len), ev_sha, NULL) == AT_OK;
    at_audit_row row = {.actor = who.actor,
                        .action = "verify",
                        .outcome = vrc == AT_OK ? "ok" : "refused",
                        .code = vrc == AT_OK ? NULL : at_err_str(vrc),
                        .message = vrc == AT_OK ? NULL : ev.diag.msg,
                        .policy = policy_ref[0] ? policy_ref : NULL,
                        .evidence_sha256 = have_sha ? ev_sha : NULL,
                        .client = req->client,
                        .instance_id = ev.decoded ? ev.payload.module_id : NULL};
    int64_t audit_id = 0;
    if (who.role == ROLE_NONE)
        audit_count(v, req->client, who.actor, AUDIT_VERIFY_RESULT, row.outcome, row.code);
    else if (audit_write(v, &row, &audit_id, &d) != AT_OK) {
        json_decref(out);
        at_evidence_cleanup(&ev);
        at_http_error(resp, AT_E_INTERNAL, d.msg, -1);
        goto done;
    }
    json_object_set_new(out, "audit_id", audit_id ? json_integer(audit_id) : json_null());
    if (v->trusts_sim_root && ev.chain_checked && !json_is_true(json_object_get(out, "aws_root")))
        json_object_set_new(out, "warning", json_string("signed by a non-AWS root pinned on this verifier"));
    at_evidence_cleanup(&ev);
    at_http_json(resp, 200, out);
    goto done;
refused:
    refuse(v, req, resp, &who, "verify", rc, d.msg, NULL);
done:
    at_trust_unref(trust);
    at_policy_free(policy);
    json_decref(body);
    free(doc);
    free(nonce);
}
