/* Unit tests for lib/hpke.c: every RFC 9180 X25519 vector in
 * tests/data/hpke/rfc9180-x25519-vectors.txt (parsed here, not copied),
 * round trips for every AEAD and mode, and the refusals: tampered tags,
 * replayed sequence numbers, overflow, bad enc, unsupported suites. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "enc.h"
#include "hpke.h"
#include "testing.h"

#ifndef AT_SRCDIR
#define AT_SRCDIR "."
#endif
#define VECTORS AT_SRCDIR "/tests/data/hpke/rfc9180-x25519-vectors.txt"

/* ---- vector file parser ---------------------------------------------------
 * The file is RFC 9180 Appendix A text: "name: hex" or "name:" followed by
 * hex continuation lines; "### ... Setup Information" starts a vector,
 * "sequence number:" an encryption, "exporter_context:" an export. */

typedef struct {
    char name[32];
    char hex[1024];
} kv;

typedef struct {
    kv kv[32];
    int n;
} rec;

typedef struct {
    char title[160];
    rec setup;
    rec enc[16];
    int nenc;
    rec exp[8];
    int nexp;
} vec;

static vec *vecs;
static int nvecs;

static bool is_hex_line(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr("0123456789abcdefABCDEF", *s))
            return false;
    return true;
}

static void load_vectors(void)
{
    FILE *f = fopen(VECTORS, "r");
    if (!f) {
        perror(VECTORS);
        fail();
    }
    vecs = calloc(16, sizeof *vecs);
    assert_non_null(vecs);
    char line[1024], suite[96] = "";
    rec *cur = NULL;
    kv *last = NULL;
    enum { SETUP, ENCS, EXPS } section = SETUP;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (strncmp(line, "## ", 3) == 0) {
            snprintf(suite, sizeof suite, "%.90s", line + 3);
            continue;
        }
        if (strncmp(line, "### ", 4) == 0) {
            assert_true(nvecs < 16);
            vec *v = &vecs[nvecs++];
            snprintf(v->title, sizeof v->title, "%.90s / %.60s", suite, line + 4);
            cur = &v->setup;
            section = SETUP;
            last = NULL;
            continue;
        }
        if (strncmp(line, "#### Encryptions", 16) == 0) {
            section = ENCS;
            cur = NULL;
            continue;
        }
        if (strncmp(line, "#### Exported", 13) == 0) {
            section = EXPS;
            cur = NULL;
            continue;
        }
        if (nvecs == 0 || line[0] == '~' || line[0] == 0)
            continue;
        vec *v = &vecs[nvecs - 1];
        char *colon = strchr(line, ':');
        if (!colon) {
            assert_true(is_hex_line(line));
            assert_non_null(last);
            assert_true(strlen(last->hex) + strlen(line) < sizeof last->hex);
            strcat(last->hex, line);
            continue;
        }
        *colon = 0;
        const char *val = colon + 1;
        while (*val == ' ')
            val++;
        if (section == ENCS && strcmp(line, "sequence number") == 0) {
            assert_true(v->nenc < 16);
            cur = &v->enc[v->nenc++];
        } else if (section == EXPS && strcmp(line, "exporter_context") == 0) {
            assert_true(v->nexp < 8);
            cur = &v->exp[v->nexp++];
        }
        assert_non_null(cur);
        assert_true(cur->n < 32);
        last = &cur->kv[cur->n++];
        snprintf(last->name, sizeof last->name, "%.31s", line);
        snprintf(last->hex, sizeof last->hex, "%s", val);
    }
    fclose(f);
}

static const char *get(const rec *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->kv[i].name, name) == 0)
            return r->kv[i].hex;
    return NULL;
}

static long get_num(const rec *r, const char *name)
{
    const char *s = get(r, name);
    assert_non_null(s);
    return strtol(s, NULL, 10);
}

/* Decoded bytes of a field (empty when absent); caller frees. */
static uint8_t *get_bytes(const rec *r, const char *name, size_t *len)
{
    const char *s = get(r, name);
    uint8_t *p = NULL;
    if (!s || !*s) {
        *len = 0;
        return calloc(1, 1);
    }
    assert_int_equal(at_hex_decode_new(s, &p, len), AT_OK);
    return p;
}

