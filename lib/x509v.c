/* x509v: verifies attacker-supplied certificate chains against pinned roots
 * and caches what it verified (see x509v.h for the rules). */
#include "x509v.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "at_limits.h"
#include "clock.h"
#include "hash.h"

/* AWS Nitro Enclaves root G1 (public), DER SHA-256 641a0321...79bb5b. */
static const char aws_root_g1_pem[] = "-----BEGIN CERTIFICATE-----\n"
                                      "MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL\n"
                                      "MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD\n"
                                      "VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4\n"
                                      "MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL\n"
                                      "DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG\n"
                                      "BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb\n"
                                      "48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE\n"
                                      "h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF\n"
                                      "R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC\n"
                                      "MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW\n"
                                      "rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N\n"
                                      "IwLz3/Y=\n"
                                      "-----END CERTIFICATE-----\n";

const uint8_t at_aws_root_g1_sha256[32] = {0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46,
                                           0x31, 0x95, 0xd6, 0x06, 0x31, 0x7e, 0xd7, 0xcd, 0xcc, 0x3c, 0x17,
                                           0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b};

struct root {
    X509 *x509;
    uint8_t *der;
    size_t der_len;
    uint8_t hash[32];
    int64_t from, until;
    bool constrained; /* carries name or policy constraints */
};

struct entry {
    uint8_t hash[32];
    uint8_t parent[32];
    X509 *x509;
    int64_t from, until; /* the verification holds for from <= t <= until */
    /* Verified as the document's leaf (true) or as an issuer in a bundle:
     * reused only in that role, since the checks differ (an issuer's
     * ancestors' path lengths, a leaf's names, the profile of each role).
     * Set only after the profile of that role passed (check_profile). */
    bool leaf;
    /* It or a certificate above it constrains what it may issue (names,
     * policies): a leaf under it needs the whole chain, not just it. */
    bool constrained;
    struct entry *hnext;
    struct entry *prev, *next; /* LRU: head = most recent */
};

struct at_trust {
    atomic_int refs;
    struct root roots[AT_MAX_ROOTS];
    size_t n_roots;
    X509_STORE *store;

    pthread_mutex_t lock;
    struct entry **buckets;
    size_t n_buckets, n_entries, capacity;
    struct entry *lru_head, *lru_tail;
    at_trust_stats stats;
};

int at_asn1_time_unix(const ASN1_TIME *a, int64_t *out)
{
    struct tm tm;
    if (!a || ASN1_TIME_to_tm(a, &tm) != 1)
        return 0;
    *out = (int64_t)timegm(&tm);
    return 1;
}

at_trust *at_trust_new(size_t cache_entries)
{
    at_trust *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    atomic_init(&t->refs, 1);
    t->capacity = cache_entries ? cache_entries : AT_CERT_CACHE_ENTRIES;
    t->n_buckets = 1;
    while (t->n_buckets < t->capacity * 2)
        t->n_buckets <<= 1;
    t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
    t->store = X509_STORE_new();
    if (!t->buckets || !t->store || pthread_mutex_init(&t->lock, NULL) != 0) {
        X509_STORE_free(t->store);
        free(t->buckets);
        free(t);
        return NULL;
    }
    return t;
}

at_trust *at_trust_ref(at_trust *t)
{
    if (t)
        atomic_fetch_add(&t->refs, 1);
    return t;
}

static void cache_clear_locked(at_trust *t)
{
    struct entry *e = t->lru_head;
    while (e) {
        struct entry *next = e->next;
        X509_free(e->x509);
        free(e);
        e = next;
    }
    memset(t->buckets, 0, t->n_buckets * sizeof *t->buckets);
    t->lru_head = t->lru_tail = NULL;
    t->n_entries = 0;
}

void at_trust_unref(at_trust *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    cache_clear_locked(t);
    for (size_t i = 0; i < t->n_roots; i++) {
        X509_free(t->roots[i].x509);
        free(t->roots[i].der);
    }
    X509_STORE_free(t->store);
    pthread_mutex_destroy(&t->lock);
    free(t->buckets);
    free(t);
}

size_t at_trust_root_count(const at_trust *t) { return t->n_roots; }

/* ECDSA P-384 key, signed with ECDSA-SHA384: nothing else occurs in the
 * Nitro PKI, so nothing else is accepted. */
static at_err check_cert_algs(X509 *x, const char *what, at_diag *d)
{
    if (X509_get_signature_nid(x) != NID_ecdsa_with_SHA384)
        return at_fail(d, AT_E_CHAIN_INVALID, "%s: signature algorithm %s, expected ecdsa-with-SHA384", what,
                       OBJ_nid2sn(X509_get_signature_nid(x)));
    EVP_PKEY *k = X509_get0_pubkey(x);
    char group[64] = "";
    size_t glen = 0;
    if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC ||
        EVP_PKEY_get_group_name(k, group, sizeof group, &glen) != 1 || strcmp(group, "secp384r1") != 0) {
        ERR_clear_error();
        return at_fail(d, AT_E_CHAIN_INVALID, "%s: public key %s%s%s, expected EC P-384", what,
                       k ? OBJ_nid2sn(EVP_PKEY_get_base_id(k)) : "unreadable", group[0] ? " " : "", group);
    }
    return AT_OK;
}

/* Extensions whose effect reaches below the issuing certificate: OpenSSL
 * applies them to the whole chain under the certificate carrying them. */
