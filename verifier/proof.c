/* proof: a session's proof of possession, the one check behind every
 * route a session authenticates with its own key instead of a token
 * (secret release, peer bindings): the session is known and live, the
 * proof's timestamp is within the clock skew, and its MAC was made with
 * the session's key over what is asked for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "enc.h"
#include "keys.h"
#include "seal.h"
#include "verifier.h"

at_err session_proof_parse(const json_t *proof, int64_t *ts_ms, uint8_t mac[32], at_diag *d)
{
    if (!json_is_string(proof))
        return at_fail(d, AT_E_BAD_REQUEST, "proof: expected \"<ms>.<base64url MAC>\"");
    return at_release_proof_parse(json_string_value(proof), ts_ms, mac, d);
}

void session_proof_cleanup(session_proof *p)
{
    free(p->key_config);
    p->key_config = NULL;
    p->key_config_len = 0;
}

at_err session_proof_check(verifier *v, const char *sid, int64_t ts_ms, const uint8_t mac[32],
                           const char *name, bool want_key_config, session_proof *out, at_diag *d)
{
    at_err rc = AT_OK;
    uint8_t proof_key[32];
    at_db_stmt *st = NULL;
    at_db_conn *c = at_db_read_acquire(v->db);
    memset(out, 0, sizeof *out);
    if (!c)
        return at_fail(d, AT_E_INTERNAL, "database unavailable");
    if (at_db_prepare(c,
                      "SELECT policy, policy_version, instance_id, key_config, proof_key,"
                      " expires_ms, ended_ms, end_reason FROM sessions WHERE id = $1",
                      &st, NULL) != AT_OK) {
        rc = at_fail(d, AT_E_INTERNAL, "database: %s", at_db_errmsg(c));
        goto out;
    }
    at_db_bind_text(st, 1, sid, -1);
    int s = at_db_step(st);
    if (s != AT_DB_ROW) {
        rc = s == AT_DB_DONE ? at_fail(d, AT_E_SESSION_EXPIRED, "session: %.64s unknown", sid)
                             : at_fail(d, AT_E_INTERNAL, "database: session %.64s: %s", sid, at_db_errmsg(c));
        goto out;
    }
    const char *pol = at_db_column_text(st, 0), *inst = at_db_column_text(st, 2);
    snprintf(out->policy, sizeof out->policy, "%s", pol ? pol : "?");
    snprintf(out->ref, sizeof out->ref, "%s@%lld", out->policy, (long long)at_db_column_int64(st, 1));
    snprintf(out->instance, sizeof out->instance, "%s", inst ? inst : "");
    out->expires_ms = at_db_column_int64(st, 5);
    if (!at_db_column_is_null(st, 6)) {
        rc = at_fail(d, AT_E_SESSION_EXPIRED, "session: ended (%s)", at_db_column_text(st, 7));
        goto out;
    }
    if (out->expires_ms <= at_now_ms()) {
        rc = at_fail(d, AT_E_SESSION_EXPIRED, "session: expired");
        goto out;
    }
    if (keys_proof_key_open(v->keys, sid,
                            AT_SPAN(at_db_column_blob(st, 4), (size_t)at_db_column_bytes(st, 4)), proof_key,
                            d) != AT_OK) {
        /* The storage key opened it at start: this is our fault, not the caller's. */
        at_diag_prefix(d, "session proof key: ");
        rc = AT_E_INTERNAL;
        goto out;
    }
    int64_t now = at_now_ms(), skew = v->cfg.clock_skew_ms;
    if (ts_ms < now - skew || ts_ms > now + skew) {
        char t_ts[40], t_now[40];
        at_time_rfc3339_ms(ts_ms, t_ts, sizeof t_ts);
        at_time_rfc3339_ms(now, t_now, sizeof t_now);
        rc = at_fail(
            d, AT_E_UNAUTHORIZED,
            "proof: timestamp %s is %lld ms from the verifier's clock (%s), at most %lld allowed (stale)",
            t_ts, (long long)(ts_ms - now), t_now, (long long)skew);
        goto out;
    }
    if (!at_release_proof_check(AT_SPAN(proof_key, 32), name, sid, ts_ms, mac)) {
        rc = at_fail(d, AT_E_UNAUTHORIZED, "proof: MAC does not verify with the session key");
        goto out;
    }
    if (want_key_config) {
        if (at_db_column_is_null(st, 3)) {
            rc = at_fail(d, AT_E_KEY_REQUIRED, "session: no attested key to seal the secret to");
            goto out;
        }
        out->key_config_len = (size_t)at_db_column_bytes(st, 3);
        if (!(out->key_config = malloc(out->key_config_len ? out->key_config_len : 1))) {
            rc = at_fail(d, AT_E_INTERNAL, "session %.64s: key_config: out of memory", sid);
            goto out;
        }
        memcpy(out->key_config, at_db_column_blob(st, 3), out->key_config_len);
    }
out:
    at_wipe(proof_key, sizeof proof_key);
    at_db_finalize(st);
    at_db_read_release(v->db, c);
    if (rc != AT_OK)
        session_proof_cleanup(out);
    return rc;
}
