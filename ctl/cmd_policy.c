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
#include "enc.h"
#include "nitro.h"
#include "pcrimport.h"
#include "policy.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: attestctl policy put NAME FILE.json [--allow-lint]\n"
        "       attestctl policy get NAME\n"
        "       attestctl policy revoke NAME VERSION\n"
        "       attestctl policy import [--format nitro-enclave|nitro-tpm] [--session-ttl S]\n"
        "                               [--max-age S] [--allow-missing N]... FILE...|-\n"
        "       attestctl policy kms-key-policy NAME|--file POLICY.json [--principal ARN] [--key-arn ARN]\n"
        "       attestctl policy pcr --extend FILE [--index N] [--from HEX]\n"
        "common: [--verifier URL] [--token-file F] (env ATTEST_VERIFIER, ATTEST_TOKEN)\n"
        "import merges the Measurements of each file (several files = several allowed\n"
        "values, for rolling upgrades) and prints the policy JSON on stdout. Unknown keys,\n"
        "missing registers (PCR0-2 of an EIF, PCR4/7/12 of an attestable AMI) and mixed\n"
        "or contradicting formats are errors.\n");
}

#define IMPORT_MAX AT_PCRIMPORT_MAX_FILE

static int import(int argc, char **argv)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"session-ttl", required_argument, NULL, 't'},
                                         {"max-age", required_argument, NULL, 'a'},
                                         {"allow-missing", required_argument, NULL, 'm'},
                                         {NULL, 0, NULL, 0}};
    const char *format = NULL;
    long ttl = 0, age = 0;
    uint32_t allow_missing = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 't':
            ttl = strtol(optarg, NULL, 10);
            break;
        case 'a':
            age = strtol(optarg, NULL, 10);
            break;
        case 'm': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || end == optarg || n < 0 || n > 31) {
                fprintf(stderr, "attestctl policy import: --allow-missing %s: expected a PCR index 0-31\n",
                        optarg);
                return CTL_USAGE;
            }
            allow_missing |= 1u << n;
            break;
        }
        default:
            usage(stderr);
            return CTL_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CTL_USAGE;
    }
    if (format && strcmp(format, "nitro-enclave") != 0 && strcmp(format, "nitro-tpm") != 0) {
        fprintf(stderr, "attestctl policy import: --format %s: expected nitro-enclave or nitro-tpm\n",
                format);
        return CTL_USAGE;
    }
    if (argc - optind > AT_PCRIMPORT_MAX_FILES) {
        fprintf(stderr, "attestctl policy import: %d files, at most %d\n", argc - optind,
                AT_PCRIMPORT_MAX_FILES);
        return CTL_USAGE;
    }
    at_span spans[AT_PCRIMPORT_MAX_FILES];
    const char *names[AT_PCRIMPORT_MAX_FILES];
    uint8_t *raws[AT_PCRIMPORT_MAX_FILES] = {0};
    size_t n = 0;
    int ret = CTL_USAGE;
    for (int i = optind; i < argc; i++, n++) {
        size_t rawlen = 0;
        names[n] = strcmp(argv[i], "-") == 0 ? "(stdin)" : argv[i];
        if (ctl_read_file(argv[i], IMPORT_MAX, &raws[n], &rawlen) != 0)
            goto out;
        spans[n] = AT_SPAN(raws[n], rawlen);
    }
    at_pcrimport_opts io = {
        .format = format, .session_ttl_s = ttl, .max_document_age_s = age, .allow_missing = allow_missing};
    json_t *pol = NULL;
    at_diag d = {{0}};
    if (at_pcrimport(spans, names, n, &io, &pol, &d) != AT_OK) {
        fprintf(stderr, "attestctl policy import: %s\n", d.msg);
        goto out;
    }
    /* Lint what we produce, so mistakes show here. */
    at_policy *p = NULL;
    if (at_policy_from_json(pol, &p, &d) == AT_OK && at_policy_lint(p, &d) != AT_OK)
        fprintf(stderr, "attestctl policy import: warning: %s\n", d.msg);
    at_policy_free(p);
    ctl_print_json(pol);
    json_decref(pol);
    ret = CTL_OK;
out:
    for (size_t i = 0; i < n && i < AT_PCRIMPORT_MAX_FILES; i++)
        free(raws[i]);
    return ret;
}

/* AWS KMS key policy statements equivalent to a policy's PCRs: an Allow
 * for the principal with every pinned register as a condition, and one
 * explicit Deny per register for everyone whose request lacks that value
 * (no attestation included): KMS policies are additive, so without the Deny
 * any other Allow on the key bypasses the attestation condition. Condition
 * keys: kms:RecipientAttestation:ImageSha384 / PCR<N> (Nitro Enclaves),
 * kms:RecipientAttestation:NitroTPMPCR<N> (NitroTPM). */
