/* Unit tests for lib/ohttp.c: RFC 9458 Appendix A and the chunked draft's
 * example reproduced byte for byte from tests/data/hpke/ (parsed, not
 * copied); round trips for every AEAD, chunked and not; and every refusal
 * with its exact code: unknown key id, unsupported suite, short and long
 * messages, tag failures, truncated, replayed and reordered chunks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bhttp.h"
#include "buf.h"
#include "enc.h"
#include "hpke.h"
#include "ohttp.h"
#include "testing.h"

#ifndef AT_SRCDIR
#define AT_SRCDIR "."
#endif

/* ---- hex-dump blocks of the example files ------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len;
} blob;

typedef struct {
    blob b[20];
    int n;
} blocks;

static void load_blocks(const char *name, blocks *out)
{
    char path[512], line[512];
    snprintf(path, sizeof path, "%s/tests/data/hpke/%s", AT_SRCDIR, name);
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        fail();
    }
    memset(out, 0, sizeof *out);
    char hex[4096];
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!in && strcmp(line, "~~~ hex-dump") == 0) {
            in = true;
            hex[0] = 0;
        } else if (in && strcmp(line, "~~~") == 0) {
            in = false;
            assert_true(out->n < 20);
            blob *b = &out->b[out->n++];
            assert_int_equal(at_hex_decode_new(hex, &b->p, &b->len), AT_OK);
        } else if (in) {
            assert_true(strlen(hex) + strlen(line) < sizeof hex);
            strcat(hex, line);
        }
    }
    fclose(f);
}

static void free_blocks(blocks *bl)
{
    for (int i = 0; i < bl->n; i++)
        free(bl->b[i].p);
}

static at_span S(const blob *b) { return AT_SPAN(b->p, b->len); }

static void assert_buf_eq(const at_buf *got, at_span want, const char *what)
{
    if (got->len != want.len || memcmp(got->p, want.p, want.len) != 0) {
        char *g = at_hex_encode_new(at_buf_span(got)), *w = at_hex_encode_new(want);
        print_error("%s:\n  got  %s\n  want %s\n", what, g, w);
        free(g);
        free(w);
        fail();
    }
}

static const at_ohttp_sym syms_9458[] = {{1, 1}, {1, 3}};

/* ---- RFC 9458 Appendix A -------------------------------------------------- */

static void rfc9458_example(void **state)
{
    blocks bl;
    load_blocks("rfc9458-example.txt", &bl);
    assert_int_equal(bl.n, 14);
    const blob *skR = &bl.b[0], *config = &bl.b[1], *req = &bl.b[2], *skE = &bl.b[3], *pkE = &bl.b[4],
               *info = &bl.b[5], *enc_req = &bl.b[6], *res = &bl.b[7], *secret = &bl.b[8], *salt = &bl.b[9],
               *prk = &bl.b[10], *key = &bl.b[11], *nonce = &bl.b[12], *enc_res = &bl.b[13];
    at_diag d = {{0}};
    at_buf b;
    at_buf_init(&b);

    /* Key configuration from the gateway's secret key. */
    at_ohttp_keyset *ks = NULL;
    assert_int_equal(at_ohttp_keyset_new(&ks, &d), AT_OK);
    assert_int_equal(at_ohttp_keyset_add_private(ks, 1, S(skR), syms_9458, 2, &d), AT_OK);
    at_ohttp_key_config kc;
    assert_int_equal(at_ohttp_keyset_config(ks, 1, &kc, &d), AT_OK);
    assert_int_equal(at_ohttp_key_config_encode(&kc, &b, &d), AT_OK);
    assert_buf_eq(&b, S(config), "key config");
    at_ohttp_key_config parsed;
    assert_int_equal(at_ohttp_key_config_parse(S(config), &parsed, &d), AT_OK);
    assert_int_equal(parsed.key_id, 1);
    assert_int_equal(parsed.nsym, 2);
    assert_int_equal(parsed.sym[1].aead, AT_HPKE_AEAD_CHACHA20_POLY1305);

    /* Ephemeral public key and info. */
    at_hpke_key *e = NULL;
    assert_int_equal(at_hpke_key_from_private(AT_HPKE_KEM_X25519_SHA256, S(skE), &e, &d), AT_OK);
    at_buf_reset(&b);
    assert_int_equal(at_buf_append_span(&b, at_hpke_key_public(e)), AT_OK);
    assert_buf_eq(&b, S(pkE), "pkE");
    at_hpke_key_free(e);
    at_buf_reset(&b);
    assert_int_equal(at_buf_append(&b, "message/bhttp request\0\x01\x00\x20\x00\x01\x00\x01", 29), AT_OK);
    assert_buf_eq(&b, S(info), "info");

    /* The Encapsulated Request, with the published ephemeral key. */
    at_ohttp_client *c = NULL;
    assert_int_equal(at_ohttp_client_new_det(&parsed, NULL, false, S(skE), &c, &d), AT_OK);
    assert_int_equal(at_ohttp_client_suite(c).aead, AT_HPKE_AEAD_AES_128_GCM);
    at_buf_reset(&b);
    assert_int_equal(at_ohttp_client_seal_request(c, S(req), &b, &d), AT_OK);
    assert_buf_eq(&b, S(enc_req), "encapsulated request");

    /* The gateway opens it. */
    at_ohttp_server *s = NULL;
    at_buf plain;
    at_buf_init_secret(&plain);
    assert_int_equal(at_ohttp_server_open_request(ks, S(enc_req), &plain, &s, &d), AT_OK);
    assert_buf_eq(&plain, S(req), "decapsulated request");
    assert_int_equal(at_ohttp_server_key_id(s), 1);

    /* The response key schedule's intermediates, then the response. */
    uint8_t out[32];
    assert_int_equal(at_hpke_kdf_extract(1, S(salt), S(secret), out, &d), AT_OK);
    at_buf_reset(&b);
    assert_int_equal(at_buf_append(&b, out, 32), AT_OK);
    assert_buf_eq(&b, S(prk), "prk");
    assert_int_equal(at_hpke_kdf_expand(1, S(prk), AT_SPAN("key", 3), out, 16, &d), AT_OK);
    at_buf_reset(&b);
    assert_int_equal(at_buf_append(&b, out, 16), AT_OK);
    assert_buf_eq(&b, S(key), "aead key");
    assert_int_equal(at_hpke_kdf_expand(1, S(prk), AT_SPAN("nonce", 5), out, 12, &d), AT_OK);
    at_buf_reset(&b);
    assert_int_equal(at_buf_append(&b, out, 12), AT_OK);
    assert_buf_eq(&b, S(nonce), "aead nonce");

    at_span response_nonce = AT_SPAN(salt->p + AT_HPKE_NENC, salt->len - AT_HPKE_NENC);
    assert_int_equal(at_ohttp_server_set_nonce_for_tests(s, response_nonce, &d), AT_OK);
    at_buf_reset(&b);
    assert_int_equal(at_ohttp_server_seal_response(s, S(res), &b, &d), AT_OK);
    assert_buf_eq(&b, S(enc_res), "encapsulated response");

    /* The client opens the answer. */
    at_buf_reset(&plain);
    assert_int_equal(at_ohttp_client_open_response(c, S(enc_res), &plain, &d), AT_OK);
    assert_buf_eq(&plain, S(res), "decapsulated response");
    at_bhttp_msg *m = NULL;
    assert_int_equal(at_bhttp_decode(at_buf_span(&plain), AT_BHTTP_RESPONSE, &m, &d), AT_OK);
    assert_int_equal(m->status, 200);
    at_bhttp_msg_free(m);

    at_ohttp_client_free(c);
    at_ohttp_server_free(s);
    at_ohttp_keyset_free(ks);
    at_buf_cleanup(&b);
    at_buf_cleanup(&plain);
    free_blocks(&bl);
}