static bool has_chain_constraints(X509 *x)
{
    static const int nids[] = {NID_name_constraints, NID_policy_constraints, NID_inhibit_any_policy};
    for (size_t i = 0; i < sizeof nids / sizeof nids[0]; i++)
        if (X509_get_ext_by_NID(x, nids[i], -1) >= 0)
            return true;
    return false;
}

static at_err cert_window(X509 *x, const char *what, int64_t *from, int64_t *until, at_diag *d)
{
    if (!at_asn1_time_unix(X509_get0_notBefore(x), from) || !at_asn1_time_unix(X509_get0_notAfter(x), until))
        return at_fail(d, AT_E_CHAIN_INVALID, "%s: unreadable validity dates", what);
    return AT_OK;
}

/* ---- DER (X.690 §10-11): one certificate, one byte string ---------------- */

/* A BER variant of a certificate is another byte string for the same
 * certificate (other hash, other cache key, and a parser that differs from
 * ours on it). AWS issues DER only, so anything else is refused. */
typedef struct {
    const uint8_t *base;
    size_t err_off;
    const char *why;
} der_ctx;

static bool der_fail(der_ctx *c, const uint8_t *at, const char *why)
{
    c->err_off = (size_t)(at - c->base);
    c->why = why;
    return false;
}

/* X.690 §11.6: SET OF elements in ascending order of their encodings, the
 * shorter padded with zero octets. */
static int der_set_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int r = memcmp(a, b, n);
    if (r != 0)
        return r;
    for (size_t i = n; i < al; i++)
        if (a[i])
            return 1;
    for (size_t i = n; i < bl; i++)
        if (b[i])
            return -1;
    return 0;
}

