/* attestctl token: `create` writes a new API token for a role straight into
 * the verifier's database (only its SHA-256 is stored; the token itself is
 * printed once on stdout), optionally expiring and limited to policies;
 * `list` and `revoke ID` go through the verifier's API (admin token). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "db.h"
#include "token.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: attestctl token create --db DB --role admin|owner|auditor|gateway|agent\n"
               "                              [--label TEXT] [--expires DURATION] [--policies a,b]\n"
               "                              [--out FILE] [--create]\n"
               "       attestctl token list [--verifier URL] [--token-file F]\n"
               "       attestctl token revoke ID [--verifier URL] [--token-file F]\n"
               "DURATION: a number and d, h, m or s (30d, 12h). --policies: owner and gateway\n"
               "tokens only; the token then acts on (and sees) only those policies. --out FILE\n"
               "writes the token to FILE, mode 0600 (else stdout). DB must exist (the verifier\n"
               "made it) unless --create.\n");
}

static int create(int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"role", required_argument, NULL, 'r'},
                                         {"label", required_argument, NULL, 'l'},
                                         {"expires", required_argument, NULL, 'e'},
                                         {"policies", required_argument, NULL, 'p'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"create", no_argument, NULL, 'C'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *db_path = "./attest.db", *role = NULL, *label = NULL, *policies = NULL, *out = NULL;
    bool create_db = false;
    int64_t lifetime_ms = 0;
    at_diag d = {{0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            db_path = optarg;
            break;
        case 'r':
            role = optarg;
            break;
        case 'l':
            label = optarg;
            break;
        case 'p':
            policies = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'C':
            create_db = true;
            break;
        case 'e':
            if (at_token_parse_duration(optarg, &lifetime_ms, &d) != AT_OK) {
                fprintf(stderr, "attestctl token: --%s\n", d.msg);
                return CTL_USAGE;
            }
            break;
        default:
            usage(c == 'h' ? stdout : stderr);
            return c == 'h' ? CTL_OK : CTL_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return CTL_USAGE;
    }
    static const char *roles[] = {"admin", "owner", "auditor", "gateway", "agent"};
    bool ok = false;
    for (size_t i = 0; role && i < 5; i++)
        ok = ok || strcmp(role, roles[i]) == 0;
    if (!role) {
        fprintf(stderr, "attestctl token create: missing --role (admin, owner, auditor, gateway or agent)\n");
        return CTL_USAGE;
    }
    if (!ok) {
        fprintf(stderr, "attestctl token: --role must be admin, owner, auditor, gateway or agent\n");
        return CTL_USAGE;
    }
    /* A typo in --db must not make a fresh database nobody serves. */
    if (!create_db && !at_db_is_url(db_path) && access(db_path, F_OK) != 0) {
        fprintf(stderr,
                "attestctl token create: --db %s: %s (the verifier's database; --create makes a new one)\n",
                db_path, strerror(errno));
        return CTL_USAGE;
    }
    char tok[AT_TOKEN_MAX];
    if (at_token_generate(tok) != AT_OK)
        return CTL_USAGE;
    at_token_insert_job j = {.role = role, .label = label, .actor = "attestctl", .policies = policies};
    if (lifetime_ms)
        j.expires_ms = at_wall_ms() + lifetime_ms;
    at_db *db = NULL;
    if (at_token_hash(tok, j.hash, &d) != AT_OK || at_db_open(db_path, &db, &d) != AT_OK ||
        at_db_write(db, at_token_insert, &j, &d) != AT_OK) {
        fprintf(stderr, "attestctl token: %s\n", d.msg);
        at_db_close(db);
        at_wipe(tok, sizeof tok);
        return CTL_USAGE;
    }
    at_db_close(db);
    int wrc = ctl_write_token(out, tok);
    at_wipe(tok, sizeof tok);
    return wrc == 0 ? CTL_OK : CTL_USAGE;
}

int cmd_token(int argc, char **argv)
{
    if (argc < 2 || ctl_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "create") == 0)
        return create(argc - 1, argv + 1);
    ctl_client cl;
    ctl_client_defaults(&cl);
    static const struct option opts[] = {CTL_CLIENT_OPTS, {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    if ((c = ctl_getopt(&cl, argc - 1, argv + 1, opts)) != -1) {
        usage(stderr);
        return CTL_USAGE;
    }
    if (cl.bad)
        return CTL_USAGE;
    char **args = argv + 1 + optind;
    int nargs = argc - 1 - optind;
    char path[128];
    json_t *out = NULL;
    int rc;
    if (strcmp(sub, "list") == 0 && nargs == 0) {
        rc = ctl_client_call(&cl, "GET", "/v1/tokens", NULL, &out);
    } else if (strcmp(sub, "revoke") == 0 && nargs == 1 && strlen(args[0]) <= 18 &&
               strspn(args[0], "0123456789") == strlen(args[0]) && args[0][0]) {
        snprintf(path, sizeof path, "/v1/tokens/%s", args[0]);
        rc = ctl_client_call(&cl, "DELETE", path, NULL, &out);
    } else {
        usage(stderr);
        return CTL_USAGE;
    }
    if (rc == 0)
        ctl_print_json(out);
    json_decref(out);
    return rc == 0 ? CTL_OK : rc < 0 ? CTL_USAGE : CTL_FAILED;
}
