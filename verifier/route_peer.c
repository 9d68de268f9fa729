/* POST /v1/peer/bindings: the verifier's half of mutual attestation
 * through the verifier (docs/mutual-attestation.md "Through the
 * verifier"). An instance holding a live session asks the verifier to sign
 * a peer binding: a short-lived JWS (same keys as the EAR tokens) naming
 * its session, instance and the handshake transcript hash, which carries
 * its ephemeral key. The request proves possession of the session key
 * with a MAC (as a secret release) over the transcript and the peer's
 * session; each proof is accepted once. When the request names the peer's
 * session (this side has accepted the peer) the verifier records the
 * mutual attestation: one audit row "peer.attest" per side, naming this
 * side's instance and session and, in its message, the peer's (read from
 * the verifier's own sessions table, never from the request). */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc.h"
#include "seal.h"
#include "verifier.h"

/* A binding lives this long at most (and never past its session). */
#define PEER_BINDING_TTL_MS (300 * 1000)
#define PEER_BINDING_CLAIM "attest.peer-binding"

struct bind_job {
    verifier *v;
    const char *sid, *peer_sid, *client, *actor, *policy_ref, *instance, *th_hex;
    uint8_t mac[32];
    int64_t proof_expires_ms;
    int64_t audit_id;
};

/* A refusal decided inside the job keeps its row (or its count). */
static at_err job_refuse(struct bind_job *j, at_db_conn *c, at_audit_row *row, at_err rc, at_diag *d)
{
    row->outcome = "refused";
    row->code = at_err_str(rc);
    row->message = d->msg;
    at_diag scratch = {{0}};
    if (audit_refusal_in_job(j->v, c, false, rc, row, &j->audit_id, &scratch) != AT_OK)
        return at_fail(d, AT_E_INTERNAL, "audit: the row of the refusal (%s) could not be written: %s",
                       at_err_str(rc), scratch.msg);
    return rc;
}

/* AT_OK when the session exists, has not ended and has not expired
 * (its instance and "policy@version" copied out when asked), else
 * AT_E_SESSION_EXPIRED saying which. */
