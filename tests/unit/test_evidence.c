/* Unit tests for lib/evidence.c, end to end over whole documents: a table of
 * cases built by minting simulator documents and mutating them (flipped
 * signature / payload / PCR bytes, reordered bundle, foreign leaf, wrong
 * alg, trailing garbage, expired and not-yet-valid leaves, untrusted root,
 * clock skew, nonce, size, policy outcomes), each asserting the exact code
 * and the JSON summary; together they cover every code the evidence core
 * can produce (checked by a test). Also truncation at every 97th byte,
 * bit flips across a document, genuine documents, the order of checks, and
 * the conformance documents AWS's rules forbid (tests/data/conformance). */
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/pem.h>

#include "at_limits.h"
#include "cose.h"
#include "clock.h"
#include "enc.h"
#include "evidence.h"

static tu_sim SA, SB;
static int64_t NOW; /* seconds */
static at_trust *TRUST, *AWS_ONLY;

#define MIN_MS (60 * 1000LL)
#define HOUR_S 3600LL

static int setup(void **state)
{
    NOW = tu_now_s();
    if (tu_sim_init(&SA, NOW) != 0 || tu_sim_init(&SB, NOW) != 0)
        return -1;
    TRUST = tu_trust(&SA, true, 0);
    AWS_ONLY = tu_trust(NULL, true, 0);
    return TRUST && AWS_ONLY ? 0 : -1;
}

static int teardown(void **state)
{
    at_trust_unref(TRUST);
    at_trust_unref(AWS_ONLY);
    tu_sim_cleanup(&SA);
    tu_sim_cleanup(&SB);
    return 0;
}

/* ---- document makers ---------------------------------------------------- */

static void mint_with(tu_sim *s, const at_sim_doc_opts *o, at_buf *out)
{
    at_diag d = {{0}};
    at_buf_init(out);
    at_err rc = at_sim_doc(s->pki, o, out, &d);
    if (rc != AT_OK)
        fail_msg("sim doc: %s", d.msg);
}

static void mint(const at_sim_doc_opts *o, at_buf *out) { mint_with(&SA, o, out); }

/* A fresh leaf of s valid from NOW - 60 s, for builders that sign. */
static void fresh_leaf(tu_sim *s, int64_t at_s)
{
    at_sim_doc_opts o = {.timestamp_ms = at_s * 1000, .new_leaf = true};
    at_buf b;
    mint_with(s, &o, &b);
    at_buf_cleanup(&b);
}

