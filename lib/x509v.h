/* x509v: certificate chains of Nitro documents, checked against pinned roots
 * at a chosen time, with a cache of verified certificates.
 * Trust boundary: leaf and cabundle bytes come from the attacker; the pinned
 * roots are trusted. cabundle[0] must be byte-identical to a pinned root and
 * the chain OpenSSL builds must be exactly leaf <- cabundle[n-1] <- ... <-
 * cabundle[0]. Every certificate is ECDSA P-384 / SHA-384. Validity bounds
 * are inclusive (RFC 5280 §4.1.2.5) and checked here, not by OpenSSL.
 * AWS's certificate validation, each rule with the certificate and field
 * named: every certificate 1..1024 bytes (CDDL) and DER (a BER variant is
 * bad_field); root and intermediates basicConstraints CA:TRUE (critical)
 * and keyUsage keyCertSign (digitalSignature, cRLSign allowed), each
 * pathLenConstraint holding for the CAs below it; the leaf CA:FALSE without
 * pathLen and keyUsage digitalSignature (nonRepudiation allowed); both
 * extensions present everywhere (chain_invalid). Roots are checked when
 * pinned.
 *
 * The cache is keyed by the SHA-256 of a certificate's DER (never by name),
 * remembers the parent it was verified under and the window of time over
 * which that whole verification holds, and keeps the parsed X509. What
 * depends only on the bytes (size, DER) or on the bytes and the role (the
 * profile) is checked before an entry is made and reused only in that role;
 * path lengths, which depend on the position, are checked on every path. A
 * document whose intermediates were seen costs one certificate signature;
 * one whose leaf was seen costs none. Bounded (LRU), thread-safe. */
#ifndef AT_X509V_H
#define AT_X509V_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

typedef struct at_trust at_trust;

/* An empty trust set (no roots). Caller releases with at_trust_unref. */
at_trust *at_trust_new(size_t cache_entries);
/* Reference counting, so servers can swap trust sets on SIGHUP while
 * requests still hold the old one. unref accepts NULL. */
at_trust *at_trust_ref(at_trust *t);
void at_trust_unref(at_trust *t);

/* Pin roots. Only before the trust set is shared between threads.
 * A root must be a self-signed ECDSA P-384/SHA-384 CA certificate. */
at_err at_trust_add_root_der(at_trust *t, at_span der, at_diag *d) AT_MUST_USE;
/* Every certificate in a PEM file (or buffer). */
at_err at_trust_add_root_pem(at_trust *t, at_span pem, at_diag *d) AT_MUST_USE;
at_err at_trust_add_root_file(at_trust *t, const char *path, at_diag *d) AT_MUST_USE;
/* The AWS Nitro Enclaves root G1, built in. */
at_err at_trust_add_aws_root(at_trust *t, at_diag *d) AT_MUST_USE;
size_t at_trust_root_count(const at_trust *t);
/* SHA-256 of the built-in AWS root's DER. */
extern const uint8_t at_aws_root_g1_sha256[32];

typedef enum {
    AT_CHAIN_FULL = 0,          /* every signature verified */
    AT_CHAIN_CACHED_ISSUER = 1, /* intermediates cached: leaf signature only */
    AT_CHAIN_CACHED_LEAF = 2,   /* whole chain cached: no certificate signature */
} at_chain_path;

typedef struct {
    char subject[256];             /* leaf subject, RFC 2253 */
    int64_t not_before, not_after; /* leaf validity, UNIX seconds */
    size_t chain_length;           /* leaf + cabundle */
    uint8_t root_sha256[32];
    at_chain_path path;
} at_chain_result;

/* Verify leaf <- bundle[n-1] <- ... <- bundle[0] (a pinned root) at UNIX
 * time `when`. On success fills *res and, when leaf_key is not NULL, hands
 * the caller a reference to the leaf's public key (EVP_PKEY_free it).
 * Codes: untrusted_root, chain_invalid (also the profile rules),
 * cert_expired, cert_not_yet_valid, bad_field (size, not DER). */
at_err at_trust_verify(at_trust *t, at_span leaf, const at_span *bundle, size_t n, int64_t when,
                       at_chain_result *res, EVP_PKEY **leaf_key, at_diag *d) AT_MUST_USE;

typedef struct {
    uint64_t full, cached_issuer, cached_leaf, failed;
    size_t entries, capacity;
} at_trust_stats;
void at_trust_stats_get(at_trust *t, at_trust_stats *s);
/* Forget every cached certificate (roots stay). */
void at_trust_cache_clear(at_trust *t);

/* Helpers shared with the simulator and tests. */
/* UNIX seconds of an ASN1_TIME; false when unparsable. */
int at_asn1_time_unix(const ASN1_TIME *a, int64_t *out);

#endif
