/* attestctl sim: the Nitro hypervisor stand-in for tests and demos (test
 * PKI and signed documents; see lib/sim.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "binding.h"
#include "ctl.h"
#include "enc.h"
#include "sim.h"
#include "at_limits.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: attestctl sim init DIR\n"
               "       attestctl sim doc --pki DIR [--format nitro-enclave|nitro-tpm]\n"
               "                 [--pcr N=HEX]... [--measure N=FILE]... [--nonce HEX]\n"
               "                 [--user-data B64 | --purpose session|evidence [--endpoint URL]]\n"
               "                 [--public-key FILE] [--timestamp-ms N]\n"
               "                 [--new-leaf] [--definite-map] [--tagged] [--module-id ID]\n"
               "                 [--base64] -o OUT.cbor\n"
               "       attestctl sim pcrs --pki DIR [--format F] [--pcr N=HEX]... [--measure N=FILE]...\n"
               "sim init makes a test PKI (DIR/root.pem is the root to trust). sim doc mints a\n"
               "signed document; --measure extends PCR N with SHA-384 of FILE. sim pcrs prints\n"
               "the PCRs such a document would carry, as a policy JSON.\n");
}

/* "N=..." with N a PCR index: N, or -1 having said which part is wrong. */
static int parse_index(const char *flag, const char *arg, const char **rest)
{
    char *end;
    long n = strtol(arg, &end, 10);
    if (end == arg || *end != '=') {
        fprintf(stderr, "attestctl sim: %s: expected N=VALUE with N a PCR index, got '%s'\n", flag, arg);
        return -1;
    }
    if (n < 0 || n > AT_MAX_PCR_INDEX) {
        fprintf(stderr, "attestctl sim: %s: PCR index %ld out of range: expected 0..%d\n", flag, n,
                AT_MAX_PCR_INDEX);
        return -1;
    }
    *rest = end + 1;
    return (int)n;
}

struct doc_args {
    at_sim_doc_opts o;
    const char *pki_dir, *out;
    const char *measure_file[64];
    int measure_index[64];
    size_t n_measure;
    uint8_t nonce[AT_MAX_OPTIONAL_FIELD];
    uint8_t *user_data, *public_key;
    size_t user_data_len, public_key_len;
    bool base64;
    const char *purpose, *endpoint; /* --purpose/--endpoint: a binding in user_data */
    at_buf binding;
};