/* ---- chunked draft, Appendix A ---------------------------------------------- */

static void chunked_example(void **state)
{
    blocks bl;
    load_blocks("chunked-ohttp-example.txt", &bl);
    assert_int_equal(bl.n, 15);
    const blob *skR = &bl.b[0], *config = &bl.b[1], *req = &bl.b[2], *skE = &bl.b[3], *enc_req = &bl.b[6],
               *res = &bl.b[7], *salt = &bl.b[9], *enc_res = &bl.b[13];
    at_diag d = {{0}};
    at_buf b, plain;
    at_buf_init(&b);
    at_buf_init_secret(&plain);

    at_ohttp_keyset *ks = NULL;
    assert_int_equal(at_ohttp_keyset_new(&ks, &d), AT_OK);
    assert_int_equal(at_ohttp_keyset_add_private(ks, 1, S(skR), syms_9458, 2, &d), AT_OK);
    at_ohttp_key_config kc;
    assert_int_equal(at_ohttp_keyset_config(ks, 1, &kc, &d), AT_OK);
    assert_int_equal(at_ohttp_key_config_encode(&kc, &b, &d), AT_OK);
    assert_buf_eq(&b, S(config), "key config");

    /* Request: 12 bytes, 13 bytes, then an empty final chunk. */
    at_ohttp_client *c = NULL;
    assert_int_equal(at_ohttp_client_new_det(&kc, NULL, true, S(skE), &c, &d), AT_OK);
    at_buf_reset(&b);
    assert_int_equal(at_ohttp_client_seal_chunk(c, AT_SPAN(req->p, 12), false, &b, &d), AT_OK);
    assert_int_equal(at_ohttp_client_seal_chunk(c, AT_SPAN(req->p + 12, 13), false, &b, &d), AT_OK);
    assert_int_equal(at_ohttp_client_seal_chunk(c, AT_SPAN_NULL, true, &b, &d), AT_OK);
    assert_buf_eq(&b, S(enc_req), "chunked encapsulated request");
    assert_int_equal(at_ohttp_client_seal_chunk(c, AT_SPAN("x", 1), true, &b, &d), AT_E_BAD_FIELD);

    /* The gateway reads it a byte at a time: both chunks are out before
     * the stream ends; the final one opens at the end. */
    at_ohttp_server *s = NULL;
    assert_int_equal(at_ohttp_server_new_chunked(ks, &s, &d), AT_OK);
    for (size_t i = 0; i < enc_req->len; i++) {
        assert_int_equal(at_ohttp_server_feed(s, AT_SPAN(enc_req->p + i, 1), &plain, &d), AT_OK);
        if (i == 6)
            assert_false(at_ohttp_server_ready(s));
    }
    assert_true(at_ohttp_server_ready(s));
    assert_buf_eq(&plain, S(req), "request chunks");
    assert_int_equal(at_ohttp_server_finish(s, &plain, &d), AT_OK);
    assert_buf_eq(&plain, S(req), "request after the final chunk");

    /* Response: 1 byte, 2 bytes, empty final. */
    at_span response_nonce = AT_SPAN(salt->p + AT_HPKE_NENC, salt->len - AT_HPKE_NENC);
    assert_int_equal(at_ohttp_server_set_nonce_for_tests(s, response_nonce, &d), AT_OK);
    at_buf_reset(&b);
    assert_int_equal(at_ohttp_server_seal_chunk(s, AT_SPAN(res->p, 1), false, &b, &d), AT_OK);
    assert_int_equal(at_ohttp_server_seal_chunk(s, AT_SPAN(res->p + 1, 2), false, &b, &d), AT_OK);
    assert_int_equal(at_ohttp_server_seal_chunk(s, AT_SPAN_NULL, true, &b, &d), AT_OK);
    assert_buf_eq(&b, S(enc_res), "chunked encapsulated response");

    /* The client reads it in uneven pieces. */
    at_buf_reset(&plain);
    size_t cuts[] = {5, 16, 17, 30, 34, b.len};
    size_t at = 0;
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        assert_int_equal(at_ohttp_client_feed(c, AT_SPAN(b.p + at, cuts[i] - at), &plain, &d), AT_OK);
        at = cuts[i];
    }
    assert_int_equal(plain.len, 3);
    assert_int_equal(at_ohttp_client_finish(c, &plain, &d), AT_OK);
    assert_buf_eq(&plain, S(res), "response");

    at_ohttp_client_free(c);
    at_ohttp_server_free(s);
    at_ohttp_keyset_free(ks);
    at_buf_cleanup(&b);
    at_buf_cleanup(&plain);
    free_blocks(&bl);
}

/* ---- round trips ------------------------------------------------------------ */

static const uint16_t aeads[] = {AT_HPKE_AEAD_AES_128_GCM, AT_HPKE_AEAD_AES_256_GCM,
                                 AT_HPKE_AEAD_CHACHA20_POLY1305};

static at_ohttp_keyset *two_keys(void)
{
    at_ohttp_keyset *ks = NULL;
    assert_int_equal(at_ohttp_keyset_new(&ks, NULL), AT_OK);
    assert_int_equal(at_ohttp_keyset_generate(ks, 7, NULL), AT_OK);
    assert_int_equal(at_ohttp_keyset_generate(ks, 200, NULL), AT_OK);
    return ks;
}

