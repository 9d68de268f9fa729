/* attestctl model seal|open|inspect: encrypt model weights for shipping to
 * an attested environment (lib/sealfile.h) and store their data key with
 * the verifier bound to a policy in the same step; open them with the key
 * (for checks; in production only attest-agent opens them, after the
 * verifier released the key to its attested session). Outputs appear whole
 * or not at all (lib/file.h); a failed run leaves nothing behind. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "enc.h"
#include "file.h"
#include "progress.h"
#include "sealfile.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: attestctl model seal --in MODEL --out MODEL.sealed --secret NAME --policy POLICY\n"
               "                            [--verifier URL] [--token-file F] [--key-out KEYFILE]\n"
               "       attestctl model seal --in MODEL --out MODEL.sealed --key-out KEYFILE   (offline)\n"
               "       attestctl model open --in MODEL.sealed --out MODEL --key KEYFILE\n"
               "       attestctl model inspect MODEL.sealed\n"
               "seal and open also take --force (replace an existing output), --quiet, --json.\n"
               "seal --replace replaces an existing secret NAME on the verifier (refused otherwise).\n"
               "seal makes a fresh 32-byte data key; with --secret it is stored on the verifier as\n"
               "secret NAME bound to POLICY (and never written to disk unless --key-out).\n");
}

enum { OUT_HUMAN, OUT_QUIET, OUT_JSON };

typedef struct {
    const char *in, *out, *key_out, *key_in, *secret, *policy;
    bool force, replace;
    int mode;
    ctl_client cl;
} model_args;

static char *hex_of(const uint8_t *p, size_t n) { return at_hex_encode_new(AT_SPAN(p, n)); }

static json_t *header_json(const at_sealfile_header *h)
{
    json_t *j = json_object();
    json_object_set_new(j, "format", json_string(h->version == 1 ? "ATSEAL01" : "ATSEAL02"));
    json_object_set_new(j, "version", json_integer(h->version));
    json_object_set_new(j, "cipher", json_string("AES-256-GCM"));
    json_object_set_new(j, "chunk_size", json_integer(h->chunk_size));
    if (h->has_key_id) {
        char *k = hex_of(h->key_id, sizeof h->key_id);
        json_object_set_new(j, "key_id", json_string(k));
        free(k);
    } else {
        json_object_set_new(j, "key_id", json_null());
    }
    json_object_set_new(j, "secret", h->secret[0] ? json_string(h->secret) : json_null());
    json_object_set_new(j, "policy", h->policy[0] ? json_string(h->policy) : json_null());
    json_object_set_new(j, "sealed_bytes", json_integer((json_int_t)h->sealed_bytes));
    json_object_set_new(j, "plaintext_bytes", json_integer((json_int_t)h->plaintext_bytes));
    return j;
}

/* The path as its canonical folder + name, to tell two outputs apart. */
static char *canon(const char *path)
{
    char *a = strdup(path), *b = strdup(path), *r = NULL, *out = NULL;
    if (a && b && (r = realpath(dirname(a), NULL))) {
        size_t n = strlen(r) + strlen(basename(b)) + 2;
        if ((out = malloc(n)))
            snprintf(out, n, "%s/%s", r, basename(b));
    }
    free(a);
    free(b);
    free(r);
    return out;
}

static bool same_path(const char *x, const char *y)
{
    char *a = canon(x), *b = canon(y);
    bool same = a && b && strcmp(a, b) == 0;
    free(a);
    free(b);
    return same || strcmp(x, y) == 0;
}

static void summary(const model_args *a, const char *verb, const at_sealfile_result *r, double secs)
{
    char sha[65], size[32];
    at_hex_encode(r->sha256, sizeof r->sha256, sha);
    if (a->mode == OUT_JSON) {
        json_t *j = json_object();
        json_object_set_new(j, "op", json_string(verb));
        json_object_set_new(j, "in", json_string(a->in));
        json_object_set_new(j, "out", json_string(a->out));
        json_object_set_new(j, "plaintext_bytes", json_integer((json_int_t)r->plaintext_bytes));
        json_object_set_new(j, "sha256", json_string(sha));
        json_object_set_new(j, "seconds", json_real(secs));
        json_object_set_new(j, "header", header_json(&r->header));
        ctl_print_json(j);
        json_decref(j);
    } else if (a->mode == OUT_HUMAN) {
        at_progress_bytes(r->plaintext_bytes, size, sizeof size);
        fprintf(stderr, "%s %s -> %s: %s (%llu bytes), sha256 %s, %.2f s\n", verb, a->in, a->out, size,
                (unsigned long long)r->plaintext_bytes, sha, secs);
    }
}

