/* attestctl policy: put/get/revoke policies on the verifier, and import
 * the measurement files build tools print (nitro-cli build-enclave /
 * describe-eif, nitro-tpm-pcr-compute, KIWI-NG pcr_measurements.json, Nix
 * tpm_pcr.json) into a policy document. */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "policy.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: attestctl policy put NAME FILE.json [--allow-lint]\n"
            "       attestctl policy get NAME\n"
            "       attestctl policy revoke NAME VERSION\n"
            "       attestctl policy import [--format nitro-enclave|nitro-tpm] [--session-ttl S]\n"
            "                               [--max-age S] FILE...\n"
            "common: [--verifier URL] [--token-file F] (env ATTEST_VERIFIER, ATTEST_TOKEN)\n"
            "import merges the Measurements of each file (several files = several allowed\n"
            "values, for rolling upgrades) and prints the policy JSON on stdout.\n");
}

/* "PCR12" -> 12; -1 otherwise. */
static int pcr_key(const char *k)
{
    if (strncmp(k, "PCR", 3) != 0 || !isdigit((unsigned char)k[3]))
        return -1;
    char *end;
    long n = strtol(k + 3, &end, 10);
    return *end || n < 0 || n > 31 ? -1 : (int)n;
}

static void add_value(json_t *pcrs, int idx, const char *hex)
{
    char key[8];
    snprintf(key, sizeof key, "%d", idx);
    json_t *arr = json_object_get(pcrs, key);
    if (!arr) {
        arr = json_array();
        json_object_set_new(pcrs, key, arr);
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (strcasecmp(json_string_value(v), hex) == 0) return;
    char lower[200];
    snprintf(lower, sizeof lower, "%s", hex);
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    json_array_append_new(arr, json_string(lower));
}

static int import(int argc, char **argv)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"session-ttl", required_argument, NULL, 't'},
                                         {"max-age", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    const char *format = NULL;
    long ttl = 0, age = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 't': ttl = strtol(optarg, NULL, 10); break;
        case 'a': age = strtol(optarg, NULL, 10); break;
        default: usage(stderr); return CTL_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CTL_USAGE;
    }
    json_t *pcrs = json_object(), *files = json_array();
    const char *tool = NULL;
    bool saw_tpm = false, saw_enclave = false;
    int ret = CTL_USAGE;
    for (int i = optind; i < argc; i++) {
        json_error_t je;
        json_t *j = json_load_file(argv[i], JSON_REJECT_DUPLICATES, &je);
        if (!j) {
            fprintf(stderr, "attestctl policy import: %s: %s\n", argv[i], je.text);
            goto out;
        }
        json_t *m = json_object_get(j, "Measurements");
        json_t *ours = json_object_get(j, "pcrs");
        if (json_is_object(m)) {
            const char *alg = json_string_value(json_object_get(m, "HashAlgorithm"));
            if (!alg || strncasecmp(alg, "sha384", 6) != 0) {
                fprintf(stderr, "attestctl policy import: %s: HashAlgorithm %s, expected SHA384\n",
                        argv[i], alg ? alg : "(missing)");
                json_decref(j);
                goto out;
            }
            /* nitro-cli writes "Sha384 { ... }", the TPM tools "SHA384". */
            tool = strncmp(alg, "Sha384", 6) == 0 ? "nitro-cli" : "nitro-tpm-pcr-compute";
            const char *k;
            json_t *v;
            json_object_foreach(m, k, v)
            {
                int idx = pcr_key(k);
                if (idx < 0)
                    continue;
                if (!json_is_string(v)) {
                    fprintf(stderr, "attestctl policy import: %s: %s is not a string\n", argv[i], k);
                    json_decref(j);
                    goto out;
                }
                add_value(pcrs, idx, json_string_value(v));
                if (idx == 4 || idx == 7 || idx == 12)
                    saw_tpm = true;
                else
                    saw_enclave = true;
            }
        } else if (json_is_object(ours)) {
            /* A policy document (attest-agent --print-pcrs, attestctl sim pcrs). */
            const char *k;
            json_t *arr;
            if (!format)
                format = json_string_value(json_object_get(j, "format"));
            json_object_foreach(ours, k, arr)
            {
                size_t n;
                json_t *v;
                json_array_foreach(arr, n, v) if (json_is_string(v)) add_value(pcrs, atoi(k), json_string_value(v));
            }
            tool = tool ? tool : "attest";
        } else {
            fprintf(stderr, "attestctl policy import: %s: no \"Measurements\" object\n", argv[i]);
            json_decref(j);
            goto out;
        }
        json_array_append_new(files, json_string(argv[i]));
        json_decref(j);
    }
    if (!format)
        format = saw_tpm && !saw_enclave ? "nitro-tpm" : "nitro-enclave";
    json_t *pol = json_object();
    json_object_set_new(pol, "format", json_string(format));
    json_object_set(pol, "pcrs", pcrs);
    if (ttl)
        json_object_set_new(pol, "session_ttl_s", json_integer(ttl));
    if (age)
        json_object_set_new(pol, "max_document_age_s", json_integer(age));
    json_t *prov = json_object();
    json_object_set_new(prov, "tool", json_string(tool ? tool : "unknown"));
    json_object_set(prov, "files", files);
    json_object_set_new(pol, "provenance", prov);
    /* Validate and lint what we produce, so mistakes show here. */
    at_policy *p = NULL;
    at_diag d = {{0}};
    if (at_policy_from_json(pol, &p, &d) != AT_OK) {
        fprintf(stderr, "attestctl policy import: %s\n", d.msg);
        json_decref(pol);
        goto out;
    }
    if (at_policy_lint(p, &d) != AT_OK)
        fprintf(stderr, "attestctl policy import: warning: %s\n", d.msg);
    at_policy_free(p);
    ctl_print_json(pol);
    json_decref(pol);
    ret = CTL_OK;
