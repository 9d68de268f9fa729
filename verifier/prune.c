/* prune: the verifier's periodic maintenance (every 30 s and on SIGUSR1):
 * forget used nonces and release proofs past their expiry, end expired
 * sessions. Runs as one write job on the verifier's own database. */
#include <stdio.h>

#include "verifier.h"

/* Prune against the time high-water mark (schema/0003): the cutoff never
 * goes below the largest one used before, and is recorded in the same
 * transaction as the deletes, so nonce and proof checks on every replica
 * can refuse what a clock set back would otherwise let through again. */
at_err verifier_prune(sqlite3 *c, void *ctx, at_diag *d)
{
    (void)ctx;
    int64_t now = at_now_ms();
    int64_t cutoff = now - 60 * 1000, mark = 0;
    sqlite3_stmt *st = NULL;
    at_err rc = at_db_prepare(c, "SELECT pruned_before_ms FROM clock_watermark", &st, d);
    if (rc != AT_OK)
        return rc;
    int ms = sqlite3_step(st);
    if (ms == SQLITE_ROW)
        mark = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (ms != SQLITE_ROW && ms != SQLITE_DONE)
        return at_fail(d, AT_E_INTERNAL, "prune: clock_watermark: %s", sqlite3_errmsg(c));
    if (cutoff < mark) {
        at_log("warn", "clock",
               "wall clock is %lld s behind the time high-water mark: nonces and "
               "release proofs expiring before %lld ms are refused",
               (long long)((mark - cutoff) / 1000), (long long)mark);
        cutoff = mark;
    }
    static const char *sql[] = {
        "UPDATE clock_watermark SET pruned_before_ms = ?",
        "DELETE FROM nonces_used WHERE expires_ms < ?",
        "DELETE FROM proofs_used WHERE expires_ms < ?",
        ("UPDATE sessions SET ended_ms = expires_ms, end_reason = 'expired'"
         " WHERE ended_ms IS NULL AND expires_ms < ?"),
    };
    int ended = 0;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        rc = at_db_prepare(c, sql[i], &st, d);
        if (rc != AT_OK)
            return rc;
        sqlite3_bind_int64(st, 1, cutoff);
        int s = sqlite3_step(st);
        sqlite3_finalize(st);
        if (s != SQLITE_DONE)
            return at_fail(d, AT_E_INTERNAL, "prune: %s", sqlite3_errmsg(c));
        if (i == 3)
            ended = sqlite3_changes(c);
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
