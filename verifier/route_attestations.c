/* POST /v1/attestations: evidence in, session + attestation result out.
 * Everything in the request is attacker-supplied until the document's
 * signature, chain, nonce and policy have all been checked; the session key
 * leaves this process only sealed to the key the document attests. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_limits.h"
#include "binding.h"
#include "enc.h"
#include "evidence.h"
#include "seal.h"
#include "verifier.h"

/* SHA-256 over (index u8 || length u8 || value) for every PCR, ascending. */
static at_err pcr_digest_hex(const at_nitro_payload *p, char out[65])
{
    at_buf b;
    at_buf_init(&b);
    for (size_t i = 0; i < p->n_pcrs; i++) {
        at_buf_u8(&b, p->pcrs[i].index);
        at_buf_u8(&b, p->pcrs[i].len);
        at_buf_append(&b, p->pcrs[i].value, p->pcrs[i].len);
    }
    at_err rc = at_buf_status(&b);
    if (rc == AT_OK)
        rc = at_sha256_hex(at_buf_span(&b), out, NULL);
    at_buf_cleanup(&b);
    return rc;
}

/* Which other version of the policy would have admitted these PCRs. */
static void explain_pcr_mismatch(verifier *v, const char *name, int64_t tried, const at_nitro_payload *doc,
                                 char *out, size_t len)
{
    out[0] = '\0';
    at_db_conn *c = at_db_read_acquire(v->db);
    at_db_stmt *st = NULL;
    if (!c || at_db_prepare(c,
                            "SELECT version, body, revoked_ms FROM policy_versions WHERE"
                            " name = $1 AND version != $2 ORDER BY version DESC",
                            &st, NULL) != AT_OK) {
        at_db_read_release(v->db, c);
        return;
    }
    at_db_bind_text(st, 1, name, -1);
    at_db_bind_int64(st, 2, tried);
    int rs;
    while ((rs = at_db_step(st)) == AT_DB_ROW) {
        at_policy *p = NULL;
        const char *body = at_db_column_text(st, 1);
        if (at_policy_parse(body, strlen(body), &p, NULL) != AT_OK)
            continue;
        at_err rc = at_policy_eval_pcrs(p, doc, NULL, NULL);
        at_policy_free(p);
        if (rc == AT_OK) {
            snprintf(out, len, "; version %lld of policy %s would admit these PCRs%s",
                     (long long)at_db_column_int64(st, 0), name,
                     !at_db_column_is_null(st, 2) ? " (it is revoked)" : "");
            break;
        }
    }
    if (!out[0] && rs != AT_DB_DONE && rs != AT_DB_ROW)
        snprintf(out, len, "; the other versions of policy %s could not be read", name);
    at_db_finalize(st);
    at_db_read_release(v->db, c);
    if (!out[0])
        snprintf(out, len, "; no other version of policy %s admits these PCRs", name);
}

struct admit_job {
    /* inputs */
    const uint8_t *nonce;
    size_t nonce_len;
    int64_t nonce_expires_ms;
    const char *session_id, *instance_id, *policy, *format, *module_id, *pcrs, *pcr_sha, *endpoint, *token,
        *actor, *client, *ev_sha;
    int64_t policy_version, expires_ms;
    at_span key_config;
    at_span proof_key_sealed; /* keys_proof_key_seal() */
    verifier *v;
    bool authenticated;
    /* outputs */
    int64_t audit_id, replaced;
};

/* A refusal decided inside the admitting transaction: its audit row (or,
 * for an anonymous caller past its budget, its count) goes with it, the same
 * way for every code. Returns code, or AT_E_INTERNAL when the row cannot be
 * written. d already holds the refusal's message. */
