/* attestctl hpke: make and show the X25519 keys an OHTTP gateway (the agent)
 * decrypts with. Writes private keys (mode 0600) and prints only public
 * key configurations (RFC 9458 §3), base64, on stdout. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl.h"
#include "enc.h"
#include "ohttp.h"

static int hpke_usage(FILE *f)
{
    fprintf(f, "usage: attestctl hpke keygen -o KEYFILE [--key-id N] [--force]\n"
               "       attestctl hpke config -k KEYFILE [--key-id N | --list]\n"
               "\n"
               "keygen  make an X25519 key pair (HPKE DHKEM(X25519, HKDF-SHA256); suites\n"
               "        HKDF-SHA256 with AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305), write\n"
               "        it to KEYFILE (mode 0600; refuses to overwrite without --force)\n"
               "        and print its RFC 9458 key configuration, base64. Key id default 1.\n"
               "config  print the key configuration of a key in KEYFILE (default: the\n"
               "        first), or with --list every key's, in application/ohttp-keys form.\n");
    return f == stdout ? CTL_OK : CTL_USAGE;
}

static int print_b64(at_span s)
{
    char *b64 = at_b64_encode_new(s);
    if (!b64) {
        fprintf(stderr, "attestctl: out of memory\n");
        return CTL_USAGE;
    }
    printf("%s\n", b64);
    free(b64);
    return fflush(stdout) == 0 ? CTL_OK : CTL_USAGE;
}

static int parse_key_id(const char *s, uint8_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == 0 || *end != 0 || v < 0 || v > 255) {
        fprintf(stderr, "attestctl hpke: --key-id: expected 0..255, got '%s'\n", s);
        return -1;
    }
    *out = (uint8_t)v;
    return 0;
}

static int config_of(const at_ohttp_keyset *ks, uint8_t id)
{
    at_ohttp_key_config kc;
    at_diag d = {{0}};
    at_buf b;
    at_buf_init(&b);
    if (at_ohttp_keyset_config(ks, id, &kc, &d) != AT_OK ||
        at_ohttp_key_config_encode(&kc, &b, &d) != AT_OK) {
        fprintf(stderr, "attestctl hpke: %s\n", d.msg);
        at_buf_cleanup(&b);
        return CTL_USAGE;
    }
    int rc = print_b64(at_buf_span(&b));
    at_buf_cleanup(&b);
    return rc;
}

static int keygen(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"key-id", required_argument, NULL, 'i'},
                                         {"force", no_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL;
    uint8_t id = 1;
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'i':
            if (parse_key_id(optarg, &id) != 0)
                return CTL_USAGE;
            break;
        case 'f':
            force = true;
            break;
        case 'h':
            return hpke_usage(stdout);
        default:
            return hpke_usage(stderr);
        }
    }
    if (!out || optind != argc)
        return hpke_usage(stderr);
    struct stat st;
    if (!force && lstat(out, &st) == 0) {
        fprintf(stderr, "attestctl hpke keygen: %s exists (a private key?); use --force to replace it\n",
                out);
        return CTL_USAGE;
    }
    at_ohttp_keyset *ks = NULL;
    at_diag d = {{0}};
    int rc = CTL_USAGE;
    if (at_ohttp_keyset_new(&ks, &d) != AT_OK || at_ohttp_keyset_generate(ks, id, &d) != AT_OK ||
        at_ohttp_keyset_save(ks, out, &d) != AT_OK) {
        fprintf(stderr, "attestctl hpke keygen: %s\n", d.msg);
        goto done;
    }
    rc = config_of(ks, id);
done:
    at_ohttp_keyset_free(ks);
    return rc;
}

static int config(int argc, char **argv)
{
    static const struct option opts[] = {{"keys", required_argument, NULL, 'k'},
                                         {"key-id", required_argument, NULL, 'i'},
                                         {"list", no_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    uint8_t id = 0;
    bool have_id = false, list = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            path = optarg;
            break;
        case 'i':
            if (parse_key_id(optarg, &id) != 0)
                return CTL_USAGE;
            have_id = true;
            break;
        case 'l':
            list = true;
            break;
        case 'h':
            return hpke_usage(stdout);
        default:
            return hpke_usage(stderr);
        }
    }
    if (!path || optind != argc || (list && have_id))
        return hpke_usage(stderr);
    at_ohttp_keyset *ks = NULL;
    at_diag d = {{0}};
    int rc = CTL_USAGE;
    if (at_ohttp_keyset_load(path, &ks, &d) != AT_OK) {
        fprintf(stderr, "attestctl hpke config: %s\n", d.msg);
        return CTL_USAGE;
    }
    if (list) {
        at_buf b;
        at_buf_init(&b);
        if (at_ohttp_keyset_keys(ks, &b, &d) != AT_OK)
            fprintf(stderr, "attestctl hpke config: %s\n", d.msg);
        else
            rc = print_b64(at_buf_span(&b));
        at_buf_cleanup(&b);
    } else {
        rc = config_of(ks, have_id ? id : at_ohttp_keyset_id(ks, 0));
    }
    at_ohttp_keyset_free(ks);
    return rc;
}

int cmd_hpke(int argc, char **argv)
{
    if (argc < 2)
        return hpke_usage(stderr);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return hpke_usage(stdout);
    if (strcmp(argv[1], "keygen") == 0)
        return keygen(argc - 1, argv + 1);
    if (strcmp(argv[1], "config") == 0)
        return config(argc - 1, argv + 1);
    fprintf(stderr, "attestctl hpke: unknown command '%s'\n", argv[1]);
    return hpke_usage(stderr);
}