static void roundtrip_every_aead(void **state)
{
    at_ohttp_keyset *ks = two_keys();
    at_diag d = {{0}};
    static uint8_t big[100 * 1024];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 31 + 7);
    for (int kid = 0; kid < 2; kid++) {
        at_ohttp_key_config kc;
        assert_int_equal(at_ohttp_keyset_config(ks, kid ? 200 : 7, &kc, &d), AT_OK);
        assert_int_equal(kc.nsym, 3);
        for (size_t a = 0; a < 3; a++) {
            at_hpke_suite su = {AT_HPKE_KEM_X25519_SHA256, AT_HPKE_KDF_HKDF_SHA256, aeads[a]};
            /* Whole messages. */
            at_ohttp_client *c = NULL;
            at_ohttp_server *s = NULL;
            at_buf wire, plain;
            at_buf_init(&wire);
            at_buf_init_secret(&plain);
            assert_int_equal(at_ohttp_client_new(&kc, &su, false, &c, &d), AT_OK);
            assert_int_equal(at_ohttp_client_seal_request(c, AT_SPAN(big, 5000), &wire, &d), AT_OK);
            assert_int_equal(at_ohttp_client_seal_request(c, AT_SPAN(big, 1), &wire, &d), AT_E_INTERNAL);
            at_ohttp_client_free(c);
            assert_int_equal(at_ohttp_client_new(&kc, &su, false, &c, &d), AT_OK);
            at_buf_reset(&wire);
            assert_int_equal(at_ohttp_client_seal_request(c, AT_SPAN(big, 5000), &wire, &d), AT_OK);
            assert_int_equal(at_ohttp_server_open_request(ks, at_buf_span(&wire), &plain, &s, &d), AT_OK);
            assert_int_equal(at_ohttp_server_key_id(s), kid ? 200 : 7);
            assert_int_equal(at_ohttp_server_suite(s).aead, aeads[a]);
            assert_int_equal(plain.len, 5000);
            assert_memory_equal(plain.p, big, 5000);
            at_buf_reset(&wire);
            at_buf_reset(&plain);
            assert_int_equal(at_ohttp_server_seal_response(s, AT_SPAN(big + 1, 777), &wire, &d), AT_OK);
            assert_int_equal(wire.len, (aeads[a] == 1 ? 16 : 32) + 777 + 16);
            assert_int_equal(at_ohttp_client_open_response(c, at_buf_span(&wire), &plain, &d), AT_OK);
            assert_int_equal(plain.len, 777);
            assert_memory_equal(plain.p, big + 1, 777);
            at_ohttp_client_free(c);
            at_ohttp_server_free(s);

            /* Chunked, 100 KiB each way (split into 16 KiB chunks). */
            c = NULL;
            s = NULL;
            at_buf_reset(&wire);
            at_buf_reset(&plain);
            assert_int_equal(at_ohttp_client_new(&kc, &su, true, &c, &d), AT_OK);
            assert_int_equal(at_ohttp_client_seal_chunk(c, AT_SPAN(big, 60000), false, &wire, &d), AT_OK);
            assert_int_equal(
                at_ohttp_client_seal_chunk(c, AT_SPAN(big + 60000, sizeof big - 60000), true, &wire, &d),
                AT_OK);
            assert_int_equal(at_ohttp_server_new_chunked(ks, &s, &d), AT_OK);
            assert_int_equal(at_ohttp_server_feed(s, at_buf_span(&wire), &plain, &d), AT_OK);
            assert_int_equal(at_ohttp_server_finish(s, &plain, &d), AT_OK);
            assert_int_equal(plain.len, sizeof big);
            assert_memory_equal(plain.p, big, sizeof big);
            at_buf_reset(&wire);
            at_buf_reset(&plain);
            for (size_t off = 0; off < sizeof big; off += 10000) {
                size_t n = sizeof big - off < 10000 ? sizeof big - off : 10000;
                bool final = off + n == sizeof big;
                assert_int_equal(at_ohttp_server_seal_chunk(s, AT_SPAN(big + off, n), final, &wire, &d),
                                 AT_OK);
            }
            for (size_t off = 0; off < wire.len; off += 4096) {
                size_t n = wire.len - off < 4096 ? wire.len - off : 4096;
                assert_int_equal(at_ohttp_client_feed(c, AT_SPAN(wire.p + off, n), &plain, &d), AT_OK);
            }
            assert_int_equal(at_ohttp_client_finish(c, &plain, &d), AT_OK);
            assert_int_equal(plain.len, sizeof big);
            assert_memory_equal(plain.p, big, sizeof big);
            at_ohttp_client_free(c);
            at_ohttp_server_free(s);
            at_buf_cleanup(&wire);
            at_buf_cleanup(&plain);
        }
    }
    at_ohttp_keyset_free(ks);
}

/* A sealed whole request to the key set's first key. */
static void seal_one(at_ohttp_keyset *ks, uint16_t aead, at_buf *wire, at_ohttp_client **cout)
{
    at_ohttp_key_config kc;
    at_hpke_suite su = {AT_HPKE_KEM_X25519_SHA256, AT_HPKE_KDF_HKDF_SHA256, aead};
    at_ohttp_client *c = NULL;
    assert_int_equal(at_ohttp_keyset_config(ks, at_ohttp_keyset_id(ks, 0), &kc, NULL), AT_OK);
    assert_int_equal(at_ohttp_client_new(&kc, &su, false, &c, NULL), AT_OK);
    assert_int_equal(at_ohttp_client_seal_request(c, AT_SPAN("hello gateway", 13), wire, NULL), AT_OK);
    if (cout)
        *cout = c;
    else
        at_ohttp_client_free(c);
}

static at_err open_rc(at_ohttp_keyset *ks, const uint8_t *p, size_t n, at_diag *d)
{
    at_buf plain;
    at_ohttp_server *s = NULL;
    at_buf_init(&plain);
    at_err rc = at_ohttp_server_open_request(ks, AT_SPAN(p, n), &plain, &s, d);
    if (rc != AT_OK) {
        assert_null(s);
        assert_int_equal(plain.len, 0);
    }
    at_ohttp_server_free(s);
    at_buf_cleanup(&plain);
    return rc;
}

