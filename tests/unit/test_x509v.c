/* Unit tests for lib/x509v.c: every genuine AWS document verifies at its own
 * time with the built-in root (and its fields match the facts beside it) and
 * fails at now with cert_expired; inclusive validity bounds on every path;
 * the certificate cache (paths, windows, clear, LRU bound, threads); and
 * chain refusals with exact codes: reordered bundle, foreign leaf, untrusted
 * root, same-DN root, same-DN forged intermediate, non-P-384 certificates,
 * non-CA issuers, expired intermediates, malformed DER, bad roots; and
 * AWS's certificate rules, one row or test each: the profile of root,
 * intermediates and leaf (basicConstraints, keyUsage, pathLen), checked on
 * cache hits too; DER only (BER variants in every position); 1..1024 bytes. */
#include "test_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "at_limits.h"
#include "cose.h"
#include "enc.h"

/* ---- helpers ------------------------------------------------------------- */

/* A chain as owned copies: [0..3] cabundle (root first), [4] leaf. */
typedef struct {
    uint8_t *der[5];
    size_t len[5];
    at_span bundle[AT_MAX_CABUNDLE];
} chain;

static void chain_from_sim(chain *c, const at_sim_pki *pki)
{
    for (int l = 0; l < 5; l++) {
        at_span s = at_sim_cert_der(pki, l);
        c->der[l] = malloc(s.len);
        memcpy(c->der[l], s.p, s.len);
        c->len[l] = s.len;
        if (l < 4)
            c->bundle[l] = AT_SPAN(c->der[l], s.len);
    }
}

static at_span leaf_of(const chain *c) { return AT_SPAN(c->der[4], c->len[4]); }

static void chain_free(chain *c)
{
    for (int l = 0; l < 5; l++)
        free(c->der[l]);
    memset(c, 0, sizeof *c);
}

/* Mint a document with a fresh leaf at ts_s and capture the chain. */
static void new_leaf(tu_sim *s, int64_t ts_s, chain *c)
{
    at_sim_doc_opts o = {.timestamp_ms = ts_s * 1000, .new_leaf = true};
    at_buf b;
    at_diag d = {{0}};
    at_buf_init(&b);
    assert_int_equal(at_sim_doc(s->pki, &o, &b, &d), AT_OK);
    at_buf_cleanup(&b);
    chain_from_sim(c, s->pki);
}

static at_err verify(at_trust *t, const chain *c, int64_t when, at_chain_result *res)
{
    at_chain_result local;
    at_diag d = {{0}};
    at_err rc = at_trust_verify(t, leaf_of(c), c->bundle, 4, when, res ? res : &local, NULL, &d);
    if (rc != AT_OK)
        assert_true(d.msg[0] != '\0');
    return rc;
}

static at_err verify_spans(at_trust *t, at_span leaf, const at_span *bundle, size_t n, int64_t when)
{
    at_chain_result res;
    at_diag d = {{0}};
    return at_trust_verify(t, leaf, bundle, n, when, &res, NULL, &d);
}

static int64_t parse_rfc3339(const char *s)
{
    struct tm tm = {0};
    char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    assert_non_null(end);
    return (int64_t)timegm(&tm);
}

static int64_t leaf_not_after(const chain *c)
{
    const uint8_t *p = c->der[4];
    X509 *x = d2i_X509(NULL, &p, (long)c->len[4]);
    int64_t t = 0;
    assert_non_null(x);
    assert_true(at_asn1_time_unix(X509_get0_notAfter(x), &t));
    X509_free(x);
    return t;
}

/* ---- an OpenSSL-made PKI for algorithm and extension cases ------------- */

static EVP_PKEY *keygen(const char *kind)
{
    EVP_PKEY *k = strcmp(kind, "rsa") == 0 ? EVP_RSA_gen(2048) : EVP_EC_gen(kind);
    assert_non_null(k);
    return k;
}

/* One extra extension (nid, OpenSSL config value) when nid != NID_undef;
 * NID_basic_constraints replaces the default one. */
static X509 *mk_cert_ext(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                         int64_t nb, int64_t na, const EVP_MD *md, int nid, const char *value);

static X509 *mk_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca, int64_t nb,
                     int64_t na, const EVP_MD *md)
{
    return mk_cert_ext(cn, key, issuer, issuer_key, ca, nb, na, md, NID_undef, NULL);
}

static X509 *mk_cert_ext(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                         int64_t nb, int64_t na, const EVP_MD *md, int nid, const char *value)
{
    static long serial = 1000;
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"test", -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb);
    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na);
    X509_set_pubkey(x, key);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
                                            nid == NID_basic_constraints ? value
                                            : ca                         ? "critical,CA:TRUE"
                                                                         : "critical,CA:FALSE");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    e = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage,
                            ca ? "critical,digitalSignature,keyCertSign,cRLSign"
                               : "critical,digitalSignature");
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    if (nid != NID_undef && nid != NID_basic_constraints) {
        e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        assert_non_null(e);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, md) > 0);
    return x;
}

typedef struct {
    uint8_t *p;
    size_t n;
} der;

static der to_der(X509 *x)
{
    der d = {NULL, 0};
    int n = i2d_X509(x, &d.p);
    assert_true(n > 0);
    d.n = (size_t)n;
    return d;
}

#define DSPAN(d) AT_SPAN((d).p, (d).n)

/* ---- genuine documents -------------------------------------------------- */

static void hex_field_matches(json_t *j, const char *key, bool has, at_span v)
{
    json_t *x = json_object_get(j, key);
    assert_non_null(x);
    if (json_is_null(x)) {
        assert_false(has);
        return;
    }
    assert_true(has);
    const char *hex = json_string_value(x);
    assert_non_null(hex);
    assert_int_equal(strlen(hex), 2 * v.len);
    char *mine = at_hex_encode_new(v);
    assert_string_equal(mine, hex);
    free(mine);
}

static void genuine_documents(void **state)
{
    at_trust *t = tu_trust(NULL, true, 0);
    assert_non_null(t);
    int64_t now = tu_now_s();
    for (size_t i = 0; i < TU_N_GENUINE; i++) {
        size_t len, jlen;
        uint8_t *doc = tu_read_genuine(tu_genuine[i], ".cbor", &len);
        uint8_t *jtxt = tu_read_genuine(tu_genuine[i], ".json", &jlen);
        json_error_t je;
        json_t *j = json_loadb((const char *)jtxt, jlen, 0, &je);
        assert_non_null(j);
        at_cose_sign1 m;
        at_nitro_payload p;
        at_diag d = {{0}};
        assert_int_equal(at_cose_sign1_decode(AT_SPAN(doc, len), &m, &d), AT_OK);
        assert_int_equal(at_nitro_payload_decode(m.payload, AT_FORMAT_AUTO, &p, &d), AT_OK);

        /* The decoded fields are the facts written beside the document. */
        assert_string_equal(p.module_id, json_string_value(json_object_get(j, "module_id")));
        assert_true(p.timestamp_ms == (uint64_t)json_integer_value(json_object_get(j, "timestamp_ms")));
        assert_int_equal(p.map_indefinite, json_is_true(json_object_get(j, "payload_map_indefinite_length")));
        assert_int_equal(m.tagged, json_is_true(json_object_get(j, "cose_tagged")));
        const char *kind = json_string_value(json_object_get(j, "kind"));
        assert_int_equal(p.format,
                         strcmp(kind, "nitrotpm") == 0 ? AT_FORMAT_NITRO_TPM : AT_FORMAT_NITRO_ENCLAVE);
        json_t *pcrs = json_object_get(j, "pcrs");
        assert_int_equal(p.n_pcrs, json_object_size(pcrs));
        for (size_t k = 0; k < p.n_pcrs; k++) {
            char key[8];
            snprintf(key, sizeof key, "%u", p.pcrs[k].index);
            char hex[2 * AT_MAX_PCR_LEN + 1];
            at_hex_encode(p.pcrs[k].value, p.pcrs[k].len, hex);
            assert_non_null(json_object_get(pcrs, key));
            assert_string_equal(hex, json_string_value(json_object_get(pcrs, key)));
        }
        hex_field_matches(j, "nonce", p.has_nonce, p.nonce);
        hex_field_matches(j, "user_data", p.has_user_data, p.user_data);
        hex_field_matches(j, "public_key", p.has_public_key, p.public_key);
        assert_int_equal(p.n_cabundle, json_integer_value(json_object_get(j, "cabundle_len")));

        /* Valid at its own time with the built-in root. */
        at_chain_result res;
        EVP_PKEY *key = NULL;
        int64_t ts = (int64_t)(p.timestamp_ms / 1000);
        at_trust_cache_clear(t);
        assert_int_equal(at_trust_verify(t, p.certificate, p.cabundle, p.n_cabundle, ts, &res, &key, &d),
                         AT_OK);
        assert_int_equal(res.path, AT_CHAIN_FULL);
        assert_int_equal(res.chain_length, 5);
        assert_memory_equal(res.root_sha256, at_aws_root_g1_sha256, 32);
        assert_string_equal(res.subject, json_string_value(json_object_get(j, "leaf_subject")));
        assert_true(res.not_before ==
                    parse_rfc3339(json_string_value(json_object_get(j, "leaf_not_before"))));
        assert_true(res.not_after == parse_rfc3339(json_string_value(json_object_get(j, "leaf_not_after"))));
        assert_int_equal(at_cose_sign1_verify(&m, key, &d), AT_OK);
        EVP_PKEY_free(key);
        /* Cached now, and still only valid inside its window. */
        assert_int_equal(at_trust_verify(t, p.certificate, p.cabundle, p.n_cabundle, ts, &res, NULL, &d),
                         AT_OK);
        assert_int_equal(res.path, AT_CHAIN_CACHED_LEAF);
        /* Expired at now: cold and cached. */
        assert_int_equal(at_trust_verify(t, p.certificate, p.cabundle, p.n_cabundle, now, &res, NULL, &d),
                         AT_E_CERT_EXPIRED);
        at_trust_cache_clear(t);
        assert_int_equal(at_trust_verify(t, p.certificate, p.cabundle, p.n_cabundle, now, &res, NULL, &d),
                         AT_E_CERT_EXPIRED);
        assert_non_null(strstr(d.msg, "leaf"));
        /* And not yet valid a day before. */
        assert_int_equal(
            at_trust_verify(t, p.certificate, p.cabundle, p.n_cabundle, ts - 86400, &res, NULL, &d),
            AT_E_CERT_NOT_YET_VALID);

        at_nitro_payload_cleanup(&p);
        at_cose_sign1_cleanup(&m);
        json_decref(j);
        free(jtxt);
        free(doc);
    }
    at_trust_unref(t);
}