static void assert_bytes(const uint8_t *got, size_t glen, const rec *r, const char *name)
{
    size_t len;
    uint8_t *want = get_bytes(r, name, &len);
    if (glen != len || memcmp(got, want, len) != 0) {
        char *h = at_hex_encode_new(AT_SPAN(got, glen));
        print_error("%s: got %s, want %s\n", name, h, get(r, name));
        free(h);
        free(want);
        fail();
    }
    free(want);
}

static void vectors_parsed(void **state)
{
    /* 2 suites x 4 modes, each with 6 encryptions and 3 exports. */
    assert_int_equal(nvecs, 8);
    for (int i = 0; i < nvecs; i++) {
        assert_int_equal(vecs[i].nenc, 6);
        assert_int_equal(vecs[i].nexp, 3);
        assert_non_null(get(&vecs[i].setup, "enc"));
    }
}

static at_hpke_key *derive(const rec *r, const char *ikm_name, const char *sk_name, const char *pk_name)
{
    size_t len;
    uint8_t *ikm = get_bytes(r, ikm_name, &len);
    at_hpke_key *k = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_hpke_key_derive(AT_HPKE_KEM_X25519_SHA256, AT_SPAN(ikm, len), &k, &d), AT_OK);
    free(ikm);
    at_span pk = at_hpke_key_public(k);
    assert_bytes(pk.p, pk.len, r, pk_name);
    at_secret *sk = NULL;
    assert_int_equal(at_hpke_key_private(k, &sk, &d), AT_OK);
    assert_bytes(sk->p, sk->len, r, sk_name);
    at_secret_free(sk);
    return k;
}

