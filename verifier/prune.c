/* prune: the verifier's periodic maintenance (every 30 s and on SIGUSR1):
 * forget used nonces and release proofs past their expiry, end expired
 * sessions. Runs as one write job on the verifier's own database. */
#include <stdio.h>

#include "verifier.h"

/* Prune against the time high-water mark (schema/0003): the cutoff never
 * goes below the largest one used before, and is recorded in the same
 * transaction as the deletes, so nonce and proof checks on every replica
 * can refuse what a clock set back would otherwise let through again. */
at_err verifier_prune(at_db_conn *c, void *ctx, at_diag *d)
{
    (void)ctx;
    int64_t now = at_now_ms();
    int64_t cutoff = now - 60 * 1000, mark = 0;
    at_db_stmt *st = NULL;
    at_err rc = at_db_prepare(c, "SELECT pruned_before_ms FROM clock_watermark", &st, d);
    if (rc != AT_OK)
        return rc;
    int ms = at_db_step(st);
    if (ms == AT_DB_ROW)
        mark = at_db_column_int64(st, 0);
    at_db_finalize(st);
    if (ms != AT_DB_ROW && ms != AT_DB_DONE)
        return at_fail(d, AT_E_INTERNAL, "prune: clock_watermark: %s", at_db_errmsg(c));
    if (cutoff < mark) {
        at_log("warn", "clock",
               "wall clock is %lld s behind the time high-water mark: nonces and "
               "release proofs expiring before %lld ms are refused",
               (long long)((mark - cutoff) / 1000), (long long)mark);
        cutoff = mark;
    }
    static const char *sql[] = {
        "UPDATE clock_watermark SET pruned_before_ms = $1",
        "DELETE FROM nonces_used WHERE expires_ms < $1",
        "DELETE FROM proofs_used WHERE expires_ms < $1",
        ("UPDATE sessions SET ended_ms = expires_ms, end_reason = 'expired'"
         " WHERE ended_ms IS NULL AND expires_ms < $1"),
    };
    int ended = 0;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        rc = at_db_prepare(c, sql[i], &st, d);
        if (rc != AT_OK)
            return rc;
        at_db_bind_int64(st, 1, cutoff);
        int s = at_db_step(st);
        at_db_finalize(st);
        if (s != AT_DB_DONE)
            return at_fail(d, AT_E_INTERNAL, "prune: %s", at_db_errmsg(c));
        if (i == 3)
            ended = at_db_changes(c);
    }
    at_log("debug", "prune", "pruned before %lld ms", (long long)cutoff);
    if (ended == 0)
        return AT_OK;
    /* Ending sessions is a state change: it gets its row. */
    char msg[64];
    snprintf(msg, sizeof msg, "%d expired session(s) ended", ended);
    at_audit_row row = {.actor = "verifier", .action = "session.expire", .outcome = "ok", .message = msg};
    return at_audit_append(c, &row, NULL, d);
}