static void request_refusals(void **state)
{
    at_ohttp_keyset *ks = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_ohttp_keyset_new(&ks, &d), AT_OK);
    const at_ohttp_sym only_aes128[] = {{1, 1}};
    uint8_t sk[32];
    memset(sk, 0x42, sizeof sk);
    assert_int_equal(at_ohttp_keyset_add_private(ks, 3, AT_SPAN(sk, 32), only_aes128, 1, &d), AT_OK);
    at_buf w;
    at_buf_init(&w);
    seal_one(ks, AT_HPKE_AEAD_AES_128_GCM, &w, NULL);
    assert_int_equal(open_rc(ks, w.p, w.len, &d), AT_OK);

    /* Wrong key id. */
    w.p[0] = 4;
    assert_int_equal(open_rc(ks, w.p, w.len, &d), AT_E_UNKNOWN_KEY_ID);
    assert_non_null(strstr(d.msg, "key_id: 4"));
    w.p[0] = 3;
    /* Wrong suite: an AEAD the key does not offer, another KEM, another KDF. */
    w.p[6] = 3;
    assert_int_equal(open_rc(ks, w.p, w.len, &d), AT_E_UNSUPPORTED_SUITE);
    w.p[6] = 1;
    w.p[2] = 0x10;
    assert_int_equal(open_rc(ks, w.p, w.len, &d), AT_E_UNSUPPORTED_SUITE);
    w.p[2] = 0x20;
    w.p[4] = 2;
    assert_int_equal(open_rc(ks, w.p, w.len, &d), AT_E_UNSUPPORTED_SUITE);
    w.p[4] = 1;
    assert_int_equal(open_rc(ks, w.p, w.len, &d), AT_OK);
    /* Short messages: header, enc, tag. */
    assert_int_equal(open_rc(ks, w.p, 0, &d), AT_E_TRUNCATED);
    assert_int_equal(open_rc(ks, w.p, 6, &d), AT_E_TRUNCATED);
    assert_non_null(strstr(d.msg, "header"));
    assert_int_equal(open_rc(ks, w.p, 7 + 31, &d), AT_E_TRUNCATED);
    assert_non_null(strstr(d.msg, "enc"));
    assert_int_equal(open_rc(ks, w.p, 7 + 32 + 15, &d), AT_E_TRUNCATED);
    /* Cut by one byte: the tag no longer verifies. */
    assert_int_equal(open_rc(ks, w.p, w.len - 1, &d), AT_E_DECRYPT_FAILED);
    /* Tampered tag, ciphertext, enc. */
    w.p[w.len - 1] ^= 1;
    assert_int_equal(open_rc(ks, w.p, w.len, &d), AT_E_DECRYPT_FAILED);
    w.p[w.len - 1] ^= 1;
    w.p[7 + 32] ^= 0x80;
    assert_int_equal(open_rc(ks, w.p, w.len, &d), AT_E_DECRYPT_FAILED);
    w.p[7 + 32] ^= 0x80;
    w.p[7 + 5] ^= 0x01;
    at_err rc = open_rc(ks, w.p, w.len, &d);
    assert_true(rc == AT_E_DECRYPT_FAILED || rc == AT_E_BAD_FIELD);
    w.p[7 + 5] ^= 0x01;
    /* Long: over the message limit, refused before any work. */
    uint8_t *huge = calloc(1, (size_t)AT_MAX_OHTTP_MESSAGE + 100);
    assert_non_null(huge);
    memcpy(huge, w.p, 7 + 32);
    assert_int_equal(open_rc(ks, huge, (size_t)AT_MAX_OHTTP_MESSAGE + 100, &d), AT_E_TOO_LARGE);
    free(huge);

    /* Chunked: the key id is refused as soon as the header is in. */
    at_ohttp_server *s = NULL;
    at_buf plain;
    at_buf_init(&plain);
    assert_int_equal(at_ohttp_server_new_chunked(ks, &s, &d), AT_OK);
    uint8_t hdr[7] = {9, 0, 0x20, 0, 1, 0, 1};
    assert_int_equal(at_ohttp_server_feed(s, AT_SPAN(hdr, 7), &plain, &d), AT_E_UNKNOWN_KEY_ID);
    /* ... and stays refused. */
    assert_int_equal(at_ohttp_server_feed(s, AT_SPAN(hdr, 1), &plain, &d), AT_E_UNKNOWN_KEY_ID);
    assert_int_equal(at_ohttp_server_finish(s, &plain, &d), AT_E_UNKNOWN_KEY_ID);
    at_ohttp_server_free(s);
    /* A whole-message request is not a chunked one (different info). */
    assert_int_equal(at_ohttp_server_new_chunked(ks, &s, &d), AT_OK);
    rc = at_ohttp_server_feed(s, at_buf_span(&w), &plain, &d);
    if (rc == AT_OK)
        rc = at_ohttp_server_finish(s, &plain, &d);
    assert_true(rc == AT_E_DECRYPT_FAILED || rc == AT_E_TOO_LARGE || rc == AT_E_TRUNCATED);
    assert_int_equal(plain.len, 0);
    at_ohttp_server_free(s);
    /* Truncated header. */
    assert_int_equal(at_ohttp_server_new_chunked(ks, &s, &d), AT_OK);
    assert_int_equal(at_ohttp_server_feed(s, AT_SPAN(w.p, 20), &plain, &d), AT_OK);
    assert_int_equal(at_ohttp_server_finish(s, &plain, &d), AT_E_TRUNCATED);
    at_ohttp_server_free(s);

    at_buf_cleanup(&plain);
    at_buf_cleanup(&w);
    at_ohttp_keyset_free(ks);
}

static void response_refusals(void **state)
{
    at_ohttp_keyset *ks = two_keys();
    at_diag d = {{0}};
    for (size_t a = 0; a < 3; a++) {
        at_buf w, plain;
        at_buf_init(&w);
        at_buf_init(&plain);
        at_ohttp_client *c = NULL;
        at_ohttp_server *s = NULL;
        seal_one(ks, aeads[a], &w, &c);
        assert_int_equal(at_ohttp_server_open_request(ks, at_buf_span(&w), &plain, &s, &d), AT_OK);
        at_buf_reset(&w);
        assert_int_equal(at_ohttp_server_seal_response(s, AT_SPAN("\x01\x40\xc8", 3), &w, &d), AT_OK);
        assert_int_equal(at_ohttp_server_seal_response(s, AT_SPAN("x", 1), &w, &d), AT_E_INTERNAL);
        size_t el = aeads[a] == 1 ? 16 : 32;
        /* Short: missing nonce or tag. */
        at_buf_reset(&plain);
        assert_int_equal(at_ohttp_client_open_response(c, AT_SPAN(w.p, el + 15), &plain, &d), AT_E_TRUNCATED);
        /* (A failed exchange stays failed: use a fresh client per case.) */
        at_ohttp_client_free(c);
        at_ohttp_server_free(s);
        at_buf_cleanup(&w);
        at_buf_cleanup(&plain);

        for (int kind = 0; kind < 3; kind++) {
            at_buf_init(&w);
            at_buf_init(&plain);
            seal_one(ks, aeads[a], &w, &c);
            assert_int_equal(at_ohttp_server_open_request(ks, at_buf_span(&w), &plain, &s, &d), AT_OK);
            at_buf_reset(&w);
            assert_int_equal(at_ohttp_server_seal_response(s, AT_SPAN("\x01\x40\xc8", 3), &w, &d), AT_OK);
            if (kind == 0)
                w.p[w.len - 1] ^= 1; /* tag */
            else if (kind == 1)
                w.p[0] ^= 1; /* nonce */
            else
                w.len--; /* cut */
            at_buf_reset(&plain);
            assert_int_equal(at_ohttp_client_open_response(c, at_buf_span(&w), &plain, &d),
                             AT_E_DECRYPT_FAILED);
            assert_int_equal(plain.len, 0);
            at_ohttp_client_free(c);
            at_ohttp_server_free(s);
            at_buf_cleanup(&w);
            at_buf_cleanup(&plain);
        }
    }
    at_ohttp_keyset_free(ks);
}