static void run_vector(const vec *v)
{
    const rec *s = &v->setup;
    at_hpke_suite suite = {(uint16_t)get_num(s, "kem_id"), (uint16_t)get_num(s, "kdf_id"),
                           (uint16_t)get_num(s, "aead_id")};
    at_hpke_mode mode = (at_hpke_mode)get_num(s, "mode");
    bool auth = mode == AT_HPKE_MODE_AUTH || mode == AT_HPKE_MODE_AUTH_PSK;
    at_diag d = {{0}};
    size_t info_len, psk_len, psk_id_len, ikmE_len, enc_len;
    uint8_t *info = get_bytes(s, "info", &info_len);
    uint8_t *psk = get_bytes(s, "psk", &psk_len);
    uint8_t *psk_id = get_bytes(s, "psk_id", &psk_id_len);
    uint8_t *ikmE = get_bytes(s, "ikmE", &ikmE_len);
    uint8_t *enc_want = get_bytes(s, "enc", &enc_len);

    at_hpke_key *kR = derive(s, "ikmR", "skRm", "pkRm");
    at_hpke_key *kE = derive(s, "ikmE", "skEm", "pkEm");
    at_hpke_key *kS = auth ? derive(s, "ikmS", "skSm", "pkSm") : NULL;
    at_hpke_key *pkR = NULL, *pkS = NULL;
    at_span pk = at_hpke_key_public(kR);
    assert_int_equal(at_hpke_key_from_public(suite.kem, pk, &pkR, &d), AT_OK);
    if (kS) {
        pk = at_hpke_key_public(kS);
        assert_int_equal(at_hpke_key_from_public(suite.kem, pk, &pkS, &d), AT_OK);
    }

    at_hpke_params ps = {mode, AT_SPAN(info, info_len), AT_SPAN(psk, psk_len), AT_SPAN(psk_id, psk_id_len),
                         kS};
    at_hpke_params pr = ps;
    pr.auth = pkS;
    uint8_t enc[AT_HPKE_NENC];
    at_hpke_ctx *cs = NULL, *cr = NULL;
    assert_int_equal(at_hpke_setup_sender_det(suite, &ps, pkR, AT_SPAN(ikmE, ikmE_len), enc, &cs, &d), AT_OK);
    assert_bytes(enc, sizeof enc, s, "enc");
    /* The same sender from the ephemeral key pair itself (the test-only
     * path RFC 9458's example needs) produces the same enc and first ct. */
    {
        at_hpke_ctx *ce = NULL;
        uint8_t enc2[AT_HPKE_NENC];
        size_t l0, a0;
        uint8_t *pt0e = get_bytes(&v->enc[0], "pt", &l0), *aad0 = get_bytes(&v->enc[0], "aad", &a0);
        at_buf ct0;
        at_buf_init(&ct0);
        assert_int_equal(at_hpke_setup_sender_eph(suite, &ps, pkR, kE, enc2, &ce, &d), AT_OK);
        assert_bytes(enc2, sizeof enc2, s, "enc");
        assert_int_equal(at_hpke_seal(ce, AT_SPAN(aad0, a0), AT_SPAN(pt0e, l0), &ct0, &d), AT_OK);
        assert_bytes(ct0.p, ct0.len, &v->enc[0], "ct");
        at_buf_cleanup(&ct0);
        at_hpke_ctx_free(ce);
        free(pt0e);
        free(aad0);
    }
    assert_int_equal(at_hpke_setup_recipient(suite, &pr, kR, AT_SPAN(enc, sizeof enc), &cr, &d), AT_OK);

    /* Run both contexts in lockstep up to the largest listed sequence
     * number; compare at every listed one. */
    long max_seq = 0;
    for (int i = 0; i < v->nenc; i++)
        if (get_num(&v->enc[i], "sequence number") > max_seq)
            max_seq = get_num(&v->enc[i], "sequence number");
    size_t pt_len;
    uint8_t *pt0 = get_bytes(&v->enc[0], "pt", &pt_len);
    int checked = 0;
    for (long seq = 0; seq <= max_seq; seq++) {
        const rec *e = NULL;
        for (int i = 0; i < v->nenc; i++)
            if (get_num(&v->enc[i], "sequence number") == seq)
                e = &v->enc[i];
        char aadbuf[32];
        snprintf(aadbuf, sizeof aadbuf, "Count-%ld", seq);
        size_t aad_len = strlen(aadbuf), ptl = pt_len;
        uint8_t *aad = NULL, *pt = NULL;
        if (e) {
            aad = get_bytes(e, "aad", &aad_len);
            pt = get_bytes(e, "pt", &ptl);
        }
        at_span aads = e ? AT_SPAN(aad, aad_len) : AT_SPAN(aadbuf, aad_len);
        at_span pts = e ? AT_SPAN(pt, ptl) : AT_SPAN(pt0, pt_len);
        at_buf ct, back;
        at_buf_init(&ct);
        at_buf_init(&back);
        assert_int_equal(at_hpke_ctx_seq(cs), (uint64_t)seq);
        assert_int_equal(at_hpke_seal(cs, aads, pts, &ct, &d), AT_OK);
        if (e) {
            assert_bytes(ct.p, ct.len, e, "ct");
            checked++;
        }
        assert_int_equal(at_hpke_open(cr, aads, at_buf_span(&ct), &back, &d), AT_OK);
        assert_int_equal(back.len, pts.len);
        assert_memory_equal(back.p, pts.p, pts.len);
        at_buf_cleanup(&ct);
        at_buf_cleanup(&back);
        free(aad);
        free(pt);
    }
    assert_int_equal(checked, v->nenc);

    for (int i = 0; i < v->nexp; i++) {
        const rec *x = &v->exp[i];
        size_t ctx_len;
        uint8_t *ctx = get_bytes(x, "exporter_context", &ctx_len);
        size_t L = (size_t)get_num(x, "L");
        uint8_t out[64];
        assert_true(L <= sizeof out);
        assert_int_equal(at_hpke_export(cs, AT_SPAN(ctx, ctx_len), L, out, &d), AT_OK);
        assert_bytes(out, L, x, "exported_value");
        assert_int_equal(at_hpke_export(cr, AT_SPAN(ctx, ctx_len), L, out, &d), AT_OK);
        assert_bytes(out, L, x, "exported_value");
        free(ctx);
    }

    at_hpke_ctx_free(cs);
    at_hpke_ctx_free(cr);
    at_hpke_key_free(kR);
    at_hpke_key_free(kE);
    at_hpke_key_free(kS);
    at_hpke_key_free(pkR);
    at_hpke_key_free(pkS);
    free(info);
    free(psk);
    free(psk_id);
    free(ikmE);
    free(enc_want);
    free(pt0);
}

