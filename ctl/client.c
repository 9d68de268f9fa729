/* ctl client: how attestctl reaches the verifier (URL, token) and prints
 * its answers. Shared by the policy, secret and audit subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "httpc.h"
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

/* --verifier (or ATTEST_VERIFIER) as given: a URL, or unix:PATH[,URL] /
 * vsock:CID:PORT[,URL] whose URL's origin is routed over that stream
 * (httpc.h), once per process. NULL with d set on a bad address. */
static const char *verifier_url(const char *spec, at_diag *d)
{
    static char routed_spec[1024], routed_url[1024];
    if (strncmp(spec, "unix:", 5) != 0 && strncmp(spec, "vsock:", 6) != 0)
        return spec;
    if (strcmp(spec, routed_spec) == 0)
        return routed_url;
    if (at_httpc_target("--verifier", spec, routed_url, sizeof routed_url, d) != AT_OK)
        return NULL;
    snprintf(routed_spec, sizeof routed_spec, "%s", spec);
    return routed_url;
}

int ctl_client_call(const ctl_client *c, const char *method, const char *path, json_t *body, json_t **out)
{
    long status = 0;
    json_t *resp = NULL;
    at_diag d = {{0}};
    const char *url = verifier_url(c->url, &d);
    if (!url) {
        fprintf(stderr, "attestctl: %s\n", d.msg);
        if (out)
            *out = NULL;
        return -1;
    }
    at_vclient vc = {.url = url, .bearer = c->token};
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
