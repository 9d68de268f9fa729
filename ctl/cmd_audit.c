/* attestctl audit query|verify|export: the security team's view of the
 * verifier's hash-chained audit log. query and export print JSON lines
 * (export follows every page). verify exits 1 when the chain is broken;
 * it checks from the verifier's last checkpoint unless --full. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "ctl.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: attestctl audit query [--since T] [--until T] [--outcome ok|refused|error]\n"
               "                             [--action A] [--policy NAME] [--instance ID] [--limit N]\n"
               "                             [--cursor C]   # one page; the next page's C on stderr\n"
               "       attestctl audit export [same filters]      # every page, JSON lines\n"
               "       attestctl audit verify [--full]  # default: from the last verified row\n"
               "common: [--verifier URL] [--token-file F]; T is RFC 3339 UTC or ms since the epoch\n"
               "A is one of:");
    for (size_t i = 0; at_audit_actions[i]; i++)
        fprintf(f, "%s %s", i % 6 == 5 ? "\n   " : "", at_audit_actions[i]);
    fprintf(f, "\n");
}

int cmd_audit(int argc, char **argv)
{
    if (argc < 2 || ctl_is_help(argv[1]) || (argc >= 3 && ctl_is_help(argv[2]))) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    const char *sub = argv[1];
    ctl_client cl;
    ctl_client_defaults(&cl);
    static const struct option opts[] = {CTL_CLIENT_OPTS,
                                         {"since", required_argument, NULL, 's'},
                                         {"until", required_argument, NULL, 'u'},
                                         {"outcome", required_argument, NULL, 'o'},
                                         {"action", required_argument, NULL, 'a'},
                                         {"policy", required_argument, NULL, 'p'},
                                         {"instance", required_argument, NULL, 'i'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"full", no_argument, NULL, 'F'},
                                         {"cursor", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    const char *names[128] = {0};
    char *query = calloc(1, 4096);
    size_t qlen = 0;
    int c, ret = CTL_USAGE;
    bool full = false;
    optind = 1;
    CURL *esc = curl_easy_init();
    while ((c = ctl_getopt(&cl, argc - 1, argv + 1, opts)) != -1) {
        const char *key = NULL;
        switch (c) {
        case 's':
            key = "since";
            break;
        case 'u':
            key = "until";
            break;
        case 'o':
            key = "outcome";
            break;
        case 'a': {
            bool known = false;
            for (size_t i = 0; at_audit_actions[i]; i++)
                known = known || strcmp(optarg, at_audit_actions[i]) == 0;
            if (!known) {
                fprintf(stderr, "attestctl audit: --action: unknown action '%s'; one of:", optarg);
                for (size_t i = 0; at_audit_actions[i]; i++)
                    fprintf(stderr, " %s", at_audit_actions[i]);
                fprintf(stderr, "\n");
                goto out;
            }
            key = "action";
            break;
        }
        case 'c':
            if (strcmp(sub, "query") != 0) {
                fprintf(stderr, "attestctl audit %s: --cursor is for query (export follows every page)\n",
                        sub);
                goto out;
            }
            key = "cursor";
            break;
        case 'p':
            key = "policy";
            break;
        case 'i':
            key = "instance";
            break;
        case 'l':
            key = "limit";
            break;
        case 'F':
            if (strcmp(sub, "verify") != 0) {
                usage(stderr);
                goto out;
            }
            full = true;
            continue;
        default:
            usage(stderr);
            goto out;
        }
        names[c] = key;
        char *e = curl_easy_escape(esc, optarg, 0);
        qlen += (size_t)snprintf(query + qlen, 4096 - qlen, "%s%s=%s", qlen ? "&" : "", key, e);
        curl_free(e);
        if (qlen >= 4096)
            goto out;
    }
    if (cl.bad)
        goto out;
    json_t *out = NULL;
    if (strcmp(sub, "verify") == 0) {
        int rc =
            ctl_client_call(&cl, "GET", full ? "/v1/audit/verify?full=1" : "/v1/audit/verify", NULL, &out);
        if (rc == 0) {
            ctl_print_json(out);
            ret = json_is_true(json_object_get(out, "ok")) ? CTL_OK : CTL_FAILED;
        } else {
            ret = rc < 0 ? CTL_USAGE : CTL_FAILED;
        }
        json_decref(out);
        goto out;
    }
    if (strcmp(sub, "query") != 0 && strcmp(sub, "export") != 0) {
        usage(stderr);
        goto out;
    }
    bool all = strcmp(sub, "export") == 0;
    char cursor[32] = "";
    for (;;) {
        char path[4400];
        snprintf(path, sizeof path, "/v1/audit?%s%s%s%s", query, cursor[0] && qlen ? "&" : "",
                 cursor[0] ? "cursor=" : "", cursor);
        int rc = ctl_client_call(&cl, "GET", path, NULL, &out);
        if (rc != 0) {
            json_decref(out);
            ret = rc < 0 ? CTL_USAGE : CTL_FAILED;
            goto out;
        }
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(out, "entries"), i, e)
        {
            char *s = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
            printf("%s\n", s);
            free(s);
        }
        const char *next = json_string_value(json_object_get(out, "next"));
        if (!all && next) /* stdout stays JSON lines: where to go on goes to stderr */
            fprintf(stderr, "next page: attestctl audit query --cursor %s (same filters)\n", next);
        if (!all || !next) {
            json_decref(out);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", next);
        json_decref(out);
    }
    ret = CTL_OK;
out:
    (void)names;
    curl_easy_cleanup(esc);
    free(query);
    return ret;
}
