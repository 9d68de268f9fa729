/* attestctl session: `list` the verifier's sessions (GET /v1/sessions, with
 * --policy, --version, --all) and `revoke ID` one of them (DELETE
 * /v1/sessions/{id}, owner within its scope or admin; --reason is recorded
 * in the audit row). Prints the verifier's JSON. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: attestctl session list [--policy NAME [--version N]] [--all]\n"
               "                              [--verifier URL] [--token-file F]\n"
               "       attestctl session revoke ID [--reason TEXT] [--verifier URL] [--token-file F]\n"
               "list: live sessions (--all: ended ones too) the token may see (gateway,\n"
               "auditor, owner within its policies). revoke: end one session at once (owner\n"
               "within its policies, admin); its agent re-attests on its next check and comes\n"
               "back if the policy still admits it (to bar it, revoke the policy version).\n");
}

/* name=value (escaped) appended to q after '?' or '&'. false when too long. */
static bool add_param(char *q, size_t cap, const char *name, const char *value)
{
    char *e = curl_easy_escape(NULL, value, 0);
    if (!e)
        return false;
    size_t len = strlen(q);
    int n = snprintf(q + len, cap - len, "%s%s=%s", strchr(q, '?') ? "&" : "?", name, e);
    curl_free(e);
    return n > 0 && (size_t)n < cap - len;
}

int cmd_session(int argc, char **argv)
{
    if (argc < 2 || ctl_is_help(argv[1])) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    const char *sub = argv[1];
    bool list = strcmp(sub, "list") == 0, revoke = strcmp(sub, "revoke") == 0;
    if (!list && !revoke) {
        usage(stderr);
        return CTL_USAGE;
    }
    ctl_client cl;
    ctl_client_defaults(&cl);
    static const struct option opts[] = {CTL_CLIENT_OPTS,
                                         {"policy", required_argument, NULL, 'p'},
                                         {"version", required_argument, NULL, 'n'},
                                         {"all", no_argument, NULL, 'a'},
                                         {"reason", required_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    const char *policy = NULL, *version = NULL, *reason = NULL;
    bool all = false;
    int c;
    optind = 1;
    while ((c = ctl_getopt(&cl, argc - 1, argv + 1, opts)) != -1) {
        switch (c) {
        case 'p':
            policy = optarg;
            break;
        case 'n':
            version = optarg;
            break;
        case 'a':
            all = true;
            break;
        case 'r':
            reason = optarg;
            break;
        default:
            usage(stderr);
            return CTL_USAGE;
        }
    }
    if (cl.bad)
        return CTL_USAGE;
    char **args = argv + 1 + optind;
    int nargs = argc - 1 - optind;
    char path[1024];
    bool ok;
    if (list) {
        ok = nargs == 0 && !reason && (!version || policy);
        snprintf(path, sizeof path, "/v1/sessions");
        ok = ok && add_param(path, sizeof path, "state", all ? "all" : "active");
        if (ok && policy)
            ok = add_param(path, sizeof path, "policy", policy);
        if (ok && version)
            ok = add_param(path, sizeof path, "version", version);
    } else {
        ok = nargs == 1 && !policy && !version && !all && args[0][0] && strlen(args[0]) <= 64 &&
             strspn(args[0], "0123456789abcdefABCDEF-_.") == strlen(args[0]);
        if (ok) {
            snprintf(path, sizeof path, "/v1/sessions/%s", args[0]);
            if (reason)
                ok = add_param(path, sizeof path, "reason", reason);
        }
    }
    if (!ok) {
        usage(stderr);
        return CTL_USAGE;
    }
    json_t *out = NULL;
    int rc = ctl_client_call(&cl, list ? "GET" : "DELETE", path, NULL, &out);
    if (rc == 0)
        ctl_print_json(out);
    json_decref(out);
    return rc == 0 ? CTL_OK : rc < 0 ? CTL_USAGE : CTL_FAILED;
}