static void rfc9180_vectors(void **state)
{
    for (int i = 0; i < nvecs; i++) {
        print_message("  vector: %s\n", vecs[i].title);
        run_vector(&vecs[i]);
    }
}

/* ---- round trips and refusals --------------------------------------------- */

static const uint16_t aeads[] = {AT_HPKE_AEAD_AES_128_GCM, AT_HPKE_AEAD_AES_256_GCM,
                                 AT_HPKE_AEAD_CHACHA20_POLY1305};

static at_hpke_suite suite_for(uint16_t aead)
{
    return (at_hpke_suite){AT_HPKE_KEM_X25519_SHA256, AT_HPKE_KDF_HKDF_SHA256, aead};
}

static at_hpke_key *gen(void)
{
    at_hpke_key *k = NULL;
    assert_int_equal(at_hpke_key_generate(AT_HPKE_KEM_X25519_SHA256, &k, NULL), AT_OK);
    return k;
}

static void roundtrip_all_modes(void **state)
{
    at_hpke_key *kR = gen(), *kS = gen(), *pkS = NULL;
    assert_int_equal(at_hpke_key_from_public(AT_HPKE_KEM_X25519_SHA256, at_hpke_key_public(kS), &pkS, NULL),
                     AT_OK);
    const char psk[] = "0123456789abcdef0123456789abcdef";
    for (size_t a = 0; a < 3; a++) {
        for (int mode = 0; mode < 4; mode++) {
            bool is_psk = mode == 1 || mode == 3, is_auth = mode >= 2;
            at_hpke_params ps = {(at_hpke_mode)mode, AT_SPAN("info", 4),
                                 is_psk ? AT_SPAN(psk, 32) : AT_SPAN_NULL,
                                 is_psk ? AT_SPAN("id", 2) : AT_SPAN_NULL, is_auth ? kS : NULL};
            at_hpke_params pr = ps;
            pr.auth = is_auth ? pkS : NULL;
            at_buf sealed, pt;
            at_buf_init(&sealed);
            at_buf_init_secret(&pt);
            at_diag d = {{0}};
            assert_int_equal(at_hpke_seal_single(suite_for(aeads[a]), &ps, kR, AT_SPAN("aad", 3),
                                                 AT_SPAN("hello", 5), &sealed, &d),
                             AT_OK);
            assert_int_equal(sealed.len, AT_HPKE_NENC + 5 + AT_HPKE_NT);
            assert_int_equal(at_hpke_open_single(suite_for(aeads[a]), &pr, kR, AT_SPAN("aad", 3),
                                                 at_buf_span(&sealed), &pt, &d),
                             AT_OK);
            assert_int_equal(pt.len, 5);
            assert_memory_equal(pt.p, "hello", 5);
            /* A different info means a different key schedule. */
            pr.info = AT_SPAN("infp", 4);
            at_buf_reset(&pt);
            assert_int_equal(at_hpke_open_single(suite_for(aeads[a]), &pr, kR, AT_SPAN("aad", 3),
                                                 at_buf_span(&sealed), &pt, &d),
                             AT_E_DECRYPT_FAILED);
            assert_int_equal(pt.len, 0);
            /* The wrong AEAD, same key. */
            pr.info = ps.info;
            assert_int_equal(at_hpke_open_single(suite_for(aeads[(a + 1) % 3]), &pr, kR, AT_SPAN("aad", 3),
                                                 at_buf_span(&sealed), &pt, &d),
                             AT_E_DECRYPT_FAILED);
            at_buf_cleanup(&sealed);
            at_buf_cleanup(&pt);
        }
    }
    at_hpke_key_free(kR);
    at_hpke_key_free(kS);
    at_hpke_key_free(pkS);
}

/* A full output buffer is refused with its code and a diagnostic, at each
 * place the output grows (enc, ciphertext, plaintext). */