static at_err session_live(at_db_conn *c, const char *sid, char *instance, size_t ilen, char *ref,
                           size_t rlen, at_diag *d)
{
    at_db_stmt *st = NULL;
    at_err rc = AT_E_INTERNAL;
    AT_TRY(at_db_prepare(c,
                         "SELECT instance_id, policy, policy_version, ended_ms, end_reason,"
                         " expires_ms FROM sessions WHERE id = $1",
                         &st, d));
    at_db_bind_text(st, 1, sid, -1);
    int s = at_db_step(st);
    AT_ENSURE(s == AT_DB_ROW || s == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    AT_ENSURE(s == AT_DB_ROW, d, AT_E_SESSION_EXPIRED, "session %.64s: unknown", sid);
    AT_ENSURE(at_db_column_is_null(st, 3), d, AT_E_SESSION_EXPIRED, "session %.64s: ended (%s)", sid,
              at_db_column_text(st, 4) ?: "ended");
    AT_ENSURE(at_db_column_int64(st, 5) > at_now_ms(), d, AT_E_SESSION_EXPIRED, "session %.64s: expired",
              sid);
    if (instance)
        snprintf(instance, ilen, "%s", at_db_column_text(st, 0) ?: "");
    if (ref)
        snprintf(ref, rlen, "%s@%lld", at_db_column_text(st, 1) ?: "?", (long long)at_db_column_int64(st, 2));
    rc = AT_OK;
out:
    at_db_finalize(st);
    return rc;
}

static at_err bind_job(at_db_conn *c, void *ctx, at_diag *d)
{
    struct bind_job *j = ctx;
    at_db_stmt *st = NULL;
    at_err rc = AT_E_INTERNAL;
    char peer_instance[160] = "", peer_ref[200] = "", msg[700];
    at_audit_row row = {.actor = j->actor,
                        .action = "peer.attest",
                        .outcome = "ok",
                        .policy = j->policy_ref,
                        .instance_id = j->instance,
                        .session_id = j->sid,
                        .client = j->client};
    /* Both sessions are re-read in the writing transaction: an end
     * committed since must stop the binding. */
    if ((rc = session_live(c, j->sid, NULL, 0, NULL, 0, d)) != AT_OK)
        return rc == AT_E_INTERNAL ? rc : job_refuse(j, c, &row, rc, d);
    if (j->peer_sid) {
        if (strcmp(j->peer_sid, j->sid) == 0) {
            rc = at_fail(d, AT_E_REFLECTION, "peer_session: this request's own session");
            return job_refuse(j, c, &row, rc, d);
        }
        if ((rc = session_live(c, j->peer_sid, peer_instance, sizeof peer_instance, peer_ref, sizeof peer_ref,
                               d)) != AT_OK) {
            if (rc != AT_E_INTERNAL)
                at_diag_prefix(d, "peer_");
            return rc == AT_E_INTERNAL ? rc : job_refuse(j, c, &row, rc, d);
        }
    }
    AT_TRY(at_db_prepare(c, "SELECT pruned_before_ms FROM clock_watermark", &st, d));
    int s = at_db_step(st);
    AT_ENSURE(s == AT_DB_ROW || s == AT_DB_DONE, d, AT_E_INTERNAL, "database: clock_watermark: %s",
              at_db_errmsg(c));
    int64_t mark = s == AT_DB_ROW ? at_db_column_int64(st, 0) : INT64_MAX;
    at_db_finalize(st);
    st = NULL;
    if (j->proof_expires_ms <= mark) {
        rc = at_fail(d, AT_E_UNAUTHORIZED,
                     "proof: expires at %lld ms, not after the verifier's time "
                     "high-water mark %lld ms",
                     (long long)j->proof_expires_ms, (long long)mark);
        return job_refuse(j, c, &row, rc, d);
    }
    AT_TRY(at_db_prepare(
        c, "INSERT INTO proofs_used (mac, expires_ms) VALUES ($1, $2) ON CONFLICT (mac) DO NOTHING", &st, d));
    at_db_bind_blob(st, 1, j->mac, sizeof j->mac);
    at_db_bind_int64(st, 2, j->proof_expires_ms);
    s = at_db_step(st);
    int64_t inserted = at_db_changes(c);
    at_db_finalize(st);
    st = NULL;
    /* Single use, enforced by the database on every replica: the insert
     * that finds the key already there changes nothing (no error, so the
     * refusal's audit row commits in the same transaction). */
    if (s == AT_DB_DONE && inserted == 0) {
        rc = at_fail(d, AT_E_UNAUTHORIZED, "proof: already used (replayed binding request)");
        return job_refuse(j, c, &row, rc, d);
    }
    AT_ENSURE(s == AT_DB_DONE, d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
    if (j->peer_sid) {
        snprintf(msg, sizeof msg,
                 "mutual attestation with peer instance %s (session %s, policy %s), transcript %s",
                 peer_instance, j->peer_sid, peer_ref, j->th_hex);
        row.message = msg;
        AT_TRY(at_audit_append(c, &row, &j->audit_id, d));
    }
    rc = AT_OK;
out:
    at_db_finalize(st);
    return rc;
}

static at_err sign_binding(verifier *v, const char *sid, const char *instance, const char *ref,
                           const char *th_hex, int64_t session_expires_ms, char **jws, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t jti[16];
    char jti_hex[33];
    int64_t now = at_now_ms(), exp = now + PEER_BINDING_TTL_MS;
    if (exp > session_expires_ms)
        exp = session_expires_ms;
    json_t *claims = json_object(), *b = json_object();
    AT_ENSURE(claims && b, d, AT_E_INTERNAL, "binding: out of memory");
    AT_ENSURE(RAND_bytes(jti, sizeof jti) == 1, d, AT_E_INTERNAL, "jti: no randomness");
    at_hex_encode(jti, sizeof jti, jti_hex);
    json_object_set_new(claims, "iss", json_string("attest-verifier"));
    json_object_set_new(claims, "iat", json_integer(now / 1000));
    json_object_set_new(claims, "exp", json_integer(exp / 1000));
    json_object_set_new(claims, "jti", json_string(jti_hex));
    json_object_set_new(claims, "eat_profile", json_string(AT_EAR_PROFILE));
    json_object_set_new(b, "session_id", json_string(sid));
    json_object_set_new(b, "instance_id", json_string(instance));
    json_object_set_new(b, "policy", json_string(ref));
    json_object_set_new(b, "transcript_sha256", json_string(th_hex));
    json_object_set_new(claims, PEER_BINDING_CLAIM, b);
    b = NULL;
    at_signer *signer = keys_signer(v->keys);
    rc = at_signer_sign(signer, claims, jws, d);
    at_signer_free(signer);
out:
    json_decref(b);
    json_decref(claims);
    return rc;
}

static void peer_bind(verifier *v, at_http_req *req, at_http_resp *resp)
{
    static const char *const keys[] = {"session", "proof", "transcript_sha256", "peer_session", NULL};
    caller who;
    identify(v, req, &who);
    if (!ratelimit_allow(v->rl, req->client, at_monotonic_ns())) {
        refuse(v, req, resp, &who, "peer.attest", AT_E_RATE_LIMITED,
               "rate: too many peer bindings from this client, retry later", NULL);
        return;
    }
    json_t *body = NULL;
    at_diag d = {{0}};
    at_err rc;
    uint8_t mac[32], th[32];
    char actor[96], th_hex[65], name[200];
    session_proof sp = {0};
    char *jws = NULL;
    int64_t ts_ms = 0;
    size_t n = 0;
    at_audit_row extra = {0};
    const char *peer_sid = NULL;

    if ((rc = at_http_body_json(req, &body, &d)) != AT_OK || (rc = only_keys(body, keys, &d)) != AT_OK)
        goto refused;
    json_t *js = json_object_get(body, "session"), *jpr = json_object_get(body, "proof"),
           *jt = json_object_get(body, "transcript_sha256"), *jp = json_object_get(body, "peer_session");
    if (!json_is_string(js) || json_string_length(js) == 0 || json_string_length(js) > 64) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "session: expected a session id");
        goto refused;
    }
    if (jp && (!json_is_string(jp) || json_string_length(jp) > 64 || !valid_name(json_string_value(jp)))) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "peer_session: expected a session id");
        goto refused;
    }
    peer_sid = jp ? json_string_value(jp) : NULL;
    if (!json_is_string(jt) || json_string_length(jt) != 64 ||
        at_hex_decode(json_string_value(jt), 64, th, sizeof th, &n) != AT_OK || n != 32) {
        rc = at_fail(&d, AT_E_BAD_REQUEST, "transcript_sha256: expected 64 hex digits");
        goto refused;
    }
    at_hex_encode(th, 32, th_hex); /* canonical lower case */
    if ((rc = session_proof_parse(jpr, &ts_ms, mac, &d)) != AT_OK)
        goto refused;
    const char *sid = json_string_value(js);
    extra.session_id = sid;
    /* Refusals before the MAC verifies stay the caller's own (anonymous,
     * counted per client): the session id is only a claim until then. */
    snprintf(actor, sizeof actor, "session:%.64s", sid);
    /* The MAC covers the transcript and the peer's session: a proof made
     * for one handshake (or for a secret release) is no proof for another. */
    snprintf(name, sizeof name, "%s%s:%s", AT_PEER_PROOF_PREFIX, th_hex, peer_sid ? peer_sid : "");
    rc = session_proof_check(v, sid, ts_ms, mac, name, false, &sp, &d);
    if (sp.instance[0]) {
        extra.policy = sp.ref;
        extra.instance_id = sp.instance;
    }
    if (rc != AT_OK)
        goto refused;
    snprintf(who.actor, sizeof who.actor, "session:%.50s", sid);
    if ((rc = sign_binding(v, sid, sp.instance, sp.ref, th_hex, sp.expires_ms, &jws, &d)) != AT_OK)
        goto refused;
    struct bind_job j = {.v = v,
                         .sid = sid,
                         .peer_sid = peer_sid,
                         .client = req->client,
                         .actor = actor,
                         .policy_ref = sp.ref,
                         .instance = sp.instance,
                         .th_hex = th_hex,
                         .proof_expires_ms = ts_ms + 2 * v->cfg.clock_skew_ms};
    memcpy(j.mac, mac, 32);
    if ((rc = at_db_write(v->db, bind_job, &j, &d)) != AT_OK) {
        at_http_error(resp, rc, d.msg, rc == AT_E_INTERNAL ? -1 : j.audit_id);
        goto done;
    }
    json_t *o = json_object();
    json_object_set_new(o, "binding", json_string(jws));
    json_object_set_new(o, "audit_id", j.audit_id ? json_integer(j.audit_id) : json_null());
    at_http_json(resp, 200, o);
    goto done;
refused:
    refuse(v, req, resp, &who, "peer.attest", rc, d.msg, &extra);
done:
    session_proof_cleanup(&sp);
    free(jws);
    json_decref(body);
}

void route_peer(verifier *v, at_http_req *req, at_http_resp *resp, const char *rest)
{
    if (strcmp(rest, "/bindings") == 0 && strcmp(req->method, "POST") == 0)
        peer_bind(v, req, resp);
    else
        at_http_error(resp, AT_E_NOT_FOUND, "peer: no such resource or method", -1);
}