/* The built-in root is the one in tests/data, byte for byte. */
static void builtin_root_is_the_data_file(void **state)
{
    at_trust *a = at_trust_new(0), *b = at_trust_new(0);
    at_diag d = {{0}};
    assert_int_equal(at_trust_add_aws_root(a, &d), AT_OK);
    assert_int_equal(at_trust_add_root_file(b, TU_DATA "/aws_nitro_root_g1.pem", &d), AT_OK);
    assert_int_equal(at_trust_root_count(a), 1);
    assert_int_equal(at_trust_root_count(b), 1);
    /* Pinning the same root again is a no-op. */
    assert_int_equal(at_trust_add_root_file(a, TU_DATA "/aws_nitro_root_g1.pem", &d), AT_OK);
    assert_int_equal(at_trust_root_count(a), 1);
    size_t len;
    uint8_t *pem = tu_read(TU_DATA "/aws_nitro_root_g1.pem", &len);
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(x);
    uint8_t *dd = NULL;
    int n = i2d_X509(x, &dd);
    uint8_t h[32];
    unsigned hl = 32;
    EVP_Digest(dd, (size_t)n, h, &hl, EVP_sha256(), NULL);
    assert_memory_equal(h, at_aws_root_g1_sha256, 32);
    /* A genuine document verifies with the file's root too. */
    size_t dl;
    uint8_t *doc = tu_read_genuine("fastcrypto_indef_2025", ".cbor", &dl);
    at_cose_sign1 m;
    at_nitro_payload p;
    assert_int_equal(at_cose_sign1_decode(AT_SPAN(doc, dl), &m, &d), AT_OK);
    assert_int_equal(at_nitro_payload_decode(m.payload, AT_FORMAT_AUTO, &p, &d), AT_OK);
    at_chain_result res;
    assert_int_equal(at_trust_verify(b, p.certificate, p.cabundle, p.n_cabundle,
                                     (int64_t)(p.timestamp_ms / 1000), &res, NULL, &d),
                     AT_OK);
    /* With no root pinned at all: untrusted. */
    at_trust *none = at_trust_new(0);
    assert_int_equal(at_trust_verify(none, p.certificate, p.cabundle, p.n_cabundle,
                                     (int64_t)(p.timestamp_ms / 1000), &res, NULL, &d),
                     AT_E_UNTRUSTED_ROOT);
    at_trust_unref(none);
    at_nitro_payload_cleanup(&p);
    at_cose_sign1_cleanup(&m);
    free(doc);
    OPENSSL_free(dd);
    X509_free(x);
    BIO_free(bio);
    free(pem);
    at_trust_unref(a);
    at_trust_unref(b);
}

/* Two genuine documents from one instance, 27 s apart, share their
 * intermediates: the second costs one certificate signature. */
static void genuine_shared_intermediates(void **state)
{
    at_trust *t = tu_trust(NULL, true, 0);
    const char *names[] = {"blocky_maxfields_2024", "blocky_maxfields_debug_2024"};
    at_chain_path want[] = {AT_CHAIN_FULL, AT_CHAIN_CACHED_ISSUER};
    for (int i = 0; i < 2; i++) {
        size_t len;
        uint8_t *doc = tu_read_genuine(names[i], ".cbor", &len);
        at_cose_sign1 m;
        at_nitro_payload p;
        at_diag d = {{0}};
        assert_int_equal(at_cose_sign1_decode(AT_SPAN(doc, len), &m, &d), AT_OK);
        assert_int_equal(at_nitro_payload_decode(m.payload, AT_FORMAT_AUTO, &p, &d), AT_OK);
        at_chain_result res;
        assert_int_equal(at_trust_verify(t, p.certificate, p.cabundle, p.n_cabundle,
                                         (int64_t)(p.timestamp_ms / 1000), &res, NULL, &d),
                         AT_OK);
        assert_int_equal(res.path, want[i]);
        at_nitro_payload_cleanup(&p);
        at_cose_sign1_cleanup(&m);
        free(doc);
    }
    at_trust_stats st;
    at_trust_stats_get(t, &st);
    assert_true(st.full == 1 && st.cached_issuer == 1 && st.cached_leaf == 0 && st.failed == 0);
    assert_int_equal(st.entries, 5); /* 3 intermediates + 2 leaves */
    at_trust_unref(t);
}

/* ---- simulator-based cases ---------------------------------------------- */

static tu_sim SA, SB; /* two independent simulator PKIs */
static int64_t NOW;