out:
    json_decref(pcrs);
    json_decref(files);
    return ret;
}

int cmd_policy(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CTL_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        usage(stdout);
        return CTL_OK;
    }
    if (strcmp(sub, "import") == 0)
        return import(argc - 1, argv + 1);
    ctl_client cl;
    ctl_client_defaults(&cl);
    bool allow_lint = false;
    static const struct option opts[] = {{"verifier", required_argument, NULL, 'v'},
                                         {"token-file", required_argument, NULL, 't'},
                                         {"allow-lint", no_argument, NULL, 'L'},
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
        switch (c) {
        case 'v': snprintf(cl.url, sizeof cl.url, "%s", optarg); break;
        case 't': if (ctl_client_token_file(&cl, optarg) != 0) return CTL_USAGE; break;
        case 'L': allow_lint = true; break;
        default: usage(stderr); return CTL_USAGE;
        }
    }
    char **args = argv + 1 + optind;
    int nargs = argc - 1 - optind;
    char path[512];
    json_t *out = NULL;
    int rc;
    if (strcmp(sub, "put") == 0 && nargs == 2) {
        json_error_t je;
        json_t *body = json_load_file(args[1], JSON_REJECT_DUPLICATES, &je);
        if (!body) {
            fprintf(stderr, "attestctl policy put: %s: %s (line %d)\n", args[1], je.text, je.line);
            return CTL_USAGE;
        }
        snprintf(path, sizeof path, "/v1/policies/%s%s", args[0], allow_lint ? "?allow_lint=1" : "");
        rc = ctl_client_call(&cl, "PUT", path, body, &out);
        json_decref(body);
    } else if (strcmp(sub, "get") == 0 && nargs == 1) {
        snprintf(path, sizeof path, "/v1/policies/%s", args[0]);
        rc = ctl_client_call(&cl, "GET", path, NULL, &out);
    } else if (strcmp(sub, "revoke") == 0 && nargs == 2) {
        snprintf(path, sizeof path, "/v1/policies/%s/versions/%s", args[0], args[1]);
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