/* ---- chunk manipulation ----------------------------------------------------- */

typedef struct {
    at_span hdr;      /* 39 bytes (request) or the nonce (response) */
    at_span chunk[8]; /* each with its length prefix */
    size_t n;         /* the last one is the final chunk */
} framed;

static void split_frames(at_span wire, size_t prefix, framed *f)
{
    at_reader r;
    at_reader_init(&r, wire.p, wire.len);
    assert_true(at_reader_take(&r, prefix, &f->hdr));
    f->n = 0;
    while (!at_reader_at_end(&r)) {
        size_t start = r.off;
        uint64_t len;
        assert_true(at_reader_varint(&r, &len));
        if (len == 0) {
            (void)at_reader_rest(&r);
        } else {
            assert_true(at_reader_skip(&r, (size_t)len));
        }
        assert_true(f->n < 8);
        f->chunk[f->n++] = AT_SPAN(wire.p + start, r.off - start);
    }
}

static at_err server_consume(at_ohttp_keyset *ks, at_buf *stream, at_buf *plain, at_diag *d)
{
    at_ohttp_server *s = NULL;
    assert_int_equal(at_ohttp_server_new_chunked(ks, &s, d), AT_OK);
    at_err rc = at_ohttp_server_feed(s, at_buf_span(stream), plain, d);
    if (rc == AT_OK)
        rc = at_ohttp_server_finish(s, plain, d);
    at_ohttp_server_free(s);
    return rc;
}