static int fail(const char *verb, at_err rc, const at_diag *d)
{
    fprintf(stderr, "attestctl model %s: %s: %s%s\n", verb, at_err_str(rc), d->msg,
            rc == AT_E_CONFLICT && strstr(d->msg, "exists already") ? " (--force replaces it)" : "");
    return rc == AT_E_CONFLICT || rc == AT_E_BAD_REQUEST ? CTL_USAGE : CTL_FAILED;
}

/* PUT /v1/secrets/NAME {"policy","value"}: 0 or the ctl_client_call code. */
static int put_secret(const model_args *a, const uint8_t key[AT_SEALFILE_KEY_LEN])
{
    char *b = at_b64_encode_new(AT_SPAN(key, AT_SEALFILE_KEY_LEN));
    if (!b)
        return -1;
    json_t *body = json_object(), *resp = NULL;
    json_object_set_new(body, "policy", json_string(a->policy));
    json_object_set_new(body, "value", json_string(b));
    at_wipe_free(b, strlen(b));
    char path[512];
    snprintf(path, sizeof path, "/v1/secrets/%s%s", a->secret, a->replace ? "?replace=1" : "");
    int rc = ctl_client_call(&a->cl, "PUT", path, body, &resp);
    json_decref(body);
    json_decref(resp);
    return rc;
}

