/* Unit tests for lib/sim.c: the test PKI has AWS's shape (cabundle of four,
 * root first, lifetimes, no AKI on the leaf, P-384/SHA-384 throughout,
 * path lengths), levels are renewed when a timestamp falls outside their
 * window (and only those), renewals persist, and documents of both formats
 * and every encoding option verify and carry the fields AWS's do. */
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <openssl/x509v3.h>

#include "at_limits.h"
#include "cbor_rd.h"
#include "cose.h"
#include "evidence.h"

static int64_t NOW;

static X509 *parse(at_span der)
{
    const uint8_t *p = der.p;
    X509 *x = d2i_X509(NULL, &p, (long)der.len);
    assert_non_null(x);
    return x;
}

static void window(X509 *x, int64_t *nb, int64_t *na)
{
    assert_true(at_asn1_time_unix(X509_get0_notBefore(x), nb));
    assert_true(at_asn1_time_unix(X509_get0_notAfter(x), na));
}

static void mint(tu_sim *s, const at_sim_doc_opts *o, at_buf *out)
{
    at_diag d = {{0}};
    at_buf_init(out);
    at_err rc = at_sim_doc(s->pki, o, out, &d);
    if (rc != AT_OK)
        fail_msg("sim doc: %s", d.msg);
}

/* Copies of the DER of each level, to compare across renewals. */
typedef struct {
    uint8_t *der[AT_SIM_LEVELS];
    size_t len[AT_SIM_LEVELS];
} snap;

static void take(snap *s, const at_sim_pki *pki)
{
    for (int l = 0; l < AT_SIM_LEVELS; l++) {
        at_span d = at_sim_cert_der(pki, l);
        s->der[l] = malloc(d.len);
        memcpy(s->der[l], d.p, d.len);
        s->len[l] = d.len;
    }
}

static bool same(const snap *s, const at_sim_pki *pki, int l)
{
    at_span d = at_sim_cert_der(pki, l);
    return d.len == s->len[l] && memcmp(d.p, s->der[l], d.len) == 0;
}

static void drop(snap *s)
{
    for (int l = 0; l < AT_SIM_LEVELS; l++)
        free(s->der[l]);
}

