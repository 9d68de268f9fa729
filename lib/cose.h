/* cose: COSE_Sign1 (RFC 9052) envelopes as the Nitro hypervisor writes them,
 * decoded from untrusted bytes, and ES384 signature verification over the
 * bytes as received (never a re-encoding). */
#ifndef AT_COSE_H
#define AT_COSE_H

#include <cbor.h>
#include <openssl/evp.h>
#include <stdbool.h>

#include "buf.h"
#include "err.h"

/* COSE algorithm identifiers (IANA "COSE Algorithms"). */
#define AT_COSE_ALG_ES384 (-35)
#define AT_COSE_ES384_SIG_LEN 96

typedef struct {
    bool tagged;           /* CBOR tag 18 present */
    at_span protected_hdr; /* contents of the protected bstr */
    at_span payload;       /* contents of the payload bstr */
    at_span signature;     /* raw r || s */
    cbor_item_t *root;     /* owns the memory the spans point into */
} at_cose_sign1;

/* Decode a COSE_Sign1 from doc (≤ AT_MAX_DOCUMENT_BYTES). Checks: optional
 * tag 18 (any other tag: not_cose_sign1), array of 4 with the right types,
 * protected header a map whose alg is -35 (unsupported_alg otherwise, also
 * when alg sits only in the unprotected header), no critical headers we do
 * not understand, no trailing bytes, no duplicate keys, depth/size limits.
 * On success *out owns a tree: release with at_cose_sign1_cleanup(). */
at_err at_cose_sign1_decode(at_span doc, at_cose_sign1 *out, at_diag *d) AT_MUST_USE;

/* Verify the ES384 signature with key (EC P-384) over
 * Sig_structure = ["Signature1", protected, h'', payload] (RFC 9052 §4.4).
 * AT_E_BAD_SIGNATURE when it does not verify. */
at_err at_cose_sign1_verify(const at_cose_sign1 *m, EVP_PKEY *key, at_diag *d) AT_MUST_USE;

/* Sign (for the simulator): returns the 96-byte raw r||s signature of the
 * Sig_structure over protected_hdr and payload with a P-384 private key. */
at_err at_cose_sign1_sign(at_span protected_hdr, at_span payload, EVP_PKEY *key,
                          uint8_t sig[AT_COSE_ES384_SIG_LEN], at_diag *d) AT_MUST_USE;

void at_cose_sign1_cleanup(at_cose_sign1 *m);

#endif