static EVP_PKEY *leaf_key(const tu_sim *s)
{
    char path[128];
    snprintf(path, sizeof path, "%s/leaf.key", s->dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

/* Sign a builder's payload with s's current leaf (as the NSM would). */
static void sign_payload(tu_sim *s, const tu_payload *p, at_buf *out)
{
    at_buf pl;
    at_diag d = {{0}};
    at_buf_init(&pl);
    tu_payload_encode(p, &pl);
    at_buf_init(out);
    assert_int_equal(at_sim_sign_payload(s->pki, at_buf_span(&pl), false, out, &d), AT_OK);
    at_buf_cleanup(&pl);
}

/* The default payload of SA at NOW, freshly signed after `edit`. */
static void built(void (*edit)(tu_payload *), at_buf *out)
{
    fresh_leaf(&SA, NOW);
    tu_payload p;
    tu_payload_default(&p, &SA, AT_FORMAT_NITRO_ENCLAVE, (uint64_t)NOW * 1000);
    if (edit)
        edit(&p);
    sign_payload(&SA, &p, out);
    tu_payload_cleanup(&p);
}

/* Offset of a needle in a document (first occurrence). */
static size_t find(const at_buf *b, const void *needle, size_t n)
{
    const uint8_t *p = memmem(b->p, b->len, needle, n);
    assert_non_null(p);
    return (size_t)(p - b->p);
}

/* ---- the cases ------------------------------------------------------------ */

typedef struct {
    at_verify_opts opts;
    at_trust *trust; /* NULL: TRUST */
} ctx;

typedef void (*maker)(at_buf *doc, ctx *c);

static const uint8_t NONCE[] = "nonce-0123456789abcdef-0123456789";

static void mk_valid_enclave(at_buf *doc, ctx *c) { mint(&(at_sim_doc_opts){0}, doc); }

static void mk_valid_tpm(at_buf *doc, ctx *c)
{
    mint(&(at_sim_doc_opts){.format = AT_FORMAT_NITRO_TPM, .definite_map = true, .tagged = true}, doc);
    c->opts.format = AT_FORMAT_NITRO_TPM;
}

static void mk_valid_with_nonce(at_buf *doc, ctx *c)
{
    at_sim_doc_opts o = {.has_nonce = true, .nonce = AT_SPAN(NONCE, sizeof NONCE)};
    mint(&o, doc);
    c->opts.check_nonce = true;
    c->opts.nonce = AT_SPAN(NONCE, sizeof NONCE);
}

static void mk_flip_signature(at_buf *doc, ctx *c)
{
    mint(&(at_sim_doc_opts){0}, doc);
    doc->p[doc->len - 17] ^= 0x40;
}

/* A payload byte (inside PCR0's value) flipped without re-signing. */
static void mk_flip_payload(at_buf *doc, ctx *c)
{
    at_sim_doc_opts o = {0};
    o.pcr_set[0] = true;
    memset(o.pcr[0], 0x5a, 48);
    mint(&o, doc);
    uint8_t pat[8];
    memset(pat, 0x5a, sizeof pat);
    doc->p[find(doc, pat, sizeof pat) + 20] ^= 0x01;
}

#define POLICY_PCR0_11                                                                               \
    "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"111111111111111111111111111111111111111111111" \
    "111111111111111111111111111111111111111111111111111\"]},\"require_nonce\":false,"               \
    "\"require_public_key\":false}"

static void mk_pcr_ok(at_buf *doc, ctx *c)
{
    at_sim_doc_opts o = {0};
    o.pcr_set[0] = true;
    memset(o.pcr[0], 0x11, 48);
    mint(&o, doc);
}

/* PCR0 changed by one byte and the document re-signed: the signature is
 * fine, the policy is not. */
static void mk_pcr_resigned(at_buf *doc, ctx *c)
{
    at_sim_doc_opts o = {0};
    o.pcr_set[0] = true;
    memset(o.pcr[0], 0x11, 48);
    o.pcr[0][47] = 0x12;
    mint(&o, doc);
}

static void edit_reorder(tu_payload *p)
{
    at_buf *b = tu_payload_val(p, "cabundle");
    at_cbor_put_head(b, AT_CBOR_ARRAY, 4);
    int order[] = {AT_SIM_ROOT, AT_SIM_ZONAL, AT_SIM_REGIONAL, AT_SIM_INSTANCE_CA};
    for (int i = 0; i < 4; i++)
        at_cbor_put_bytes(b, at_sim_cert_der(SA.pki, order[i]));
}
static void mk_reordered_bundle(at_buf *doc, ctx *c) { built(edit_reorder, doc); }

/* SB's leaf with SA's bundle, signed with SB's leaf key. */
static void mk_foreign_leaf(at_buf *doc, ctx *c)
{
    fresh_leaf(&SA, NOW);
    fresh_leaf(&SB, NOW);
    tu_payload p;
    tu_payload_default(&p, &SA, AT_FORMAT_NITRO_ENCLAVE, (uint64_t)NOW * 1000);
    at_cbor_put_bytes(tu_payload_val(&p, "certificate"), at_sim_cert_der(SB.pki, AT_SIM_LEAF));
    sign_payload(&SB, &p, doc);
    tu_payload_cleanup(&p);
}

/* Protected header {1: -7} (ES256), signed with the leaf key over it. */
static void mk_wrong_alg(at_buf *doc, ctx *c)
{
    fresh_leaf(&SA, NOW);
    tu_payload p;
    tu_payload_default(&p, &SA, AT_FORMAT_NITRO_ENCLAVE, (uint64_t)NOW * 1000);
    at_buf pl;
    at_buf_init(&pl);
    tu_payload_encode(&p, &pl);
    static const uint8_t es256[] = {0xa1, 0x01, 0x26};
    uint8_t sig[96];
    at_diag d = {{0}};
    EVP_PKEY *k = leaf_key(&SA);
    assert_int_equal(at_cose_sign1_sign(AT_SPAN(es256, 3), at_buf_span(&pl), k, sig, &d), AT_OK);
    at_buf_init(doc);
    tu_cose_raw(doc, AT_SPAN(es256, 3), AT_SPAN("\xa0", 1), at_buf_span(&pl), AT_SPAN(sig, 96));
    EVP_PKEY_free(k);
    at_buf_cleanup(&pl);
    tu_payload_cleanup(&p);
}

static void mk_trailing_garbage(at_buf *doc, ctx *c)
{
    mint(&(at_sim_doc_opts){0}, doc);
    at_buf_append(doc, "\x00garbage", 8);
}

static void mk_expired_leaf(at_buf *doc, ctx *c)
{
    mint(&(at_sim_doc_opts){.timestamp_ms = (NOW - 4 * HOUR_S) * 1000, .new_leaf = true}, doc);
}

static void mk_expired_leaf_at_doc_time(at_buf *doc, ctx *c)
{
    mk_expired_leaf(doc, c);
    c->opts.time_mode = AT_TIME_DOCUMENT;
}

static void mk_not_yet_valid_leaf(at_buf *doc, ctx *c)
{
    mint(&(at_sim_doc_opts){.timestamp_ms = (NOW + 2 * HOUR_S) * 1000, .new_leaf = true}, doc);
}

static void mk_untrusted_root(at_buf *doc, ctx *c)
{
    mint(&(at_sim_doc_opts){0}, doc);
    c->trust = AWS_ONLY;
}

/* A leaf from two hours ago (still valid), a document stamped NOW, checked
 * at a given time 10 minutes before the stamp: beyond the 60 s skew. */
static void mk_clock_skew(at_buf *doc, ctx *c)
{
    fresh_leaf(&SA, NOW - 2 * HOUR_S);
    mint(&(at_sim_doc_opts){.timestamp_ms = NOW * 1000}, doc);
    c->opts.time_mode = AT_TIME_GIVEN;
    c->opts.at_ms = NOW * 1000 - 10 * MIN_MS;
}

/* Exactly at the skew limit is fine; one millisecond more is not. */
static void mk_skew_limit_ok(at_buf *doc, ctx *c)
{
    mk_clock_skew(doc, c);
    c->opts.at_ms = NOW * 1000 - AT_CLOCK_SKEW_MS;
}

static void mk_skew_limit_bad(at_buf *doc, ctx *c)
{
    mk_clock_skew(doc, c);
    c->opts.at_ms = NOW * 1000 - AT_CLOCK_SKEW_MS - 1;
}

/* The same, with "now" given and a custom skew. */
static void mk_skew_custom(at_buf *doc, ctx *c)
{
    mk_clock_skew(doc, c);
    c->opts.time_mode = AT_TIME_GIVEN;
    c->opts.at_ms = NOW * 1000 - 5000;
    c->opts.clock_skew_ms = 4000;
}

static void mk_nonce_mismatch(at_buf *doc, ctx *c)
{
    mk_valid_with_nonce(doc, c);
    static const uint8_t other[] = "nonce-0123456789abcdef-0123456788";
    c->opts.nonce = AT_SPAN(other, sizeof other);
}

static void mk_nonce_prefix(at_buf *doc, ctx *c)
{
    mk_valid_with_nonce(doc, c);
    c->opts.nonce.len--; /* a prefix of the document's nonce */
}

static void mk_nonce_absent(at_buf *doc, ctx *c)
{
    mint(&(at_sim_doc_opts){0}, doc);
    c->opts.check_nonce = true;
    c->opts.nonce = AT_SPAN(NONCE, sizeof NONCE);
}

/* The document carries no nonce (null); an empty expected nonce must not
 * match "none". */
static void mk_nonce_null_vs_empty(at_buf *doc, ctx *c)
{
    mint(&(at_sim_doc_opts){0}, doc);
    c->opts.check_nonce = true;
    c->opts.nonce = AT_SPAN("", 0);
}

/* An empty nonce in the document does match an empty expected nonce. */
static void mk_nonce_empty_vs_empty(at_buf *doc, ctx *c)
{
    mint(&(at_sim_doc_opts){.has_nonce = true}, doc);
    c->opts.check_nonce = true;
    c->opts.nonce = AT_SPAN("", 0);
}

static void edit_huge(tu_payload *p)
{
    static uint8_t pad[17000];
    at_cbor_put_bytes(tu_payload_val(p, "padding"), AT_SPAN(pad, sizeof pad));
}
static void mk_too_large(at_buf *doc, ctx *c) { built(edit_huge, doc); }

static void edit_no_digest(tu_payload *p) { tu_payload_del(p, "digest"); }
static void mk_missing_field(at_buf *doc, ctx *c) { built(edit_no_digest, doc); }

static void edit_sha256(tu_payload *p) { at_cbor_put_text(tu_payload_val(p, "digest"), "SHA256"); }
static void mk_bad_field(at_buf *doc, ctx *c) { built(edit_sha256, doc); }

static void mk_not_cose(at_buf *doc, ctx *c)
{
    at_buf d;
    mint(&(at_sim_doc_opts){0}, &d);
    at_buf_init(doc);
    at_buf_u8(doc, 0xd1); /* tag 17, COSE_Mac0 */
    at_buf_append_span(doc, at_buf_span(&d));
    at_buf_cleanup(&d);
}

static void mk_malformed(at_buf *doc, ctx *c)
{
    at_buf_init(doc);
    at_buf_append(doc, "\x84\x44\xa1\x01\x38", 5);
}

static void mk_format_opt_mismatch(at_buf *doc, ctx *c)
{
    mint(&(at_sim_doc_opts){.format = AT_FORMAT_NITRO_TPM}, doc);
    c->opts.format = AT_FORMAT_NITRO_ENCLAVE;
}

static void mk_tpm_doc(at_buf *doc, ctx *c) { mint(&(at_sim_doc_opts){.format = AT_FORMAT_NITRO_TPM}, doc); }

#define POLICY_MODULE                                                                                        \
    "{\"format\":\"nitro-enclave\",\"pcrs\":{},\"module_ids\":[\"i-00000000000000000-enc0000000000000000\"]" \
    ","                                                                                                      \
    "\"require_nonce\":false,\"require_public_key\":false}"
#define POLICY_KEY \
    "{\"format\":\"nitro-enclave\",\"pcrs\":{},\"require_nonce\":false,\"require_public_key\":true}"
#define POLICY_NONCE \
    "{\"format\":\"nitro-enclave\",\"pcrs\":{},\"require_nonce\":true,\"require_public_key\":false}"
#define POLICY_AGE                                                                                  \
    "{\"format\":\"nitro-enclave\",\"pcrs\":{},\"max_document_age_s\":300,\"require_nonce\":false," \
    "\"require_public_key\":false}"

static void mk_with_key(at_buf *doc, ctx *c)
{
    mint(&(at_sim_doc_opts){.has_public_key = true, .public_key = AT_SPAN("key-config", 10)}, doc);
}

/* AWS: public_key is 1..1024 bytes or null; the simulator will not make an
 * empty one, so the builder does. */
static void edit_empty_key(tu_payload *p)
{
    at_cbor_put_bytes(tu_payload_val(p, "public_key"), AT_SPAN_NULL);
}
static void mk_empty_key(at_buf *doc, ctx *c) { built(edit_empty_key, doc); }

/* The leaf of built() is valid from NOW - 60 for AT_SIM_LIFETIME_LEAF. */
#define LEAF_NB_MS ((NOW - 60) * 1000)
#define LEAF_NA_MS ((NOW - 60 + AT_SIM_LIFETIME_LEAF) * 1000)
static int64_t TS_MS; /* the timestamp edit_ts writes */
static void edit_ts(tu_payload *p) { at_cbor_put_uint(tu_payload_val(p, "timestamp"), (uint64_t)TS_MS); }

/* Seconds written as milliseconds: 1970, long before the leaf, checked at
 * now with no policy (no age limit). */
static void mk_ts_seconds(at_buf *doc, ctx *c)
{
    TS_MS = NOW;
    built(edit_ts, doc);
}

/* The window of the leaf, inclusive to the second, whatever the check
 * time (here inside the window). */
static void ts_at(at_buf *doc, ctx *c, int64_t ts_ms)
{
    TS_MS = ts_ms;
    built(edit_ts, doc);
    c->opts.time_mode = AT_TIME_GIVEN;
    c->opts.at_ms = NOW * 1000;
    c->opts.clock_skew_ms = 4 * HOUR_S * 1000; /* so skew is not what refuses */
}
static void mk_ts_at_nb(at_buf *doc, ctx *c) { ts_at(doc, c, LEAF_NB_MS); }
static void mk_ts_before_nb(at_buf *doc, ctx *c) { ts_at(doc, c, LEAF_NB_MS - 1); }
static void mk_ts_at_na(at_buf *doc, ctx *c) { ts_at(doc, c, LEAF_NA_MS + 999); }
static void mk_ts_after_na(at_buf *doc, ctx *c) { ts_at(doc, c, LEAF_NA_MS + 1000); }

/* A leaf in BER (its outer SEQUENCE with an indefinite length): the same
 * certificate as another byte string. */
static void edit_ber_leaf(tu_payload *p)
{
    at_buf ber;
    tu_ber_variant(at_sim_cert_der(SA.pki, AT_SIM_LEAF), 0, true, &ber);
    at_cbor_put_bytes(tu_payload_val(p, "certificate"), at_buf_span(&ber));
    at_buf_cleanup(&ber);
}
static void mk_ber_leaf(at_buf *doc, ctx *c) { built(edit_ber_leaf, doc); }

/* Ten minutes old, leaf still valid: too old for a 300 s policy at NOW,
 * fine at the document's own time. */
static void mk_old(at_buf *doc, ctx *c)
{
    mint(&(at_sim_doc_opts){.timestamp_ms = (NOW - 600) * 1000, .new_leaf = true}, doc);
}

static void mk_old_at_doc_time(at_buf *doc, ctx *c)
{
    mk_old(doc, c);
    c->opts.time_mode = AT_TIME_DOCUMENT;
}

/* Several faults at once: the chain is checked before the signature. */
static void mk_expired_and_bad_sig(at_buf *doc, ctx *c)
{
    mk_expired_leaf(doc, c);
    doc->p[doc->len - 1] ^= 1;
}

/* Bad signature and a PCR the policy refuses: the signature comes first. */
static void mk_bad_sig_and_pcr(at_buf *doc, ctx *c)
{
    mk_pcr_resigned(doc, c);
    doc->p[doc->len - 1] ^= 1;
}

static const struct ecase {
    const char *name;
    maker mk;
    const char *policy;
    at_err want;
    bool decoded; /* payload fields in the summary */
} cases[] = {
    {"valid enclave document", mk_valid_enclave, NULL, AT_OK, true},
    {"valid nitro-tpm, tagged, definite map", mk_valid_tpm, NULL, AT_OK, true},
    {"valid with the expected nonce", mk_valid_with_nonce, NULL, AT_OK, true},
    {"valid under a PCR policy", mk_pcr_ok, POLICY_PCR0_11, AT_OK, true},
    {"flipped signature byte", mk_flip_signature, NULL, AT_E_BAD_SIGNATURE, true},
    {"flipped PCR byte, not re-signed", mk_flip_payload, NULL, AT_E_BAD_SIGNATURE, true},
    {"PCR changed and re-signed", mk_pcr_resigned, POLICY_PCR0_11, AT_E_PCR_MISMATCH, true},
    {"reordered cabundle", mk_reordered_bundle, NULL, AT_E_CHAIN_INVALID, true},
    {"foreign leaf", mk_foreign_leaf, NULL, AT_E_CHAIN_INVALID, true},
    {"ES256 in the protected header", mk_wrong_alg, NULL, AT_E_UNSUPPORTED_ALG, false},
    {"trailing garbage", mk_trailing_garbage, NULL, AT_E_MALFORMED_CBOR, false},
    {"expired leaf", mk_expired_leaf, NULL, AT_E_CERT_EXPIRED, true},
    {"expired leaf at document time", mk_expired_leaf_at_doc_time, NULL, AT_OK, true},
    {"not-yet-valid leaf", mk_not_yet_valid_leaf, NULL, AT_E_CERT_NOT_YET_VALID, true},
    {"untrusted root", mk_untrusted_root, NULL, AT_E_UNTRUSTED_ROOT, true},
    {"clock skew", mk_clock_skew, NULL, AT_E_CLOCK_SKEW, true},
    {"clock skew at the limit", mk_skew_limit_ok, NULL, AT_OK, true},
    {"clock skew 1 ms past the limit", mk_skew_limit_bad, NULL, AT_E_CLOCK_SKEW, true},
    {"clock skew, custom allowance", mk_skew_custom, NULL, AT_E_CLOCK_SKEW, true},
    {"nonce mismatch", mk_nonce_mismatch, NULL, AT_E_NONCE_MISMATCH, true},
    {"nonce prefix", mk_nonce_prefix, NULL, AT_E_NONCE_MISMATCH, true},
    {"nonce absent", mk_nonce_absent, NULL, AT_E_NONCE_MISMATCH, true},
    {"nonce null vs expected empty", mk_nonce_null_vs_empty, NULL, AT_E_NONCE_MISMATCH, true},
    {"nonce empty vs expected empty", mk_nonce_empty_vs_empty, NULL, AT_OK, true},
    {"too large", mk_too_large, NULL, AT_E_TOO_LARGE, false},
    {"missing digest", mk_missing_field, NULL, AT_E_MISSING_FIELD, false},
    {"digest SHA256", mk_bad_field, NULL, AT_E_BAD_FIELD, false},
    {"tag 17", mk_not_cose, NULL, AT_E_NOT_COSE_SIGN1, false},
    {"truncated head", mk_malformed, NULL, AT_E_MALFORMED_CBOR, false},
    {"format option mismatch", mk_format_opt_mismatch, NULL, AT_E_FORMAT_MISMATCH, false},
    {"format policy mismatch", mk_tpm_doc, POLICY_PCR0_11, AT_E_FORMAT_MISMATCH, true},
    {"module id not allowed", mk_valid_enclave, POLICY_MODULE, AT_E_MODULE_ID_MISMATCH, true},
    {"public key required, absent", mk_valid_enclave, POLICY_KEY, AT_E_KEY_REQUIRED, true},
    {"public key empty, refused whatever the policy", mk_empty_key, POLICY_KEY, AT_E_BAD_FIELD, false},
    {"public key empty, no policy", mk_empty_key, NULL, AT_E_BAD_FIELD, false},
    {"timestamp in seconds (1970), no policy", mk_ts_seconds, NULL, AT_E_TIMESTAMP_OUTSIDE_VALIDITY, true},
    {"timestamp at the leaf's notBefore", mk_ts_at_nb, NULL, AT_OK, true},
    {"timestamp 1 ms before the leaf's notBefore", mk_ts_before_nb, NULL, AT_E_TIMESTAMP_OUTSIDE_VALIDITY,
     true},
    {"timestamp in the leaf's last second", mk_ts_at_na, NULL, AT_OK, true},
    {"timestamp 1 s after the leaf's notAfter", mk_ts_after_na, NULL, AT_E_TIMESTAMP_OUTSIDE_VALIDITY, true},
    {"leaf certificate in BER", mk_ber_leaf, NULL, AT_E_BAD_FIELD, true},
    {"public key required, present", mk_with_key, POLICY_KEY, AT_OK, true},
    {"policy requires a nonce", mk_valid_enclave, POLICY_NONCE, AT_E_NONCE_MISMATCH, true},
    {"document too old", mk_old, POLICY_AGE, AT_E_DOCUMENT_TOO_OLD, true},
    {"old document at its own time", mk_old_at_doc_time, POLICY_AGE, AT_OK, true},
    {"expired leaf and bad signature", mk_expired_and_bad_sig, NULL, AT_E_CERT_EXPIRED, true},
    {"bad signature and PCR mismatch", mk_bad_sig_and_pcr, POLICY_PCR0_11, AT_E_BAD_SIGNATURE, true},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static void check_summary(const at_evidence *ev, const struct ecase *k)
{
    json_t *j = at_evidence_json(ev);
    assert_non_null(j);
    json_t *valid = json_object_get(j, "valid");
    assert_true(json_is_boolean(valid));
    json_t *err = json_object_get(j, "error");
    if (k->want == AT_OK) {
        assert_true(json_is_true(valid));
        assert_true(json_is_null(err));
        json_t *cert = json_object_get(j, "certificate");
        assert_true(json_is_object(cert));
        assert_non_null(strstr(json_string_value(json_object_get(cert, "subject")), "CN="));
        assert_int_equal(json_integer_value(json_object_get(j, "chain_length")), 5);
        assert_false(json_is_true(json_object_get(j, "aws_root")));
    } else {
        assert_true(json_is_false(valid));
        assert_true(json_is_object(err));
        assert_string_equal(json_string_value(json_object_get(err, "code")), at_err_str(k->want));
        const char *msg = json_string_value(json_object_get(err, "message"));
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        if (k->want == AT_E_PCR_MISMATCH) {
            json_t *pcrs = json_object_get(err, "pcrs");
            assert_int_equal(json_array_size(pcrs), 1);
            assert_int_equal(json_integer_value(json_object_get(json_array_get(pcrs, 0), "index")), 0);
        }
    }
    if (k->decoded) {
        assert_non_null(json_string_value(json_object_get(j, "module_id")));
        assert_string_equal(json_string_value(json_object_get(j, "digest")), "SHA384");
        assert_true(json_is_object(json_object_get(j, "pcrs")));
        assert_true(json_is_integer(json_object_get(j, "timestamp_ms")));
    } else {
        assert_null(json_object_get(j, "module_id"));
    }
    /* The summary is what `attestctl verify` prints: it must serialise. */
    char *s = json_dumps(j, JSON_COMPACT);
    assert_non_null(s);
    free(s);
    json_decref(j);
}

static void run_case(const struct ecase *k)
{
    ctx c;
    memset(&c, 0, sizeof c);
    at_buf doc;
    k->mk(&doc, &c);
    at_policy *pol = NULL;
    const char *pj = k->policy;
    if (pj) {
        at_diag pd = {{0}};
        assert_int_equal(at_policy_parse(pj, strlen(pj), &pol, &pd), AT_OK);
        c.opts.policy = pol;
    }
    at_evidence ev;
    at_err rc = at_evidence_verify(c.trust ? c.trust : TRUST, at_buf_span(&doc), &c.opts, &ev);
    if (rc != k->want)
        fail_msg("case \"%s\": got %s (%s), want %s", k->name, at_err_str(rc), ev.diag.msg,
                 at_err_str(k->want));
    assert_int_equal(ev.result, rc);
    assert_int_equal(ev.decoded, k->decoded);
    if (rc == AT_OK)
        assert_true(ev.chain_checked);
    check_summary(&ev, k);
    at_evidence_cleanup(&ev);
    at_policy_free(pol);
    at_buf_cleanup(&doc);
}

static void table_cases(void **state)
{
    for (size_t i = 0; i < N_CASES; i++)
        run_case(&cases[i]);
}

/* Every code of the error table: either a case above asserts it, or it is
 * listed here as one at_evidence_verify never returns for a document, with
 * the reason. A code added to lib/err.h fails this test until someone
 * decides which. */
static const struct {
    at_err code;
    const char *why;
} not_from_evidence[] = {
    {AT_E_NONCE_UNKNOWN, "the verifier's nonce store (lib/nonce.c)"},
    {AT_E_NONCE_REUSED, "the verifier's nonce store"},
    {AT_E_NONCE_EXPIRED, "the verifier's nonce store"},
    {AT_E_POLICY_NOT_FOUND, "policy lookup in the verifier"},
    {AT_E_POLICY_LINT, "policy parsing (test_policy.c), before verification"},
    {AT_E_SESSION_EXPIRED, "verifier sessions"},
    {AT_E_SESSION_NOT_FOUND, "DELETE /v1/sessions/{id} (session_revoke.py)"},
    {AT_E_UNAUTHORIZED, "HTTP authentication"},
    {AT_E_FORBIDDEN, "HTTP authorization"},
    {AT_E_NOT_FOUND, "HTTP routing and storage"},
    {AT_E_CONFLICT, "storage"},
    {AT_E_RATE_LIMITED, "HTTP rate limits"},
    {AT_E_BAD_REQUEST, "HTTP request bodies"},
    {AT_E_UNKNOWN_KEY_ID, "OHTTP (test_ohttp.c)"},
    {AT_E_UNSUPPORTED_SUITE, "HPKE/OHTTP (test_hpke.c, test_ohttp.c)"},
    {AT_E_DECRYPT_FAILED, "HPKE/OHTTP"},
    {AT_E_TRUNCATED, "OHTTP/BHTTP framing"},
    {AT_E_SEQUENCE_OVERFLOW, "HPKE contexts"},
    {AT_E_PURPOSE_MISMATCH, "document binding (test_binding.c), after verification"},
    {AT_E_ENDPOINT_MISMATCH, "document binding"},
    {AT_E_ENDPOINT_CONFLICT, "document binding"},
    {AT_E_TRANSCRIPT_MISMATCH, "the peer handshake (test_peer.c), after verification"},
    {AT_E_REFLECTION, "the peer handshake (test_peer.c)"},
    {AT_E_POLICY_MISMATCH, "the peer handshake through the verifier: an EAR token's policy (mutual.py)"},
    {AT_E_BINDING_MISMATCH,
     "the peer handshake through the verifier: token and binding name other sessions (mutual.py)"},
    {AT_E_UNEXPECTED_MESSAGE, "the peer handshake (test_peer.c)"},
    {AT_E_IO, "files: roots, PKI (never a document in memory)"},
    {AT_E_UNAVAILABLE, "upstream services"},
    {AT_E_INTERNAL, "allocation or OpenSSL failure only (test_hash.c injects one)"},
    {AT_E_SECRET_EXISTS, "the verifier's secret store (model_owner.py)"},
    {AT_E_SECRET_NAME_MISMATCH, "the agent's sealed model header (agent_flow.py)"},
    {AT_E_NO_VERIFIED_INSTANCE, "attest-gateway's answer to consumers (gateway_flow.py, openai_sdk.py)"},
    {AT_E_ATTESTATION_EXPIRED, "attest-gateway's answer to consumers (gateway_flow.py)"},
    {AT_E_POLICY_REVOKED, "attest-gateway's answer to consumers (gateway_flow.py, openai_sdk.py)"},
    {AT_E_TOKEN_INVALID, "attest-gateway's answer to consumers (gateway_flow.py, openai_sdk.py)"},
    {AT_E_INSTANCE_UNREACHABLE, "attest-gateway's answer to consumers (gateway_flow.py, openai_sdk.py)"},
    {AT_E_REPLAYED, "the agent's OHTTP replay memory (lib/replay.c, test_replay, agent_flow.py)"},
    {AT_E_UPSTREAM_UNAVAILABLE,
     "the agent's model server did not answer (agent/route_ohttp.c, openai_sdk.py)"},
};

static void every_code_covered(void **state)
{
    (void)state;
    for (int c = 0; c < AT_ERR_COUNT; c++) {
        bool asserted = false, exempt = false;
        for (size_t k = 0; k < N_CASES; k++)
            asserted = asserted || cases[k].want == (at_err)c;
        for (size_t k = 0; k < sizeof not_from_evidence / sizeof *not_from_evidence; k++)
            exempt = exempt || not_from_evidence[k].code == (at_err)c;
        if (!asserted && !exempt)
            fail_msg("%s: no evidence case asserts it and it is not listed as one the evidence"
                     " core never produces",
                     at_err_str((at_err)c));
        if (asserted && exempt)
            fail_msg("%s: asserted by a case but listed as never produced", at_err_str((at_err)c));
    }
}

/* Truncated at every 97th byte: always malformed_cbor, never a crash. */
static void truncated_every_97th_byte(void **state)
{
    at_sim_doc_opts opts[] = {
        {.format = AT_FORMAT_NITRO_ENCLAVE},
        {.format = AT_FORMAT_NITRO_TPM, .tagged = true, .definite_map = true},
        {.has_nonce = true,
         .nonce = AT_SPAN(NONCE, sizeof NONCE),
         .has_public_key = true,
         .public_key = AT_SPAN("pk", 2),
         .has_user_data = true,
         .user_data = AT_SPAN("ud", 2)},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        at_buf doc;
        mint(&opts[i], &doc);
        for (size_t len = 97; len < doc.len; len += 97) {
            at_evidence ev;
            uint8_t *copy = malloc(len); /* exact size, so ASan sees overreads */
            memcpy(copy, doc.p, len);
            at_err rc = at_evidence_verify(TRUST, AT_SPAN(copy, len), NULL, &ev);
            if (rc != AT_E_MALFORMED_CBOR)
                fail_msg("truncated at %zu: %s (%s)", len, at_err_str(rc), ev.diag.msg);
            json_t *j = at_evidence_json(&ev);
            assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                                "malformed_cbor");
            json_decref(j);
            at_evidence_cleanup(&ev);
            free(copy);
            n++;
        }
        at_buf_cleanup(&doc);
    }
    assert_true(n > 100);
}

/* One bit flipped at every 5th byte of a document: never valid, never a
 * crash (each flip hits the envelope, the payload, a certificate or the
 * signature). */
static void bit_flips_never_verify(void **state)
{
    at_buf doc;
    mint(&(at_sim_doc_opts){.tagged = true}, &doc);
    at_evidence ev;
    assert_int_equal(at_evidence_verify(TRUST, at_buf_span(&doc), NULL, &ev), AT_OK);
    at_evidence_cleanup(&ev);
    for (size_t i = 0; i < doc.len; i += 5) {
        for (int bit = 0; bit < 8; bit += 3) {
            doc.p[i] ^= (uint8_t)(1 << bit);
            at_err rc = at_evidence_verify(TRUST, at_buf_span(&doc), NULL, &ev);
            if (rc == AT_OK)
                fail_msg("flip of bit %d at byte %zu still verifies", bit, i);
            at_evidence_cleanup(&ev);
            doc.p[i] ^= (uint8_t)(1 << bit);
        }
    }
    at_buf_cleanup(&doc);
}

static void genuine_documents(void **state)
{
    for (size_t i = 0; i < TU_N_GENUINE; i++) {
        size_t len;
        uint8_t *doc = tu_read_genuine(tu_genuine[i], ".cbor", &len);
        at_verify_opts o = {.time_mode = AT_TIME_DOCUMENT};
        at_evidence ev;
        at_err rc = at_evidence_verify(AWS_ONLY, AT_SPAN(doc, len), &o, &ev);
        if (rc != AT_OK)
            fail_msg("%s: %s (%s)", tu_genuine[i], at_err_str(rc), ev.diag.msg);
        json_t *j = at_evidence_json(&ev);
        assert_true(json_is_true(json_object_get(j, "valid")));
        assert_true(json_is_true(json_object_get(j, "aws_root")));
        assert_int_equal(json_integer_value(json_object_get(j, "chain_length")), 5);
        /* nonce/user_data/public_key: base64 or null, as decoded */
        const char *keys[] = {"nonce", "user_data", "public_key"};
        bool has[] = {ev.payload.has_nonce, ev.payload.has_user_data, ev.payload.has_public_key};
        at_span val[] = {ev.payload.nonce, ev.payload.user_data, ev.payload.public_key};
        for (int k = 0; k < 3; k++) {
            json_t *v = json_object_get(j, keys[k]);
            if (!has[k]) {
                assert_true(json_is_null(v));
                continue;
            }
            char *b64 = at_b64_encode_new(val[k]);
            assert_string_equal(json_string_value(v), b64);
            free(b64);
        }
        json_decref(j);
        at_evidence_cleanup(&ev);
        /* At now: expired, with the decoded fields still reported. */
        at_verify_opts now = {.time_mode = AT_TIME_NOW};
        assert_int_equal(at_evidence_verify(AWS_ONLY, AT_SPAN(doc, len), &now, &ev), AT_E_CERT_EXPIRED);
        assert_true(ev.decoded);
        assert_false(ev.chain_checked);
        at_evidence_cleanup(&ev);
        /* With only the simulator's root (and no AWS root): untrusted. */
        at_trust *sim_only = tu_trust(&SA, false, 0);
        assert_int_equal(at_evidence_verify(sim_only, AT_SPAN(doc, len), &o, &ev), AT_E_UNTRUSTED_ROOT);
        at_evidence_cleanup(&ev);
        at_trust_unref(sim_only);
        free(doc);
    }
}

/* tests/data/conformance: documents AWS's rules forbid, signed under a test
 * PKI (README there), each checked at its own time against test_root.pem;
 * twice through one trust set, so the second round meets every
 * intermediate in the cache and must still refuse. */
static void conformance_files(void **state)
{
    static const struct {
        const char *name;
        at_err want;
        const char *msg;
    } files[] = {
        {"control_valid", AT_OK, ""},
        {"leaf_ku_no_digsig", AT_E_CHAIN_INVALID,
         "certificate (leaf): keyUsage: keyAgreement, expected digitalSignature"},
        {"leaf_is_ca", AT_E_CHAIN_INVALID,
         "certificate (leaf): basicConstraints: CA:TRUE, expected CA:FALSE"},
        {"pubkey_empty", AT_E_BAD_FIELD, "public_key: 0 bytes, expected 1..1024 or null"},
    };
    at_trust *t = at_trust_new(0);
    at_diag d = {{0}};
    assert_int_equal(at_trust_add_root_file(t, AT_SRCDIR "/tests/data/conformance/test_root.pem", &d), AT_OK);
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            char path[512];
            snprintf(path, sizeof path, "%s/tests/data/conformance/%s.cbor", AT_SRCDIR, files[i].name);
            size_t len;
            uint8_t *doc = tu_read(path, &len);
            at_verify_opts o = {.time_mode = AT_TIME_DOCUMENT};
            at_evidence ev;
            at_err rc = at_evidence_verify(t, AT_SPAN(doc, len), &o, &ev);
            if (rc != files[i].want || !strstr(ev.diag.msg, files[i].msg))
                fail_msg("%s (round %d): got %s (%s), want %s (%s)", files[i].name, round, at_err_str(rc),
                         ev.diag.msg, at_err_str(files[i].want), files[i].msg);
            at_evidence_cleanup(&ev);
            free(doc);
        }
    at_trust_stats st;
    at_trust_stats_get(t, &st);
    assert_true(st.cached_leaf + st.cached_issuer > 0);
    at_trust_unref(t);
}

static void summary_fields(void **state)
{
    static const uint8_t ud[] = {0, 1, 2, 255};
    at_sim_doc_opts o = {.has_nonce = true,
                         .nonce = AT_SPAN(NONCE, sizeof NONCE),
                         .has_user_data = true,
                         .user_data = AT_SPAN(ud, sizeof ud),
                         .timestamp_ms = NOW * 1000 + 123};
    o.pcr_set[16] = true;
    memset(o.pcr[16], 0xee, 48);
    at_buf doc;
    mint(&o, &doc);
    at_evidence ev;
    at_verify_opts vo = {.time_mode = AT_TIME_GIVEN, .at_ms = NOW * 1000 + 500};
    assert_int_equal(at_evidence_verify(TRUST, at_buf_span(&doc), &vo, &ev), AT_OK);
    json_t *j = at_evidence_json(&ev);
    assert_string_equal(json_string_value(json_object_get(j, "format")), "nitro-enclave");
    assert_true(json_integer_value(json_object_get(j, "timestamp_ms")) == NOW * 1000 + 123);
    json_t *pcrs = json_object_get(j, "pcrs");
    assert_int_equal(json_object_size(pcrs), 17);
    char hex[97];
    memset(hex, 'e', 96);
    hex[96] = '\0';
    assert_string_equal(json_string_value(json_object_get(pcrs, "16")), hex);
    assert_string_equal(json_string_value(json_object_get(j, "user_data")), "AAEC/w==");
    assert_true(json_is_null(json_object_get(j, "public_key")));
    char *b64 = at_b64_encode_new(AT_SPAN(NONCE, sizeof NONCE));
    assert_string_equal(json_string_value(json_object_get(j, "nonce")), b64);
    free(b64);
    assert_string_equal(json_string_value(json_object_get(j, "payload_map")), "indefinite");
    assert_false(json_is_true(json_object_get(j, "cose_tagged")));
    char mid[80];
    snprintf(mid, sizeof mid, "%s-enc%.16s", at_sim_instance_id(SA.pki), at_sim_instance_id(SA.pki) + 2);
    assert_string_equal(json_string_value(json_object_get(j, "module_id")), mid);
    char root_hex[65];
    uint8_t h[32];
    unsigned hl = 32;
    at_span r = at_sim_cert_der(SA.pki, AT_SIM_ROOT);
    EVP_Digest(r.p, r.len, h, &hl, EVP_sha256(), NULL);
    at_hex_encode(h, 32, root_hex);
    assert_string_equal(json_string_value(json_object_get(j, "root_sha256")), root_hex);
    char when[32];
    at_time_rfc3339(NOW, when, sizeof when);
    assert_string_equal(json_string_value(json_object_get(j, "checked_at")), when);
    json_decref(j);
    at_evidence_cleanup(&ev);
    /* NULL options: now, no policy. */
    assert_int_equal(at_evidence_verify(TRUST, at_buf_span(&doc), NULL, &ev), AT_OK);
    assert_int_equal(ev.diag.msg[0], '\0');
    at_evidence_cleanup(&ev);
    /* Empty input. */
    assert_int_equal(at_evidence_verify(TRUST, AT_SPAN_NULL, NULL, &ev), AT_E_MALFORMED_CBOR);
    at_evidence_cleanup(&ev);
    at_buf_cleanup(&doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_cases),
        cmocka_unit_test(every_code_covered),
        cmocka_unit_test(truncated_every_97th_byte),
        cmocka_unit_test(bit_flips_never_verify),
        cmocka_unit_test(genuine_documents),
        cmocka_unit_test(summary_fields),
        cmocka_unit_test(conformance_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
