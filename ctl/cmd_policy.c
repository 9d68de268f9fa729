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

/* "PCR12" -> 12, exactly as the tools write it (no "PCR_2", "pcr2",
 * "PCR02"); -1 otherwise. */
static int pcr_key(const char *k)
{
    if (strncmp(k, "PCR", 3) != 0 || !isdigit((unsigned char)k[3]) || (k[3] == '0' && k[4]))
        return -1;
    char *end;
    long n = strtol(k + 3, &end, 10);
    return *end || n < 0 || n > 31 ? -1 : (int)n;
}

static bool is_sha384_hex(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n]))
            return false;
    return n == 96;
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

/* What a measurements file is: which tool wrote it, which policy format it
 * pins and which registers it must carry. */
typedef struct {
    const char *tool, *format;
    int expected[3];
} source_kind;
static const source_kind kind_eif = {"nitro-cli", "nitro-enclave", {0, 1, 2}};
static const source_kind kind_tpm = {"nitro-tpm-pcr-compute", "nitro-tpm", {4, 7, 12}};

#define IMPORT_MAX (1024 * 1024)

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
    json_t *pcrs = json_object(), *files = json_array();
    const source_kind *kind = NULL;
    const char *tool = NULL, *doc_format = NULL;
    int ret = CTL_USAGE;
    for (int i = optind; i < argc; i++) {
        json_error_t je;
        const char *name = strcmp(argv[i], "-") == 0 ? "(stdin)" : argv[i];
        uint8_t *raw = NULL;
        size_t rawlen = 0;
        if (ctl_read_file(argv[i], IMPORT_MAX, &raw, &rawlen) != 0)
            goto out;
        json_t *j = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, &je);
        free(raw);
        if (!j) {
            fprintf(stderr, "attestctl policy import: %s: line %d: %s\n", name, je.line, je.text);
            goto out;
        }
        json_t *m = json_object_get(j, "Measurements");
        json_t *ours = json_object_get(j, "pcrs");
        if (json_is_object(m)) {
            const char *alg = json_string_value(json_object_get(m, "HashAlgorithm"));
            /* nitro-cli writes "Sha384 { ... }", nitro-tpm-pcr-compute (and
             * the KIWI-NG / Nix attestable-AMI files) "SHA384". */
            const source_kind *k2 = !alg                               ? NULL
                                    : strncmp(alg, "Sha384 {", 8) == 0 ? &kind_eif
                                    : strcmp(alg, "SHA384") == 0       ? &kind_tpm
                                                                       : NULL;
            if (!k2) {
                fprintf(
                    stderr,
                    "attestctl policy import: %s: Measurements.HashAlgorithm %s: expected \"Sha384 { ... }\""
                    " (nitro-cli) or \"SHA384\" (nitro-tpm-pcr-compute)\n",
                    name, alg ? alg : "missing");
                json_decref(j);
                goto out;
            }
            if (kind && kind != k2) {
                fprintf(stderr,
                        "attestctl policy import: %s: a %s file mixed with %s files: an enclave image"
                        " and an attestable AMI are different policies; import them separately\n",
                        name, k2->tool, kind->tool);
                json_decref(j);
                goto out;
            }
            kind = k2;
            uint32_t seen = 0;
            const char *k;
            json_t *v;
            json_object_foreach(m, k, v)
            {
                if (strcmp(k, "HashAlgorithm") == 0)
                    continue;
                int idx = pcr_key(k);
                if (idx < 0) {
                    fprintf(stderr,
                            "attestctl policy import: %s: unknown measurement key \"%s\" (expected"
                            " HashAlgorithm or PCR0..PCR31)\n",
                            name, k);
                    json_decref(j);
                    goto out;
                }
                if (!json_is_string(v) || !is_sha384_hex(json_string_value(v))) {
                    fprintf(stderr, "attestctl policy import: %s: %s: expected 96 hex digits (SHA-384)\n",
                            name, k);
                    json_decref(j);
                    goto out;
                }
                add_value(pcrs, idx, json_string_value(v));
                seen |= 1u << idx;
            }
            for (int e = 0; e < 3; e++) {
                int idx = kind->expected[e];
                if (!(seen & (1u << idx)) && !(allow_missing & (1u << idx))) {
                    fprintf(stderr,
                            "attestctl policy import: %s: PCR%d is missing (a %s file carries PCR%d, PCR%d"
                            " and PCR%d; --allow-missing %d if that is intended)\n",
                            name, idx, kind->tool, kind->expected[0], kind->expected[1], kind->expected[2],
                            idx);
                    json_decref(j);
                    goto out;
                }
            }
            tool = kind->tool;
        } else if (json_is_object(ours)) {
            /* A policy document (attest-agent --print-pcrs, attestctl sim pcrs). */
            const char *f = json_string_value(json_object_get(j, "format"));
            if (doc_format && f && strcmp(doc_format, f) != 0) {
                fprintf(stderr, "attestctl policy import: %s: format %s, another file has %s\n", name, f,
                        doc_format);
                json_decref(j);
                goto out;
            }
            doc_format = f ? f : doc_format;
            const char *k;
            json_t *arr;
            json_object_foreach(ours, k, arr)
            {
                size_t n;
                json_t *v;
                json_array_foreach(arr, n, v) if (json_is_string(v))
                    add_value(pcrs, atoi(k), json_string_value(v));
            }
            tool = tool ? tool : "attest";
        } else {
            fprintf(stderr,
                    "attestctl policy import: %s: no \"Measurements\" object (nitro-cli build-enclave or"
                    " describe-eif JSON, nitro-tpm-pcr-compute JSON) and no \"pcrs\" (a policy)\n",
                    name);
            json_decref(j);
            goto out;
        }
        json_array_append_new(files, json_string(name));
        json_decref(j);
    }
    const char *derived = kind ? kind->format : doc_format;
    if (kind && doc_format && strcmp(kind->format, doc_format) != 0) {
        fprintf(stderr, "attestctl policy import: a %s file mixed with a %s policy\n", kind->tool,
                doc_format);
        goto out;
    }
    if (format && derived && strcmp(format, derived) != 0) {
        fprintf(stderr, "attestctl policy import: --format %s, but the input is %s (%s)\n", format, derived,
                kind ? kind->tool : "a policy");
        goto out;
    }
    format = format ? format : derived ? derived : "nitro-enclave";
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