static void pki_shape(void **state)
{
    tu_sim s;
    assert_int_equal(tu_sim_init(&s, NOW), 0);
    static const int64_t life[] = {AT_SIM_LIFETIME_ROOT, AT_SIM_LIFETIME_REGIONAL, AT_SIM_LIFETIME_ZONAL,
                                   AT_SIM_LIFETIME_INSTANCE_CA, AT_SIM_LIFETIME_LEAF};
    assert_true(AT_SIM_LIFETIME_LEAF == 3 * 3600 && AT_SIM_LIFETIME_INSTANCE_CA == 86400);
    X509 *x[AT_SIM_LEVELS];
    for (int l = 0; l < AT_SIM_LEVELS; l++) {
        x[l] = parse(at_sim_cert_der(s.pki, l));
        int64_t nb, na;
        window(x[l], &nb, &na);
        assert_true(na - nb == life[l]);
        assert_true(nb <= NOW && NOW <= na);
        /* ECDSA P-384 keys, ecdsa-with-SHA384 signatures */
        assert_int_equal(X509_get_signature_nid(x[l]), NID_ecdsa_with_SHA384);
        EVP_PKEY *k = X509_get0_pubkey(x[l]);
        char group[32];
        size_t gl;
        assert_int_equal(EVP_PKEY_get_group_name(k, group, sizeof group, &gl), 1);
        assert_string_equal(group, "secp384r1");
        /* issued by the level above; the root by itself */
        X509 *issuer = x[l > 0 ? l - 1 : 0];
        assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x[l]), X509_get_subject_name(issuer)), 0);
        assert_int_equal(X509_verify(x[l], X509_get0_pubkey(issuer)), 1);
    }
    /* CA flags and path lengths; the leaf is no CA and, like AWS's, has no
     * Authority Key Identifier. */
    assert_true(X509_check_ca(x[AT_SIM_ROOT]) >= 1);
    assert_int_equal(X509_get_pathlen(x[AT_SIM_REGIONAL]), 2);
    assert_int_equal(X509_get_pathlen(x[AT_SIM_ZONAL]), 1);
    assert_int_equal(X509_get_pathlen(x[AT_SIM_INSTANCE_CA]), 0);
    assert_int_equal(X509_check_ca(x[AT_SIM_LEAF]), 0);
    assert_true(X509_get_ext_by_NID(x[AT_SIM_LEAF], NID_authority_key_identifier, -1) < 0);
    assert_true(X509_get_ext_by_NID(x[AT_SIM_INSTANCE_CA], NID_authority_key_identifier, -1) >= 0);
    /* The cabundle of a document: four, root first, in level order. */
    at_buf doc;
    mint(&s, &(at_sim_doc_opts){0}, &doc);
    at_cose_sign1 m;
    at_nitro_payload p;
    at_diag d = {{0}};
    assert_int_equal(at_cose_sign1_decode(at_buf_span(&doc), &m, &d), AT_OK);
    assert_int_equal(at_nitro_payload_decode(m.payload, AT_FORMAT_AUTO, &p, &d), AT_OK);
    assert_int_equal(p.n_cabundle, 4);
    for (int l = 0; l < 4; l++)
        assert_true(at_span_eq(p.cabundle[l], at_sim_cert_der(s.pki, l)));
    assert_true(at_span_eq(p.certificate, at_sim_cert_der(s.pki, AT_SIM_LEAF)));
    at_nitro_payload_cleanup(&p);
    at_cose_sign1_cleanup(&m);
    at_buf_cleanup(&doc);
    /* Files: the directory and the keys are private. */
    struct stat st;
    assert_int_equal(stat(s.dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char path[128];
    static const char *files[] = {"root", "regional", "zonal", "instance-ca", "leaf"};
    for (int l = 0; l < AT_SIM_LEVELS; l++) {
        snprintf(path, sizeof path, "%s/%s.key", s.dir, files[l]);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        snprintf(path, sizeof path, "%s/%s.pem", s.dir, files[l]);
        assert_int_equal(stat(path, &st), 0);
    }
    /* Instance id: i- and 17 hex digits. */
    const char *iid = at_sim_instance_id(s.pki);
    assert_int_equal(strlen(iid), 19);
    assert_memory_equal(iid, "i-", 2);
    assert_int_equal(strspn(iid + 2, "0123456789abcdef"), 17);
    for (int l = 0; l < AT_SIM_LEVELS; l++)
        X509_free(x[l]);
    assert_int_equal(at_sim_cert_der(s.pki, -1).len, 0);
    assert_int_equal(at_sim_cert_der(s.pki, AT_SIM_LEVELS).len, 0);
    tu_sim_cleanup(&s);
}

/* A document dated outside a level's window renews that level and every
 * level below it, keeps the ones above, and still verifies at its time. */
static void renewal(void **state)
{
    tu_sim s;
    assert_int_equal(tu_sim_init(&s, NOW), 0);
    at_trust *t = tu_trust(&s, false, 0);
    struct {
        int64_t at;
        int first_renewed; /* lowest level number that must change */
    } steps[] = {
        {NOW + 3600, AT_SIM_LEVELS},   /* everything still covers */
        {NOW + 3 * 3600, AT_SIM_LEAF}, /* leaf: 3 h minus the 15 min spare */
        {NOW + 2 * 86400, AT_SIM_INSTANCE_CA}, {NOW + 10 * 86400, AT_SIM_ZONAL},
        {NOW + 45 * 86400, AT_SIM_REGIONAL},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        snap before;
        take(&before, s.pki);
        at_buf doc;
        mint(&s, &(at_sim_doc_opts){.timestamp_ms = steps[i].at * 1000}, &doc);
        for (int l = 0; l < AT_SIM_LEVELS; l++) {
            bool changed = !same(&before, s.pki, l);
            if (changed != (l >= steps[i].first_renewed))
                fail_msg("step %zu: level %d %s", i, l, changed ? "renewed" : "kept");
        }
        at_verify_opts o = {.time_mode = AT_TIME_DOCUMENT};
        at_evidence ev;
        at_err rc = at_evidence_verify(t, at_buf_span(&doc), &o, &ev);
        if (rc != AT_OK)
            fail_msg("step %zu: %s (%s)", i, at_err_str(rc), ev.diag.msg);
        at_evidence_cleanup(&ev);
        at_buf_cleanup(&doc);
        /* Renewals are saved: a fresh load sees the same certificates. */
        at_sim_pki *again = NULL;
        at_diag d = {{0}};
        assert_int_equal(at_sim_pki_load(s.dir, &again, &d), AT_OK);
        for (int l = 0; l < AT_SIM_LEVELS; l++)
            assert_true(at_span_eq(at_sim_cert_der(again, l), at_sim_cert_der(s.pki, l)));
        assert_string_equal(at_sim_instance_id(again), at_sim_instance_id(s.pki));
        at_sim_pki_free(again);
        drop(&before);
    }
    /* new_leaf: a fresh leaf each time, the same intermediates. */
    snap before;
    take(&before, s.pki);
    at_buf doc;
    int64_t at = NOW + 45 * 86400 + 60;
    mint(&s, &(at_sim_doc_opts){.timestamp_ms = at * 1000, .new_leaf = true}, &doc);
    at_buf_cleanup(&doc);
    assert_false(same(&before, s.pki, AT_SIM_LEAF));
    for (int l = 0; l < AT_SIM_LEAF; l++)
        assert_true(same(&before, s.pki, l));
    X509 *leaf = parse(at_sim_cert_der(s.pki, AT_SIM_LEAF));
    int64_t nb, na;
    window(leaf, &nb, &na);
    assert_true(nb == at - 60); /* starts a minute before the document */
    X509_free(leaf);
    drop(&before);
    /* Before the root's window: refused, nothing renewed. */
    at_diag d = {{0}};
    at_buf_init(&doc);
    at_sim_doc_opts early = {.timestamp_ms = (NOW - 10 * 86400) * 1000};
    assert_int_equal(at_sim_doc(s.pki, &early, &doc, &d), AT_E_CERT_EXPIRED);
    at_buf_cleanup(&doc);
    at_trust_unref(t);
    tu_sim_cleanup(&s);
}

static bool all(const uint8_t *v, uint8_t b)
{
    for (int i = 0; i < 48; i++)
        if (v[i] != b)
            return false;
    return true;
}

/* Both formats, every encoding option: all verify, with AWS's field order
 * and PCR sets. */
static void documents_verify(void **state)
{
    tu_sim s;
    assert_int_equal(tu_sim_init(&s, NOW), 0);
    at_trust *t = tu_trust(&s, false, 0);
    static const char *order[] = {"module_id", "digest",     "timestamp", NULL,   "certificate",
                                  "cabundle",  "public_key", "user_data", "nonce"};
    for (int fmt = 0; fmt < 2; fmt++)
        for (int variant = 0; variant < 4; variant++) {
            at_format f = fmt ? AT_FORMAT_NITRO_TPM : AT_FORMAT_NITRO_ENCLAVE;
            at_sim_doc_opts o = {.format = f,
                                 .tagged = variant & 1,
                                 .definite_map = (variant & 2) != 0,
                                 .has_public_key = variant == 3,
                                 .public_key = AT_SPAN("pk", 2)};
            at_buf doc;
            mint(&s, &o, &doc);
            assert_int_equal(doc.p[0], (variant & 1) ? 0xd2 : 0x84);
            at_verify_opts vo = {.format = f};
            at_evidence ev;
            at_err rc = at_evidence_verify(t, at_buf_span(&doc), &vo, &ev);
            if (rc != AT_OK)
                fail_msg("format %d variant %d: %s (%s)", fmt, variant, at_err_str(rc), ev.diag.msg);
            const at_nitro_payload *p = &ev.payload;
            assert_int_equal(p->format, f);
            assert_int_equal(ev.cose.tagged, variant & 1);
            assert_int_equal(p->map_indefinite, !(variant & 2));
            assert_int_equal(p->has_public_key, variant == 3);
            assert_false(p->has_nonce || p->has_user_data);
            assert_int_equal(p->n_pcrs, fmt ? 24 : 16);
            char want[80];
            if (fmt)
                snprintf(want, sizeof want, "%s-tpm0000000000000000", at_sim_instance_id(s.pki));
            else
                snprintf(want, sizeof want, "%s-enc%.16s", at_sim_instance_id(s.pki),
                         at_sim_instance_id(s.pki) + 2);
            assert_string_equal(p->module_id, want);
            /* PCRs AWS derives from the image are never all zero; TPM
             * 17..22 are all 0xff as in genuine NitroTPM documents. */
            const unsigned *nz = fmt ? (const unsigned[]){0, 1, 4, 7} : (const unsigned[]){0, 1, 2, 2};
            for (int i = 0; i < 4; i++)
                assert_false(all(at_nitro_pcr(p, nz[i])->value, 0));
            if (fmt)
                for (unsigned i = 17; i <= 22; i++)
                    assert_true(all(at_nitro_pcr(p, i)->value, 0xff));
            /* Keys in AWS's order. */
            struct cbor_pair *h = cbor_map_handle(p->root);
            assert_int_equal(cbor_map_size(p->root), 9);
            for (int i = 0; i < 9; i++) {
                at_span k;
                assert_true(at_cbor_get_text(h[i].key, &k));
                const char *w = order[i] ? order[i] : fmt ? "nitrotpm_pcrs" : "pcrs";
                assert_int_equal(k.len, strlen(w));
                assert_memory_equal(k.p, w, k.len);
            }
            at_evidence_cleanup(&ev);
            at_buf_cleanup(&doc);
        }
    at_trust_unref(t);
    tu_sim_cleanup(&s);
}

static void options(void **state)
{
    tu_sim s;
    assert_int_equal(tu_sim_init(&s, NOW), 0);
    at_diag d = {{0}};
    at_buf doc;
    /* Explicit PCRs override the defaults, and higher ones are added. */
    at_sim_doc_opts o = {.module_id = "i-0123456789abcdef0-enc0000000000000001"};
    o.pcr_set[0] = o.pcr_set[31] = true;
    memset(o.pcr[0], 0x42, 48);
    memset(o.pcr[31], 0x43, 48);
    mint(&s, &o, &doc);
    at_cose_sign1 m;
    at_nitro_payload p;
    assert_int_equal(at_cose_sign1_decode(at_buf_span(&doc), &m, &d), AT_OK);
    assert_int_equal(at_nitro_payload_decode(m.payload, AT_FORMAT_AUTO, &p, &d), AT_OK);
    assert_int_equal(p.n_pcrs, 17);
    assert_true(all(at_nitro_pcr(&p, 0)->value, 0x42));
    assert_true(all(at_nitro_pcr(&p, 31)->value, 0x43));
    assert_string_equal(p.module_id, o.module_id);
    at_nitro_payload_cleanup(&p);
    at_cose_sign1_cleanup(&m);
    at_buf_cleanup(&doc);
    /* NitroTPM has PCRs 0..23 only; optional fields at most 1024 bytes. */
    at_sim_doc_opts bad = {.format = AT_FORMAT_NITRO_TPM};
    bad.pcr_set[24] = true;
    at_buf_init(&doc);
    assert_int_equal(at_sim_doc(s.pki, &bad, &doc, &d), AT_E_BAD_FIELD);
    static uint8_t big[AT_MAX_OPTIONAL_FIELD + 1];
    at_sim_doc_opts big_nonce = {.has_nonce = true, .nonce = AT_SPAN(big, sizeof big)};
    assert_int_equal(at_sim_doc(s.pki, &big_nonce, &doc, &d), AT_E_BAD_FIELD);
    big_nonce.nonce.len = AT_MAX_OPTIONAL_FIELD;
    assert_int_equal(at_sim_doc(s.pki, &big_nonce, &doc, &d), AT_OK);
    /* An empty public_key is not a conforming document (AWS: 1..1024). */
    at_sim_doc_opts empty_key = {.has_public_key = true};
    assert_int_equal(at_sim_doc(s.pki, &empty_key, &doc, &d), AT_E_BAD_FIELD);
    at_buf_cleanup(&doc);
    /* Default PCRs depend on the seed only. */
    bool set1[AT_MAX_PCRS], set2[AT_MAX_PCRS];
    uint8_t v1[AT_MAX_PCRS][AT_SHA384_LEN], v2[AT_MAX_PCRS][AT_SHA384_LEN];
    at_sim_default_pcrs(AT_FORMAT_NITRO_ENCLAVE, AT_SPAN("a", 1), set1, v1);
    at_sim_default_pcrs(AT_FORMAT_NITRO_ENCLAVE, AT_SPAN("a", 1), set2, v2);
    assert_memory_equal(v1, v2, sizeof v1);
    assert_memory_equal(set1, set2, sizeof set1);
    at_sim_default_pcrs(AT_FORMAT_NITRO_ENCLAVE, AT_SPAN("b", 1), set2, v2);
    assert_memory_not_equal(v1[0], v2[0], 48);
    assert_memory_equal(v1[3], v2[3], 48); /* not derived: zero */
    /* sign_payload signs arbitrary bytes with the current leaf. */
    at_buf_init(&doc);
    assert_int_equal(at_sim_sign_payload(s.pki, AT_SPAN("\x01", 1), true, &doc, &d), AT_OK);
    assert_int_equal(at_cose_sign1_decode(at_buf_span(&doc), &m, &d), AT_OK);
    assert_true(m.tagged);
    X509 *leaf = parse(at_sim_cert_der(s.pki, AT_SIM_LEAF));
    assert_int_equal(at_cose_sign1_verify(&m, X509_get0_pubkey(leaf), &d), AT_OK);
    X509_free(leaf);
    at_cose_sign1_cleanup(&m);
    at_buf_cleanup(&doc);
    tu_sim_cleanup(&s);
    /* Loading: a missing directory is an I/O error; a fresh PKI has no
     * leaf yet, so it cannot sign until a document is minted. */
    at_sim_pki *pki = NULL;
    assert_int_equal(at_sim_pki_load("/nonexistent/attest-sim", &pki, &d), AT_E_IO);
    assert_null(pki);
    char dir[] = "/tmp/attest-sim-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(at_sim_pki_init(dir, NOW, &d), AT_OK);
    assert_int_equal(at_sim_pki_load(dir, &pki, &d), AT_OK);
    assert_int_equal(at_sim_cert_der(pki, AT_SIM_LEAF).len, 0);
    at_buf_init(&doc);
    assert_int_equal(at_sim_sign_payload(pki, AT_SPAN("\x01", 1), false, &doc, &d), AT_E_INTERNAL);
    at_buf_cleanup(&doc);
    at_sim_pki_free(pki);
    tu_sim t = {.pki = NULL};
    snprintf(t.dir, sizeof t.dir, "%s", dir);
    tu_sim_cleanup(&t);
}

int main(void)
{
    NOW = tu_now_s();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pki_shape),
        cmocka_unit_test(renewal),
        cmocka_unit_test(documents_verify),
        cmocka_unit_test(options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