static void full_output_buffer(void **state)
{
    (void)state;
    at_hpke_key *kR = gen();
    size_t caps[] = {10, AT_HPKE_NENC + 3};
    for (size_t a = 0; a < 3; a++) {
        for (size_t i = 0; i < 2; i++) {
            at_buf out;
            at_buf_init(&out);
            at_buf_set_max(&out, caps[i]);
            at_diag d = {{0}};
            assert_int_equal(at_hpke_seal_single(suite_for(aeads[a]), NULL, kR, AT_SPAN_NULL,
                                                 AT_SPAN("hello", 5), &out, &d),
                             AT_E_TOO_LARGE);
            assert_non_null(strstr(d.msg, "output buffer refused"));
            at_buf_cleanup(&out);
        }
        at_buf sealed, pt;
        at_buf_init(&sealed);
        at_buf_init_secret(&pt);
        at_buf_set_max(&pt, 2);
        at_diag d = {{0}};
        assert_int_equal(at_hpke_seal_single(suite_for(aeads[a]), NULL, kR, AT_SPAN_NULL, AT_SPAN("hello", 5),
                                             &sealed, &d),
                         AT_OK);
        assert_int_equal(
            at_hpke_open_single(suite_for(aeads[a]), NULL, kR, AT_SPAN_NULL, at_buf_span(&sealed), &pt, &d),
            AT_E_TOO_LARGE);
        assert_non_null(strstr(d.msg, "output buffer refused"));
        at_buf_cleanup(&sealed);
        at_buf_cleanup(&pt);
    }
    at_hpke_key_free(kR);
}

static void tampered_tag_and_sequence(void **state)
{
    for (size_t a = 0; a < 3; a++) {
        at_hpke_key *kR = gen();
        uint8_t enc[AT_HPKE_NENC];
        at_hpke_ctx *cs = NULL, *cr = NULL;
        at_diag d = {{0}};
        assert_int_equal(at_hpke_setup_sender(suite_for(aeads[a]), NULL, kR, enc, &cs, &d), AT_OK);
        assert_int_equal(
            at_hpke_setup_recipient(suite_for(aeads[a]), NULL, kR, AT_SPAN(enc, sizeof enc), &cr, &d), AT_OK);
        at_buf c0, c1, pt;
        at_buf_init(&c0);
        at_buf_init(&c1);
        at_buf_init(&pt);
        assert_int_equal(at_hpke_seal(cs, AT_SPAN_NULL, AT_SPAN("zero", 4), &c0, &d), AT_OK);
        assert_int_equal(at_hpke_seal(cs, AT_SPAN_NULL, AT_SPAN("one", 3), &c1, &d), AT_OK);

        /* Flip each byte position of the tag and the body in turn. */
        for (size_t i = 0; i < c0.len; i++) {
            c0.p[i] ^= 0x01;
            assert_int_equal(at_hpke_open(cr, AT_SPAN_NULL, at_buf_span(&c0), &pt, &d), AT_E_DECRYPT_FAILED);
            c0.p[i] ^= 0x01;
            assert_int_equal(pt.len, 0);
            assert_int_equal(at_hpke_ctx_seq(cr), 0);
        }
        /* Truncated below a tag. */
        assert_int_equal(at_hpke_open(cr, AT_SPAN_NULL, AT_SPAN(c0.p, AT_HPKE_NT - 1), &pt, &d),
                         AT_E_TRUNCATED);
        /* Out of order: ct 1 cannot open at sequence number 0. */
        assert_int_equal(at_hpke_open(cr, AT_SPAN_NULL, at_buf_span(&c1), &pt, &d), AT_E_DECRYPT_FAILED);
        assert_int_equal(at_hpke_open(cr, AT_SPAN_NULL, at_buf_span(&c0), &pt, &d), AT_OK);
        assert_int_equal(at_hpke_ctx_seq(cr), 1);
        /* Replay: ct 0 again (its sequence number is used up). */
        at_buf_reset(&pt);
        assert_int_equal(at_hpke_open(cr, AT_SPAN_NULL, at_buf_span(&c0), &pt, &d), AT_E_DECRYPT_FAILED);
        assert_int_equal(pt.len, 0);
        /* Wrong AAD. */
        assert_int_equal(at_hpke_open(cr, AT_SPAN("x", 1), at_buf_span(&c1), &pt, &d), AT_E_DECRYPT_FAILED);
        assert_int_equal(at_hpke_open(cr, AT_SPAN_NULL, at_buf_span(&c1), &pt, &d), AT_OK);
        assert_memory_equal(pt.p, "one", 3);
        /* Roles are fixed. */
        assert_int_equal(at_hpke_seal(cr, AT_SPAN_NULL, AT_SPAN("x", 1), &c0, &d), AT_E_INTERNAL);
        assert_int_equal(at_hpke_open(cs, AT_SPAN_NULL, at_buf_span(&c1), &pt, &d), AT_E_INTERNAL);
        at_buf_cleanup(&c0);
        at_buf_cleanup(&c1);
        at_buf_cleanup(&pt);
        at_hpke_ctx_free(cs);
        at_hpke_ctx_free(cr);
        at_hpke_key_free(kR);
    }
}

