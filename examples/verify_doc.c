/* verify_doc: an integrator's program built against the installed libattest
 * (`cc verify_doc.c $(pkg-config --cflags --libs attest)`). Verifies one
 * Nitro attestation document (COSE_Sign1, CBOR) against the built-in AWS
 * root at the document's own timestamp, or at --now, and prints its PCRs.
 * The file is untrusted: read with a size cap, then lib/evidence checks it. */
#include <attest/evidence.h>
#include <attest/x509v.h>
#include <stdio.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: verify_doc [--now] DOCUMENT.cbor\n");
    return 2;
}

int main(int argc, char **argv)
{
    bool now = argc == 3 && strcmp(argv[1], "--now") == 0;
    if (argc != 2 && !now)
        return usage();
    const char *path = argv[argc - 1];
    static uint8_t doc[AT_MAX_DOCUMENT_BYTES + 1];
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t n = fread(doc, 1, sizeof doc, f);
    fclose(f);
    if (n > AT_MAX_DOCUMENT_BYTES) {
        fprintf(stderr, "%s: larger than %d bytes\n", path, AT_MAX_DOCUMENT_BYTES);
        return 1;
    }

    at_diag d = {{0}};
    at_trust *trust = at_trust_new(16);
    if (!trust || at_trust_add_aws_root(trust, &d) != AT_OK) {
        fprintf(stderr, "built-in root: %s\n", d.msg);
        at_trust_unref(trust);
        return 1;
    }
    at_verify_opts opts = {.format = AT_FORMAT_AUTO, .time_mode = now ? AT_TIME_NOW : AT_TIME_DOCUMENT};
    at_evidence ev;
    at_err rc = at_evidence_verify(trust, AT_SPAN(doc, n), &opts, &ev);
    if (rc != AT_OK) {
        printf("invalid: %s: %s\n", at_err_str(rc), ev.diag.msg);
    } else {
        printf("valid: %s %s\n", at_format_name(ev.payload.format), ev.payload.module_id);
        for (size_t i = 0; i < ev.payload.n_pcrs; i++) {
            const at_pcr *p = &ev.payload.pcrs[i];
            printf("PCR%u ", (unsigned)p->index);
            for (size_t j = 0; j < p->len; j++)
                printf("%02x", p->value[j]);
            printf("\n");
        }
    }
    at_evidence_cleanup(&ev);
    at_trust_unref(trust);
    return rc == AT_OK ? 0 : 1;
}