static bool all_digits(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

/* One TLV at p (len bytes available) and everything inside it; its size in
 * *used. Refuses what BER allows and DER does not. */
static bool der_tlv(der_ctx *c, const uint8_t *p, size_t len, size_t *used, int depth)
{
    if (len < 2)
        return der_fail(c, p, "truncated");
    uint8_t id = p[0], l0 = p[1];
    unsigned cls = id >> 6, tag = id & 0x1f;
    bool constructed = (id & 0x20) != 0;
    if (tag == 0x1f)
        return der_fail(c, p, "tag number above 30 (X.509 uses none)");
    size_t off = 2, clen;
    if (l0 < 0x80) {
        clen = l0;
    } else if (l0 == 0x80) {
        return der_fail(c, p, "indefinite length");
    } else {
        size_t k = l0 & 0x7f;
        if (k > 3) /* 16 MiB: far beyond any certificate */
            return der_fail(c, p, "length field too long");
        if (k > len - 2)
            return der_fail(c, p, "truncated");
        if (p[2] == 0)
            return der_fail(c, p, "length with a leading zero octet");
        clen = 0;
        for (size_t i = 0; i < k; i++)
            clen = clen << 8 | p[2 + i];
        if (clen < 0x80)
            return der_fail(c, p, "long-form length below 128");
        off += k;
    }
    if (clen > len - off)
        return der_fail(c, p, "truncated");
    const uint8_t *v = p + off;
    if (constructed) {
        if (cls == 0 && tag != 16 && tag != 17)
            return der_fail(c, p, "constructed encoding of a primitive type");
        if (depth >= 24)
            return der_fail(c, p, "nested too deeply");
        const uint8_t *prev = NULL;
        size_t prev_len = 0;
        for (size_t k = 0; k < clen;) {
            size_t u;
            if (!der_tlv(c, v + k, clen - k, &u, depth + 1))
                return false;
            if (cls == 0 && tag == 17 && prev && der_set_cmp(prev, prev_len, v + k, u) > 0)
                return der_fail(c, v + k, "SET OF elements out of order");
            prev = v + k;
            prev_len = u;
            k += u;
        }
    } else if (cls == 0) {
        switch (tag) {
        case 1: /* BOOLEAN: §11.1; in X.509 every BOOLEAN is DEFAULT FALSE */
            if (clen != 1 || (v[0] != 0xff && v[0] != 0x00))
                return der_fail(c, p, "BOOLEAN other than 00 or FF");
            if (v[0] == 0x00)
                return der_fail(c, p, "BOOLEAN FALSE encoded (the DEFAULT, omitted in DER)");
            break;
        case 2:  /* INTEGER */
        case 10: /* ENUMERATED: §8.3.2, minimal two's complement */
            if (clen == 0)
                return der_fail(c, p, "empty INTEGER");
            if (clen > 1 && ((v[0] == 0x00 && !(v[1] & 0x80)) || (v[0] == 0xff && (v[1] & 0x80))))
                return der_fail(c, p, "INTEGER not in minimal form");
            break;
        case 3: /* BIT STRING: §11.2, unused bits zero */
            if (clen == 0 || v[0] > 7 || (clen == 1 && v[0] != 0))
                return der_fail(c, p, "BIT STRING with a bad unused-bits count");
            if (v[0] && (v[clen - 1] & ((1u << v[0]) - 1)))
                return der_fail(c, p, "BIT STRING unused bits not zero");
            break;
        case 5: /* NULL */
            if (clen != 0)
                return der_fail(c, p, "NULL with contents");
            break;
        case 6: /* OBJECT IDENTIFIER: §8.19, minimal subidentifiers */
            if (clen == 0 || (v[clen - 1] & 0x80))
                return der_fail(c, p, "OBJECT IDENTIFIER truncated");
            for (size_t k = 0; k < clen; k++)
                if (v[k] == 0x80 && (k == 0 || !(v[k - 1] & 0x80)))
                    return der_fail(c, p, "OBJECT IDENTIFIER not in minimal form");
            break;
        case 23: /* UTCTime: §11.8, YYMMDDHHMMSSZ (RFC 5280 §4.1.2.5.1) */
            if (clen != 13 || !all_digits(v, 12) || v[12] != 'Z')
                return der_fail(c, p, "UTCTime not YYMMDDHHMMSSZ");
            break;
        case 24: /* GeneralizedTime: YYYYMMDDHHMMSSZ (RFC 5280 §4.1.2.5.2) */
            if (clen != 15 || !all_digits(v, 14) || v[14] != 'Z')
                return der_fail(c, p, "GeneralizedTime not YYYYMMDDHHMMSSZ");
            break;
        default:
            break;
        }
    }
    *used = off + clen;
    return true;
}

/* All of s is exactly one DER TLV. */
static bool der_whole(der_ctx *c, const uint8_t *p, size_t len)
{
    size_t used;
    if (!der_tlv(c, p, len, &used, 0))
        return false;
    if (used != len)
        return der_fail(c, p + used, "trailing bytes");
    return true;
}

/* der is the certificate x was parsed from. Every TLV, the DER inside each
 * extension's extnValue and inside the signature, and (the brief rule) the
 * certificate re-encoded from its parsed fields equals der. */
static at_err check_der(X509 *x, at_span der, const char *what, at_diag *d)
{
    der_ctx c = {der.p, 0, NULL};
    if (!der_whole(&c, der.p, der.len))
        return at_fail(d, AT_E_BAD_FIELD, "%s: not DER: %s at byte %zu", what, c.why, c.err_off);
    for (int i = 0; i < X509_get_ext_count(x); i++) {
        X509_EXTENSION *e = X509_get_ext(x, i);
        ASN1_OCTET_STRING *os = X509_EXTENSION_get_data(e);
        char oid[64] = "?";
        OBJ_obj2txt(oid, sizeof oid, X509_EXTENSION_get_object(e), 0);
        c.base = os ? os->data : NULL;
        if (!os || !der_whole(&c, os->data, (size_t)os->length))
            return at_fail(d, AT_E_BAD_FIELD, "%s: extension %s: not DER: %s at byte %zu", what, oid,
                           os ? c.why : "no value", c.err_off);
    }
    /* An ECDSA signature is an Ecdsa-Sig-Value (DER); other algorithms
     * are refused by check_cert_algs, with their own name. */
    const ASN1_BIT_STRING *sig = NULL;
    X509_get0_signature(&sig, NULL, x);
    c.base = sig ? sig->data : NULL;
    if (X509_get_signature_nid(x) == NID_ecdsa_with_SHA384 &&
        (!sig || !der_whole(&c, sig->data, (size_t)sig->length)))
        return at_fail(d, AT_E_BAD_FIELD, "%s: signatureValue: not DER: %s at byte %zu", what,
                       sig ? c.why : "missing", c.err_off);
    /* d2i keeps the tbsCertificate bytes as received; i2d_re_X509_tbs
     * forces encoding it again from the parsed fields. */
    at_err rc = AT_OK;
    unsigned char *re = NULL;
    int n = i2d_re_X509_tbs(x, NULL) > 0 ? i2d_X509(x, &re) : -1;
    if (n <= 0)
        rc = at_fail(d, AT_E_BAD_FIELD, "%s: cannot be encoded again", what);
    else if ((size_t)n != der.len || memcmp(re, der.p, der.len) != 0)
        rc = at_fail(d, AT_E_BAD_FIELD,
                     "%s: not DER: encoding it again gives %d bytes that differ from the %zu "
                     "received",
                     what, n, der.len);
    OPENSSL_free(re);
    ERR_clear_error();
    return rc;
}

/* ---- the Nitro PKI certificate profile ----------------------------------- */

/* keyUsage bits as OpenSSL reports them (X509_get_key_usage). */
static void ku_names(uint32_t ku, char *buf, size_t len)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {{KU_DIGITAL_SIGNATURE, "digitalSignature"},
                 {KU_NON_REPUDIATION, "nonRepudiation"},
                 {KU_KEY_ENCIPHERMENT, "keyEncipherment"},
                 {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
                 {KU_KEY_AGREEMENT, "keyAgreement"},
                 {KU_KEY_CERT_SIGN, "keyCertSign"},
                 {KU_CRL_SIGN, "cRLSign"},
                 {KU_ENCIPHER_ONLY, "encipherOnly"},
                 {KU_DECIPHER_ONLY, "decipherOnly"}};
    size_t w = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((ku & names[i].bit) && w < len)
            w += (size_t)snprintf(buf + w, len - w, "%s%s", w ? "," : "", names[i].name);
    if (!buf[0])
        snprintf(buf, len, "(none)");
}

/* Genuine chains (tests/data/nitro): root and intermediates carry
 * basicConstraints CA:TRUE (critical) and keyUsage keyCertSign, with
 * digitalSignature and cRLSign on all but the instance CA; leaves carry
 * CA:FALSE without pathLen and keyUsage digitalSignature + nonRepudiation.
 * AWS's certificate validation requires basicConstraints and keyUsage on
 * every certificate, keyCertSign on CAs, digitalSignature on the signing
 * certificate, which must not be a CA. Other keyUsage bits never occur and
 * are refused. Depends only on the certificate and its role. */
#define KU_CA_ALLOWED (KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN | KU_CRL_SIGN)
#define KU_LEAF_ALLOWED (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)

static at_err check_profile(X509 *x, bool ca, const char *what, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    int crit = -1;
    char got[160], want[160];
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
    ASN1_BIT_STRING *kus = NULL;
    AT_ENSURE(X509_get_version(x) == X509_VERSION_3, d, AT_E_CHAIN_INVALID, "%s: version v%ld, expected v3",
              what, X509_get_version(x) + 1);
    AT_ENSURE(crit != -2, d, AT_E_CHAIN_INVALID, "%s: basicConstraints: present more than once", what);
    AT_ENSURE(bc, d, AT_E_CHAIN_INVALID, "%s: basicConstraints: %s, expected CA:%s", what,
              crit == -1 ? "missing" : "unreadable", ca ? "TRUE" : "FALSE");
    if (ca) {
        AT_ENSURE(bc->ca, d, AT_E_CHAIN_INVALID, "%s: basicConstraints: CA:FALSE, expected CA:TRUE", what);
        /* RFC 5280 §4.2.1.9: critical in CA certificates. */
        AT_ENSURE(crit == 1, d, AT_E_CHAIN_INVALID, "%s: basicConstraints: not critical, expected critical",
                  what);
        AT_ENSURE(!bc->pathlen || (bc->pathlen->type == V_ASN1_INTEGER && ASN1_INTEGER_get(bc->pathlen) >= 0),
                  d, AT_E_CHAIN_INVALID, "%s: basicConstraints: negative pathLenConstraint", what);
    } else {
        AT_ENSURE(!bc->ca, d, AT_E_CHAIN_INVALID,
                  "%s: basicConstraints: CA:TRUE, expected CA:FALSE (the signing certificate "
                  "must not be a CA)",
                  what);
        AT_ENSURE(!bc->pathlen, d, AT_E_CHAIN_INVALID,
                  "%s: basicConstraints: pathLenConstraint %ld, expected none", what,
                  ASN1_INTEGER_get(bc->pathlen));
    }
    crit = -1;
    kus = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
    AT_ENSURE(crit != -2, d, AT_E_CHAIN_INVALID, "%s: keyUsage: present more than once", what);
    AT_ENSURE(kus, d, AT_E_CHAIN_INVALID, "%s: keyUsage: %s, expected %s", what,
              crit == -1 ? "missing" : "unreadable", ca ? "keyCertSign" : "digitalSignature");
    uint32_t ku = 0;
    if (kus->length > 0)
        ku = kus->data[0];
    if (kus->length > 1)
        ku |= (uint32_t)kus->data[1] << 8;
    ku_names(ku, got, sizeof got);
    uint32_t need = ca ? KU_KEY_CERT_SIGN : KU_DIGITAL_SIGNATURE;
    uint32_t allowed = ca ? KU_CA_ALLOWED : KU_LEAF_ALLOWED;
    ku_names(need, want, sizeof want);
    AT_ENSURE(ku & need, d, AT_E_CHAIN_INVALID, "%s: keyUsage: %s, expected %s", what, got, want);
    ku_names(allowed, want, sizeof want);
    AT_ENSURE(!(ku & ~allowed) && kus->length <= 2, d, AT_E_CHAIN_INVALID,
              "%s: keyUsage: %s, expected only %s for %s", what, got, want,
              ca ? "a CA" : "the signing certificate");
    /* Anything else OpenSSL finds wrong with the extensions (repeated
     * extensions, unreadable ones it knows): refuse here, in every role. */
    AT_ENSURE(!(X509_get_extension_flags(x) & EXFLAG_INVALID), d, AT_E_CHAIN_INVALID,
              "%s: extensions: unreadable or repeated", what);
    rc = AT_OK;
out:
    BASIC_CONSTRAINTS_free(bc);
    ASN1_BIT_STRING_free(kus);
    ERR_clear_error();
    return rc;
}

/* RFC 5280 §4.2.1.9 / AWS: a CA's pathLenConstraint bounds the CA
 * certificates below it. cas[0] is the root, cas[n-1] the leaf's issuer;
 * the leaf is not a CA (check_profile) and does not count. Depends on the
 * position, so it runs on every path, cached or not. */
static at_err check_path_lengths(X509 *const *cas, size_t n, at_diag *d)
{
    for (size_t i = 0; i < n; i++) {
        long pl = X509_get_pathlen(cas[i]);
        size_t below = n - 1 - i;
        if (pl >= 0 && below > (size_t)pl)
            return at_fail(d, AT_E_CHAIN_INVALID,
                           "cabundle[%zu]%s: basicConstraints: pathLenConstraint %ld, but %zu CA "
                           "certificate%s follow%s it",
                           i, i == 0 ? " (root)" : "", pl, below, below == 1 ? "" : "s",
                           below == 1 ? "s" : "");
    }
    return AT_OK;
}

at_err at_trust_add_root_der(at_trust *t, at_span der, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    X509 *x = NULL;
    const unsigned char *p = der.p;
    AT_ENSURE(t->n_roots < AT_MAX_ROOTS, d, AT_E_TOO_LARGE, "roots: at most %d", AT_MAX_ROOTS);
    AT_ENSURE(der.len > 0 && der.len <= AT_MAX_CERT_BYTES, d, AT_E_BAD_FIELD, "root: %zu bytes", der.len);
    x = d2i_X509(NULL, &p, (long)der.len);
    AT_ENSURE(x && p == der.p + der.len, d, AT_E_BAD_FIELD, "root: not a DER certificate");
    AT_TRY(check_der(x, der, "root", d));
    AT_TRY(check_cert_algs(x, "root", d));
    AT_ENSURE(X509_check_ca(x) >= 1, d, AT_E_CHAIN_INVALID, "root: not a CA certificate");
    AT_TRY(check_profile(x, true, "root", d));
    AT_ENSURE(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0 &&
                  X509_verify(x, X509_get0_pubkey(x)) == 1,
              d, AT_E_CHAIN_INVALID, "root: not self-signed");
    uint8_t h[32];
    AT_TRY(at_sha256(der, h, d));
    for (size_t i = 0; i < t->n_roots; i++)
        if (memcmp(t->roots[i].hash, h, 32) == 0) {
            rc = AT_OK; /* already pinned */
            goto out;
        }
    struct root *r = &t->roots[t->n_roots];
    AT_TRY(cert_window(x, "root", &r->from, &r->until, d));
    AT_ENSURE((r->der = malloc(der.len)), d, AT_E_INTERNAL, "out of memory");
    memcpy(r->der, der.p, der.len);
    r->der_len = der.len;
    memcpy(r->hash, h, 32);
    r->constrained = has_chain_constraints(x);
    AT_OSSL(X509_STORE_add_cert(t->store, x), d);
    r->x509 = x;
    x = NULL;
    t->n_roots++;
    rc = AT_OK;
out:
    ERR_clear_error();
    X509_free(x);
    return rc;
}

at_err at_trust_add_root_pem(at_trust *t, at_span pem, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    BIO *bio = BIO_new_mem_buf(pem.p, (int)pem.len);
    X509 *x = NULL;
    unsigned char *der = NULL;
    int added = 0;
    AT_ENSURE(bio && pem.len < 1024 * 1024, d, AT_E_BAD_FIELD, "root: PEM too large");
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        int n = i2d_X509(x, &der);
        AT_ENSURE(n > 0, d, AT_E_BAD_FIELD, "root: unencodable certificate");
        AT_TRY(at_trust_add_root_der(t, AT_SPAN(der, (size_t)n), d));
        OPENSSL_free(der);
        der = NULL;
        X509_free(x);
        x = NULL;
        added++;
    }
    AT_ENSURE(added > 0, d, AT_E_BAD_FIELD, "root: no PEM certificate found");
    rc = AT_OK;
out:
    ERR_clear_error();
    OPENSSL_free(der);
    X509_free(x);
    BIO_free(bio);
    return rc;
}

