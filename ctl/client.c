/* ctl client: how attestctl reaches the verifier (URL, token) and prints
 * its answers. Shared by the policy, secret and audit subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "token.h"

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

int ctl_client_call(const ctl_client *c, const char *method, const char *path, json_t *body,
                    json_t **out)
{
    char url[1400];
    snprintf(url, sizeof url, "%s%s", c->url, path);
    long status = 0;
    json_t *resp = NULL;
    at_diag d = {{0}};
    if (at_httpc_json(method, url, c->token[0] ? c->token : NULL, body, &status, &resp, &d) != AT_OK) {
        fprintf(stderr, "attestctl: %s\n", d.msg);
        return -1;
    }
    if (status < 200 || status >= 300) {
        json_t *e = json_object_get(resp, "error");
        fprintf(stderr, "attestctl: %s %s: HTTP %ld %s: %s\n", method, path, status,
                json_string_value(json_object_get(e, "code")) ?: "",
                json_string_value(json_object_get(e, "message")) ?: "");
        if (out)
            *out = resp;
        else
            json_decref(resp);
        return (int)status;
    }
    if (out)
        *out = resp;
    else
        json_decref(resp);
    return 0;
}

void ctl_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        printf("%s\n", s);
    free(s);
}