static void sequence_overflow(void **state)
{
    at_hpke_key *kR = gen();
    uint8_t enc[AT_HPKE_NENC];
    at_hpke_ctx *cs = NULL, *cr = NULL;
    at_diag d = {{0}};
    at_hpke_suite s = suite_for(AT_HPKE_AEAD_AES_128_GCM);
    assert_int_equal(at_hpke_setup_sender(s, NULL, kR, enc, &cs, &d), AT_OK);
    assert_int_equal(at_hpke_setup_recipient(s, NULL, kR, AT_SPAN(enc, sizeof enc), &cr, &d), AT_OK);
    at_buf ct, pt;
    at_buf_init(&ct);
    at_buf_init(&pt);
    at_hpke_ctx_set_seq_for_tests(cs, UINT64_MAX - 1);
    at_hpke_ctx_set_seq_for_tests(cr, UINT64_MAX - 1);
    assert_int_equal(at_hpke_seal(cs, AT_SPAN_NULL, AT_SPAN("last", 4), &ct, &d), AT_OK);
    size_t n = ct.len;
    assert_int_equal(at_hpke_seal(cs, AT_SPAN_NULL, AT_SPAN("more", 4), &ct, &d), AT_E_SEQUENCE_OVERFLOW);
    assert_int_equal(ct.len, n);
    assert_non_null(strstr(d.msg, "sequence number"));
    assert_int_equal(at_hpke_open(cr, AT_SPAN_NULL, at_buf_span(&ct), &pt, &d), AT_OK);
    assert_int_equal(at_hpke_open(cr, AT_SPAN_NULL, at_buf_span(&ct), &pt, &d), AT_E_SEQUENCE_OVERFLOW);
    at_buf_cleanup(&ct);
    at_buf_cleanup(&pt);
    at_hpke_ctx_free(cs);
    at_hpke_ctx_free(cr);
    at_hpke_key_free(kR);
}