static json_t *kms_statements(json_t *pol, const char *principal, const char *key_arn, int *warnings)
{
    const char *format = json_string_value(json_object_get(pol, "format"));
    json_t *pcrs = json_object_get(pol, "pcrs");
    bool tpm = format && strcmp(format, "nitro-tpm") == 0;
    json_t *allow_cond = json_object(), *stmts = json_array(), *denies = json_array();
    static const char *const actions[] = {"kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair",
                                          "kms:DeriveSharedSecret"};
    /* registers in numeric order */
    for (int idx = 0; idx < 32; idx++) {
        char k[8], ck[64];
        snprintf(k, sizeof k, "%d", idx);
        json_t *vals = json_object_get(pcrs, k);
        if (!json_is_array(vals) || json_array_size(vals) == 0)
            continue;
        if (tpm)
            snprintf(ck, sizeof ck, "kms:RecipientAttestation:NitroTPMPCR%d", idx);
        else if (idx == 0)
            snprintf(ck, sizeof ck, "kms:RecipientAttestation:ImageSha384");
        else
            snprintf(ck, sizeof ck, "kms:RecipientAttestation:PCR%d", idx);
        if (json_array_size(vals) > 1) {
            fprintf(stderr,
                    "attestctl policy kms-key-policy: warning: PCR%d allows %zu values (%s matches any of"
                    " them); pin one value per register once the rollout is over\n",
                    idx, json_array_size(vals), ck);
            (*warnings)++;
        }
        json_t *v = json_array_size(vals) == 1 ? json_incref(json_array_get(vals, 0)) : json_deep_copy(vals);
        json_object_set(allow_cond, ck, v);
        json_t *deny = json_object(), *dc = json_object(), *neq = json_object(), *acts = json_array();
        char sid[64];
        snprintf(sid, sizeof sid, "DenyWithoutAttestedPCR%d", idx);
        json_object_set_new(deny, "Sid", json_string(sid));
        json_object_set_new(deny, "Effect", json_string("Deny"));
        json_object_set_new(deny, "Principal", json_pack("{s:s}", "AWS", "*"));
        for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
            json_array_append_new(acts, json_string(actions[i]));
        json_object_set_new(deny, "Action", acts);
        json_object_set_new(deny, "Resource", json_string(key_arn ? key_arn : "*"));
        json_object_set_new(neq, ck, v);
        json_object_set_new(dc, "StringNotEqualsIgnoreCase", neq);
        json_object_set_new(deny, "Condition", dc);
        json_array_append_new(denies, deny);
    }
    json_t *allow = json_object(), *acts = json_array();
    json_object_set_new(allow, "Sid", json_string(tpm ? "AllowAttestedNitroTPM" : "AllowAttestedEnclave"));
    json_object_set_new(allow, "Effect", json_string("Allow"));
    json_object_set_new(allow, "Principal", json_pack("{s:s}", "AWS", principal));
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        json_array_append_new(acts, json_string(actions[i]));
    json_object_set_new(allow, "Action", acts);
    json_object_set_new(allow, "Resource", json_string(key_arn ? key_arn : "*"));
    json_object_set_new(allow, "Condition", json_pack("{s:o}", "StringEqualsIgnoreCase", allow_cond));
    json_array_append_new(stmts, allow);
    json_array_extend(stmts, denies);
    json_decref(denies);
    return json_pack("{s:s,s:o}", "Version", "2012-10-17", "Statement", stmts);
}