static void chunk_attacks(void **state)
{
    at_ohttp_keyset *ks = two_keys();
    at_ohttp_key_config kc;
    at_diag d = {{0}};
    assert_int_equal(at_ohttp_keyset_config(ks, 7, &kc, &d), AT_OK);
    at_ohttp_client *c = NULL;
    at_buf wire, plain, x;
    at_buf_init(&wire);
    at_buf_init(&plain);
    at_buf_init(&x);
    assert_int_equal(at_ohttp_client_new(&kc, NULL, true, &c, &d), AT_OK);
    assert_int_equal(at_ohttp_client_seal_chunk(c, AT_SPAN_NULL, false, &wire, &d), AT_E_BAD_FIELD);
    at_ohttp_client_free(c);
    assert_int_equal(at_ohttp_client_new(&kc, NULL, true, &c, &d), AT_OK);
    assert_int_equal(at_ohttp_client_seal_chunk(c, AT_SPAN("zero", 4), false, &wire, &d), AT_OK);
    assert_int_equal(at_ohttp_client_seal_chunk(c, AT_SPAN("one", 3), false, &wire, &d), AT_OK);
    assert_int_equal(at_ohttp_client_seal_chunk(c, AT_SPAN("two", 3), true, &wire, &d), AT_OK);
    framed f;
    split_frames(at_buf_span(&wire), 39, &f);
    assert_int_equal(f.n, 3);
    assert_int_equal(server_consume(ks, &wire, &plain, &d), AT_OK);
    assert_int_equal(plain.len, 10);
    assert_memory_equal(plain.p, "zeroonetwo", 10);

#define BUILD(...)                                                       \
    do {                                                                 \
        at_buf_reset(&x);                                                \
        at_span parts_[] = {__VA_ARGS__};                                \
        for (size_t i_ = 0; i_ < sizeof parts_ / sizeof *parts_; i_++)   \
            assert_int_equal(at_buf_append_span(&x, parts_[i_]), AT_OK); \
        at_buf_reset(&plain);                                            \
    } while (0)

    /* Truncation: the final chunk dropped. */
    BUILD(f.hdr, f.chunk[0], f.chunk[1]);
    assert_int_equal(server_consume(ks, &x, &plain, &d), AT_E_TRUNCATED);
    assert_non_null(strstr(d.msg, "without the final"));
    /* Truncation inside a chunk. */
    BUILD(f.hdr, f.chunk[0], AT_SPAN(f.chunk[1].p, 5));
    assert_int_equal(server_consume(ks, &x, &plain, &d), AT_E_TRUNCATED);
    /* Replay: chunk 0 twice (its sequence number is used up). */
    BUILD(f.hdr, f.chunk[0], f.chunk[0], f.chunk[1], f.chunk[2]);
    assert_int_equal(server_consume(ks, &x, &plain, &d), AT_E_DECRYPT_FAILED);
    assert_non_null(strstr(d.msg, "chunk 1"));
    assert_int_equal(plain.len, 4); /* chunk 0 was released, nothing after */
    /* Reordering. */
    BUILD(f.hdr, f.chunk[1], f.chunk[0], f.chunk[2]);
    assert_int_equal(server_consume(ks, &x, &plain, &d), AT_E_DECRYPT_FAILED);
    /* A non-final chunk presented as final (length 0, AAD mismatch). */
    uint8_t zero = 0;
    BUILD(f.hdr, f.chunk[0], AT_SPAN(&zero, 1), AT_SPAN(f.chunk[1].p + 1, f.chunk[1].len - 1));
    assert_int_equal(server_consume(ks, &x, &plain, &d), AT_E_DECRYPT_FAILED);
    assert_non_null(strstr(d.msg, "final chunk"));
    /* The final chunk presented as non-final (and then a missing end). */
    uint8_t len19 = 19;
    BUILD(f.hdr, f.chunk[0], f.chunk[1], AT_SPAN(&len19, 1), AT_SPAN(f.chunk[2].p + 1, f.chunk[2].len - 1));
    assert_int_equal(server_consume(ks, &x, &plain, &d), AT_E_DECRYPT_FAILED);
    /* An empty non-final chunk (just a tag) is a decryption error. */
    uint8_t len16 = 16;
    BUILD(f.hdr, AT_SPAN(&len16, 1), AT_SPAN(f.chunk[2].p + 1, 16));
    assert_int_equal(server_consume(ks, &x, &plain, &d), AT_E_DECRYPT_FAILED);
    /* An oversized chunk length, refused before its bytes arrive. */
    uint8_t huge[8] = {0xc0, 0, 0, 0, 0x10, 0, 0, 0};
    BUILD(f.hdr, AT_SPAN(huge, 8));
    assert_int_equal(server_consume(ks, &x, &plain, &d), AT_E_TOO_LARGE);
    /* An oversized final chunk. */
    static uint8_t junk[AT_MAX_OHTTP_CHUNK + 64];
    BUILD(f.hdr, AT_SPAN(&zero, 1), AT_SPAN(junk, sizeof junk));
    assert_int_equal(server_consume(ks, &x, &plain, &d), AT_E_TOO_LARGE);
    /* A short final chunk. */
    BUILD(f.hdr, f.chunk[0], AT_SPAN(&zero, 1), AT_SPAN(junk, 5));
    assert_int_equal(server_consume(ks, &x, &plain, &d), AT_E_TRUNCATED);

    /* Responses: the same attacks against the client. */
    at_ohttp_server *s = NULL;
    assert_int_equal(at_ohttp_server_new_chunked(ks, &s, &d), AT_OK);
    assert_int_equal(at_ohttp_server_feed(s, at_buf_span(&wire), &plain, &d), AT_OK);
    assert_int_equal(at_ohttp_server_finish(s, &plain, &d), AT_OK);
    at_buf rw;
    at_buf_init(&rw);
    assert_int_equal(at_ohttp_server_seal_chunk(s, AT_SPAN("data: a\n\n", 9), false, &rw, &d), AT_OK);
    assert_int_equal(at_ohttp_server_seal_chunk(s, AT_SPAN("data: b\n\n", 9), false, &rw, &d), AT_OK);
    assert_int_equal(at_ohttp_server_seal_chunk(s, AT_SPAN_NULL, true, &rw, &d), AT_OK);
    assert_int_equal(at_ohttp_server_seal_chunk(s, AT_SPAN("late", 4), false, &rw, &d), AT_E_BAD_FIELD);
    framed g;
    split_frames(at_buf_span(&rw), 16, &g);
    assert_int_equal(g.n, 3);
    assert_int_equal(g.chunk[2].len, 1 + 16);
    for (int kind = 0; kind < 4; kind++) {
        at_err want = kind == 0 ? AT_E_TRUNCATED : kind == 3 ? AT_OK : AT_E_DECRYPT_FAILED;
        /* A fresh exchange per case: a client keeps its response state. */
        at_ohttp_client *c2 = NULL;
        at_ohttp_server *s2 = NULL;
        at_buf w2, r2, p2;
        at_buf_init(&w2);
        at_buf_init(&r2);
        at_buf_init(&p2);
        assert_int_equal(at_ohttp_client_new(&kc, NULL, true, &c2, &d), AT_OK);
        assert_int_equal(at_ohttp_client_seal_chunk(c2, AT_SPAN("q", 1), true, &w2, &d), AT_OK);
        assert_int_equal(at_ohttp_server_new_chunked(ks, &s2, &d), AT_OK);
        assert_int_equal(at_ohttp_server_feed(s2, at_buf_span(&w2), &p2, &d), AT_OK);
        assert_int_equal(at_ohttp_server_finish(s2, &p2, &d), AT_OK);
        assert_int_equal(at_ohttp_server_seal_chunk(s2, AT_SPAN("data: a\n\n", 9), false, &r2, &d), AT_OK);
        assert_int_equal(at_ohttp_server_seal_chunk(s2, AT_SPAN("data: b\n\n", 9), false, &r2, &d), AT_OK);
        assert_int_equal(at_ohttp_server_seal_chunk(s2, AT_SPAN_NULL, true, &r2, &d), AT_OK);
        framed h;
        split_frames(at_buf_span(&r2), 16, &h);
        if (kind == 0)
            BUILD(h.hdr, h.chunk[0], h.chunk[1]);
        else if (kind == 1)
            BUILD(h.hdr, h.chunk[0], h.chunk[0], h.chunk[1], h.chunk[2]);
        else if (kind == 2)
            BUILD(h.hdr, h.chunk[1], h.chunk[0], h.chunk[2]);
        else
            BUILD(h.hdr, h.chunk[0], h.chunk[1], h.chunk[2]);
        at_err rc = at_ohttp_client_feed(c2, at_buf_span(&x), &plain, &d);
        if (rc == AT_OK)
            rc = at_ohttp_client_finish(c2, &plain, &d);
        assert_int_equal(rc, want);
        if (kind == 3) {
            assert_int_equal(plain.len, 18);
            assert_memory_equal(plain.p, "data: a\n\ndata: b\n\n", 18);
        }
        if (kind == 0)
            assert_int_equal(plain.len, 18); /* released before the cut is seen */
        at_ohttp_client_free(c2);
        at_ohttp_server_free(s2);
        at_buf_cleanup(&w2);
        at_buf_cleanup(&r2);
        at_buf_cleanup(&p2);
    }
    /* A response stream shorter than its nonce. */
    {
        at_ohttp_client *c3 = NULL;
        at_buf w3;
        at_buf_init(&w3);
        assert_int_equal(at_ohttp_client_new(&kc, NULL, true, &c3, &d), AT_OK);
        assert_int_equal(at_ohttp_client_seal_chunk(c3, AT_SPAN("q", 1), true, &w3, &d), AT_OK);
        assert_int_equal(at_ohttp_client_feed(c3, AT_SPAN(junk, 10), &plain, &d), AT_OK);
        assert_int_equal(at_ohttp_client_finish(c3, &plain, &d), AT_E_TRUNCATED);
        assert_non_null(strstr(d.msg, "nonce"));
        at_ohttp_client_free(c3);
        at_buf_cleanup(&w3);
    }
    at_ohttp_server_free(s);
    at_ohttp_client_free(c);
    at_buf_cleanup(&rw);
    at_buf_cleanup(&wire);
    at_buf_cleanup(&plain);
    at_buf_cleanup(&x);
    at_ohttp_keyset_free(ks);
}

/* ---- key configurations, lists, key files ------------------------------------ */