static int setup(void **state)
{
    NOW = tu_now_s();
    if (tu_sim_init(&SA, NOW) != 0 || tu_sim_init(&SB, NOW) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    tu_sim_cleanup(&SA);
    tu_sim_cleanup(&SB);
    return 0;
}

/* Validity bounds are inclusive, on the full path and on both cache paths. */
static void inclusive_bounds(void **state)
{
    chain c, c2;
    new_leaf(&SA, NOW, &c);
    int64_t nb = NOW - 60, na = leaf_not_after(&c);
    assert_true(na == nb + AT_SIM_LIFETIME_LEAF);
    at_trust *t = tu_trust(&SA, false, 0);
    struct {
        int64_t when;
        at_err want;
    } cases[] = {{nb, AT_OK},
                 {na, AT_OK},
                 {na + 1, AT_E_CERT_EXPIRED},
                 {nb - 1, AT_E_CERT_NOT_YET_VALID},
                 {na + 86400 * 365, AT_E_CERT_EXPIRED},
                 {0, AT_E_CERT_NOT_YET_VALID}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* cold */
        at_trust_cache_clear(t);
        at_chain_result res;
        assert_int_equal(verify(t, &c, cases[i].when, &res), cases[i].want);
        if (cases[i].want == AT_OK)
            assert_int_equal(res.path, AT_CHAIN_FULL);
        /* whole chain cached (verified at NOW first) */
        at_trust_cache_clear(t);
        assert_int_equal(verify(t, &c, NOW, NULL), AT_OK);
        assert_int_equal(verify(t, &c, cases[i].when, &res), cases[i].want);
        if (cases[i].want == AT_OK)
            assert_int_equal(res.path, AT_CHAIN_CACHED_LEAF);
    }
    /* intermediates cached, leaf new: the leaf's bounds are checked on the
     * one-signature path too */
    new_leaf(&SA, NOW, &c2);
    int64_t na2 = leaf_not_after(&c2);
    int64_t whens[] = {NOW - 60, na2, na2 + 1, NOW - 61};
    at_err want2[] = {AT_OK, AT_OK, AT_E_CERT_EXPIRED, AT_E_CERT_NOT_YET_VALID};
    for (int i = 0; i < 4; i++) {
        at_trust_cache_clear(t);
        assert_int_equal(verify(t, &c, NOW, NULL), AT_OK);
        at_chain_result res;
        assert_int_equal(verify(t, &c2, whens[i], &res), want2[i]);
        if (want2[i] == AT_OK)
            assert_int_equal(res.path, AT_CHAIN_CACHED_ISSUER);
    }
    at_trust_unref(t);
    chain_free(&c);
    chain_free(&c2);
}

static void cache_paths(void **state)
{
    chain c1, c2;
    new_leaf(&SA, NOW, &c1);
    new_leaf(&SA, NOW, &c2);
    assert_false(c1.len[4] == c2.len[4] && memcmp(c1.der[4], c2.der[4], c1.len[4]) == 0);
    for (int l = 0; l < 4; l++)
        assert_memory_equal(c1.der[l], c2.der[l], c1.len[l]); /* same intermediates */
    at_trust *t = tu_trust(&SA, false, 0);
    at_chain_result res;
    at_trust_stats st;
    assert_int_equal(verify(t, &c1, NOW, &res), AT_OK);
    assert_int_equal(res.path, AT_CHAIN_FULL);
    assert_int_equal(verify(t, &c1, NOW, &res), AT_OK);
    assert_int_equal(res.path, AT_CHAIN_CACHED_LEAF);
    assert_int_equal(verify(t, &c2, NOW, &res), AT_OK);
    assert_int_equal(res.path, AT_CHAIN_CACHED_ISSUER);
    assert_int_equal(verify(t, &c2, NOW, &res), AT_OK);
    assert_int_equal(res.path, AT_CHAIN_CACHED_LEAF);
    at_trust_stats_get(t, &st);
    assert_true(st.full == 1 && st.cached_issuer == 1 && st.cached_leaf == 2 && st.failed == 0);
    assert_int_equal(st.entries, 5);
    assert_int_equal(st.capacity, AT_CERT_CACHE_ENTRIES);
    /* Results on the cached paths carry the same facts. */
    assert_int_equal(res.chain_length, 5);
    assert_true(res.not_before == NOW - 60);
    assert_non_null(strstr(res.subject, at_sim_instance_id(SA.pki)));
    /* A cached leaf outside its window: the right code, and no cache hit. */
    assert_int_equal(verify(t, &c1, leaf_not_after(&c1) + 1, &res), AT_E_CERT_EXPIRED);
    assert_int_equal(verify(t, &c1, NOW - 3600, &res), AT_E_CERT_NOT_YET_VALID);
    /* Far outside: beyond the instance CA too. */
    assert_int_equal(verify(t, &c1, NOW + 30 * 86400, &res), AT_E_CERT_EXPIRED);
    at_trust_stats_get(t, &st);
    assert_int_equal(st.failed, 3);
    /* The leaf key handed out on a cached path is the leaf's. */
    EVP_PKEY *k = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_trust_verify(t, leaf_of(&c1), c1.bundle, 4, NOW, &res, &k, &d), AT_OK);
    assert_int_equal(res.path, AT_CHAIN_CACHED_LEAF);
    const uint8_t *p = c1.der[4];
    X509 *x = d2i_X509(NULL, &p, (long)c1.len[4]);
    assert_int_equal(EVP_PKEY_eq(k, X509_get0_pubkey(x)), 1);
    X509_free(x);
    EVP_PKEY_free(k);
    /* Clearing forgets everything. */
    at_trust_cache_clear(t);
    at_trust_stats_get(t, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(verify(t, &c1, NOW, &res), AT_OK);
    assert_int_equal(res.path, AT_CHAIN_FULL);
    at_trust_unref(t);
    chain_free(&c1);
    chain_free(&c2);
}

static void cache_lru(void **state)
{
    chain c[4];
    for (int i = 0; i < 4; i++)
        new_leaf(&SA, NOW, &c[i]);
    at_trust *t = tu_trust(&SA, false, 5);
    at_trust_stats st;
    at_chain_result res;
    assert_int_equal(verify(t, &c[0], NOW, &res), AT_OK); /* 3 CAs + leaf0 */
    assert_int_equal(verify(t, &c[1], NOW, &res), AT_OK); /* + leaf1 = 5 */
    assert_int_equal(res.path, AT_CHAIN_CACHED_ISSUER);
    at_trust_stats_get(t, &st);
    assert_int_equal(st.entries, 5);
    assert_int_equal(verify(t, &c[2], NOW, &res), AT_OK); /* evicts leaf0, the LRU */
    assert_int_equal(res.path, AT_CHAIN_CACHED_ISSUER);
    at_trust_stats_get(t, &st);
    assert_int_equal(st.entries, 5);
    assert_int_equal(verify(t, &c[1], NOW, &res), AT_OK);
    assert_int_equal(res.path, AT_CHAIN_CACHED_LEAF);
    assert_int_equal(verify(t, &c[2], NOW, &res), AT_OK);
    assert_int_equal(res.path, AT_CHAIN_CACHED_LEAF);
    assert_int_equal(verify(t, &c[0], NOW, &res), AT_OK);
    assert_int_equal(res.path, AT_CHAIN_CACHED_ISSUER); /* it had been evicted */
    at_trust_unref(t);

    /* Smaller than one chain: never above capacity, always correct. */
    t = tu_trust(&SA, false, 2);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 4; i++) {
            assert_int_equal(verify(t, &c[i], NOW, &res), AT_OK);
            at_trust_stats_get(t, &st);
            assert_true(st.entries <= 2);
            assert_int_equal(st.capacity, 2);
            assert_int_equal(verify(t, &c[i], leaf_not_after(&c[i]) + 1, &res), AT_E_CERT_EXPIRED);
        }
    at_trust_unref(t);
    for (int i = 0; i < 4; i++)
        chain_free(&c[i]);
}

struct worker {
    at_trust *t;
    chain *c;
    size_t n;
    int id;
    int bad;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 60; i++) {
        const chain *c = &w->c[(size_t)(i * 7 + w->id) % w->n];
        at_chain_result res;
        memset(&res, 0, sizeof res);
        at_diag d;
        at_err want = i % 5 == 4 ? AT_E_CERT_EXPIRED : AT_OK;
        int64_t when = want == AT_OK ? NOW : NOW + 4 * 3600;
        if (at_trust_verify(w->t, leaf_of(c), c->bundle, 4, when, &res, NULL, &d) != want)
            w->bad++;
        if (want == AT_OK && res.chain_length != 5)
            w->bad++;
    }
    return NULL;
}

/* Four threads verifying concurrently over a cache small enough to evict
 * all the time, with two PKIs (so different chains compete). */
static void cache_threads(void **state)
{
    chain c[6];
    for (int i = 0; i < 6; i++)
        new_leaf(i % 2 ? &SB : &SA, NOW, &c[i]);
    at_trust *t = at_trust_new(3);
    at_diag d = {{0}};
    assert_int_equal(at_trust_add_root_der(t, AT_SPAN(c[0].der[0], c[0].len[0]), &d), AT_OK);
    assert_int_equal(at_trust_add_root_der(t, AT_SPAN(c[1].der[0], c[1].len[0]), &d), AT_OK);
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.t = at_trust_ref(t), .c = c, .n = 6, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    at_trust_unref(t); /* the workers hold references */
    at_trust_stats st;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].bad, 0);
    }
    at_trust_stats_get(t, &st);
    assert_true(st.entries <= 3);
    assert_int_equal(st.full + st.cached_issuer + st.cached_leaf + st.failed, 4 * 60);
    assert_int_equal(st.failed, 4 * 12);
    for (int i = 0; i < 4; i++)
        at_trust_unref(w[i].t);
    for (int i = 0; i < 6; i++)
        chain_free(&c[i]);
}

static void reordered_bundle(void **state)
{
    chain c;
    new_leaf(&SA, NOW, &c);
    at_trust *t = tu_trust(&SA, false, 0);
    const int orders[][4] = {{0, 2, 1, 3}, {0, 1, 3, 2}, {0, 3, 2, 1}, {0, 3, 1, 2}};
    for (int warm = 0; warm < 2; warm++) {
        at_trust_cache_clear(t);
        if (warm)
            assert_int_equal(verify(t, &c, NOW, NULL), AT_OK);
        for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
            at_span b[4];
            for (int k = 0; k < 4; k++)
                b[k] = c.bundle[orders[i][k]];
            assert_int_equal(verify_spans(t, leaf_of(&c), b, 4, NOW), AT_E_CHAIN_INVALID);
        }
        /* The root not first: cabundle[0] is not a pinned root. */
        at_span b[4] = {c.bundle[1], c.bundle[0], c.bundle[2], c.bundle[3]};
        assert_int_equal(verify_spans(t, leaf_of(&c), b, 4, NOW), AT_E_UNTRUSTED_ROOT);
        /* An intermediate missing, one twice, only the root, the leaf in
         * the bundle as its own issuer. */
        at_span m[4] = {c.bundle[0], c.bundle[1], c.bundle[3]};
        assert_int_equal(verify_spans(t, leaf_of(&c), m, 3, NOW), AT_E_CHAIN_INVALID);
        at_span dup[5] = {c.bundle[0], c.bundle[1], c.bundle[2], c.bundle[3], c.bundle[3]};
        assert_int_equal(verify_spans(t, leaf_of(&c), dup, 5, NOW), AT_E_CHAIN_INVALID);
        assert_int_equal(verify_spans(t, leaf_of(&c), c.bundle, 1, NOW), AT_E_CHAIN_INVALID);
        at_span self[5] = {c.bundle[0], c.bundle[1], c.bundle[2], c.bundle[3], leaf_of(&c)};
        assert_int_equal(verify_spans(t, leaf_of(&c), self, 5, NOW), AT_E_CHAIN_INVALID);
        /* The instance CA presented as the leaf. */
        assert_int_equal(verify_spans(t, c.bundle[3], c.bundle, 4, NOW), AT_E_CHAIN_INVALID);
    }
    /* Bundle sizes out of range. */
    assert_int_equal(verify_spans(t, leaf_of(&c), c.bundle, 0, NOW), AT_E_BAD_FIELD);
    at_span nine[9];
    for (int k = 0; k < 9; k++)
        nine[k] = c.bundle[k < 4 ? k : 3];
    assert_int_equal(verify_spans(t, leaf_of(&c), nine, 9, NOW), AT_E_BAD_FIELD);
    at_trust_unref(t);
    chain_free(&c);
}