static int do_seal(model_args *a)
{
    uint8_t key[AT_SEALFILE_KEY_LEN];
    at_diag d = {{0}};
    at_err rc;
    int ret = CTL_FAILED, in = -1;
    at_outfile of = {.fd = -1}, kf = {.fd = -1};
    at_sealfile_result res;
    at_progress pg;
    if (a->key_out && same_path(a->key_out, a->out)) {
        fprintf(stderr, "attestctl model seal: --key-out and --out name the same file\n");
        return CTL_USAGE;
    }
    if ((in = open(a->in, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "attestctl model seal: io: %s: %s\n", a->in, strerror(errno));
        return CTL_USAGE;
    }
    if ((rc = at_outfile_open(&of, a->out, a->force, in, &d)) != AT_OK ||
        (a->key_out && (rc = at_outfile_open(&kf, a->key_out, a->force, in, &d)) != AT_OK)) {
        ret = fail("seal", rc, &d);
        goto out;
    }
    if (RAND_bytes(key, sizeof key) != 1) {
        fprintf(stderr, "attestctl model seal: internal: no randomness\n");
        goto out;
    }
    at_progress_init(&pg, stderr, a->mode == OUT_HUMAN && isatty(2), "sealing");
    at_sealfile_opts o = {
        .secret = a->secret, .policy = a->policy, .progress = at_progress_update, .progress_arg = &pg};
    rc = at_sealfile_seal_fd(in, of.fd, key, &o, &res, &d);
    at_progress_finish(&pg);
    if (rc != AT_OK) {
        at_diag_prefix(&d, "%s: ", a->in);
        ret = fail("seal", rc, &d);
        goto out;
    }
    if (a->key_out &&
        (!at_file_write_full(kf.fd, key, sizeof key) || (rc = at_outfile_commit(&kf, &d)) != AT_OK)) {
        if (rc == AT_OK)
            rc = at_fail(&d, AT_E_IO, "%s: write failed", a->key_out);
        ret = fail("seal", rc, &d);
        goto out;
    }
    if (a->secret) {
        int r = put_secret(a, key);
        if (r != 0) {
            fprintf(stderr,
                    "attestctl model seal: the data key was not stored on the verifier as secret %s;"
                    " nothing written\n",
                    a->secret);
            ret = r < 0 ? CTL_USAGE : CTL_FAILED;
            goto out;
        }
    }
    if ((rc = at_outfile_commit(&of, &d)) != AT_OK) {
        ret = fail("seal", rc, &d);
        if (a->secret)
            fprintf(stderr,
                    "attestctl model seal: note: secret %s on the verifier now holds a key for no file\n",
                    a->secret);
        goto out;
    }
    summary(a, "sealed", &res, at_progress_elapsed(&pg));
    ret = CTL_OK;
out:
    if (ret != CTL_OK)
        at_outfile_unlink(&kf);
    at_outfile_cleanup(&kf);
    at_outfile_cleanup(&of);
    if (in >= 0)
        close(in);
    at_wipe(key, sizeof key);
    return ret;
}

static int do_open(model_args *a)
{
    uint8_t key[AT_SEALFILE_KEY_LEN];
    at_diag d = {{0}};
    at_err rc;
    int ret = CTL_USAGE, in = -1;
    at_outfile of = {.fd = -1};
    at_sealfile_result res;
    at_progress pg;
    uint8_t *k = NULL;
    size_t klen = 0;
    if (ctl_read_file(a->key_in, 64, &k, &klen) != 0)
        return CTL_USAGE;
    if (klen != sizeof key) {
        fprintf(stderr, "attestctl model open: %s: expected a 32-byte key, got %zu bytes\n", a->key_in, klen);
        at_wipe_free(k, klen);
        return CTL_USAGE;
    }
    memcpy(key, k, sizeof key);
    at_wipe_free(k, klen);
    if ((in = open(a->in, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "attestctl model open: io: %s: %s\n", a->in, strerror(errno));
        goto out;
    }
    if ((rc = at_outfile_open(&of, a->out, a->force, in, &d)) != AT_OK) {
        ret = fail("open", rc, &d);
        goto out;
    }
    at_progress_init(&pg, stderr, a->mode == OUT_HUMAN && isatty(2), "opening");
    at_sealfile_opts o = {.progress = at_progress_update, .progress_arg = &pg};
    rc = at_sealfile_open_fd(in, of.fd, key, &o, &res, &d);
    at_progress_finish(&pg);
    if (rc == AT_OK)
        rc = at_outfile_commit(&of, &d);
    else
        at_diag_prefix(&d, "%s: ", a->in);
    if (rc != AT_OK) {
        ret = fail("open", rc, &d);
        goto out;
    }
    summary(a, "opened", &res, at_progress_elapsed(&pg));
    ret = CTL_OK;
out:
    at_outfile_cleanup(&of);
    if (in >= 0)
        close(in);
    at_wipe(key, sizeof key);
    return ret;
}

static int do_inspect(const char *path)
{
    at_diag d = {{0}};
    at_sealfile_header h;
    at_err rc = at_sealfile_inspect(path, &h, &d);
    if (rc != AT_OK)
        return fail("inspect", rc, &d) == CTL_USAGE ? CTL_USAGE : CTL_FAILED;
    json_t *j = header_json(&h);
    ctl_print_json(j);
    json_decref(j);
    return CTL_OK;
}

int cmd_model(int argc, char **argv)
{
    static const struct option opts[] = {{"in", required_argument, NULL, 'i'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"key-out", required_argument, NULL, 'K'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"secret", required_argument, NULL, 's'},
                                         {"policy", required_argument, NULL, 'p'},
                                         CTL_CLIENT_OPTS,
                                         {"force", no_argument, NULL, 'f'},
                                         {"replace", no_argument, NULL, 'r'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    model_args a = {0};
    ctl_client_defaults(&a.cl);
    if (argc < 2) {
        usage(stderr);
        return CTL_USAGE;
    }
    if (ctl_is_help(argv[1]) || (argc >= 3 && ctl_is_help(argv[2]))) {
        usage(stdout);
        return CTL_OK;
    }
    if (strcmp(argv[1], "inspect") == 0) {
        if (argc != 3) {
            usage(stderr);
            return CTL_USAGE;
        }
        return do_inspect(argv[2]);
    }
    int c;
    optind = 1;
    while ((c = ctl_getopt(&a.cl, argc - 1, argv + 1, opts)) != -1) {
        switch (c) {
        case 'i':
            a.in = optarg;
            break;
        case 'o':
            a.out = optarg;
            break;
        case 'K':
            a.key_out = optarg;
            break;
        case 'k':
            a.key_in = optarg;
            break;
        case 's':
            a.secret = optarg;
            break;
        case 'p':
            a.policy = optarg;
            break;
        case 'f':
            a.force = true;
            break;
        case 'r':
            a.replace = true;
            break;
        case 'q':
            a.mode = OUT_QUIET;
            break;
        case 'j':
            a.mode = OUT_JSON;
            break;
        case 'h':
            usage(stdout);
            return CTL_OK;
        default:
            usage(stderr);
            return CTL_USAGE;
        }
    }
    if (a.cl.bad)
        return CTL_USAGE;
    if (optind == argc - 1 && (!a.in || !a.out)) {
        fprintf(stderr, "attestctl model %s: missing %s\n", argv[1],
                !a.in && !a.out ? "--in and --out"
                : !a.in         ? "--in"
                                : "--out");
        return CTL_USAGE;
    }
    if (optind != argc - 1) {
        usage(stderr);
        return CTL_USAGE;
    }
    if (strcmp(argv[1], "seal") == 0) {
        if (!!a.secret != !!a.policy || (!a.secret && !a.key_out) || a.key_in || (a.replace && !a.secret)) {
            fprintf(stderr, "attestctl model seal: give --secret NAME --policy POLICY (the key goes to the"
                            " verifier), or --key-out KEYFILE (offline), or both\n");
            return CTL_USAGE;
        }
        return do_seal(&a);
    }
    if (strcmp(argv[1], "open") == 0) {
        if (!a.key_in || a.key_out || a.secret || a.policy || a.replace) {
            fprintf(stderr, "attestctl model open: --key KEYFILE is required (and only it)\n");
            return CTL_USAGE;
        }
        return do_open(&a);
    }
    usage(stderr);
    return CTL_USAGE;
}
