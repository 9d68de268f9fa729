/* attestctl token create: a new API token for a role, written straight
 * into the verifier's database (only its SHA-256 is stored); the token
 * itself is printed once on stdout. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "db.h"
#include "token.h"

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
    char tok[AT_TOKEN_MAX];
    if (at_token_generate(tok) != AT_OK)
        return CTL_USAGE;
    at_token_insert_job j = {.role = role, .label = label, .actor = "attestctl"};
    at_token_hash(tok, j.hash);
    at_db *db = NULL;
    at_diag d = {{0}};
    if (at_db_open(db_path, &db, &d) != AT_OK || at_db_write(db, at_token_insert, &j, &d) != AT_OK) {
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