static void key_configs(void **state)
{
    at_diag d = {{0}};
    at_ohttp_keyset *ks = two_keys();
    at_ohttp_key_config kc, list[4];
    size_t n = 0;
    at_buf b;
    at_buf_init(&b);

    /* The list form holds both; a single config and the list both load. */
    assert_int_equal(at_ohttp_keyset_keys(ks, &b, &d), AT_OK);
    assert_int_equal(at_ohttp_keys_parse(at_buf_span(&b), list, 4, &n, &d), AT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(list[0].key_id, 7);
    assert_int_equal(list[1].key_id, 200);
    assert_int_equal(at_ohttp_key_config_load(at_buf_span(&b), &kc, &d), AT_OK);
    assert_int_equal(kc.key_id, 7);
    assert_int_equal(b.p[0], 0);
    assert_int_equal(b.p[1], 1 + 2 + 32 + 2 + 12);
    at_span first = AT_SPAN(b.p + 2, 49);
    assert_int_equal(at_ohttp_key_config_parse(first, &kc, &d), AT_OK);
    assert_int_equal(at_ohttp_key_config_load(first, &kc, &d), AT_OK);
    assert_int_equal(kc.nsym, 3);
    at_hpke_suite su;
    assert_int_equal(at_ohttp_key_config_suite(&kc, &su, &d), AT_OK);
    assert_int_equal(su.aead, AT_HPKE_AEAD_AES_128_GCM);

    /* Malformed single configurations. */
    uint8_t cfg[64];
    memcpy(cfg, first.p, 49);
    assert_int_equal(at_ohttp_key_config_parse(AT_SPAN(cfg, 2), &kc, &d), AT_E_TRUNCATED);
    assert_int_equal(at_ohttp_key_config_parse(AT_SPAN(cfg, 20), &kc, &d), AT_E_TRUNCATED);
    assert_non_null(strstr(d.msg, "public key"));
    assert_int_equal(at_ohttp_key_config_parse(AT_SPAN(cfg, 48), &kc, &d), AT_E_TRUNCATED);
    cfg[49] = 0;
    assert_int_equal(at_ohttp_key_config_parse(AT_SPAN(cfg, 50), &kc, &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "trailing"));
    cfg[36] = 3; /* symmetric length 3 */
    assert_int_equal(at_ohttp_key_config_parse(AT_SPAN(cfg, 49), &kc, &d), AT_E_BAD_FIELD);
    cfg[36] = 0; /* symmetric length 0 */
    assert_int_equal(at_ohttp_key_config_parse(AT_SPAN(cfg, 37), &kc, &d), AT_E_BAD_FIELD);
    cfg[35] = 0x04; /* 1024 / 4 = 256 suites */
    assert_int_equal(at_ohttp_key_config_parse(AT_SPAN(cfg, 49), &kc, &d), AT_E_TOO_LARGE);
    memcpy(cfg, first.p, 49);
    cfg[2] = 0x10; /* P-256 */
    assert_int_equal(at_ohttp_key_config_parse(AT_SPAN(cfg, 49), &kc, &d), AT_E_UNSUPPORTED_SUITE);
    assert_int_equal(at_ohttp_key_config_load(AT_SPAN(cfg, 49), &kc, &d), AT_E_UNSUPPORTED_SUITE);
    /* Only unsupported AEADs. */
    memcpy(cfg, first.p, 49);
    for (int i = 0; i < 3; i++)
        cfg[37 + 4 * i + 3] = 0x09;
    assert_int_equal(at_ohttp_key_config_parse(AT_SPAN(cfg, 49), &kc, &d), AT_OK);
    assert_int_equal(at_ohttp_key_config_suite(&kc, &su, &d), AT_E_UNSUPPORTED_SUITE);
    at_ohttp_client *c = NULL;
    assert_int_equal(at_ohttp_client_new(&kc, NULL, false, &c, &d), AT_E_UNSUPPORTED_SUITE);
    /* A suite the config does not list. */
    memcpy(cfg, first.p, 49);
    cfg[37 + 3] = 9;
    assert_int_equal(at_ohttp_key_config_parse(AT_SPAN(cfg, 49), &kc, &d), AT_OK);
    at_hpke_suite want = {0x20, 1, 1};
    assert_int_equal(at_ohttp_client_new(&kc, &want, false, &c, &d), AT_E_UNSUPPORTED_SUITE);
    assert_int_equal(at_ohttp_key_config_suite(&kc, &su, &d), AT_OK);
    assert_int_equal(su.aead, AT_HPKE_AEAD_AES_256_GCM); /* first supported, in order */

    /* Lists: a P-256 entry is skipped; truncation and junk are refused. */
    at_buf l;
    at_buf_init(&l);
    memcpy(cfg, first.p, 49);
    cfg[2] = 0x10;
    assert_int_equal(at_buf_u16(&l, 49), AT_OK);
    assert_int_equal(at_buf_append(&l, cfg, 49), AT_OK);
    assert_int_equal(at_ohttp_keys_parse(at_buf_span(&l), list, 4, &n, &d), AT_E_UNSUPPORTED_SUITE);
    assert_int_equal(at_buf_u16(&l, 49), AT_OK);
    assert_int_equal(at_buf_append(&l, first.p, 49), AT_OK);
    assert_int_equal(at_ohttp_keys_parse(at_buf_span(&l), list, 4, &n, &d), AT_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].kem, 0x20);
    assert_int_equal(at_ohttp_keys_parse(AT_SPAN(l.p, l.len - 1), list, 4, &n, &d), AT_E_TRUNCATED);
    assert_int_equal(at_ohttp_keys_parse(AT_SPAN_NULL, list, 4, &n, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_buf_u8(&l, 0), AT_OK);
    assert_int_equal(at_ohttp_keys_parse(at_buf_span(&l), list, 4, &n, &d), AT_E_TRUNCATED);
    at_buf_cleanup(&l);

    at_buf_cleanup(&b);
    at_ohttp_keyset_free(ks);
}

static void key_files(void **state)
{
    at_diag d = {{0}};
    at_ohttp_keyset *ks = two_keys(), *back = NULL;
    at_buf text;
    at_buf_init_secret(&text);
    assert_int_equal(at_ohttp_keyset_serialize(ks, &text, &d), AT_OK);
    assert_int_equal(at_ohttp_keyset_parse(at_buf_span(&text), &back, &d), AT_OK);
    assert_int_equal(at_ohttp_keyset_count(back), 2);
    for (int i = 0; i < 2; i++) {
        at_ohttp_key_config a, b;
        uint8_t id = at_ohttp_keyset_id(ks, (size_t)i);
        assert_int_equal(at_ohttp_keyset_config(ks, id, &a, &d), AT_OK);
        assert_int_equal(at_ohttp_keyset_config(back, id, &b, &d), AT_OK);
        assert_memory_equal(a.pk, b.pk, 32);
        assert_int_equal(a.nsym, b.nsym);
    }
    at_ohttp_keyset_free(back);
    back = NULL;

    /* Save, mode 0600, load. */
    char path[] = "/tmp/at-ohttp-keys-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    chmod(path, 0644);
    assert_int_equal(at_ohttp_keyset_save(ks, path, &d), AT_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(at_ohttp_keyset_load(path, &back, &d), AT_OK);
    assert_int_equal(at_ohttp_keyset_count(back), 2);
    at_ohttp_keyset_free(back);
    back = NULL;
    /* Readable by others: refused. */
    chmod(path, 0644);
    assert_int_equal(at_ohttp_keyset_load(path, &back, &d), AT_E_FORBIDDEN);
    assert_non_null(strstr(d.msg, "chmod 600"));
    unlink(path);
    assert_int_equal(at_ohttp_keyset_load(path, &back, &d), AT_E_IO);
    assert_null(back);

    /* Strict parsing. */
    const char *hex = "4242424242424242424242424242424242424242424242424242424242424242";
    char buf[512];
    struct {
        const char *fmt;
        at_err want;
    } cases[] = {
        {"attest-ohttp-keys v1\nkey 1 x25519 %s 0001:0001\n", AT_OK},
        {"# c\n\r\nattest-ohttp-keys v1\r\nkey 1 x25519 %s 0001:0001,0001:0003\r\n", AT_OK},
        {"attest-ohttp-keys v2\nkey 1 x25519 %s 0001:0001\n", AT_E_BAD_FIELD},
        {"key 1 x25519 %s 0001:0001\n", AT_E_BAD_FIELD},
        {"attest-ohttp-keys v1\n", AT_E_BAD_FIELD},
        {"attest-ohttp-keys v1\nkey 256 x25519 %s 0001:0001\n", AT_E_BAD_FIELD},
        {"attest-ohttp-keys v1\nkey 1 p256 %s 0001:0001\n", AT_E_UNSUPPORTED_SUITE},
        {"attest-ohttp-keys v1\nkey 1 x25519 %s0 0001:0001\n", AT_E_BAD_FIELD},
        {"attest-ohttp-keys v1\nkey 1 x25519 %s 0001:0001,\n", AT_E_BAD_FIELD},
        {"attest-ohttp-keys v1\nkey 1 x25519 %s 0001:0009\n", AT_E_UNSUPPORTED_SUITE},
        {"attest-ohttp-keys v1\nkey 1 x25519 %s 1:1\n", AT_E_BAD_FIELD},
        {"attest-ohttp-keys v1\nkey 1 x25519 %s 0001:0001 extra\n", AT_E_BAD_FIELD},
        {"attest-ohttp-keys v1\nkey 1 x25519 %s 0001:0001\nkey 1 x25519 %s 0001:0001\n", AT_E_CONFLICT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* Each "%s" in the case stands for the private key. */
        size_t o = 0;
        for (const char *f = cases[i].fmt; *f && o + 65 < sizeof buf; f++) {
            if (f[0] == '%' && f[1] == 's') {
                memcpy(buf + o, hex, 64);
                o += 64;
                f++;
            } else {
                buf[o++] = *f;
            }
        }
        buf[o] = 0;
        at_err rc = at_ohttp_keyset_parse(AT_SPAN(buf, strlen(buf)), &back, &d);
        if (rc != cases[i].want)
            print_error("case %zu: got %s (%s)\n", i, at_err_str(rc), d.msg);
        assert_int_equal(rc, cases[i].want);
        at_ohttp_keyset_free(back);
        back = NULL;
    }
    /* Key set limits. */
    assert_int_equal(at_ohttp_keyset_generate(ks, 7, &d), AT_E_CONFLICT);
    for (int i = 0; i < AT_MAX_OHTTP_KEYS - 2; i++)
        assert_int_equal(at_ohttp_keyset_generate(ks, (uint8_t)(10 + i), &d), AT_OK);
    assert_int_equal(at_ohttp_keyset_generate(ks, 99, &d), AT_E_TOO_LARGE);
    at_ohttp_key_config kc;
    assert_int_equal(at_ohttp_keyset_config(ks, 250, &kc, &d), AT_E_UNKNOWN_KEY_ID);

    at_buf_cleanup(&text);
    at_ohttp_keyset_free(ks);
}

static void server_bhttp(void **state)
{
    at_diag d = {{0}};
    at_ohttp_keyset *ks = two_keys();
    at_ohttp_key_config kc;
    assert_int_equal(at_ohttp_keyset_config(ks, 200, &kc, &d), AT_OK);
    at_bhttp_msg *m = NULL;
    assert_int_equal(at_bhttp_request_new("POST", "https", "agent", "/v1/chat/completions", &m, &d), AT_OK);
    assert_int_equal(at_bhttp_add_header(m, "Content-Type", AT_SPAN("application/json", 16), &d), AT_OK);
    assert_int_equal(at_bhttp_append_content(m, AT_SPAN("{\"stream\":true}", 15), &d), AT_OK);
    at_buf b, w;
    at_buf_init(&b);
    at_buf_init(&w);
    assert_int_equal(at_bhttp_encode(m, &b, &d), AT_OK);
    at_bhttp_msg_free(m);
    m = NULL;
    at_ohttp_client *c = NULL;
    assert_int_equal(at_ohttp_client_new(&kc, NULL, false, &c, &d), AT_OK);
    assert_int_equal(at_ohttp_client_seal_request(c, at_buf_span(&b), &w, &d), AT_OK);
    at_ohttp_server *s = NULL;
    assert_int_equal(at_ohttp_server_open_bhttp(ks, at_buf_span(&w), &m, &s, &d), AT_OK);
    assert_string_equal(m->path, "/v1/chat/completions");
    assert_string_equal(at_bhttp_fields_get(&m->headers, "content-type"), "application/json");
    assert_int_equal(m->content.len, 15);
    at_bhttp_msg_free(m);
    m = NULL;
    at_ohttp_server_free(s);
    s = NULL;
    at_ohttp_client_free(c);
    /* A well-sealed request whose content is not Binary HTTP. */
    at_buf_reset(&w);
    assert_int_equal(at_ohttp_client_new(&kc, NULL, false, &c, &d), AT_OK);
    assert_int_equal(at_ohttp_client_seal_request(c, AT_SPAN("\x09garbage", 8), &w, &d), AT_OK);
    assert_int_equal(at_ohttp_server_open_bhttp(ks, at_buf_span(&w), &m, &s, &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "binary http"));
    assert_null(m);
    assert_null(s);
    at_ohttp_client_free(c);
    at_buf_cleanup(&b);
    at_buf_cleanup(&w);
    at_ohttp_keyset_free(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc9458_example),      cmocka_unit_test(chunked_example),
        cmocka_unit_test(roundtrip_every_aead), cmocka_unit_test(request_refusals),
        cmocka_unit_test(response_refusals),    cmocka_unit_test(chunk_attacks),
        cmocka_unit_test(key_configs),          cmocka_unit_test(key_files),
        cmocka_unit_test(server_bhttp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
