/* hash: one-shot digests with every OpenSSL failure reported (lib/hash.h).
 * Inputs may be attacker-supplied; they are only hashed, never parsed. */
#include "hash.h"

#include <openssl/evp.h>
#include <string.h>

#include "enc.h"

static at_err digest(const EVP_MD *md, size_t want, at_span in, uint8_t *out, at_diag *d)
{
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const uint8_t empty[1];
    if (EVP_Digest(in.len ? in.p : empty, in.len, h, &n, md, NULL) != 1 || n != want) {
        at_fail(d, AT_E_INTERNAL, "%s: digest failed", EVP_MD_get0_name(md));
        at_diag_add_openssl(d);
        return AT_E_INTERNAL;
    }
    memcpy(out, h, want);
    return AT_OK;
}

at_err at_sha256(at_span in, uint8_t out[AT_SHA256_LEN], at_diag *d)
{
    return digest(EVP_sha256(), AT_SHA256_LEN, in, out, d);
}

at_err at_sha384(at_span in, uint8_t out[48], at_diag *d) { return digest(EVP_sha384(), 48, in, out, d); }

at_err at_sha256_hex(at_span in, char out[2 * AT_SHA256_LEN + 1], at_diag *d)
{
    uint8_t h[AT_SHA256_LEN];
    at_err rc = at_sha256(in, h, d);
    if (rc == AT_OK)
        at_hex_encode(h, sizeof h, out);
    return rc;
}