static void foreign_leaf(void **state)
{
    chain a, b;
    new_leaf(&SA, NOW, &a);
    new_leaf(&SB, NOW, &b);
    at_trust *t = tu_trust(&SA, false, 0);
    /* B's leaf with A's bundle: cold, and with A's intermediates cached. */
    assert_int_equal(verify_spans(t, leaf_of(&b), a.bundle, 4, NOW), AT_E_CHAIN_INVALID);
    assert_int_equal(verify(t, &a, NOW, NULL), AT_OK);
    assert_int_equal(verify_spans(t, leaf_of(&b), a.bundle, 4, NOW), AT_E_CHAIN_INVALID);
    /* A's bundle with B's intermediates spliced in. */
    at_span mix[4] = {a.bundle[0], a.bundle[1], b.bundle[2], a.bundle[3]};
    assert_int_equal(verify_spans(t, leaf_of(&a), mix, 4, NOW), AT_E_CHAIN_INVALID);
    at_trust_stats st;
    at_trust_stats_get(t, &st);
    assert_int_equal(st.failed, 3);
    at_trust_unref(t);
    chain_free(&a);
    chain_free(&b);
}

static void untrusted_roots(void **state)
{
    chain a;
    new_leaf(&SA, NOW, &a);
    /* Only the AWS root pinned. */
    at_trust *aws = tu_trust(NULL, true, 0);
    assert_int_equal(verify(aws, &a, NOW, NULL), AT_E_UNTRUSTED_ROOT);
    at_trust_unref(aws);
    /* B's root pinned: same distinguished name as A's, different key. */
    const uint8_t *pa = at_sim_cert_der(SA.pki, AT_SIM_ROOT).p;
    const uint8_t *pb = at_sim_cert_der(SB.pki, AT_SIM_ROOT).p;
    X509 *ra = d2i_X509(NULL, &pa, (long)at_sim_cert_der(SA.pki, AT_SIM_ROOT).len);
    X509 *rb = d2i_X509(NULL, &pb, (long)at_sim_cert_der(SB.pki, AT_SIM_ROOT).len);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(ra), X509_get_subject_name(rb)), 0);
    assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(ra), X509_get0_pubkey(rb)), 1);
    at_trust *tb = tu_trust(&SB, false, 0);
    assert_int_equal(verify(tb, &a, NOW, NULL), AT_E_UNTRUSTED_ROOT);
    X509_free(ra);
    X509_free(rb);
    at_trust_unref(tb);
    chain_free(&a);
}

/* A forged intermediate carrying the real one's name, under a fake root
 * with the pinned root's name: refused cold and with the real one cached. */
static void same_name_forgery(void **state)
{
    int64_t nb = NOW - 3600, na = NOW + 86400;
    EVP_PKEY *kr = keygen("P-384"), *kf = keygen("P-384"), *ki = keygen("P-384"), *kj = keygen("P-384"),
             *kl = keygen("P-384");
    X509 *root = mk_cert("root", kr, NULL, NULL, true, nb, na, EVP_sha384());
    X509 *fake_root = mk_cert("root", kf, NULL, NULL, true, nb, na, EVP_sha384());
    X509 *inter = mk_cert("inter", ki, root, kr, true, nb, na, EVP_sha384());
    X509 *forged = mk_cert("inter", kj, fake_root, kf, true, nb, na, EVP_sha384());
    X509 *leaf = mk_cert("leaf", kl, inter, ki, false, nb, na, EVP_sha384());
    X509 *leaf2 = mk_cert("leaf2", kl, forged, kj, false, nb, na, EVP_sha384());
    der dr = to_der(root), di = to_der(inter), df = to_der(forged), dl = to_der(leaf), dl2 = to_der(leaf2);
    at_trust *t = at_trust_new(0);
    at_diag d = {{0}};
    assert_int_equal(at_trust_add_root_der(t, DSPAN(dr), &d), AT_OK);
    at_span good[2] = {DSPAN(dr), DSPAN(di)}, bad[2] = {DSPAN(dr), DSPAN(df)};
    assert_int_equal(verify_spans(t, DSPAN(dl2), bad, 2, NOW), AT_E_CHAIN_INVALID);
    assert_int_equal(verify_spans(t, DSPAN(dl), good, 2, NOW), AT_OK);
    assert_int_equal(verify_spans(t, DSPAN(dl2), bad, 2, NOW), AT_E_CHAIN_INVALID);
    /* The forged leaf under the real intermediate (cached): signature fails. */
    assert_int_equal(verify_spans(t, DSPAN(dl2), good, 2, NOW), AT_E_CHAIN_INVALID);
    assert_int_equal(verify_spans(t, DSPAN(dl), good, 2, NOW), AT_OK);
    at_trust_unref(t);
    X509 *all[] = {root, fake_root, inter, forged, leaf, leaf2};
    for (int i = 0; i < 6; i++)
        X509_free(all[i]);
    der ds[] = {dr, di, df, dl, dl2};
    for (int i = 0; i < 5; i++)
        OPENSSL_free(ds[i].p);
    EVP_PKEY *ks[] = {kr, kf, ki, kj, kl};
    for (int i = 0; i < 5; i++)
        EVP_PKEY_free(ks[i]);
}

/* A pinned root may constrain the names below it (RFC 5280 §4.2.1.10).
 * A full verification applies the root's constraints to the leaf; a leaf
 * under a cached intermediate must not escape them. */
static void name_constraints_of_the_root(void **state)
{
    int64_t nb = NOW - 3600, na = NOW + 86400;
    EVP_PKEY *kr = keygen("P-384"), *ki = keygen("P-384"), *kl = keygen("P-384");
    X509 *root = mk_cert_ext("root", kr, NULL, NULL, true, nb, na, EVP_sha384(), NID_name_constraints,
                             "critical,permitted;DNS:good.example");
    X509 *inter = mk_cert("inter", ki, root, kr, true, nb, na, EVP_sha384());
    X509 *good = mk_cert_ext("good", kl, inter, ki, false, nb, na, EVP_sha384(), NID_subject_alt_name,
                             "DNS:a.good.example");
    X509 *evil = mk_cert_ext("evil", kl, inter, ki, false, nb, na, EVP_sha384(), NID_subject_alt_name,
                             "DNS:evil.example");
    der dr = to_der(root), di = to_der(inter), dg = to_der(good), de = to_der(evil);
    at_span b[2] = {DSPAN(dr), DSPAN(di)};
    at_diag d = {{0}};
    /* Cold: the root's constraint refuses the evil leaf. */
    at_trust *t = at_trust_new(0);
    assert_int_equal(at_trust_add_root_der(t, DSPAN(dr), &d), AT_OK);
    assert_int_equal(verify_spans(t, DSPAN(de), b, 2, NOW), AT_E_CHAIN_INVALID);
    at_trust_unref(t);
    /* Warm: the intermediate is cached by a good leaf; the evil leaf is
     * still refused, and the good one still admitted. */
    t = at_trust_new(0);
    assert_int_equal(at_trust_add_root_der(t, DSPAN(dr), &d), AT_OK);
    assert_int_equal(verify_spans(t, DSPAN(dg), b, 2, NOW), AT_OK);
    assert_int_equal(verify_spans(t, DSPAN(de), b, 2, NOW), AT_E_CHAIN_INVALID);
    assert_int_equal(verify_spans(t, DSPAN(dg), b, 2, NOW), AT_OK);
    at_trust_unref(t);
    X509 *all[] = {root, inter, good, evil};
    for (int i = 0; i < 4; i++)
        X509_free(all[i]);
    der ds[] = {dr, di, dg, de};
    for (int i = 0; i < 4; i++)
        OPENSSL_free(ds[i].p);
    EVP_PKEY *ks[] = {kr, ki, kl};
    for (int i = 0; i < 3; i++)
        EVP_PKEY_free(ks[i]);
}

