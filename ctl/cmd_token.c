/* attestctl token create: a new API token for a role, written straight
 * into the verifier's database (only its SHA-256 is stored); the token
 * itself is printed once on stdout. */
#include <getopt.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "ctl.h"
#include "db.h"
#include "enc.h"

struct job {
    uint8_t hash[32];
    const char *role, *label;
    int64_t id;
};

static at_err insert(sqlite3 *c, void *ctx, at_diag *d)
{
    struct job *j = ctx;
    sqlite3_stmt *st = NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    at_err rc = at_db_prepare(c, "INSERT INTO api_tokens (token_sha256, role, label, created_ms)"
                                 " VALUES (?, ?, ?, ?)", &st, d);
    if (rc != AT_OK)
        return rc;
    sqlite3_bind_blob(st, 1, j->hash, 32, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->role, -1, SQLITE_STATIC);
    if (j->label)
        sqlite3_bind_text(st, 3, j->label, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE)
        return at_fail(d, AT_E_BAD_REQUEST, "token: %s", sqlite3_errmsg(c));
    j->id = sqlite3_last_insert_rowid(c);
    char msg[96];
    snprintf(msg, sizeof msg, "token %lld role %s", (long long)j->id, j->role);
    at_audit_row row = {.actor = "attestctl", .action = "token.create", .outcome = "ok",
                        .message = msg, .client = "local"};
    return at_audit_append(c, &row, NULL, d);
}

int cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"role", required_argument, NULL, 'r'},
                                         {"label", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *db_path = "./attest.db", *role = NULL, *label = NULL;
    if (argc < 2 || strcmp(argv[1], "create") != 0) {
        fprintf(stderr, "usage: attestctl token create --db DB --role admin|owner|auditor|gateway|agent [--label TEXT]\n");
        return argc >= 2 && strcmp(argv[1], "--help") == 0 ? CTL_OK : CTL_USAGE;
    }
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db_path = optarg; break;
        case 'r': role = optarg; break;
        case 'l': label = optarg; break;
        default:
            fprintf(stderr, "usage: attestctl token create --db DB --role ROLE [--label TEXT]\n");
            return c == 'h' ? CTL_OK : CTL_USAGE;
        }
    }
    static const char *roles[] = {"admin", "owner", "auditor", "gateway", "agent"};
    bool ok = false;
    for (size_t i = 0; role && i < 5; i++)
        ok = ok || strcmp(role, roles[i]) == 0;
    if (!ok) {
        fprintf(stderr, "attestctl token: --role must be admin, owner, auditor, gateway or agent\n");
        return CTL_USAGE;
    }
    uint8_t r[32];
    if (RAND_bytes(r, sizeof r) != 1)
        return CTL_USAGE;
    char *b = at_b64url_encode_new(AT_SPAN(r, sizeof r));
    char tok[80];
    snprintf(tok, sizeof tok, "at_%s", b);
    free(b);
    at_wipe(r, sizeof r);
    struct job j = {.role = role, .label = label};
    unsigned int hl = 32;
    EVP_Digest(tok, strlen(tok), j.hash, &hl, EVP_sha256(), NULL);
    at_db *db = NULL;
    at_diag d = {{0}};
    if (at_db_open(db_path, &db, &d) != AT_OK || at_db_write(db, insert, &j, &d) != AT_OK) {
        fprintf(stderr, "attestctl token: %s\n", d.msg);
        at_db_close(db);
        at_wipe(tok, sizeof tok);
        return CTL_USAGE;
    }
    at_db_close(db);
    printf("%s\n", tok);
    at_wipe(tok, sizeof tok);
    return CTL_OK;
}
