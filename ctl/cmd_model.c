/* attestctl model seal|open: encrypt model weights for shipping to an
 * attested environment (lib/sealfile.h), and open them with the key (for
 * checks; in production only attest-agent opens them, after the verifier
 * released the key to its attested session). */
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "sealfile.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: attestctl model seal --in MODEL --out MODEL.sealed --key-out KEYFILE\n"
               "       attestctl model open --in MODEL.sealed --out MODEL --key KEYFILE\n"
               "seal makes a fresh 32-byte data key (KEYFILE, 0600); store it on the verifier\n"
               "with 'attestctl secret put NAME --policy POLICY --value-file KEYFILE'.\n");
}

int cmd_model(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *key_out = NULL, *key_in = NULL;
    if (argc < 2) {
        usage(stderr);
        return CTL_USAGE;
    }
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--in") == 0)
            in = argv[i + 1];
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[i + 1];
        else if (strcmp(argv[i], "--key-out") == 0)
            key_out = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0)
            key_in = argv[i + 1];
        else {
            usage(stderr);
            return CTL_USAGE;
        }
    }
    if (argc % 2 != 0 || !in || !out) {
        usage(stderr);
        return CTL_USAGE;
    }
    uint8_t key[AT_SEALFILE_KEY_LEN];
    at_diag d = {{0}};
    int ret = CTL_USAGE;
    if (strcmp(argv[1], "seal") == 0 && key_out) {
        if (RAND_bytes(key, sizeof key) != 1 || ctl_write_file(key_out, key, sizeof key, 0600) != 0)
            goto out;
        if (at_sealfile_seal(in, out, key, &d) != AT_OK) {
            fprintf(stderr, "attestctl model seal: %s\n", d.msg);
            goto out;
        }
        ret = CTL_OK;
    } else if (strcmp(argv[1], "open") == 0 && key_in) {
        uint8_t *k = NULL;
        size_t klen = 0;
        if (ctl_read_file(key_in, 64, &k, &klen) != 0)
            goto out;
        if (klen != sizeof key) {
            fprintf(stderr, "attestctl model open: %s: expected a 32-byte key\n", key_in);
            at_wipe_free(k, klen);
            goto out;
        }
        memcpy(key, k, sizeof key);
        at_wipe_free(k, klen);
        at_err rc = at_sealfile_open(in, out, key, &d);
        if (rc != AT_OK) {
            fprintf(stderr, "attestctl model open: %s: %s\n", at_err_str(rc), d.msg);
            ret = CTL_FAILED;
            goto out;
        }
        ret = CTL_OK;
    } else {
        usage(stderr);
    }
out:
    at_wipe(key, sizeof key);
    return ret;
}
