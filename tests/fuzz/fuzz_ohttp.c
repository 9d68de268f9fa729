/* fuzz_ohttp: lib/ohttp's decapsulation on attacker bytes. The gateway
 * holds RFC 9458 Appendix A's key (key id 1, so its example request is a
 * seed that really decrypts). The first input byte picks what is fuzzed:
 *   0  a whole message/ohttp-req body (open, then seal an answer)
 *   1  a message/ohttp-chunked-req body, fed in pieces, then finished
 *   2  a chunked exchange made valid by a real client from the input's
 *      pieces, then altered as the input's flags say (drop the final chunk,
 *      replay or swap chunks, cut bytes): the gateway must return exactly
 *      the plaintext when unaltered, and refuse every real alteration
 *   3  key configurations, single or application/ohttp-keys
 *   4  a message/ohttp-res body and a chunked response for a real client
 * Aborts when a property breaks. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ohttp.h"
#include "testing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool cond)
{
    if (!cond)
        abort();
}

/* RFC 9458 Appendix A: the gateway's key and the client's ephemeral key. */
static const uint8_t sk_rfc9458[32] = {0x3c, 0x16, 0x89, 0x75, 0x67, 0x4b, 0x2f, 0xa8, 0xe4, 0x65, 0x97,
                                       0x0b, 0x79, 0xc8, 0xdc, 0xf0, 0x9f, 0x1c, 0x74, 0x16, 0x26, 0x48,
                                       0x0b, 0xd4, 0xc6, 0x16, 0x2f, 0xc5, 0xb6, 0xa9, 0x8e, 0x1a};
static const uint8_t skE_rfc9458[32] = {0xbc, 0x51, 0xd5, 0xe9, 0x30, 0xbd, 0xa2, 0x65, 0x89, 0x89, 0x0a,
                                        0xc7, 0x03, 0x2f, 0x70, 0xad, 0x12, 0xe4, 0xec, 0xb3, 0x7a, 0xbb,
                                        0x1b, 0x65, 0xb1, 0x25, 0x6c, 0x9c, 0x48, 0x99, 0x9c, 0x73};

static at_ohttp_keyset *ks;
static at_ohttp_key_config kc;

static void init(void)
{
    if (ks)
        return;
    static const at_ohttp_sym syms[] = {{1, 1}, {1, 2}, {1, 3}};
    check(at_ohttp_keyset_new(&ks, NULL) == AT_OK);
    check(at_ohttp_keyset_add_private(ks, 1, AT_SPAN(sk_rfc9458, 32), syms, 3, NULL) == AT_OK);
    check(at_ohttp_keyset_config(ks, 1, &kc, NULL) == AT_OK);
}

static at_ohttp_client *fixed_client(uint16_t aead, bool chunked)
{
    at_ohttp_client *c = NULL;
    at_hpke_suite su = {AT_HPKE_KEM_X25519_SHA256, AT_HPKE_KDF_HKDF_SHA256, aead};
    check(at_ohttp_client_new_det(&kc, &su, chunked, AT_SPAN(skE_rfc9458, 32), &c, NULL) == AT_OK);
    return c;
}

static void whole_request(const uint8_t *p, size_t n)
{
    at_buf plain, out;
    at_ohttp_server *s = NULL;
    at_buf_init(&plain);
    at_buf_init(&out);
    at_err rc = at_ohttp_server_open_request(ks, AT_SPAN(p, n), &plain, &s, NULL);
    check((rc == AT_OK) == (s != NULL));
    if (rc == AT_OK) {
        check(n >= 7 + 32 + 16 && plain.len == n - 7 - 32 - 16);
        check(at_ohttp_server_seal_response(s, at_buf_span(&plain), &out, NULL) == AT_OK);
    } else {
        check(plain.len == 0);
    }
    at_ohttp_server_free(s);
    at_buf_cleanup(&plain);
    at_buf_cleanup(&out);
    /* The bhttp-decoding variant must agree on the decapsulation. */
    at_bhttp_msg *m = NULL;
    at_ohttp_server *s2 = NULL;
    at_err rc2 = at_ohttp_server_open_bhttp(ks, AT_SPAN(p, n), &m, &s2, NULL);
    check(rc2 == AT_OK ? rc == AT_OK : true);
    at_bhttp_msg_free(m);
    at_ohttp_server_free(s2);
}

static void chunked_request(const uint8_t *p, size_t n)
{
    at_ohttp_server *s = NULL;
    at_buf plain;
    at_buf_init(&plain);
    check(at_ohttp_server_new_chunked(ks, &s, NULL) == AT_OK);
    size_t step = n ? (size_t)(p[0] % 16) + 1 : 1;
    at_err rc = AT_OK;
    for (size_t off = 0; off < n && rc == AT_OK; off += step)
        rc = at_ohttp_server_feed(s, AT_SPAN(p + off, n - off < step ? n - off : step), &plain, NULL);
    if (rc == AT_OK)
        rc = at_ohttp_server_finish(s, &plain, NULL);
    check(plain.len <= n);
    at_ohttp_server_free(s);
    at_buf_cleanup(&plain);
}

/* Input: flags, then pieces as [len][bytes]...; flags bit 0 drop the final
 * chunk, bit 1 replay chunk 0, bit 2 swap chunks 0 and 1, bit 3 cut the
 * last byte; bits 4-7 the feed step. */