at_err at_trust_add_root_file(at_trust *t, const char *path, at_diag *d)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return at_fail(d, AT_E_IO, "root: cannot open %s", path);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    int big = !feof(f);
    fclose(f);
    if (big)
        return at_fail(d, AT_E_TOO_LARGE, "root: %s is larger than 64 KiB", path);
    at_err rc;
    if (n > 0 && (unsigned char)buf[0] == 0x30)
        rc = at_trust_add_root_der(t, AT_SPAN(buf, n), d);
    else
        rc = at_trust_add_root_pem(t, AT_SPAN(buf, n), d);
    if (rc != AT_OK)
        at_diag_prefix(d, "%s: ", path);
    return rc;
}

at_err at_trust_add_aws_root(at_trust *t, at_diag *d)
{
    return at_trust_add_root_pem(t, AT_SPAN(aws_root_g1_pem, sizeof aws_root_g1_pem - 1), d);
}

/* ---- cache (callers hold t->lock) --------------------------------------- */

static size_t bucket_of(const at_trust *t, const uint8_t h[32])
{
    uint64_t v;
    memcpy(&v, h, sizeof v); /* SHA-256 output is uniform */
    return (size_t)(v & (t->n_buckets - 1));
}

static struct entry *lookup(at_trust *t, const uint8_t h[32])
{
    for (struct entry *e = t->buckets[bucket_of(t, h)]; e; e = e->hnext)
        if (memcmp(e->hash, h, 32) == 0)
            return e;
    return NULL;
}