static int parse_doc_args(int argc, char **argv, struct doc_args *a)
{
    static const struct option opts[] = {{"pki", required_argument, NULL, 'k'},
                                         {"format", required_argument, NULL, 'f'},
                                         {"pcr", required_argument, NULL, 'p'},
                                         {"measure", required_argument, NULL, 'm'},
                                         {"nonce", required_argument, NULL, 'n'},
                                         {"user-data", required_argument, NULL, 'u'},
                                         {"public-key", required_argument, NULL, 'P'},
                                         {"timestamp-ms", required_argument, NULL, 't'},
                                         {"new-leaf", no_argument, NULL, 'L'},
                                         {"definite-map", no_argument, NULL, 'M'},
                                         {"tagged", no_argument, NULL, 'T'},
                                         {"module-id", required_argument, NULL, 'i'},
                                         {"base64", no_argument, NULL, 'b'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"purpose", required_argument, NULL, 'R'},
                                         {"endpoint", required_argument, NULL, 'E'},
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        const char *rest;
        int idx;
        size_t n;
        switch (c) {
        case 'k':
            a->pki_dir = optarg;
            break;
        case 'f':
            if (!at_format_parse(optarg, &a->o.format) || a->o.format == AT_FORMAT_AUTO) {
                fprintf(stderr, "attestctl sim: --format: nitro-enclave or nitro-tpm\n");
                return -1;
            }
            break;
        case 'p':
            if ((idx = parse_index("--pcr", optarg, &rest)) < 0)
                return -1;
            if (at_hex_decode(rest, strlen(rest), a->o.pcr[idx], AT_SHA384_LEN, &n) != AT_OK ||
                n != AT_SHA384_LEN) {
                fprintf(stderr, "attestctl sim: --pcr %d: expected 96 hex digits (SHA-384), got '%s'\n", idx,
                        rest);
                return -1;
            }
            a->o.pcr_set[idx] = true;
            break;
        case 'm':
            if ((idx = parse_index("--measure", optarg, &rest)) < 0)
                return -1;
            if (!*rest || a->n_measure == 64) {
                fprintf(stderr, "attestctl sim: --measure: expected N=FILE (at most 64), got '%s'\n", optarg);
                return -1;
            }
            a->measure_index[a->n_measure] = idx;
            a->measure_file[a->n_measure++] = rest;
            break;
        case 'n':
            if (at_hex_decode(optarg, strlen(optarg), a->nonce, sizeof a->nonce, &n) != AT_OK) {
                fprintf(stderr, "attestctl sim: --nonce: expected hex, at most 1024 bytes\n");
                return -1;
            }
            a->o.has_nonce = true;
            a->o.nonce = AT_SPAN(a->nonce, n);
            break;
        case 'u':
            free(a->user_data);
            if (at_b64_decode_new(optarg, strlen(optarg), &a->user_data, &a->user_data_len) != AT_OK) {
                fprintf(stderr, "attestctl sim: --user-data: expected base64\n");
                return -1;
            }
            a->o.has_user_data = true;
            a->o.user_data = AT_SPAN(a->user_data, a->user_data_len);
            break;
        case 'P':
            free(a->public_key);
            a->public_key = NULL;
            if (ctl_read_file(optarg, AT_MAX_OPTIONAL_FIELD, &a->public_key, &a->public_key_len) != 0)
                return -1;
            a->o.has_public_key = true;
            a->o.public_key = AT_SPAN(a->public_key, a->public_key_len);
            break;
        case 't': {
            char *end;
            long long t = strtoll(optarg, &end, 10);
            if (*end || t <= 0) {
                fprintf(stderr, "attestctl sim: --timestamp-ms: expected a positive integer\n");
                return -1;
            }
            a->o.timestamp_ms = t;
            break;
        }
        case 'L':
            a->o.new_leaf = true;
            break;
        case 'M':
            a->o.definite_map = true;
            break;
        case 'T':
            a->o.tagged = true;
            break;
        case 'i':
            a->o.module_id = optarg;
            break;
        case 'b':
            a->base64 = true;
            break;
        case 'o':
            a->out = optarg;
            break;
        case 'R':
            a->purpose = optarg;
            break;
        case 'E':
            a->endpoint = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (!a->pki_dir) {
        fprintf(stderr, "attestctl sim: --pki DIR is required\n");
        return -1;
    }
    if (a->endpoint && !a->purpose) {
        fprintf(stderr, "attestctl sim: --endpoint needs --purpose\n");
        return -1;
    }
    if (a->purpose) {
        /* user_data = the document binding (lib/binding), as the agent makes it. */
        at_purpose p;
        at_diag d = {{0}};
        if (a->o.has_user_data || !at_purpose_parse(a->purpose, &p)) {
            fprintf(stderr, "attestctl sim: --purpose session|evidence, not with --user-data\n");
            return -1;
        }
        if (at_binding_encode(p, a->endpoint, &a->binding, &d) != AT_OK) {
            fprintf(stderr, "attestctl sim: %s\n", d.msg);
            return -1;
        }
        a->o.has_user_data = true;
        a->o.user_data = at_buf_span(&a->binding);
    }
    return 0;
}

/* Apply --measure on top of the default or explicit PCR values. */
static int apply_measurements(struct doc_args *a, const at_sim_pki *pki)
{
    bool set[AT_MAX_PCRS];
    uint8_t def[AT_MAX_PCRS][AT_SHA384_LEN];
    at_format f = a->o.format == AT_FORMAT_NITRO_TPM ? AT_FORMAT_NITRO_TPM : AT_FORMAT_NITRO_ENCLAVE;
    const char *iid = at_sim_instance_id(pki);
    at_sim_default_pcrs(f, AT_SPAN(iid, strlen(iid)), set, def);
    for (size_t i = 0; i < a->n_measure; i++) {
        int idx = a->measure_index[i];
        if (!a->o.pcr_set[idx]) {
            memcpy(a->o.pcr[idx], def[idx], AT_SHA384_LEN);
            a->o.pcr_set[idx] = true;
        }
        at_diag d = {{0}};
        if (at_pcr_measure_file(a->o.pcr[idx], a->measure_file[i], &d) != AT_OK) {
            fprintf(stderr, "attestctl sim: --measure: %s\n", d.msg);
            return -1;
        }
    }
    return 0;
}

static int sim_doc(int argc, char **argv, bool pcrs_only)
{
    struct doc_args a;
    memset(&a, 0, sizeof a);
    at_buf_init(&a.binding);
    at_sim_pki *pki = NULL;
    at_buf out;
    at_buf_init(&out);
    at_diag d = {{0}};
    int ret = CTL_USAGE;
    if (parse_doc_args(argc, argv, &a) != 0)
        goto done;
    if (!pcrs_only && !a.out) {
        fprintf(stderr, "attestctl sim doc: -o OUT is required\n");
        goto done;
    }
    if (at_sim_pki_load(a.pki_dir, &pki, &d) != AT_OK) {
        fprintf(stderr, "attestctl sim: %s\n", d.msg);
        goto done;
    }
    if (apply_measurements(&a, pki) != 0)
        goto done;
    if (pcrs_only) {
        bool set[AT_MAX_PCRS];
        uint8_t v[AT_MAX_PCRS][AT_SHA384_LEN];
        at_format f = a.o.format == AT_FORMAT_NITRO_TPM ? AT_FORMAT_NITRO_TPM : AT_FORMAT_NITRO_ENCLAVE;
        const char *iid = at_sim_instance_id(pki);
        at_sim_default_pcrs(f, AT_SPAN(iid, strlen(iid)), set, v);
        printf("{\"format\":\"%s\",\"pcrs\":{", at_format_name(f));
        bool first = true;
        for (int i = 0; i < AT_MAX_PCRS; i++) {
            if (!set[i] && !a.o.pcr_set[i])
                continue;
            char hex[2 * AT_SHA384_LEN + 1];
            at_hex_encode(a.o.pcr_set[i] ? a.o.pcr[i] : v[i], AT_SHA384_LEN, hex);
            printf("%s\"%d\":[\"%s\"]", first ? "" : ",", i, hex);
            first = false;
        }
        printf("}}\n");
        ret = CTL_OK;
        goto done;
    }
    if (at_sim_doc(pki, &a.o, &out, &d) != AT_OK) {
        fprintf(stderr, "attestctl sim doc: %s\n", d.msg);
        ret = CTL_FAILED;
        goto done;
    }
    if (a.base64) {
        char *b = at_b64_encode_new(at_buf_span(&out));
        size_t n = b ? strlen(b) : 0;
        if (b)
            b[n] = '\n';
        ret = b && ctl_write_file(a.out, b, n + 1, 0644) == 0 ? CTL_OK : CTL_USAGE;
        free(b);
    } else {
        ret = ctl_write_file(a.out, out.p, out.len, 0644) == 0 ? CTL_OK : CTL_USAGE;
    }
done:
    at_buf_cleanup(&out);
    at_sim_pki_free(pki);
    free(a.user_data);
    at_buf_cleanup(&a.binding);
    free(a.public_key);
    return ret;
}

int cmd_sim(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_USAGE : CTL_OK;
    }
    if (strcmp(argv[1], "init") == 0) {
        if (argc != 3) {
            usage(stderr);
            return CTL_USAGE;
        }
        at_diag d = {{0}};
        if (at_sim_pki_init(argv[2], (int64_t)time(NULL), &d) != AT_OK) {
            fprintf(stderr, "attestctl sim init: %s\n", d.msg);
            return CTL_USAGE;
        }
        fprintf(stderr, "sim PKI in %s; trust %s/root.pem (a test root, never a real one)\n", argv[2],
                argv[2]);
        return CTL_OK;
    }
    if (strcmp(argv[1], "doc") == 0)
        return sim_doc(argc - 1, argv + 1, false);
    if (strcmp(argv[1], "pcrs") == 0)
        return sim_doc(argc - 1, argv + 1, true);
    fprintf(stderr, "attestctl sim: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return CTL_USAGE;
}