/* A CA certificate offered as a document's leaf and, in another document,
 * as the last intermediate. As a leaf it is refused (AWS's profile: the
 * signing certificate is not a CA); as an issuer its parent's
 * pathLenConstraint forbids it to issue. Neither attempt may make the
 * other pass through the cache. */
static void leaf_not_reused_as_issuer(void **state)
{
    int64_t nb = NOW - 3600, na = NOW + 86400;
    EVP_PKEY *kr = keygen("P-384"), *k1 = keygen("P-384"), *k2 = keygen("P-384"), *kl = keygen("P-384");
    X509 *root = mk_cert("root", kr, NULL, NULL, true, nb, na, EVP_sha384());
    X509 *i1 = mk_cert_ext("i1", k1, root, kr, true, nb, na, EVP_sha384(), NID_basic_constraints,
                           "critical,CA:TRUE,pathlen:0");
    X509 *i2 = mk_cert("i2", k2, i1, k1, true, nb, na, EVP_sha384());
    X509 *leaf = mk_cert("leaf", kl, i2, k2, false, nb, na, EVP_sha384());
    der dr = to_der(root), d1 = to_der(i1), d2 = to_der(i2), dl = to_der(leaf);
    at_span short_b[2] = {DSPAN(dr), DSPAN(d1)}, long_b[3] = {DSPAN(dr), DSPAN(d1), DSPAN(d2)};
    at_diag d = {{0}};
    /* Cold: i1 (pathlen 0) may not issue the CA i2 that issues the leaf. */
    at_trust *t = at_trust_new(0);
    assert_int_equal(at_trust_add_root_der(t, DSPAN(dr), &d), AT_OK);
    assert_int_equal(verify_spans(t, DSPAN(dl), long_b, 3, NOW), AT_E_CHAIN_INVALID);
    at_trust_unref(t);
    /* Warm: i2 offered as the leaf of [root, i1] first. A CA is never a
     * signing certificate (AWS's profile), so that is refused too, and the
     * long chain stays refused whatever was tried before. */
    t = at_trust_new(0);
    assert_int_equal(at_trust_add_root_der(t, DSPAN(dr), &d), AT_OK);
    assert_int_equal(verify_spans(t, DSPAN(d2), short_b, 2, NOW), AT_E_CHAIN_INVALID);
    assert_int_equal(verify_spans(t, DSPAN(dl), long_b, 3, NOW), AT_E_CHAIN_INVALID);
    assert_int_equal(verify_spans(t, DSPAN(d2), short_b, 2, NOW), AT_E_CHAIN_INVALID);
    at_trust_unref(t);
    X509 *all[] = {root, i1, i2, leaf};
    for (int i = 0; i < 4; i++)
        X509_free(all[i]);
    der ds[] = {dr, d1, d2, dl};
    for (int i = 0; i < 4; i++)
        OPENSSL_free(ds[i].p);
    EVP_PKEY *ks[] = {kr, k1, k2, kl};
    for (int i = 0; i < 4; i++)
        EVP_PKEY_free(ks[i]);
}

/* root (P-384) -> intermediate (key_kind, signed md_i) -> leaf (leaf_kind,
 * signed with md_l); returns the code of verifying at NOW. */
static at_err alg_chain(const char *inter_kind, const EVP_MD *md_i, const char *leaf_kind, const EVP_MD *md_l,
                        bool inter_ca)
{
    int64_t nb = NOW - 3600, na = NOW + 86400;
    EVP_PKEY *kr = keygen("P-384"), *ki = keygen(inter_kind), *kl = keygen(leaf_kind);
    X509 *root = mk_cert("root", kr, NULL, NULL, true, nb, na, EVP_sha384());
    X509 *inter = mk_cert("inter", ki, root, kr, inter_ca, nb, na, md_i);
    X509 *leaf = mk_cert("leaf", kl, inter, ki, false, nb, na, md_l);
    der dr = to_der(root), di = to_der(inter), dl = to_der(leaf);
    at_trust *t = at_trust_new(0);
    at_diag d = {{0}};
    assert_int_equal(at_trust_add_root_der(t, DSPAN(dr), &d), AT_OK);
    at_span b[2] = {DSPAN(dr), DSPAN(di)};
    at_err rc = verify_spans(t, DSPAN(dl), b, 2, NOW);
    at_trust_unref(t);
    X509_free(root);
    X509_free(inter);
    X509_free(leaf);
    OPENSSL_free(dr.p);
    OPENSSL_free(di.p);
    OPENSSL_free(dl.p);
    EVP_PKEY_free(kr);
    EVP_PKEY_free(ki);
    EVP_PKEY_free(kl);
    return rc;
}

static void only_p384_sha384(void **state)
{
    /* The control: everything P-384 / SHA-384 verifies. */
    assert_int_equal(alg_chain("P-384", EVP_sha384(), "P-384", EVP_sha384(), true), AT_OK);
    /* P-256 intermediate, RSA intermediate, P-521 leaf, P-256 leaf. */
    assert_int_equal(alg_chain("P-256", EVP_sha384(), "P-384", EVP_sha384(), true), AT_E_CHAIN_INVALID);
    assert_int_equal(alg_chain("rsa", EVP_sha384(), "P-384", EVP_sha384(), true), AT_E_CHAIN_INVALID);
    assert_int_equal(alg_chain("P-384", EVP_sha384(), "P-521", EVP_sha384(), true), AT_E_CHAIN_INVALID);
    assert_int_equal(alg_chain("P-384", EVP_sha384(), "P-256", EVP_sha384(), true), AT_E_CHAIN_INVALID);
    /* Right keys, other hashes in the signatures. */
    assert_int_equal(alg_chain("P-384", EVP_sha256(), "P-384", EVP_sha384(), true), AT_E_CHAIN_INVALID);
    assert_int_equal(alg_chain("P-384", EVP_sha384(), "P-384", EVP_sha512(), true), AT_E_CHAIN_INVALID);
    /* An issuer that is not a CA. */
    assert_int_equal(alg_chain("P-384", EVP_sha384(), "P-384", EVP_sha384(), false), AT_E_CHAIN_INVALID);
}

static void expired_intermediate(void **state)
{
    EVP_PKEY *kr = keygen("P-384"), *ki = keygen("P-384"), *kl = keygen("P-384");
    X509 *root = mk_cert("root", kr, NULL, NULL, true, NOW - 86400, NOW + 86400, EVP_sha384());
    X509 *inter = mk_cert("inter", ki, root, kr, true, NOW - 7200, NOW - 10, EVP_sha384());
    X509 *leaf = mk_cert("leaf", kl, inter, ki, false, NOW - 3600, NOW + 3600, EVP_sha384());
    der dr = to_der(root), di = to_der(inter), dl = to_der(leaf);
    at_trust *t = at_trust_new(0);
    at_diag d = {{0}};
    assert_int_equal(at_trust_add_root_der(t, DSPAN(dr), &d), AT_OK);
    at_span b[2] = {DSPAN(dr), DSPAN(di)};
    assert_int_equal(verify_spans(t, DSPAN(dl), b, 2, NOW), AT_E_CERT_EXPIRED);
    /* Verified while everything was valid, then checked later: the cached
     * window is the intersection, so the cache does not extend it. */
    assert_int_equal(verify_spans(t, DSPAN(dl), b, 2, NOW - 1800), AT_OK);
    assert_int_equal(verify_spans(t, DSPAN(dl), b, 2, NOW - 10), AT_OK);
    assert_int_equal(verify_spans(t, DSPAN(dl), b, 2, NOW - 9), AT_E_CERT_EXPIRED);
    assert_int_equal(verify_spans(t, DSPAN(dl), b, 2, NOW), AT_E_CERT_EXPIRED);
    at_trust_unref(t);
    X509_free(root);
    X509_free(inter);
    X509_free(leaf);
    OPENSSL_free(dr.p);
    OPENSSL_free(di.p);
    OPENSSL_free(dl.p);
    EVP_PKEY_free(kr);
    EVP_PKEY_free(ki);
    EVP_PKEY_free(kl);
}

static void malformed_certificates(void **state)
{
    chain c;
    new_leaf(&SA, NOW, &c);
    at_trust *t = tu_trust(&SA, false, 0);
    uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    assert_int_equal(verify_spans(t, AT_SPAN(junk, sizeof junk), c.bundle, 4, NOW), AT_E_BAD_FIELD);
    /* A leaf with a trailing byte. */
    uint8_t *lt = malloc(c.len[4] + 1);
    memcpy(lt, c.der[4], c.len[4]);
    lt[c.len[4]] = 0;
    assert_int_equal(verify_spans(t, AT_SPAN(lt, c.len[4] + 1), c.bundle, 4, NOW), AT_E_BAD_FIELD);
    /* A leaf whose signature byte is flipped. */
    lt[c.len[4] - 3] ^= 1;
    assert_int_equal(verify_spans(t, AT_SPAN(lt, c.len[4]), c.bundle, 4, NOW), AT_E_CHAIN_INVALID);
    free(lt);
    at_span b[4] = {c.bundle[0], c.bundle[1], AT_SPAN(junk, sizeof junk), c.bundle[3]};
    assert_int_equal(verify_spans(t, leaf_of(&c), b, 4, NOW), AT_E_BAD_FIELD);
    at_trust_unref(t);
    chain_free(&c);
}