static at_err refused_in_job(at_db_conn *c, struct admit_job *j, const char *ref, at_err code, at_diag *d)
{
    at_audit_row row = {.actor = j->actor,
                        .action = "attestation.create",
                        .outcome = "refused",
                        .code = at_err_str(code),
                        .message = d->msg,
                        .policy = ref,
                        .instance_id = j->instance_id,
                        .pcr_sha256 = j->pcr_sha,
                        .evidence_sha256 = j->ev_sha,
                        .client = j->client};
    at_diag scratch = {{0}};
    if (audit_refusal_in_job(j->v, c, j->authenticated, code, &row, &j->audit_id, &scratch) != AT_OK)
        return at_fail(d, AT_E_INTERNAL, "audit: the row of the refusal (%s) could not be written: %s",
                       at_err_str(code), scratch.msg);
    return code;
}

static at_err admit(at_db_conn *c, void *ctx, at_diag *d)
{
    struct admit_job *j = ctx;
    at_err rc = AT_E_INTERNAL;
    at_db_stmt *st = NULL;
    int64_t now = at_now_ms();
    char ref[200];
    snprintf(ref, sizeof ref, "%s@%lld", j->policy, (long long)j->policy_version);
    /* The version was read outside this transaction: a revocation committed
     * since (it ends the version's live sessions) must also stop this
     * admission, or a session would outlive its acknowledged revocation. */
    AT_TRY(
        at_db_stmt_get(c, "SELECT revoked_ms FROM policy_versions WHERE name = $1 AND version = $2", &st, d));
    at_db_bind_text(st, 1, j->policy, -1);
    at_db_bind_int64(st, 2, j->policy_version);
    int ps = at_db_step(st);
    AT_ENSURE(ps == AT_DB_ROW || ps == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    bool revoked = ps == AT_DB_DONE || !at_db_column_is_null(st, 0);
    at_db_reset(st);
    st = NULL;
    if (revoked) {
        rc = at_fail(d, AT_E_POLICY_NOT_FOUND, "policy: %s was revoked while the document was being checked",
                     ref);
        return refused_in_job(c, j, ref, rc, d);
    }
    /* A live session is replaced only by a document that binds the same
     * endpoint: whatever else an instance attests, it cannot move (or have
     * moved) the endpoint gateways use before that session ends. */
    AT_TRY(at_db_stmt_get(c,
                          "SELECT endpoint FROM sessions WHERE instance_id = $1 AND ended_ms IS NULL"
                          " AND expires_ms > $2 AND endpoint IS DISTINCT FROM $3 LIMIT 1",
                          &st, d));
    at_db_bind_text(st, 1, j->instance_id, -1);
    at_db_bind_int64(st, 2, now);
    if (j->endpoint)
        at_db_bind_text(st, 3, j->endpoint, -1);
    else
        at_db_bind_null(st, 3);
    int es = at_db_step(st);
    AT_ENSURE(es == AT_DB_ROW || es == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    if (es == AT_DB_ROW) {
        const char *live = at_db_column_text(st, 0);
        rc = at_fail(d, AT_E_ENDPOINT_CONFLICT,
                     "endpoint: instance %s has a live session for endpoint %.200s, the document binds"
                     " %.200s; a live session is replaced only for the same endpoint",
                     j->instance_id, live ? live : "(none)", j->endpoint ? j->endpoint : "(none)");
        at_db_reset(st);
        st = NULL;
        return refused_in_job(c, j, ref, rc, d);
    }
    at_db_reset(st);
    st = NULL;
    if (j->nonce_len) {
        /* Single use must hold whatever the wall clock does: a nonce that
         * expires at or before the time high-water mark may have had its
         * use record pruned (schema/0003), so it is expired, full stop. */
        AT_TRY(at_db_stmt_get(c, "SELECT pruned_before_ms FROM clock_watermark", &st, d));
        int ws = at_db_step(st);
        AT_ENSURE(ws == AT_DB_ROW || ws == AT_DB_DONE, d, AT_E_INTERNAL, "database: clock_watermark: %s",
                  at_db_errmsg(c));
        int64_t mark = ws == AT_DB_ROW ? at_db_column_int64(st, 0) : INT64_MAX;
        at_db_reset(st);
        st = NULL;
        if (j->nonce_expires_ms <= mark) {
            char t_exp[40], t_mark[40];
            at_time_rfc3339_ms(j->nonce_expires_ms, t_exp, sizeof t_exp);
            at_time_rfc3339_ms(mark, t_mark, sizeof t_mark);
            rc = at_fail(d, AT_E_NONCE_EXPIRED,
                         "nonce: expired at %s, not after the verifier's time high-water mark "
                         "%s (the clock was set back?)",
                         t_exp, t_mark);
            return refused_in_job(c, j, ref, rc, d);
        }
        /* Single use: the primary key refuses a second insert. */
        AT_TRY(at_db_stmt_get(c,
                              "INSERT INTO nonces_used (nonce, expires_ms, used_ms) VALUES ($1, $2, $3)"
                              " ON CONFLICT (nonce) DO NOTHING",
                              &st, d));
        at_db_bind_blob(st, 1, j->nonce, j->nonce_len);
        at_db_bind_int64(st, 2, j->nonce_expires_ms);
        at_db_bind_int64(st, 3, now);
        int s = at_db_step(st);
        int64_t inserted = at_db_changes(c);
        at_db_reset(st);
        st = NULL;
        /* Single use, enforced by the database on every replica: the insert
     * that finds the key already there changes nothing (no error, so the
     * refusal's audit row commits in the same transaction). */
        if (s == AT_DB_DONE && inserted == 0) {
            rc = at_fail(d, AT_E_NONCE_REUSED,
                         "nonce: already consumed by an earlier attestation (single use)");
            return refused_in_job(c, j, ref, rc, d);
        }
        AT_ENSURE(s == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    }
    /* Re-attestation by the same instance replaces its session. */
    AT_TRY(at_db_stmt_get(c,
                          "UPDATE sessions SET ended_ms = $1, end_reason = 'replaced'"
                          " WHERE instance_id = $2 AND ended_ms IS NULL",
                          &st, d));
    at_db_bind_int64(st, 1, now);
    at_db_bind_text(st, 2, j->instance_id, -1);
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    j->replaced = at_db_changes(c);
    at_db_reset(st);
    AT_TRY(at_db_stmt_get(c,
                          "INSERT INTO sessions (id, instance_id, policy, policy_version, format,"
                          " module_id, pcrs, pcr_sha256, key_config, endpoint, proof_key, token,"
                          " created_ms, expires_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",
                          &st, d));
    at_db_bind_text(st, 1, j->session_id, -1);
    at_db_bind_text(st, 2, j->instance_id, -1);
    at_db_bind_text(st, 3, j->policy, -1);
    at_db_bind_int64(st, 4, j->policy_version);
    at_db_bind_text(st, 5, j->format, -1);
    at_db_bind_text(st, 6, j->module_id, -1);
    at_db_bind_text(st, 7, j->pcrs, -1);
    at_db_bind_text(st, 8, j->pcr_sha, -1);
    if (j->key_config.len)
        at_db_bind_blob(st, 9, j->key_config.p, j->key_config.len);
    else
        at_db_bind_null(st, 9);
    if (j->endpoint)
        at_db_bind_text(st, 10, j->endpoint, -1);
    else
        at_db_bind_null(st, 10);
    at_db_bind_blob(st, 11, j->proof_key_sealed.p, j->proof_key_sealed.len);
    at_db_bind_text(st, 12, j->token, -1);
    at_db_bind_int64(st, 13, now);
    at_db_bind_int64(st, 14, j->expires_ms);
    AT_ENSURE(at_db_step(st) == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    char msg[64];
    snprintf(msg, sizeof msg, "%lld earlier session(s) replaced", (long long)j->replaced);
    at_audit_row row = {.actor = j->actor,
                        .action = "attestation.create",
                        .outcome = "ok",
                        .policy = ref,
                        .instance_id = j->instance_id,
                        .session_id = j->session_id,
                        .pcr_sha256 = j->pcr_sha,
                        .evidence_sha256 = j->ev_sha,
                        .client = j->client,
                        .message = j->replaced ? msg : NULL};
    AT_TRY(at_audit_append(c, &row, &j->audit_id, d));
    rc = AT_OK;
out:
    if (st)
        at_db_reset(st);
    return rc;
}

static bool valid_endpoint(const char *s)
{
    size_t n = strlen(s);
    if (n < 8 || n > 512)
        return false;
    if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

void route_attestations(verifier *v, at_http_req *req, at_http_resp *resp)
{
    static const char *const keys[] = {"evidence", "format", "policy", "instance_id", "endpoint", NULL};
    caller who;
    identify(v, req, &who);
    json_t *body = NULL, *claims = NULL;
    uint8_t *doc = NULL;
    size_t doc_len = 0;
    at_policy *policy = NULL;
    at_trust *trust = NULL;
    at_evidence ev;
    bool have_ev = false;
    char *token = NULL, *pcrs_text = NULL, *key_sealed_b64 = NULL, *kc_b64 = NULL, *akpub = NULL;
    at_buf sealed, proof_sealed;
    at_buf_init(&sealed);
    at_buf_init(&proof_sealed);
    at_diag d = {{0}};
    at_err rc;
    int64_t version = 0;
    char pol_sha[65] = "", ref[200] = "", ev_sha[65] = "", pcr_sha[65] = "";
    const char *name = NULL, *endpoint = NULL;
    at_audit_row extra = {0};
    uint8_t session_key[32], id_raw[16];
    char session_id[33];
    int64_t nonce_exp = 0;

    if (!ratelimit_allow(v->rl, req->client, at_monotonic_ns())) {
        rc = at_fail(&d, AT_E_RATE_LIMITED, "rate: too many attestations from this client");
        goto refused;
    }
    if ((rc = at_http_body_json(req, &body, &d)) != AT_OK || (rc = only_keys(body, keys, &d)) != AT_OK ||
        (rc = decode_evidence(body, &doc, &doc_len, &d)) != AT_OK)
        goto refused;
    if ((rc = at_sha256_hex(AT_SPAN(doc, doc_len), ev_sha, &d)) != AT_OK)
        goto refused;
    extra.evidence_sha256 = ev_sha;
    json_t *jp = json_object_get(body, "policy");
    if (!json_is_string(jp) || !valid_name(json_string_value(jp))) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "policy: expected the name of a policy");
        goto refused;
    }
    name = json_string_value(jp);
    at_verify_opts o = {.clock_skew_ms = v->cfg.clock_skew_ms};
    json_t *fmt = json_object_get(body, "format");
    if (fmt && (!json_is_string(fmt) || !at_format_parse(json_string_value(fmt), &o.format))) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "format: expected auto, nitro-enclave or nitro-tpm");
        goto refused;
    }
    json_t *je = json_object_get(body, "endpoint");
    if (je) {
        if (!json_is_string(je) || !valid_endpoint(json_string_value(je))) {
            rc = at_fail(&d, AT_E_BAD_REQUEST,
                         "endpoint: expected an http:// or https:// URL of at most 512 characters");
            goto refused;
        }
        endpoint = json_string_value(je);
    }
    json_t *ji = json_object_get(body, "instance_id");
    if (ji && !json_is_string(ji)) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "instance_id: expected a string");
        goto refused;
    }
    {
        at_db_conn *c = at_db_read_acquire(v->db);
        rc = c ? policy_load(c, name, 0, &policy, &version, pol_sha, &d)
               : at_fail(&d, AT_E_INTERNAL, "database unavailable");
        at_db_read_release(v->db, c);
        if (rc != AT_OK)
            goto refused;
    }
    snprintf(ref, sizeof ref, "%s@%lld", name, (long long)version);
    extra.policy = ref;
    o.policy = policy;

    trust = verifier_trust(v);
    rc = at_evidence_verify(trust, AT_SPAN(doc, doc_len), &o, &ev);
    have_ev = true;
    if (ev.decoded) {
        extra.instance_id = ev.payload.module_id;
        if (pcr_digest_hex(&ev.payload, pcr_sha) == AT_OK) /* else the row has none */
            extra.pcr_sha256 = pcr_sha;
    }
    {
        char labels[96];
        snprintf(labels, sizeof labels, "outcome=\"%s\",code=\"%s\"", rc == AT_OK ? "valid" : "invalid",
                 at_err_str(rc));
        at_metrics_add(v->metrics, "attest_verifications_total", labels, 1);
    }
    if (rc != AT_OK) {
        d = ev.diag;
        if (rc == AT_E_PCR_MISMATCH) {
            char more[300];
            explain_pcr_mismatch(v, name, version, &ev.payload, more, sizeof more);
            size_t used = strlen(d.msg);
            snprintf(d.msg + used, sizeof d.msg - used, "%s", more);
        }
        goto refused;
    }
    /* A document only vouches for what it signs: a session needs one bound
     * to purpose "session" and to the very endpoint requested (lib/binding).
     * Evidence the agent hands to relying parties can never make one. */
    if ((rc = at_binding_check(ev.payload.has_user_data ? ev.payload.user_data : AT_SPAN_NULL,
                               AT_PURPOSE_SESSION, endpoint, &d)) != AT_OK)
        goto refused;
    /* The nonce is read from the signed document and must be one this
     * verifier issued, unexpired; single use is enforced at commit. A
     * present nonce is always checked, required or not. */
    if (ev.payload.has_nonce && ev.payload.nonce.len) {
        if ((rc = keys_nonce_check(v->keys, ev.payload.nonce, at_now_ms(), &nonce_exp, &d)) != AT_OK)
            goto refused;
    } else if (policy->require_nonce) {
        rc = at_fail(&d, AT_E_NONCE_MISMATCH,
                     "nonce: the policy requires a nonce from POST /v1/challenge, the document has none");
        goto refused;
    }
    if (ji && strcmp(json_string_value(ji), ev.payload.module_id) != 0) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "instance_id: %.64s does not match the attested module_id %s",
                     json_string_value(ji), ev.payload.module_id);
        goto refused;
    }
    /* Session key, sealed to the attested key configuration. */
    if (RAND_bytes(session_key, sizeof session_key) != 1 || RAND_bytes(id_raw, sizeof id_raw) != 1) {
        rc = at_fail(&d, AT_E_INTERNAL, "no randomness");
        goto refused;
    }
    at_hex_encode(id_raw, sizeof id_raw, session_id);
    bool have_key = ev.payload.has_public_key && ev.payload.public_key.len > 0;
    if (have_key) {
        rc = at_seal_to_key_config(ev.payload.public_key, AT_SEAL_INFO_SESSION, AT_SPAN(session_key, 32),
                                   &sealed, &d);
        if (rc != AT_OK) {
            at_diag_prefix(&d, "public_key: ");
            rc = policy->require_public_key ? AT_E_KEY_REQUIRED : rc;
            goto refused;
        }
        key_sealed_b64 = at_b64_encode_new(at_buf_span(&sealed));
        kc_b64 = at_b64_encode_new(ev.payload.public_key);
        if (!key_sealed_b64 || !kc_b64) {
            rc = at_fail(&d, AT_E_INTERNAL, "session key: out of memory encoding the sealed key");
            goto refused;
        }
        if ((rc = at_ear_akpub(ev.payload.public_key, &akpub, &d)) != AT_OK) {
            at_diag_prefix(&d, "public_key: ");
            goto refused;
        }
    }
    struct admit_job j = {.nonce = ev.payload.has_nonce ? ev.payload.nonce.p : NULL,
                          .nonce_len = ev.payload.has_nonce ? ev.payload.nonce.len : 0,
                          .nonce_expires_ms = nonce_exp,
                          .session_id = session_id,
                          .instance_id = ev.payload.module_id,
                          .policy = name,
                          .policy_version = version,
                          .format = at_format_name(ev.payload.format),
                          .module_id = ev.payload.module_id,
                          .pcr_sha = pcr_sha,
                          .endpoint = endpoint,
                          .actor = who.actor,
                          .client = req->client,
                          .ev_sha = ev_sha,
                          .v = v,
                          .authenticated = who.role != ROLE_NONE,
                          .key_config = have_key ? ev.payload.public_key : AT_SPAN_NULL};
    {
        uint8_t proof_key[32];
        at_session_proof_key(AT_SPAN(session_key, 32), proof_key);
        rc = keys_proof_key_seal(v->keys, session_id, proof_key, &proof_sealed, &d);
        at_wipe(proof_key, sizeof proof_key);
        if (rc != AT_OK) {
            at_diag_prefix(&d, "session proof key: ");
            rc = AT_E_INTERNAL;
            goto refused;
        }
        j.proof_key_sealed = at_buf_span(&proof_sealed);
    }
    int64_t now = at_now_ms();
    j.expires_ms = now + policy->session_ttl_s * 1000;

    /* The attestation result (EAR), signed. */
    claims = json_object();
    uint8_t jti[16];
    char jti_hex[33];
    if (RAND_bytes(jti, sizeof jti) != 1) {
        rc = at_fail(&d, AT_E_INTERNAL, "jti: no randomness");
        goto refused;
    }
    at_hex_encode(jti, sizeof jti, jti_hex);
    const char *iss = __atomic_load_n(&v->issuer, __ATOMIC_ACQUIRE);
    if (!iss) {
        rc = at_fail(&d, AT_E_INTERNAL, "iss: the verifier's URL is not known yet (starting)");
        goto refused;
    }
    json_object_set_new(claims, "iss", json_string(iss));
    json_object_set_new(claims, "iat", json_integer(now / 1000));
    json_object_set_new(claims, "exp", json_integer(j.expires_ms / 1000));
    json_object_set_new(claims, "jti", json_string(jti_hex));
    json_object_set_new(claims, "eat_profile", json_string(AT_EAR_PROFILE));
    if (ev.payload.has_nonce && ev.payload.nonce.len) {
        /* Only a nonce this verifier issued gets here (checked above). */
        char *n64 = at_b64url_encode_new(ev.payload.nonce);
        if (!n64) {
            rc = at_fail(&d, AT_E_INTERNAL, "eat_nonce: out of memory");
            goto refused;
        }
        json_object_set_new(claims, "eat_nonce", json_string(n64));
        free(n64);
    }
    json_t *vid = json_object();
    json_object_set_new(vid, "build", json_string(v->build));
    json_object_set_new(vid, "developer", json_string(VERIFIER_ID_DEVELOPER));
    json_object_set_new(claims, "ear.verifier-id", vid);
    json_t *ae = json_object();
    json_object_set_new(ae, "format", json_string(at_format_name(ev.payload.format)));
    json_object_set_new(ae, "module_id", json_string(ev.payload.module_id));
    json_object_set_new(ae, "pcrs", at_nitro_pcrs_json(&ev.payload));
    {
        /* Which of those the policy pins (each matched one of its approved
         * values, or there would be no token): a relying party can show
         * per PCR what was compared, from signed data alone. */
        json_t *pinned = json_array();
        for (size_t i = 0; i < policy->n_pcrs; i++)
            json_array_append_new(pinned, json_integer(policy->pcrs[i].index));
        json_object_set_new(ae, "pcrs_pinned", pinned);
    }
    json_object_set_new(ae, "key_config", kc_b64 ? json_string(kc_b64) : json_null());
    json_object_set_new(ae, "session_id", json_string(session_id));
    json_object_set_new(ae, "policy_sha256", json_string(pol_sha));
    json_object_set_new(ae, "policy_version", json_integer(version));
    if (endpoint)
        json_object_set_new(ae, "endpoint", json_string(endpoint));
    /* The endpoint above is the one the document binds (binding version). */
    json_object_set_new(ae, "binding_version", json_integer(AT_BINDING_VERSION));
    char root_hex[65];
    at_hex_encode(ev.chain.root_sha256, 32, root_hex);
    json_object_set_new(ae, "root_sha256", json_string(root_hex));
    json_object_set_new(ae, "aws_root",
                        json_boolean(memcmp(ev.chain.root_sha256, at_aws_root_g1_sha256, 32) == 0));
    /* Every check below ran and passed, or we would not be here; the lint
     * runs again on the loaded policy (an override admits what it refuses). */
    at_diag lint = {{0}};
    at_ear_checks checks = {.chain = AT_CHECK_PASSED,
                            .identity = AT_CHECK_PASSED,
                            .pcrs = AT_CHECK_PASSED,
                            .binding = AT_CHECK_PASSED,
                            .policy_lint_ok = at_policy_lint(policy, &lint) == AT_OK};
    json_t *tv = at_ear_tvector(&checks);
    const char *status = at_ear_status(tv);
    json_t *sub = json_object();
    json_object_set_new(sub, "ear.status", json_string(status));
    json_object_set_new(sub, "ear.trustworthiness-vector", tv);
    if (akpub) { /* the attested key, in Veraison's registered claim */
        json_t *ka = json_object();
        json_object_set_new(ka, "akpub", json_string(akpub));
        json_object_set_new(sub, "ear.veraison.key-attestation", ka);
    }
    char pid[220];
    snprintf(pid, sizeof pid, "policy:%s", ref);
    json_object_set_new(sub, "ear.appraisal-policy-id", json_string(pid));
    json_object_set_new(sub, "ear.veraison.annotated-evidence", ae);
    json_t *submods = json_object();
    json_object_set_new(submods, ev.payload.module_id, sub);
    json_object_set_new(claims, "submods", submods);
    at_signer *signer = keys_signer(v->keys);
    rc = at_signer_sign(signer, claims, &token, &d);
    at_signer_free(signer);
    if (rc != AT_OK)
        goto refused;
    pcrs_text = json_dumps(json_object_get(ae, "pcrs"), JSON_COMPACT | JSON_SORT_KEYS);
    j.pcrs = pcrs_text;
    j.token = token;
    rc = at_db_write(v->db, admit, &j, &d);
    if (rc == AT_E_NONCE_REUSED || rc == AT_E_NONCE_EXPIRED || rc == AT_E_POLICY_NOT_FOUND ||
        rc == AT_E_ENDPOINT_CONFLICT) {
        at_http_error(resp, rc, d.msg, j.audit_id);
        goto done;
    }
    if (rc != AT_OK) {
        at_http_error(resp, rc, d.msg, -1);
        goto done;
    }
    json_t *out = json_object(), *sess = json_object();
    char exp[40];
    at_time_rfc3339(j.expires_ms / 1000, exp, sizeof exp);
    json_object_set_new(sess, "id", json_string(session_id));
    json_object_set_new(sess, "expires_at", json_string(exp));
    json_object_set_new(sess, "expires_at_ms", json_integer(j.expires_ms));
    json_object_set_new(sess, "key_sealed", key_sealed_b64 ? json_string(key_sealed_b64) : json_null());
    json_object_set_new(out, "status", json_string(status));
    json_object_set_new(out, "session", sess);
    json_object_set_new(out, "token", json_string(token));
    json_object_set_new(out, "claims", json_incref(claims));
    json_object_set_new(out, "audit_id", json_integer(j.audit_id));
    if (!json_is_true(json_object_get(ae, "aws_root")))
        json_object_set_new(out, "warning", json_string("signed by a non-AWS root pinned on this verifier"));
    at_http_json(resp, 201, out);
    goto done;
refused:
    refuse(v, req, resp, &who, "attestation.create", rc, d.msg, &extra);
done:
    at_wipe(session_key, sizeof session_key);
    if (have_ev)
        at_evidence_cleanup(&ev);
    at_trust_unref(trust);
    at_policy_free(policy);
    json_decref(body);
    json_decref(claims);
    at_buf_cleanup(&sealed);
    at_buf_cleanup(&proof_sealed);
    free(doc);
    free(token);
    free(pcrs_text);
    free(key_sealed_b64);
    free(kc_b64);
    free(akpub);
}
