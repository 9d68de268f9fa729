/* attestctl verify: check attestation documents offline and print one JSON
 * summary per document (API.md). Documents are untrusted input. */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "enc.h"
#include "evidence.h"
#include "at_limits.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: attestctl verify [--root PEM]... [--at UNIX_SECONDS | --at-document-time]\n"
               "                        [--policy FILE.json] [--nonce HEX]\n"
               "                        [--format auto|nitro-enclave|nitro-tpm] DOC...\n"
               "DOC is a file of raw CBOR or base64 of it (\"-\" = stdin). Without --root the\n"
               "built-in AWS Nitro root G1 is trusted. Prints one JSON object per document.\n"
               "Exit 0 when every document is valid, 1 when one is not, 2 on usage/IO errors.\n");
}

/* Raw CBOR: a first byte of 0x80 or more (an array such as 0x84, a map, a
 * tag such as 0xd2 or its two-byte form 0xd8 0x12, ...) is never base64
 * text, so it goes to the decoder as it is and gets its precise error;
 * anything else is taken as base64 text, whitespace ignored. Caller frees
 * *out. */
static int decode_document(const uint8_t *in, size_t len, uint8_t **out, size_t *outlen)
{
    if (len > 0 && in[0] >= 0x80) {
        *out = malloc(len ? len : 1);
        if (!*out)
            return -1;
        memcpy(*out, in, len);
        *outlen = len;
        return 0;
    }
    char *txt = malloc(len + 1);
    size_t n = 0;
    if (!txt)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!isspace(in[i]))
            txt[n++] = (char)in[i];
    at_err rc = at_b64_decode_new(txt, n, out, outlen);
    free(txt);
    return rc == AT_OK ? 0 : -1;
}

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {{"root", required_argument, NULL, 'r'},
                                         {"at", required_argument, NULL, 'a'},
                                         {"at-document-time", no_argument, NULL, 'D'},
                                         {"policy", required_argument, NULL, 'p'},
                                         {"nonce", required_argument, NULL, 'n'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    at_verify_opts vo = {0};
    const char *roots[AT_MAX_ROOTS];
    size_t n_roots = 0;
    const char *policy_path = NULL;
    uint8_t nonce[AT_MAX_OPTIONAL_FIELD];
    size_t nonce_len = 0;
    int c, ret = CTL_USAGE;
    at_trust *trust = NULL;
    at_policy *policy = NULL;
    at_diag d = {{0}};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (n_roots == AT_MAX_ROOTS) {
                fprintf(stderr, "attestctl verify: at most %d roots\n", AT_MAX_ROOTS);
                return CTL_USAGE;
            }
            roots[n_roots++] = optarg;
            break;
        case 'a': {
            char *end;
            long long t = strtoll(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || t < 0 || t > 253402300799LL) {
                fprintf(stderr, "attestctl verify: --at: expected UNIX seconds, got '%s'\n", optarg);
                return CTL_USAGE;
            }
            vo.time_mode = AT_TIME_GIVEN;
            vo.at_ms = t * 1000;
            break;
        }
        case 'D':
            vo.time_mode = AT_TIME_DOCUMENT;
            break;
        case 'p':
            policy_path = optarg;
            break;
        case 'n':
            if (at_hex_decode(optarg, strlen(optarg), nonce, sizeof nonce, &nonce_len) != AT_OK) {
                fprintf(stderr, "attestctl verify: --nonce: expected hex of at most %d bytes\n",
                        AT_MAX_OPTIONAL_FIELD);
                return CTL_USAGE;
            }
            vo.check_nonce = true;
            vo.nonce = AT_SPAN(nonce, nonce_len);
            break;
        case 'f':
            if (!at_format_parse(optarg, &vo.format)) {
                fprintf(stderr, "attestctl verify: --format: unknown format '%s'\n", optarg);
                return CTL_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return CTL_OK;
        default:
            usage(stderr);
            return CTL_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return CTL_USAGE;
    }
    if (!(trust = at_trust_new(0)))
        goto out;
    if (n_roots == 0 && at_trust_add_aws_root(trust, &d) != AT_OK) {
        fprintf(stderr, "attestctl verify: built-in root: %s\n", d.msg);
        goto out;
    }
    for (size_t i = 0; i < n_roots; i++)
        if (at_trust_add_root_file(trust, roots[i], &d) != AT_OK) {
            fprintf(stderr, "attestctl verify: --root: %s\n", d.msg);
            goto out;
        }
    if (policy_path) {
        uint8_t *txt;
        size_t len;
        if (ctl_read_file(policy_path, AT_POLICY_MAX_JSON_BYTES, &txt, &len) != 0)
            goto out;
        at_err rc = at_policy_parse((const char *)txt, len, &policy, &d);
        free(txt);
        if (rc != AT_OK) {
            fprintf(stderr, "attestctl verify: %s: %s: %s\n", policy_path, at_err_str(rc), d.msg);
            goto out;
        }
        vo.policy = policy;
    }
    ret = CTL_OK;
    for (int i = optind; i < argc; i++) {
        uint8_t *raw = NULL, *doc = NULL;
        size_t raw_len = 0, doc_len = 0;
        /* Base64 of the largest accepted document, plus slack for line breaks. */
        if (ctl_read_file(argv[i], 2 * AT_MAX_DOCUMENT_BYTES + 4096, &raw, &raw_len) != 0) {
            ret = CTL_USAGE;
            continue;
        }
        at_evidence ev;
        if (decode_document(raw, raw_len, &doc, &doc_len) != 0) {
            /* Neither CBOR nor base64: report it like any malformed document. */
            memset(&ev, 0, sizeof ev);
            ev.result = at_fail(&ev.diag, AT_E_MALFORMED_CBOR,
                                "document: neither CBOR (COSE_Sign1) nor base64 of it");
        } else {
            at_err vrc = at_evidence_verify(trust, AT_SPAN(doc, doc_len), &vo, &ev);
            (void)vrc; /* the result is in ev */
        }
        json_t *j = at_evidence_json(&ev);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(j);
        if (ev.result != AT_OK && ret == CTL_OK)
            ret = CTL_FAILED;
        at_evidence_cleanup(&ev);
        free(raw);
        free(doc);
    }
    fflush(stdout);
out:
    at_policy_free(policy);
    at_trust_unref(trust);
    return ret;
}