static void root_pinning_rules(void **state)
{
    at_trust *t = at_trust_new(0);
    at_diag d = {{0}};
    int64_t nb = NOW - 3600, na = NOW + 86400;
    /* Not DER, trailing bytes, empty. */
    assert_int_equal(at_trust_add_root_der(t, AT_SPAN("\x30\x00", 2), &d), AT_E_BAD_FIELD);
    assert_int_equal(at_trust_add_root_der(t, AT_SPAN_NULL, &d), AT_E_BAD_FIELD);
    at_span sr = at_sim_cert_der(SA.pki, AT_SIM_ROOT);
    uint8_t *tr = malloc(sr.len + 1);
    memcpy(tr, sr.p, sr.len);
    tr[sr.len] = 0;
    assert_int_equal(at_trust_add_root_der(t, AT_SPAN(tr, sr.len + 1), &d), AT_E_BAD_FIELD);
    free(tr);
    /* Not self-signed (an intermediate), not a CA, not P-384. */
    assert_int_equal(at_trust_add_root_der(t, at_sim_cert_der(SA.pki, AT_SIM_REGIONAL), &d),
                     AT_E_CHAIN_INVALID);
    EVP_PKEY *k = keygen("P-384"), *k256 = keygen("P-256");
    X509 *nonca = mk_cert("x", k, NULL, NULL, false, nb, na, EVP_sha384());
    X509 *r256 = mk_cert("x", k256, NULL, NULL, true, nb, na, EVP_sha384());
    der a = to_der(nonca), b = to_der(r256);
    assert_int_equal(at_trust_add_root_der(t, DSPAN(a), &d), AT_E_CHAIN_INVALID);
    assert_int_equal(at_trust_add_root_der(t, DSPAN(b), &d), AT_E_CHAIN_INVALID);
    assert_int_equal(at_trust_root_count(t), 0);
    /* PEM without a certificate; a missing file. */
    assert_int_equal(at_trust_add_root_pem(t, AT_SPAN("hello", 5), &d), AT_E_BAD_FIELD);
    assert_int_equal(at_trust_add_root_file(t, "/nonexistent/root.pem", &d), AT_E_IO);
    /* At most AT_MAX_ROOTS. */
    for (int i = 0; i < AT_MAX_ROOTS; i++) {
        EVP_PKEY *ki = keygen("P-384");
        X509 *r = mk_cert("r", ki, NULL, NULL, true, nb, na, EVP_sha384());
        der dd = to_der(r);
        assert_int_equal(at_trust_add_root_der(t, DSPAN(dd), &d), AT_OK);
        OPENSSL_free(dd.p);
        X509_free(r);
        EVP_PKEY_free(ki);
    }
    assert_int_equal(at_trust_root_count(t), AT_MAX_ROOTS);
    assert_int_equal(at_trust_add_root_der(t, sr, &d), AT_E_TOO_LARGE);
    at_trust_unref(t);
    OPENSSL_free(a.p);
    OPENSSL_free(b.p);
    X509_free(nonca);
    X509_free(r256);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k256);
}

/* ---- the Nitro PKI profile (AWS's certificate validation) -------------- */

#define CA_BC "critical,CA:TRUE"
#define CA_KU "critical,digitalSignature,keyCertSign,cRLSign"
#define LEAF_BC "critical,CA:FALSE"
#define LEAF_KU "critical,digitalSignature"

/* A P-384/SHA-384 certificate with exactly this basicConstraints and
 * keyUsage (OpenSSL config syntax; NULL: absent) and one optional extra
 * extension. */
static X509 *mk_prof(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *ikey, const char *bc,
                     const char *ku, int extra_nid, const char *extra)
{
    static long serial = 5000;
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(NOW - 3600));
    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(NOW + 86400));
    X509_set_pubkey(x, key);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    int nids[] = {NID_basic_constraints, NID_key_usage, extra_nid};
    const char *vals[] = {bc, ku, extra};
    for (int i = 0; i < 3; i++) {
        if (!vals[i] || nids[i] == NID_undef)
            continue;
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nids[i], vals[i]);
        assert_non_null(e);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, ikey ? ikey : key, EVP_sha384()) > 0);
    return x;
}

/* root -> inter -> leaf with the given profiles (NULL: the default one),
 * verified at NOW; the code, and the message in msg. */
typedef struct {
    const char *root_bc, *root_ku, *inter_bc, *inter_ku, *leaf_bc, *leaf_ku;
} profiles;

static const char * or (const char *v, const char *def) { return v ? v : def; }
#define ABSENT "absent"
static const char *val(const char *v) { return strcmp(v, ABSENT) == 0 ? NULL : v; }

static at_err prof_chain(const profiles *pr, char *msg, size_t msglen, bool *pinned)
{
    EVP_PKEY *kr = keygen("P-384"), *ki = keygen("P-384"), *kl = keygen("P-384");
    X509 *root = mk_prof("root", kr, NULL, NULL, val(or (pr->root_bc, CA_BC)), val(or (pr->root_ku, CA_KU)),
                         NID_undef, NULL);
    X509 *inter = mk_prof("inter", ki, root, kr, val(or (pr->inter_bc, CA_BC)), val(or (pr->inter_ku, CA_KU)),
                          NID_undef, NULL);
    X509 *leaf = mk_prof("leaf", kl, inter, ki, val(or (pr->leaf_bc, LEAF_BC)),
                         val(or (pr->leaf_ku, LEAF_KU)), NID_undef, NULL);
    der dr = to_der(root), di = to_der(inter), dl = to_der(leaf);
    at_trust *t = at_trust_new(0);
    at_diag d = {{0}};
    at_err rc = at_trust_add_root_der(t, DSPAN(dr), &d);
    *pinned = rc == AT_OK;
    if (rc == AT_OK) {
        at_span b[2] = {DSPAN(dr), DSPAN(di)};
        at_chain_result res;
        rc = at_trust_verify(t, DSPAN(dl), b, 2, NOW, &res, NULL, &d);
        /* The same verdict on the cached paths, when it was refused. */
        if (rc != AT_OK) {
            at_diag d2 = {{0}};
            assert_int_equal(at_trust_verify(t, DSPAN(dl), b, 2, NOW, &res, NULL, &d2), rc);
            assert_string_equal(d.msg, d2.msg);
        }
    }
    snprintf(msg, msglen, "%s", d.msg);
    at_trust_unref(t);
    X509_free(root);
    X509_free(inter);
    X509_free(leaf);
    OPENSSL_free(dr.p);
    OPENSSL_free(di.p);
    OPENSSL_free(dl.p);
    EVP_PKEY_free(kr);
    EVP_PKEY_free(ki);
    EVP_PKEY_free(kl);
    return rc;
}