static void lru_unlink(at_trust *t, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        t->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        t->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_front(at_trust *t, struct entry *e)
{
    e->prev = NULL;
    e->next = t->lru_head;
    if (t->lru_head)
        t->lru_head->prev = e;
    t->lru_head = e;
    if (!t->lru_tail)
        t->lru_tail = e;
}

static void touch(at_trust *t, struct entry *e)
{
    if (t->lru_head != e) {
        lru_unlink(t, e);
        lru_front(t, e);
    }
}

static void remove_entry(at_trust *t, struct entry *e)
{
    struct entry **pp = &t->buckets[bucket_of(t, e->hash)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    lru_unlink(t, e);
    X509_free(e->x509);
    free(e);
    t->n_entries--;
}

static void insert(at_trust *t, const uint8_t h[32], const uint8_t parent[32], X509 *x, int64_t from,
                   int64_t until, bool leaf, bool constrained)
{
    struct entry *e = lookup(t, h);
    if (e) {
        memcpy(e->parent, parent, 32);
        e->from = from;
        e->until = until;
        e->leaf = leaf;
        e->constrained = constrained;
        touch(t, e);
        return;
    }
    if (t->n_entries >= t->capacity && t->lru_tail)
        remove_entry(t, t->lru_tail);
    e = calloc(1, sizeof *e);
    if (!e || X509_up_ref(x) != 1) {
        free(e);
        return; /* the cache is an optimisation: failing to fill it is fine */
    }
    memcpy(e->hash, h, 32);
    memcpy(e->parent, parent, 32);
    e->x509 = x;
    e->from = from;
    e->until = until;
    e->leaf = leaf;
    e->constrained = constrained;
    size_t b = bucket_of(t, h);
    e->hnext = t->buckets[b];
    t->buckets[b] = e;
    lru_front(t, e);
    t->n_entries++;
}

void at_trust_cache_clear(at_trust *t)
{
    pthread_mutex_lock(&t->lock);
    cache_clear_locked(t);
    pthread_mutex_unlock(&t->lock);
}

void at_trust_stats_get(at_trust *t, at_trust_stats *s)
{
    pthread_mutex_lock(&t->lock);
    *s = t->stats;
    s->entries = t->n_entries;
    s->capacity = t->capacity;
    pthread_mutex_unlock(&t->lock);
}

/* ---- verification ------------------------------------------------------- */

/* A certificate as received: 1..1024 bytes (AWS's CDDL), DER. Its bytes are
 * its cache key, so what is checked here holds for every later cache hit. */
static X509 *parse_cert(at_span der, const char *what, at_diag *d, at_err *rc)
{
    if (der.len == 0 || der.len > AT_MAX_CERT_BYTES) {
        *rc = at_fail(d, AT_E_BAD_FIELD, "%s: %zu bytes, expected 1..%d", what, der.len, AT_MAX_CERT_BYTES);
        return NULL;
    }
    const unsigned char *p = der.p;
    X509 *x = d2i_X509(NULL, &p, (long)der.len);
    if (!x || p != der.p + der.len) {
        ERR_clear_error();
        X509_free(x);
        *rc = at_fail(d, AT_E_BAD_FIELD, "%s: not a DER X.509 certificate%s", what,
                      x ? " (trailing bytes)" : "");
        return NULL;
    }
    if ((*rc = check_der(x, der, what, d)) != AT_OK) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* The profile of each certificate in its role, then the path lengths. A
 * cache entry is only ever made after its certificate passed the profile of
 * the role it is stored with, and is only reused in that role (its bytes,
 * hence its extensions, are its key): so on a cache path the profile of a
 * cached role is the checked result, and only what is new is checked — the
 * leaf unless the whole chain was cached. Path lengths depend on the
 * position and are checked on every path. */
static at_err check_chain_profile(const struct root *r, X509 *const *certs, size_t n, X509 *leaf,
                                  at_chain_path path, at_diag *d)
{
    X509 *cas[AT_MAX_CABUNDLE];
    at_err rc = AT_OK;
    cas[0] = r->x509; /* checked when pinned */
    for (size_t i = 1; i < n; i++) {
        char what[24];
        snprintf(what, sizeof what, "cabundle[%zu]", i);
        if (rc == AT_OK && path == AT_CHAIN_FULL)
            rc = check_profile(certs[i], true, what, d);
        cas[i] = certs[i];
    }
    if (rc == AT_OK && path != AT_CHAIN_CACHED_LEAF)
        rc = check_profile(leaf, false, "certificate (leaf)", d);
    if (rc == AT_OK)
        rc = check_path_lengths(cas, n, d);
    return rc;
}

static void fill_result(X509 *leaf, size_t n, const struct root *r, at_chain_path path, at_chain_result *res)
{
    memset(res, 0, sizeof *res);
    BIO *b = BIO_new(BIO_s_mem());
    if (b) {
        X509_NAME_print_ex(b, X509_get_subject_name(leaf), 0, XN_FLAG_RFC2253);
        int len = BIO_read(b, res->subject, sizeof res->subject - 1);
        res->subject[len > 0 ? len : 0] = '\0';
        BIO_free(b);
    }
    at_asn1_time_unix(X509_get0_notBefore(leaf), &res->not_before);
    at_asn1_time_unix(X509_get0_notAfter(leaf), &res->not_after);
    res->chain_length = n + 1;
    memcpy(res->root_sha256, r->hash, 32);
    res->path = path;
}

/* Inclusive bounds (RFC 5280 §4.1.2.5): valid when from <= when <= until. */
static at_err check_time(X509 *x, const char *what, int64_t when, int64_t *from, int64_t *until, at_diag *d)
{
    at_err rc = cert_window(x, what, from, until, d);
    if (rc != AT_OK)
        return rc;
    char a[32], b[32];
    if (when < *from) {
        at_time_rfc3339(*from, a, sizeof a);
        at_time_rfc3339(when, b, sizeof b);
        return at_fail(d, AT_E_CERT_NOT_YET_VALID, "%s: not valid before %s, checked at %s", what, a, b);
    }
    if (when > *until) {
        at_time_rfc3339(*until, a, sizeof a);
        at_time_rfc3339(when, b, sizeof b);
        return at_fail(d, AT_E_CERT_EXPIRED, "%s: expired at %s, checked at %s", what, a, b);
    }
    return AT_OK;
}

static at_err map_verify_error(X509_STORE_CTX *ctx, size_t n, at_diag *d)
{
    int err = X509_STORE_CTX_get_error(ctx);
    int depth = X509_STORE_CTX_get_error_depth(ctx);
    char what[40];
    if (depth == 0)
        snprintf(what, sizeof what, "certificate (leaf)");
    else if ((size_t)depth <= n)
        snprintf(what, sizeof what, "cabundle[%zu]", n - (size_t)depth);
    else
        snprintf(what, sizeof what, "chain depth %d", depth);
    return at_fail(d, AT_E_CHAIN_INVALID, "%s: %s (X509 error %d)", what, X509_verify_cert_error_string(err),
                   err);
}

/* Leaf under an issuer that is already verified (cached): OpenSSL checks the
 * signature, names and extensions with the issuer as the trust anchor. */
static at_err verify_under_issuer(X509 *leaf, X509 *issuer, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    X509_STORE *st = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    AT_ENSURE(st && ctx, d, AT_E_INTERNAL, "out of memory");
    AT_OSSL(X509_STORE_add_cert(st, issuer), d);
    AT_OSSL(X509_STORE_CTX_init(ctx, st, leaf, NULL), d);
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME);
    if (X509_verify_cert(ctx) != 1) {
        rc = map_verify_error(ctx, 1, d);
        goto out;
    }
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    AT_ENSURE(chain && sk_X509_num(chain) == 2 && sk_X509_value(chain, 1) == issuer, d, AT_E_CHAIN_INVALID,
              "certificate (leaf): not issued by cabundle's last certificate");
    rc = AT_OK;
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    return rc;
}

at_err at_trust_verify(at_trust *t, at_span leaf_der, const at_span *bundle, size_t n, int64_t when,
                       at_chain_result *res, EVP_PKEY **leaf_key, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t h_leaf[32], h[AT_MAX_CABUNDLE][32];
    X509 *certs[AT_MAX_CABUNDLE] = {0}; /* parsed cabundle[1..n-1] */
    X509 *leaf = NULL, *issuer = NULL;
    STACK_OF(X509) *untrusted = NULL;
    X509_STORE_CTX *ctx = NULL;
    const struct root *r = NULL;
    at_chain_path path = AT_CHAIN_FULL;
    bool locked = false;

    AT_ENSURE(n >= 1 && n <= AT_MAX_CABUNDLE, d, AT_E_BAD_FIELD, "cabundle: %zu certificates, expected 1..%d",
              n, AT_MAX_CABUNDLE);
    for (size_t i = 0; i < t->n_roots && !r; i++)
        if (at_span_eq(bundle[0], AT_SPAN(t->roots[i].der, t->roots[i].der_len)))
            r = &t->roots[i];
    if (!r) {
        uint8_t hr[32];
        char hex[65];
        AT_TRY(at_sha256(bundle[0], hr, d));
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", hr[i]);
        rc = at_fail(d, AT_E_UNTRUSTED_ROOT,
                     "cabundle[0]: root with DER SHA-256 %s is not a pinned root (%zu pinned)", hex,
                     t->n_roots);
        goto out;
    }
    memcpy(h[0], r->hash, 32);
    for (size_t i = 1; i < n; i++)
        AT_TRY(at_sha256(bundle[i], h[i], d));
    AT_TRY(at_sha256(leaf_der, h_leaf, d));

    /* Fast paths: the bundle, link by link, is what we verified before. */
    pthread_mutex_lock(&t->lock);
    locked = true;
    bool bundle_cached = true, issuer_constrained = r->constrained;
    int64_t issuer_from = r->from, issuer_until = r->until;
    X509 *issuer_x = r->x509;
    for (size_t i = 1; i < n; i++) {
        struct entry *e = lookup(t, h[i]);
        if (e)
            certs[i] = e->x509, X509_up_ref(e->x509); /* reuse the parse either way */
        if (!e || e->leaf || memcmp(e->parent, h[i - 1], 32) != 0) {
            bundle_cached = false;
            continue;
        }
        issuer_from = e->from;
        issuer_until = e->until;
        issuer_x = e->x509;
        issuer_constrained = e->constrained;
        touch(t, e);
    }
    if (bundle_cached) {
        struct entry *le = lookup(t, h_leaf);
        if (le && le->leaf && memcmp(le->parent, h[n - 1], 32) == 0 && when >= le->from &&
            when <= le->until) {
            touch(t, le);
            leaf = le->x509;
            X509_up_ref(leaf);
            path = AT_CHAIN_CACHED_LEAF;
        } else if (le) {
            leaf = le->x509; /* reuse the parse, verify again */
            X509_up_ref(leaf);
        }
        /* verify_under_issuer sees only the issuer: constraints from
         * above it would go unchecked, so such chains are verified whole. */
        if (path == AT_CHAIN_FULL && !issuer_constrained && when >= issuer_from && when <= issuer_until) {
            issuer = issuer_x;
            X509_up_ref(issuer);
            path = AT_CHAIN_CACHED_ISSUER;
        }
    }
    pthread_mutex_unlock(&t->lock);
    locked = false;

    if (!leaf && !(leaf = parse_cert(leaf_der, "certificate (leaf)", d, &rc)))
        goto out;
    if (path != AT_CHAIN_FULL)
        AT_TRY(check_chain_profile(r, certs, n, leaf, path, d)); /* every certs[i] is cached */
    if (path == AT_CHAIN_CACHED_LEAF)
        goto done;

    int64_t from, until;
    if (path == AT_CHAIN_CACHED_ISSUER) {
        AT_TRY(check_cert_algs(leaf, "certificate (leaf)", d));
        AT_TRY(verify_under_issuer(leaf, issuer, d));
        AT_TRY(check_time(leaf, "certificate (leaf)", when, &from, &until, d));
        pthread_mutex_lock(&t->lock);
        insert(t, h_leaf, h[n - 1], leaf, from > issuer_from ? from : issuer_from,
               until < issuer_until ? until : issuer_until, true, false);
        pthread_mutex_unlock(&t->lock);
        goto done;
    }

    /* Full verification. */
    AT_ENSURE((untrusted = sk_X509_new_null()), d, AT_E_INTERNAL, "out of memory");
    for (size_t i = 1; i < n; i++) {
        char what[24];
        snprintf(what, sizeof what, "cabundle[%zu]", i);
        if (!certs[i] && !(certs[i] = parse_cert(bundle[i], what, d, &rc)))
            goto out;
        AT_TRY(check_cert_algs(certs[i], what, d));
        AT_ENSURE(sk_X509_push(untrusted, certs[i]) > 0, d, AT_E_INTERNAL, "out of memory");
    }
    AT_TRY(check_cert_algs(leaf, "certificate (leaf)", d));
    AT_TRY(check_chain_profile(r, certs, n, leaf, AT_CHAIN_FULL, d));
    AT_ENSURE((ctx = X509_STORE_CTX_new()), d, AT_E_INTERNAL, "out of memory");
    AT_OSSL(X509_STORE_CTX_init(ctx, t->store, leaf, untrusted), d);
    /* Time is checked below with inclusive bounds. X509_STRICT stays off:
     * genuine leaves carry no AKI (nitro-facts.md). */
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
    if (X509_verify_cert(ctx) != 1) {
        rc = map_verify_error(ctx, n, d);
        goto out;
    }
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    AT_ENSURE(chain && (size_t)sk_X509_num(chain) == n + 1, d, AT_E_CHAIN_INVALID,
              "cabundle: the chain from the leaf to the root has %d certificates, the bundle "
              "lists %zu (expected leaf <- cabundle[%zu] <- ... <- cabundle[0])",
              chain ? sk_X509_num(chain) : 0, n + 1, n - 1);
    for (size_t k = 1; k < n; k++)
        AT_ENSURE(sk_X509_value(chain, (int)k) == certs[n - k], d, AT_E_CHAIN_INVALID,
                  "cabundle[%zu]: out of order (expected the issuer of %s)", n - k,
                  k == 1 ? "the leaf" : "the next certificate");
    AT_ENSURE(X509_cmp(sk_X509_value(chain, (int)n), r->x509) == 0, d, AT_E_CHAIN_INVALID,
              "cabundle[0]: the chain ends at a different pinned root");

    /* The window over which each link holds, then validity at `when`,
     * reported leaf first. */
    int64_t wf[AT_MAX_CABUNDLE], wu[AT_MAX_CABUNDLE];
    bool wc[AT_MAX_CABUNDLE];
    wf[0] = r->from;
    wu[0] = r->until;
    wc[0] = r->constrained;
    for (size_t i = 1; i < n; i++) {
        char what[24];
        snprintf(what, sizeof what, "cabundle[%zu]", i);
        int64_t f, u;
        AT_TRY(cert_window(certs[i], what, &f, &u, d));
        wf[i] = f > wf[i - 1] ? f : wf[i - 1];
        wu[i] = u < wu[i - 1] ? u : wu[i - 1];
        wc[i] = wc[i - 1] || has_chain_constraints(certs[i]);
    }
    AT_TRY(check_time(leaf, "certificate (leaf)", when, &from, &until, d));
    for (size_t i = n - 1; i >= 1; i--) {
        char what[24];
        snprintf(what, sizeof what, "cabundle[%zu]", i);
        int64_t f, u;
        AT_TRY(check_time(certs[i], what, when, &f, &u, d));
    }
    {
        int64_t f, u;
        AT_TRY(check_time(r->x509, "cabundle[0] (root)", when, &f, &u, d));
    }
    pthread_mutex_lock(&t->lock);
    for (size_t i = 1; i < n; i++)
        insert(t, h[i], h[i - 1], certs[i], wf[i], wu[i], false, wc[i]);
    insert(t, h_leaf, h[n - 1], leaf, from > wf[n - 1] ? from : wf[n - 1],
           until < wu[n - 1] ? until : wu[n - 1], true, false);
    pthread_mutex_unlock(&t->lock);

done:
    if (leaf_key) {
        EVP_PKEY *k = X509_get0_pubkey(leaf);
        AT_ENSURE(k && EVP_PKEY_up_ref(k) == 1, d, AT_E_INTERNAL, "leaf: no public key");
        *leaf_key = k;
    }
    fill_result(leaf, n, r, path, res);
    rc = AT_OK;
out:
    if (locked)
        pthread_mutex_unlock(&t->lock);
    pthread_mutex_lock(&t->lock);
    if (rc == AT_OK) {
        if (path == AT_CHAIN_FULL)
            t->stats.full++;
        else if (path == AT_CHAIN_CACHED_ISSUER)
            t->stats.cached_issuer++;
        else
            t->stats.cached_leaf++;
    } else {
        t->stats.failed++;
    }
    pthread_mutex_unlock(&t->lock);
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    for (size_t i = 0; i < AT_MAX_CABUNDLE; i++)
        X509_free(certs[i]);
    X509_free(leaf);
    X509_free(issuer);
    return rc;
}