static void valid_stream(const uint8_t *p, size_t n)
{
    if (n < 1)
        return;
    uint8_t flags = p[0];
    at_ohttp_client *c = fixed_client(AT_HPKE_AEAD_CHACHA20_POLY1305, true);
    at_buf wire, want, got;
    at_buf_init(&wire);
    at_buf_init(&want);
    at_buf_init(&got);
    size_t starts[64], nchunks = 0, off = 1;
    /* Header (written with the first chunk), then chunks. */
    while (off < n && nchunks < 63) {
        size_t len = p[off++];
        if (len > n - off)
            len = n - off;
        at_span piece = AT_SPAN(p + off, len);
        off += len;
        bool final = off >= n || nchunks == 62;
        if (!final && len == 0)
            continue;
        size_t before = wire.len;
        check(at_ohttp_client_seal_chunk(c, piece, final, &wire, NULL) == AT_OK);
        if (before == 0)
            before = 7 + 32;
        starts[nchunks++] = before;
        check(at_buf_append_span(&want, piece) == AT_OK);
        if (final)
            break;
    }
    if (nchunks == 0) {
        check(at_ohttp_client_seal_chunk(c, AT_SPAN_NULL, true, &wire, NULL) == AT_OK);
        starts[nchunks++] = 7 + 32;
    }
    starts[nchunks] = wire.len;

    /* Rebuild the stream with the alterations. */
    at_buf alt;
    at_buf_init(&alt);
    check(at_buf_append(&alt, wire.p, 7 + 32) == AT_OK);
    bool altered = false;
    size_t order[66], no = 0;
    for (size_t i = 0; i < nchunks; i++)
        order[no++] = i;
    if ((flags & 4) && nchunks >= 3) { /* swap two non-final chunks */
        order[0] = 1;
        order[1] = 0;
        altered = true;
    }
    if ((flags & 2) && nchunks >= 2) { /* replay a non-final chunk */
        memmove(order + 1, order, no * sizeof *order);
        no++;
        altered = true;
    }
    if (flags & 1) { /* drop the final chunk */
        no--;
        altered = true;
    }
    for (size_t i = 0; i < no; i++) {
        size_t k = order[i];
        check(at_buf_append(&alt, wire.p + starts[k], starts[k + 1] - starts[k]) == AT_OK);
    }
    if ((flags & 8) && alt.len > 7 + 32) {
        alt.len--;
        altered = true;
    }

    at_ohttp_server *s = NULL;
    check(at_ohttp_server_new_chunked(ks, &s, NULL) == AT_OK);
    size_t step = (size_t)(flags >> 4) * 7 + 1;
    at_err rc = AT_OK;
    for (size_t o = 0; o < alt.len && rc == AT_OK; o += step)
        rc = at_ohttp_server_feed(s, AT_SPAN(alt.p + o, alt.len - o < step ? alt.len - o : step), &got, NULL);
    if (rc == AT_OK)
        rc = at_ohttp_server_finish(s, &got, NULL);
    if (!altered) {
        check(rc == AT_OK);
        check(at_span_eq(at_buf_span(&got), at_buf_span(&want)));
    } else {
        check(rc != AT_OK);
        /* What was released is an authenticated prefix of the plaintext. */
        check(got.len <= want.len && memcmp(got.p, want.p, got.len) == 0);
    }
    at_ohttp_server_free(s);
    at_ohttp_client_free(c);
    at_buf_cleanup(&alt);
    at_buf_cleanup(&wire);
    at_buf_cleanup(&want);
    at_buf_cleanup(&got);
}

static void key_configs(const uint8_t *p, size_t n)
{
    at_ohttp_key_config one, list[4];
    size_t cnt = 0;
    if (at_ohttp_key_config_parse(AT_SPAN(p, n), &one, NULL) == AT_OK) {
        at_buf b;
        at_buf_init(&b);
        check(at_ohttp_key_config_encode(&one, &b, NULL) == AT_OK);
        check(at_span_eq(at_buf_span(&b), AT_SPAN(p, n))); /* canonical */
        at_buf_cleanup(&b);
    }
    if (at_ohttp_keys_parse(AT_SPAN(p, n), list, 4, &cnt, NULL) == AT_OK)
        check(cnt >= 1 && cnt <= 4);
    at_hpke_suite su;
    if (at_ohttp_key_config_load(AT_SPAN(p, n), &one, NULL) == AT_OK &&
        at_ohttp_key_config_suite(&one, &su, NULL) == AT_OK)
        check(su.kem == AT_HPKE_KEM_X25519_SHA256 && at_hpke_aead_nk(su.aead) != 0);
}

static void responses(const uint8_t *p, size_t n)
{
    uint16_t aead = (uint16_t)(n ? p[0] % 3 + 1 : 1);
    at_buf w, plain;
    at_buf_init(&w);
    at_buf_init(&plain);
    at_ohttp_client *c = fixed_client(aead, false);
    check(at_ohttp_client_seal_request(c, AT_SPAN("q", 1), &w, NULL) == AT_OK);
    if (at_ohttp_client_open_response(c, AT_SPAN(p, n), &plain, NULL) != AT_OK)
        check(plain.len == 0);
    at_ohttp_client_free(c);

    c = fixed_client(aead, true);
    at_buf_reset(&w);
    at_buf_reset(&plain);
    check(at_ohttp_client_seal_chunk(c, AT_SPAN("q", 1), true, &w, NULL) == AT_OK);
    at_err rc = at_ohttp_client_feed(c, AT_SPAN(p, n), &plain, NULL);
    if (rc == AT_OK)
        rc = at_ohttp_client_finish(c, &plain, NULL);
    check(rc != AT_OK || n >= 16 + 1 + 16); /* nonce, indicator, tag */
    at_ohttp_client_free(c);
    at_buf_cleanup(&w);
    at_buf_cleanup(&plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    if (size == 0)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0:
        whole_request(p, n);
        break;
    case 1:
        chunked_request(p, n);
        break;
    case 2:
        valid_stream(p, n);
        break;
    case 3:
        key_configs(p, n);
        break;
    default:
        responses(p, n);
        break;
    }
    return 0;
}