static int kms_key_policy(int argc, char **argv)
{
    static const struct option opts[] = {{"file", required_argument, NULL, 'f'},
                                         {"principal", required_argument, NULL, 'p'},
                                         {"key-arn", required_argument, NULL, 'k'},
                                         CTL_CLIENT_OPTS,
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL, *principal = NULL, *key_arn = NULL;
    ctl_client cl;
    ctl_client_defaults(&cl);
    int c;
    optind = 1;
    while ((c = ctl_getopt(&cl, argc, argv, opts)) != -1) {
        switch (c) {
        case 'f':
            file = optarg;
            break;
        case 'p':
            principal = optarg;
            break;
        case 'k':
            key_arn = optarg;
            break;
        default:
            usage(stderr);
            return CTL_USAGE;
        }
    }
    if (cl.bad)
        return CTL_USAGE;
    if ((file != NULL) == (optind == argc - 1) || optind < argc - 1) {
        fprintf(stderr, "attestctl policy kms-key-policy: give a stored policy NAME or --file POLICY.json\n");
        return CTL_USAGE;
    }
    json_t *pol = NULL, *resp = NULL;
    if (file) {
        json_error_t je;
        if (!(pol = json_load_file(file, JSON_REJECT_DUPLICATES, &je))) {
            ctl_json_load_error("policy kms-key-policy", file, &je);
            return CTL_USAGE;
        }
    } else {
        char path[512];
        snprintf(path, sizeof path, "/v1/policies/%s", argv[optind]);
        int rc = ctl_client_call(&cl, "GET", path, NULL, &resp);
        if (rc != 0) {
            json_decref(resp);
            return rc < 0 ? CTL_USAGE : CTL_FAILED;
        }
        pol = json_incref(json_object_get(resp, "policy"));
        json_decref(resp);
        if (!json_is_object(pol)) {
            fprintf(stderr, "attestctl policy kms-key-policy: %s has no current version\n", argv[optind]);
            json_decref(pol);
            return CTL_FAILED;
        }
    }
    at_policy *p = NULL;
    at_diag d = {{0}};
    if (at_policy_from_json(pol, &p, &d) != AT_OK) {
        fprintf(stderr, "attestctl policy kms-key-policy: %s\n", d.msg);
        json_decref(pol);
        return CTL_USAGE;
    }
    at_policy_free(p);
    if (json_object_size(json_object_get(pol, "pcrs")) == 0) {
        fprintf(stderr, "attestctl policy kms-key-policy: the policy pins no PCR; a KMS condition on nothing"
                        " would admit anyone\n");
        json_decref(pol);
        return CTL_USAGE;
    }
    if (!principal)
        fprintf(stderr,
                "attestctl policy kms-key-policy: warning: no --principal; replace the placeholder with"
                " the instance or enclave role ARN\n");
    int warnings = 0;
    json_t *out = kms_statements(pol, principal ? principal : "arn:aws:iam::ACCOUNT-ID:role/REPLACE-ME",
                                 key_arn, &warnings);
    ctl_print_json(out);
    fprintf(stderr, "attestctl policy kms-key-policy: add these statements to the key policy next to your key"
                    " administrators' statement; the Deny statements apply to every principal\n");
    json_decref(out);
    json_decref(pol);
    return CTL_OK;
}

/* attestctl policy pcr --extend FILE: the register value that extending
 * SHA-384(FILE) into a register holding --from (zeros by default) gives,
 * as the agent (--model) and the simulator compute it (lib/nitro.h). */
static int pcr_extend_cmd(int argc, char **argv)
{
    static const struct option opts[] = {{"extend", required_argument, NULL, 'e'},
                                         {"index", required_argument, NULL, 'i'},
                                         {"from", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    const char *file = NULL, *from = NULL;
    long idx = 16;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            file = optarg;
            break;
        case 'f':
            from = optarg;
            break;
        case 'i': {
            char *end;
            idx = strtol(optarg, &end, 10);
            if (*end || end == optarg || idx < 0 || idx > 31) {
                fprintf(stderr, "attestctl policy pcr: --index %s: expected 0-31\n", optarg);
                return CTL_USAGE;
            }
            break;
        }
        default:
            usage(stderr);
            return CTL_USAGE;
        }
    }
    if (!file || optind != argc) {
        fprintf(stderr, "usage: attestctl policy pcr --extend FILE [--index N] [--from HEX]\n");
        return CTL_USAGE;
    }
    uint8_t pcr[AT_SHA384_LEN] = {0}, digest[AT_SHA384_LEN];
    size_t n = 0;
    at_diag d = {{0}};
    if (from && (strlen(from) != 2 * AT_SHA384_LEN ||
                 at_hex_decode(from, strlen(from), pcr, sizeof pcr, &n) != AT_OK || n != sizeof pcr)) {
        fprintf(stderr, "attestctl policy pcr: --from: expected 96 hex digits (a SHA-384 register value)\n");
        return CTL_USAGE;
    }
    if (at_sha384_file(file, digest, &d) != AT_OK ||
        at_pcr_extend(pcr, AT_SPAN(digest, sizeof digest)) != AT_OK) {
        fprintf(stderr, "attestctl policy pcr: %s\n", d.msg);
        return CTL_USAGE;
    }
    char dh[2 * AT_SHA384_LEN + 1], ph[2 * AT_SHA384_LEN + 1];
    at_hex_encode(digest, sizeof digest, dh);
    at_hex_encode(pcr, sizeof pcr, ph);
    json_t *o = json_pack("{s:i,s:s,s:s}", "index", (int)idx, "file_sha384", dh, "value", ph);
    ctl_print_json(o);
    json_decref(o);
    return CTL_OK;
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
    if (strcmp(sub, "pcr") == 0)
        return pcr_extend_cmd(argc - 1, argv + 1);
    if (strcmp(sub, "kms-key-policy") == 0)
        return kms_key_policy(argc - 1, argv + 1);
    ctl_client cl;
    ctl_client_defaults(&cl);
    bool allow_lint = false;
    static const struct option opts[] = {
        CTL_CLIENT_OPTS, {"allow-lint", no_argument, NULL, 'L'}, {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = ctl_getopt(&cl, argc - 1, argv + 1, opts)) != -1) {
        switch (c) {
        case 'L':
            allow_lint = true;
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
    char path[512];
    json_t *out = NULL;
    int rc;
    if (strcmp(sub, "put") == 0 && nargs == 2) {
        json_error_t je;
        json_t *body = json_load_file(args[1], JSON_REJECT_DUPLICATES, &je);
        if (!body) {
            ctl_json_load_error("policy put", args[1], &je);
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
