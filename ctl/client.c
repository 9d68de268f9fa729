/* ctl client: how attestctl reaches the verifier (URL, token) and prints
 * its answers. Shared by the policy, secret and audit subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "token.h"
#include "vclient.h"

void ctl_client_defaults(ctl_client *c)
{
    memset(c, 0, sizeof *c);
    const char *u = getenv("ATTEST_VERIFIER");
    snprintf(c->url, sizeof c->url, "%s", u && *u ? u : "http://127.0.0.1:8440");
    const char *t = getenv("ATTEST_TOKEN");
    if (t)
        snprintf(c->token, sizeof c->token, "%s", t);
}

int ctl_client_token_file(ctl_client *c, const char *path)
{
    at_diag d = {{0}};
    if (at_token_read_file(path, c->token, sizeof c->token, &d) != AT_OK) {
        fprintf(stderr, "attestctl: %s\n", d.msg);
        return -1;
    }
    return 0;
}

int ctl_getopt(ctl_client *cl, int argc, char **argv, const struct option *opts)
{
    for (;;) {
        int c = getopt_long(argc, argv, "", opts, NULL);
        if (c == 'v') {
            snprintf(cl->url, sizeof cl->url, "%s", optarg);
        } else if (c == 't') {
            if (ctl_client_token_file(cl, optarg) != 0) {
                cl->bad = true;
                return -1;
            }
        } else {
            return c;
        }
    }
}

int ctl_client_call(const ctl_client *c, const char *method, const char *path, json_t *body, json_t **out)
{
    at_vclient vc = {.url = c->url, .bearer = c->token};
    long status = 0;
    json_t *resp = NULL;
    at_diag d = {{0}};
    at_err rc = at_vclient_call(&vc, method, path, body, &status, &resp, &d);
    if (rc != AT_OK)
        fprintf(stderr, "attestctl: %s\n", d.msg);
    if (out)
        *out = resp;
    else
        json_decref(resp);
    return rc == AT_OK ? 0 : status ? (int)status : -1;
}

void ctl_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        printf("%s\n", s);
    free(s);
}