static void bad_enc_and_suites(void **state)
{
    at_hpke_key *kR = gen();
    at_hpke_ctx *c = NULL;
    at_diag d = {{0}};
    uint8_t enc[AT_HPKE_NENC + 1] = {0};
    at_hpke_suite s = suite_for(AT_HPKE_AEAD_CHACHA20_POLY1305);

    /* Truncated and overlong enc. */
    assert_int_equal(at_hpke_setup_recipient(s, NULL, kR, AT_SPAN(enc, 31), &c, &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "enc"));
    assert_int_equal(at_hpke_setup_recipient(s, NULL, kR, AT_SPAN(enc, 33), &c, &d), AT_E_BAD_FIELD);
    /* Low-order points: 0 and 1 give an all-zero shared secret. */
    assert_int_equal(at_hpke_setup_recipient(s, NULL, kR, AT_SPAN(enc, 32), &c, &d), AT_E_BAD_FIELD);
    enc[0] = 1;
    assert_int_equal(at_hpke_setup_recipient(s, NULL, kR, AT_SPAN(enc, 32), &c, &d), AT_E_BAD_FIELD);
    assert_null(c);

    /* Unsupported ids, each named. */
    at_hpke_suite bad = s;
    bad.kem = 0x0010;
    assert_int_equal(at_hpke_setup_sender(bad, NULL, kR, enc, &c, &d), AT_E_UNSUPPORTED_SUITE);
    assert_non_null(strstr(d.msg, "kem_id"));
    bad = s;
    bad.kdf = 0x0002;
    assert_int_equal(at_hpke_setup_sender(bad, NULL, kR, enc, &c, &d), AT_E_UNSUPPORTED_SUITE);
    assert_non_null(strstr(d.msg, "kdf_id"));
    bad = s;
    bad.aead = 0xffff;
    assert_int_equal(at_hpke_setup_sender(bad, NULL, kR, enc, &c, &d), AT_E_UNSUPPORTED_SUITE);
    assert_non_null(strstr(d.msg, "aead_id"));
    assert_null(c);

    /* Single-shot too short for enc + tag. */
    at_buf pt;
    at_buf_init(&pt);
    uint8_t shortbuf[AT_HPKE_NENC + AT_HPKE_NT - 1] = {0};
    assert_int_equal(
        at_hpke_open_single(s, NULL, kR, AT_SPAN_NULL, AT_SPAN(shortbuf, sizeof shortbuf), &pt, &d),
        AT_E_TRUNCATED);

    /* Mode inputs. */
    at_hpke_params p = {AT_HPKE_MODE_PSK, AT_SPAN_NULL, AT_SPAN("k", 1), AT_SPAN_NULL, NULL};
    assert_int_equal(at_hpke_setup_sender(s, &p, kR, enc, &c, &d), AT_E_BAD_FIELD);
    p = (at_hpke_params){AT_HPKE_MODE_BASE, AT_SPAN_NULL, AT_SPAN("k", 1), AT_SPAN("i", 1), NULL};
    assert_int_equal(at_hpke_setup_sender(s, &p, kR, enc, &c, &d), AT_E_BAD_FIELD);
    p = (at_hpke_params){AT_HPKE_MODE_AUTH, AT_SPAN_NULL, AT_SPAN_NULL, AT_SPAN_NULL, NULL};
    assert_int_equal(at_hpke_setup_sender(s, &p, kR, enc, &c, &d), AT_E_KEY_REQUIRED);
    at_hpke_key *pub = NULL;
    assert_int_equal(at_hpke_key_from_public(s.kem, at_hpke_key_public(kR), &pub, &d), AT_OK);
    p.auth = pub; /* a sender needs its private key */
    assert_int_equal(at_hpke_setup_sender(s, &p, kR, enc, &c, &d), AT_E_KEY_REQUIRED);
    /* A recipient needs a private key. */
    assert_int_equal(at_hpke_setup_recipient(s, NULL, pub, AT_SPAN(enc, 32), &c, &d), AT_E_KEY_REQUIRED);
    assert_null(c);

    /* Key sizes. */
    at_hpke_key *k = NULL;
    assert_int_equal(at_hpke_key_from_public(s.kem, AT_SPAN(enc, 31), &k, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_hpke_key_from_private(s.kem, AT_SPAN(enc, 33), &k, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_hpke_key_generate(0x0011, &k, &d), AT_E_UNSUPPORTED_SUITE);
    assert_null(k);
    at_secret *sk = NULL;
    assert_int_equal(at_hpke_key_private(pub, &sk, &d), AT_E_KEY_REQUIRED);

    at_buf_cleanup(&pt);
    at_hpke_key_free(pub);
    at_hpke_key_free(kR);
}

static void export_and_keys(void **state)
{
    at_hpke_key *kR = gen(), *k2 = NULL;
    at_diag d = {{0}};
    at_secret *sk = NULL;
    /* A private key survives serialisation. */
    assert_int_equal(at_hpke_key_private(kR, &sk, &d), AT_OK);
    assert_int_equal(at_hpke_key_from_private(AT_HPKE_KEM_X25519_SHA256, AT_SPAN(sk->p, sk->len), &k2, &d),
                     AT_OK);
    assert_memory_equal(at_hpke_key_public(kR).p, at_hpke_key_public(k2).p, AT_HPKE_NPK);
    at_secret_free(sk);

    uint8_t enc[AT_HPKE_NENC], a[64], b[64];
    at_hpke_ctx *cs = NULL, *cr = NULL;
    at_hpke_suite s = suite_for(AT_HPKE_AEAD_AES_256_GCM);
    assert_int_equal(at_hpke_setup_sender(s, NULL, kR, enc, &cs, &d), AT_OK);
    assert_int_equal(at_hpke_setup_recipient(s, NULL, k2, AT_SPAN(enc, sizeof enc), &cr, &d), AT_OK);
    assert_int_equal(at_hpke_export(cs, AT_SPAN("ctx", 3), 64, a, &d), AT_OK);
    assert_int_equal(at_hpke_export(cr, AT_SPAN("ctx", 3), 64, b, &d), AT_OK);
    assert_memory_equal(a, b, 64);
    assert_int_equal(at_hpke_export(cr, AT_SPAN("ctx2", 4), 64, b, &d), AT_OK);
    assert_memory_not_equal(a, b, 64);
    assert_int_equal(at_hpke_export(cr, AT_SPAN_NULL, 0, b, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_hpke_export(cr, AT_SPAN_NULL, AT_HPKE_MAX_EXPORT + 1, b, &d), AT_E_BAD_FIELD);
    /* Two encapsulations to one key never share enc. */
    uint8_t enc2[AT_HPKE_NENC];
    at_hpke_ctx *c2 = NULL;
    assert_int_equal(at_hpke_setup_sender(s, NULL, kR, enc2, &c2, &d), AT_OK);
    assert_memory_not_equal(enc, enc2, AT_HPKE_NENC);
    at_hpke_ctx_free(c2);
    at_hpke_ctx_free(cs);
    at_hpke_ctx_free(cr);
    at_hpke_key_free(kR);
    at_hpke_key_free(k2);
}

static void primitives(void **state)
{
    /* RFC 5869 A.1 (HKDF-SHA256 test case 1). */
    uint8_t ikm[22], salt[13], info[10], prk[32], okm[42];
    memset(ikm, 0x0b, sizeof ikm);
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (uint8_t)(0xf0 + i);
    at_diag d = {{0}};
    assert_int_equal(
        at_hpke_kdf_extract(AT_HPKE_KDF_HKDF_SHA256, AT_SPAN(salt, 13), AT_SPAN(ikm, 22), prk, &d), AT_OK);
    char hex[2 * 42 + 1];
    at_hex_encode(prk, 32, hex);
    assert_string_equal(hex, "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
    assert_int_equal(
        at_hpke_kdf_expand(AT_HPKE_KDF_HKDF_SHA256, AT_SPAN(prk, 32), AT_SPAN(info, 10), okm, 42, &d), AT_OK);
    at_hex_encode(okm, 42, hex);
    assert_string_equal(hex, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf3"
                             "4007208d5b887185865");
    assert_int_equal(at_hpke_kdf_expand(0x0002, AT_SPAN(prk, 32), AT_SPAN_NULL, okm, 42, &d),
                     AT_E_UNSUPPORTED_SUITE);
    /* Raw AEAD: key and nonce sizes are checked. */
    at_buf out;
    at_buf_init(&out);
    uint8_t key[32] = {0}, nonce[12] = {0};
    assert_int_equal(at_hpke_aead_seal(AT_HPKE_AEAD_AES_128_GCM, AT_SPAN(key, 32), AT_SPAN(nonce, 12),
                                       AT_SPAN_NULL, AT_SPAN("x", 1), &out, &d),
                     AT_E_INTERNAL);
    assert_int_equal(at_hpke_aead_seal(AT_HPKE_AEAD_AES_128_GCM, AT_SPAN(key, 16), AT_SPAN(nonce, 12),
                                       AT_SPAN_NULL, AT_SPAN_NULL, &out, &d),
                     AT_OK);
    assert_int_equal(out.len, AT_HPKE_NT);
    at_buf_cleanup(&out);
    assert_non_null(at_hpke_backend());
}

static int setup_vectors(void **state)
{
    load_vectors();
    return 0;
}

static int teardown_vectors(void **state)
{
    free(vecs);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vectors_parsed),
        cmocka_unit_test(rfc9180_vectors),
        cmocka_unit_test(roundtrip_all_modes),
        cmocka_unit_test(full_output_buffer),
        cmocka_unit_test(tampered_tag_and_sequence),
        cmocka_unit_test(sequence_overflow),
        cmocka_unit_test(bad_enc_and_suites),
        cmocka_unit_test(export_and_keys),
        cmocka_unit_test(primitives),
    };
    printf("hpke backend: %s\n", at_hpke_backend());
    return cmocka_run_group_tests(tests, setup_vectors, teardown_vectors);
}