/* One rule per row: the profile of the root, an intermediate and the leaf. */
static void certificate_profiles(void **state)
{
    static const struct {
        profiles pr;
        at_err want;
        bool pinned;
        const char *msg; /* substring of the message */
    } rows[] = {
        /* Controls: the defaults, and the shapes genuine chains show
         * (leaf keyUsage non-critical with nonRepudiation, instance CA
         * with keyCertSign only, pathLen on intermediates). */
        {{0}, AT_OK, true, ""},
        {{.leaf_ku = "digitalSignature,nonRepudiation"}, AT_OK, true, ""},
        {{.leaf_bc = "CA:FALSE"}, AT_OK, true, ""},
        {{.inter_ku = "critical,keyCertSign", .inter_bc = "critical,CA:TRUE,pathlen:0"}, AT_OK, true, ""},
        /* The leaf. */
        {{.leaf_ku = "critical,keyAgreement"},
         AT_E_CHAIN_INVALID,
         true,
         "certificate (leaf): keyUsage: keyAgreement, expected digitalSignature"},
        {{.leaf_ku = "critical,nonRepudiation"},
         AT_E_CHAIN_INVALID,
         true,
         "certificate (leaf): keyUsage: nonRepudiation, expected digitalSignature"},
        {{.leaf_bc = "critical,CA:TRUE", .leaf_ku = "critical,digitalSignature,keyCertSign"},
         AT_E_CHAIN_INVALID,
         true,
         "certificate (leaf): basicConstraints: CA:TRUE, expected CA:FALSE"},
        {{.leaf_bc = "critical,CA:TRUE,pathlen:0", .leaf_ku = "critical,digitalSignature,keyCertSign"},
         AT_E_CHAIN_INVALID,
         true,
         "certificate (leaf): basicConstraints: CA:TRUE, expected CA:FALSE"},
        {{.leaf_bc = "critical,CA:TRUE"},
         AT_E_CHAIN_INVALID,
         true,
         "certificate (leaf): basicConstraints: CA:TRUE"},
        {{.leaf_bc = "critical,CA:FALSE,pathlen:0"},
         AT_E_CHAIN_INVALID,
         true,
         "certificate (leaf): basicConstraints: pathLenConstraint 0, expected none"},
        {{.leaf_bc = ABSENT}, AT_E_CHAIN_INVALID, true, "certificate (leaf): basicConstraints: missing"},
        {{.leaf_ku = ABSENT}, AT_E_CHAIN_INVALID, true, "certificate (leaf): keyUsage: missing"},
        {{.leaf_ku = "critical,digitalSignature,keyCertSign"},
         AT_E_CHAIN_INVALID,
         true,
         "certificate (leaf): keyUsage: digitalSignature,keyCertSign, expected only "
         "digitalSignature,nonRepudiation"},
        {{.leaf_ku = "critical,digitalSignature,keyEncipherment"},
         AT_E_CHAIN_INVALID,
         true,
         "certificate (leaf): keyUsage: digitalSignature,keyEncipherment, expected only"},
        /* An intermediate. */
        {{.inter_ku = "critical,digitalSignature,cRLSign"},
         AT_E_CHAIN_INVALID,
         true,
         "cabundle[1]: keyUsage: digitalSignature,cRLSign, expected keyCertSign"},
        {{.inter_ku = ABSENT}, AT_E_CHAIN_INVALID, true, "cabundle[1]: keyUsage: missing"},
        {{.inter_ku = "critical,keyCertSign,keyAgreement"},
         AT_E_CHAIN_INVALID,
         true,
         "cabundle[1]: keyUsage: keyAgreement,keyCertSign, expected only"},
        {{.inter_bc = "CA:TRUE"}, AT_E_CHAIN_INVALID, true, "cabundle[1]: basicConstraints: not critical"},
        {{.inter_bc = ABSENT}, AT_E_CHAIN_INVALID, true, "cabundle[1]: basicConstraints: missing"},
        {{.inter_bc = "critical,CA:FALSE"},
         AT_E_CHAIN_INVALID,
         true,
         "cabundle[1]: basicConstraints: CA:FALSE, expected CA:TRUE"},
        /* The root: refused when pinned, or by its path length. */
        {{.root_ku = ABSENT}, AT_E_CHAIN_INVALID, false, "root: keyUsage: missing"},
        {{.root_bc = "CA:TRUE"}, AT_E_CHAIN_INVALID, false, "root: basicConstraints: not critical"},
        {{.root_ku = "critical,keyCertSign,keyEncipherment"},
         AT_E_CHAIN_INVALID,
         false,
         "root: keyUsage: keyEncipherment,keyCertSign, expected only"},
        {{.root_bc = "critical,CA:TRUE,pathlen:0"},
         AT_E_CHAIN_INVALID,
         true,
         "cabundle[0] (root): basicConstraints: pathLenConstraint 0, but 1 CA certificate "
         "follows it"},
        {{.root_bc = "critical,CA:TRUE,pathlen:1"}, AT_OK, true, ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char msg[AT_DIAG_MAX];
        bool pinned = false;
        at_err rc = prof_chain(&rows[i].pr, msg, sizeof msg, &pinned);
        if (rc != rows[i].want || pinned != rows[i].pinned || !strstr(msg, rows[i].msg))
            fail_msg("row %zu: got %s (%s), pinned %d; want %s (%s)", i, at_err_str(rc), msg, pinned,
                     at_err_str(rows[i].want), rows[i].msg);
    }
}

/* RFC 5280 §4.2.1.9: root -> i1 (pathLen 0) -> i2 -> leaf, named. */
static void path_length_named(void **state)
{
    EVP_PKEY *kr = keygen("P-384"), *k1 = keygen("P-384"), *k2 = keygen("P-384"), *kl = keygen("P-384");
    X509 *root = mk_prof("root", kr, NULL, NULL, CA_BC, CA_KU, NID_undef, NULL);
    X509 *i1 = mk_prof("i1", k1, root, kr, "critical,CA:TRUE,pathlen:0", CA_KU, NID_undef, NULL);
    X509 *i2 = mk_prof("i2", k2, i1, k1, CA_BC, CA_KU, NID_undef, NULL);
    X509 *leaf = mk_prof("leaf", kl, i2, k2, LEAF_BC, LEAF_KU, NID_undef, NULL);
    der dr = to_der(root), d1 = to_der(i1), d2 = to_der(i2), dl = to_der(leaf);
    at_trust *t = at_trust_new(0);
    at_diag d = {{0}};
    at_chain_result res;
    assert_int_equal(at_trust_add_root_der(t, DSPAN(dr), &d), AT_OK);
    at_span b[3] = {DSPAN(dr), DSPAN(d1), DSPAN(d2)};
    assert_int_equal(at_trust_verify(t, DSPAN(dl), b, 3, NOW, &res, NULL, &d), AT_E_CHAIN_INVALID);
    assert_non_null(strstr(d.msg, "cabundle[1]: basicConstraints: pathLenConstraint 0, but 1 CA "
                                  "certificate follows it"));
    at_trust_unref(t);
    X509 *all[] = {root, i1, i2, leaf};
    der ds[] = {dr, d1, d2, dl};
    EVP_PKEY *ks[] = {kr, k1, k2, kl};
    for (int i = 0; i < 4; i++) {
        X509_free(all[i]);
        OPENSSL_free(ds[i].p);
        EVP_PKEY_free(ks[i]);
    }
}

/* One cache entry per certificate, and its role's profile on every hit: the
 * simulator's instance CA, verified (and cached) as an issuer, is then
 * offered as the signing certificate under the zonal CA. */
static void ca_as_leaf_on_cache_hit(void **state)
{
    chain c;
    new_leaf(&SA, NOW, &c);
    at_trust *t = tu_trust(&SA, false, 0);
    at_chain_result res;
    at_diag d = {{0}};
    at_span ca_leaf = AT_SPAN(c.der[3], c.len[3]);
    for (int warm = 0; warm < 2; warm++) {
        if (warm)
            assert_int_equal(verify(t, &c, NOW, &res), AT_OK); /* caches cabundle[1..3] */
        assert_int_equal(at_trust_verify(t, ca_leaf, c.bundle, 3, NOW, &res, NULL, &d), AT_E_CHAIN_INVALID);
        assert_non_null(strstr(d.msg, "certificate (leaf): basicConstraints: CA:TRUE"));
    }
    /* And the genuine order still verifies, from the cache. */
    assert_int_equal(verify(t, &c, NOW, &res), AT_OK);
    assert_int_equal(res.path, AT_CHAIN_CACHED_LEAF);
    at_trust_stats st;
    at_trust_stats_get(t, &st);
    assert_int_equal(st.entries, 4); /* regional, zonal, instance CA, leaf: one each */
    at_trust_unref(t);
    chain_free(&c);
}

/* The other way round: a signing certificate, verified and cached as a
 * leaf, offered as the issuer of another leaf. */
static void leaf_as_issuer_on_cache_hit(void **state)
{
    EVP_PKEY *kr = keygen("P-384"), *ki = keygen("P-384"), *kl = keygen("P-384"), *k2 = keygen("P-384");
    X509 *root = mk_prof("root", kr, NULL, NULL, CA_BC, CA_KU, NID_undef, NULL);
    X509 *inter = mk_prof("inter", ki, root, kr, CA_BC, CA_KU, NID_undef, NULL);
    X509 *leaf = mk_prof("leaf", kl, inter, ki, LEAF_BC, LEAF_KU, NID_undef, NULL);
    X509 *leaf2 = mk_prof("leaf2", k2, leaf, kl, LEAF_BC, LEAF_KU, NID_undef, NULL);
    der dr = to_der(root), di = to_der(inter), dl = to_der(leaf), d2 = to_der(leaf2);
    at_trust *t = at_trust_new(0);
    at_diag d = {{0}};
    at_chain_result res;
    assert_int_equal(at_trust_add_root_der(t, DSPAN(dr), &d), AT_OK);
    at_span b[2] = {DSPAN(dr), DSPAN(di)}, b3[3] = {DSPAN(dr), DSPAN(di), DSPAN(dl)};
    for (int round = 0; round < 2; round++) {
        assert_int_equal(at_trust_verify(t, DSPAN(dl), b, 2, NOW, &res, NULL, &d), AT_OK);
        assert_int_equal(res.path, round ? AT_CHAIN_CACHED_LEAF : AT_CHAIN_FULL);
        assert_int_equal(at_trust_verify(t, DSPAN(d2), b3, 3, NOW, &res, NULL, &d), AT_E_CHAIN_INVALID);
        assert_non_null(strstr(d.msg, "cabundle[2]: basicConstraints: CA:FALSE, expected CA:TRUE"));
    }
    at_trust_unref(t);
    X509 *all[] = {root, inter, leaf, leaf2};
    der ds[] = {dr, di, dl, d2};
    EVP_PKEY *ks[] = {kr, ki, kl, k2};
    for (int i = 0; i < 4; i++) {
        X509_free(all[i]);
        OPENSSL_free(ds[i].p);
        EVP_PKEY_free(ks[i]);
    }
}

/* DER only (X.690 §10): BER variants of the same certificate, and a byte
 * string re-encoding to different bytes, are refused in every position. */
static void der_only(void **state)
{
    chain c;
    new_leaf(&SA, NOW, &c);
    at_trust *t = tu_trust(&SA, false, 0);
    at_diag d = {{0}};
    at_chain_result res;
    /* Node numbers in pre-order: 0 Certificate, 1 tbsCertificate, 2 [0]
     * version, 3 its INTEGER, 4 serialNumber. */
    static const struct {
        int node;
        bool indefinite;
    } variants[] = {{0, true}, {0, false}, {1, true}, {1, false}, {3, false}, {4, false}};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        for (int pos = 1; pos <= 4; pos++) { /* cabundle[1..3], leaf */
            at_buf ber;
            at_span orig = pos == 4 ? leaf_of(&c) : c.bundle[pos];
            tu_ber_variant(orig, variants[v].node, variants[v].indefinite, &ber);
            assert_false(ber.len == orig.len && memcmp(ber.p, orig.p, orig.len) == 0);
            at_span b[4] = {c.bundle[0], c.bundle[1], c.bundle[2], c.bundle[3]};
            at_span leaf = leaf_of(&c);
            if (pos == 4)
                leaf = at_buf_span(&ber);
            else
                b[pos] = at_buf_span(&ber);
            for (int warm = 0; warm < 2; warm++) {
                at_trust_cache_clear(t);
                if (warm)
                    assert_int_equal(verify(t, &c, NOW, &res), AT_OK);
                at_err rc = at_trust_verify(t, leaf, b, 4, NOW, &res, NULL, &d);
                if (rc != AT_E_BAD_FIELD || !strstr(d.msg, "not DER"))
                    fail_msg("node %d%s in position %d: %s (%s)", variants[v].node,
                             variants[v].indefinite ? " indefinite" : "", pos, at_err_str(rc), d.msg);
                const char *who[] = {"", "cabundle[1]", "cabundle[2]", "cabundle[3]", "certificate (leaf)"};
                assert_non_null(strstr(d.msg, who[pos]));
            }
            at_buf_cleanup(&ber);
        }
    }
    /* A BOOLEAN TRUE written as 01 (BER allows any non-zero octet): the
     * leaf's critical flag on basicConstraints. */
    uint8_t *lt = malloc(c.len[4]);
    memcpy(lt, c.der[4], c.len[4]);
    uint8_t *bt = memmem(lt, c.len[4], "\x01\x01\xff", 3);
    assert_non_null(bt);
    bt[2] = 0x01;
    assert_int_equal(at_trust_verify(t, AT_SPAN(lt, c.len[4]), c.bundle, 4, NOW, &res, NULL, &d),
                     AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "certificate (leaf): not DER: BOOLEAN other than 00 or FF"));
    free(lt);
    /* A pinned root must be DER too. */
    at_buf ber;
    tu_ber_variant(c.bundle[0], 0, true, &ber);
    at_trust *t2 = at_trust_new(0);
    assert_int_equal(at_trust_add_root_der(t2, at_buf_span(&ber), &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "root: not DER: indefinite length"));
    at_trust_unref(t2);
    at_buf_cleanup(&ber);
    at_trust_unref(t);
    chain_free(&c);
}

