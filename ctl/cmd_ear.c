/* attestctl ear verify: check an attestation result token (EAR in a JWS)
 * against the verifier's JWKS, as a relying party would, and print its
 * claims. Exit 0 when it verifies and is unexpired, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "ear.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: attestctl ear verify --jwks FILE|URL TOKEN|-\n"
               "Checks an attestation result token against the verifier's JWKS (a file, or its\n"
               "URL, e.g. http://127.0.0.1:8440/.well-known/jwks.json); prints the claims.\n");
}

int cmd_ear(int argc, char **argv)
{
    if (argc >= 2 && (ctl_is_help(argv[1]) || (argc >= 3 && ctl_is_help(argv[2])))) {
        usage(stdout);
        return CTL_OK;
    }
    if (argc >= 2 && strcmp(argv[1], "verify") != 0) {
        fprintf(stderr, "attestctl ear: unknown subcommand '%s' (verify)\n", argv[1]);
        usage(stderr);
        return CTL_USAGE;
    }
    if (argc != 5 || strcmp(argv[2], "--jwks") != 0) {
        if (argc < 4 || strcmp(argv[2], "--jwks") != 0)
            fprintf(stderr, "attestctl ear verify: missing --jwks FILE|URL\n");
        else
            fprintf(stderr, "attestctl ear verify: missing the TOKEN (or - for stdin)\n");
        usage(stderr);
        return CTL_USAGE;
    }
    const char *src = argv[3];
    json_t *jwks = NULL, *claims = NULL;
    uint8_t *tok = NULL;
    size_t tlen = 0;
    int ret = CTL_USAGE;
    if (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0) {
        long status = 0;
        at_diag d = {{0}};
        if (at_httpc_json("GET", src, NULL, NULL, &status, &jwks, &d) != AT_OK || status != 200) {
            const char *why = d.msg[0] ? d.msg : NULL;
            const char *emsg = json_string_value(json_object_get(json_object_get(jwks, "error"), "message"));
            if (!why && emsg && *emsg)
                why = emsg;
            if (!why)
                why = status == 404 ? "not found: is this the verifier's /.well-known/jwks.json?"
                                    : "not a JWKS answer";
            fprintf(stderr, "attestctl ear: %s: %s (HTTP %ld)\n", src, why, status);
            goto out;
        }
    } else {
        json_error_t je;
        if (!(jwks = json_load_file(src, 0, &je))) {
            ctl_json_load_error("ear", src, &je);
            goto out;
        }
    }
    if (strcmp(argv[4], "-") == 0) {
        if (ctl_read_file("-", 64 * 1024, &tok, &tlen) != 0)
            goto out;
    } else {
        tok = (uint8_t *)strdup(argv[4]);
        tlen = strlen(argv[4]);
    }
    while (tlen && (tok[tlen - 1] == '\n' || tok[tlen - 1] == ' ' || tok[tlen - 1] == '\r'))
        tok[--tlen] = '\0';
    char *t = realloc(tok, tlen + 1);
    if (!t)
        goto out;
    tok = (uint8_t *)t;
    tok[tlen] = '\0';
    at_diag d = {{0}};
    at_err rc = at_ear_verify((const char *)tok, jwks, (int64_t)time(NULL), &claims, &d);
    if (rc != AT_OK) {
        printf("{\"valid\":false,\"error\":{\"code\":\"%s\",\"message\":", at_err_str(rc));
        json_t *m = json_string(d.msg);
        char *s = json_dumps(m, JSON_ENCODE_ANY);
        printf("%s}}\n", s);
        free(s);
        json_decref(m);
        ret = CTL_FAILED;
        goto out;
    }
    json_t *o = json_object();
    json_object_set_new(o, "valid", json_true());
    json_object_set(o, "claims", claims);
    ctl_print_json(o);
    json_decref(o);
    ret = CTL_OK;
out:
    free(tok);
    json_decref(jwks);
    json_decref(claims);
    return ret;
}