/* AWS's CDDL: cert = bytes .size (1..1024), for every certificate. */
static void certificates_at_most_1024_bytes(void **state)
{
    assert_int_equal(AT_MAX_CERT_BYTES, 1024);
    EVP_PKEY *kr = keygen("P-384"), *ki = keygen("P-384"), *kl = keygen("P-384");
    char san[1200];
    size_t w = 0;
    for (int i = 0; i < 12; i++) /* 12 names of 60 characters */
        w += (size_t)snprintf(san + w, sizeof san - w, "%sDNS:%060d", i ? "," : "", i);
    X509 *root = mk_prof("root", kr, NULL, NULL, CA_BC, CA_KU, NID_undef, NULL);
    X509 *big_root = mk_prof("root", kr, NULL, NULL, CA_BC, CA_KU, NID_subject_alt_name, san);
    X509 *inter = mk_prof("inter", ki, root, kr, CA_BC, CA_KU, NID_undef, NULL);
    X509 *big_inter = mk_prof("inter", ki, root, kr, CA_BC, CA_KU, NID_subject_alt_name, san);
    X509 *leaf = mk_prof("leaf", kl, inter, ki, LEAF_BC, LEAF_KU, NID_undef, NULL);
    X509 *big_leaf = mk_prof("leaf", kl, inter, ki, LEAF_BC, LEAF_KU, NID_subject_alt_name, san);
    der dr = to_der(root), dbr = to_der(big_root), di = to_der(inter), dbi = to_der(big_inter),
        dl = to_der(leaf), dbl = to_der(big_leaf);
    assert_true(dbr.n > 1024 && dbi.n > 1024 && dbl.n > 1024 && dbl.n < 2048);
    at_trust *t = at_trust_new(0);
    at_diag d = {{0}};
    at_chain_result res;
    assert_int_equal(at_trust_add_root_der(t, DSPAN(dbr), &d), AT_E_BAD_FIELD);
    assert_int_equal(at_trust_add_root_der(t, DSPAN(dr), &d), AT_OK);
    at_span b[2] = {DSPAN(dr), DSPAN(di)}, bb[2] = {DSPAN(dr), DSPAN(dbi)};
    assert_int_equal(at_trust_verify(t, DSPAN(dl), b, 2, NOW, &res, NULL, &d), AT_OK);
    assert_int_equal(at_trust_verify(t, DSPAN(dbl), b, 2, NOW, &res, NULL, &d), AT_E_BAD_FIELD);
    char want[80];
    snprintf(want, sizeof want, "certificate (leaf): %zu bytes, expected 1..1024", dbl.n);
    assert_non_null(strstr(d.msg, want));
    assert_int_equal(at_trust_verify(t, DSPAN(dl), bb, 2, NOW, &res, NULL, &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "cabundle[1]: "));
    assert_int_equal(at_trust_verify(t, AT_SPAN_NULL, b, 2, NOW, &res, NULL, &d), AT_E_BAD_FIELD);
    at_trust_unref(t);
    X509 *all[] = {root, big_root, inter, big_inter, leaf, big_leaf};
    der ds[] = {dr, dbr, di, dbi, dl, dbl};
    for (int i = 0; i < 6; i++) {
        X509_free(all[i]);
        OPENSSL_free(ds[i].p);
    }
    EVP_PKEY_free(kr);
    EVP_PKEY_free(ki);
    EVP_PKEY_free(kl);
}

static void time_helpers(void **state)
{
    ASN1_TIME *a = ASN1_TIME_new();
    int64_t v = 0;
    assert_non_null(ASN1_TIME_set_string(a, "20491028142805Z") ? a : NULL);
    assert_true(at_asn1_time_unix(a, &v));
    assert_true(v == parse_rfc3339("2049-10-28T14:28:05Z"));
    ASN1_TIME_free(a);
    assert_false(at_asn1_time_unix(NULL, &v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(genuine_documents),
        cmocka_unit_test(builtin_root_is_the_data_file),
        cmocka_unit_test(genuine_shared_intermediates),
        cmocka_unit_test(inclusive_bounds),
        cmocka_unit_test(cache_paths),
        cmocka_unit_test(cache_lru),
        cmocka_unit_test(cache_threads),
        cmocka_unit_test(reordered_bundle),
        cmocka_unit_test(foreign_leaf),
        cmocka_unit_test(untrusted_roots),
        cmocka_unit_test(same_name_forgery),
        cmocka_unit_test(name_constraints_of_the_root),
        cmocka_unit_test(leaf_not_reused_as_issuer),
        cmocka_unit_test(only_p384_sha384),
        cmocka_unit_test(expired_intermediate),
        cmocka_unit_test(malformed_certificates),
        cmocka_unit_test(root_pinning_rules),
        cmocka_unit_test(time_helpers),
        cmocka_unit_test(certificate_profiles),
        cmocka_unit_test(path_length_named),
        cmocka_unit_test(ca_as_leaf_on_cache_hit),
        cmocka_unit_test(leaf_as_issuer_on_cache_hit),
        cmocka_unit_test(der_only),
        cmocka_unit_test(certificates_at_most_1024_bytes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
