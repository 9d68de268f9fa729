/* Unit tests for lib/bhttp.c: the RFC 9292 §5 examples and the RFC 9458
 * Appendix A messages decode and re-encode byte for byte; truncation is
 * accepted only at section boundaries; every oversized length, invalid
 * field and bad padding is refused with its exact code; incremental
 * decoding byte by byte gives the same message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bhttp.h"
#include "buf.h"
#include "enc.h"

/* RFC 9292 §5.1, known-length request (Figure 3). */
static const char ex_known_req[] = "0003474554056874747073000a2f68656c6c6f2e747874406c0a757365722d61"
                                   "67656e74346375726c2f372e31362e33206c69626375726c2f372e31362e3320"
                                   "4f70656e53534c2f302e392e376c207a6c69622f312e322e3304686f73740f77"
                                   "77772e6578616d706c652e636f6d0f6163636570742d6c616e67756167650665"
                                   "6e2c206d690000";
/* RFC 9292 §5.2, known-length response with a trailer (Figure 8). */
static const char ex_known_res[] = "0140c8001d5468697320636f6e74656e7420636f6e7461696e732043524c462e"
                                   "0d0a0d07747261696c65720474657874";
/* RFC 9458 Appendix A. */
static const char ohttp_req[] = "00034745540568747470730b6578616d706c652e636f6d012f";
static const char ohttp_res[] = "0140c8";

static uint8_t *unhex(const char *h, size_t *len)
{
    uint8_t *p = NULL;
    assert_int_equal(at_hex_decode_new(h, &p, len), AT_OK);
    return p;
}

/* RFC 9292 §5.1 indeterminate-length request (10 bytes of padding) and
 * §5.2 indeterminate-length response with 102 and 103, as the RFC prints
 * them (hex dump without the ASCII column). */
static const char *const indet_req_parts[] = {
    "02034745", "54056874", "74707300", "0a2f6865", "6c6c6f2e", "7478740a", "75736572", "2d616765",
    "6e743463", "75726c2f", "372e3136", "2e33206c", "69626375", "726c2f37", "2e31362e", "33204f70",
    "656e5353", "4c2f302e", "392e376c", "207a6c69", "622f312e", "322e3304", "686f7374", "0f777777",
    "2e657861", "6d706c65", "2e636f6d", "0f616363", "6570742d", "6c616e67", "75616765", "06656e2c",
    "206d6900", "00000000", "00000000", "00000000", NULL};
static const char *const indet_res_parts[] = {
    "03406607", "72756e6e", "696e670a", "22736c65", "65702031", "35220040", "67046c69", "6e6b233c",
    "2f737479", "6c652e63", "73733e3b", "2072656c", "3d707265", "6c6f6164", "3b206173", "3d737479",
    "6c65046c", "696e6b24", "3c2f7363", "72697074", "2e6a733e", "3b207265", "6c3d7072", "656c6f61",
    "643b2061", "733d7363", "72697074", "0040c804", "64617465", "1d4d6f6e", "2c203237", "204a756c",
    "20323030", "39203132", "3a32383a", "35332047", "4d540673", "65727665", "72064170", "61636865",
    "0d6c6173", "742d6d6f", "64696669", "65641d57", "65642c20", "3232204a", "756c2032", "30303920",
    "31393a31", "353a3536", "20474d54", "04657461", "67142233", "34616133", "38372d64", "2d313536",
    "38656230", "30220d61", "63636570", "742d7261", "6e676573", "05627974", "65730e63", "6f6e7465",
    "6e742d6c", "656e6774", "68023531", "04766172", "790f4163", "63657074", "2d456e63", "6f64696e",
    "670c636f", "6e74656e", "742d7479", "70650a74", "6578742f", "706c6169", "6e003348", "656c6c6f",
    "20576f72", "6c642120", "4d792063", "6f6e7465", "6e742069", "6e636c75", "64657320", "61207472",
    "61696c69", "6e672043", "524c462e", "0d0a0000", NULL};

static uint8_t *join_hex(const char *const *parts, size_t *len)
{
    char buf[2048] = "";
    for (size_t i = 0; parts[i]; i++)
        strcat(buf, parts[i]);
    return unhex(buf, len);
}

static at_bhttp_msg *decode_ok(const uint8_t *p, size_t n, at_bhttp_kind k)
{
    at_bhttp_msg *m = NULL;
    at_diag d = {{0}};
    at_err rc = at_bhttp_decode(AT_SPAN(p, n), k, &m, &d);
    if (rc != AT_OK)
        print_error("decode: %s: %s\n", at_err_str(rc), d.msg);
    assert_int_equal(rc, AT_OK);
    assert_non_null(m);
    return m;
}

static at_err decode_rc(const uint8_t *p, size_t n, at_diag *d)
{
    at_bhttp_msg *m = NULL;
    at_err rc = at_bhttp_decode(AT_SPAN(p, n), AT_BHTTP_ANY, &m, d);
    if (rc == AT_OK)
        assert_non_null(m);
    else
        assert_null(m);
    at_bhttp_msg_free(m);
    return rc;
}

static at_err decode_hex_rc(const char *hex, at_diag *d)
{
    size_t n;
    uint8_t *p = unhex(hex, &n);
    at_err rc = decode_rc(p, n, d);
    free(p);
    return rc;
}

static void check_hello_request(const at_bhttp_msg *m)
{
    assert_true(m->is_request);
    assert_string_equal(m->method, "GET");
    assert_string_equal(m->scheme, "https");
    assert_string_equal(m->authority, "");
    assert_string_equal(m->path, "/hello.txt");
    assert_int_equal(m->headers.n, 3);
    assert_string_equal(m->headers.v[0].name, "user-agent");
    assert_string_equal(m->headers.v[0].value, "curl/7.16.3 libcurl/7.16.3 OpenSSL/0.9.7l zlib/1.2.3");
    assert_string_equal(at_bhttp_fields_get(&m->headers, "Host"), "www.example.com");
    assert_string_equal(at_bhttp_fields_get(&m->headers, "accept-language"), "en, mi");
    assert_null(at_bhttp_fields_get(&m->headers, "cookie"));
    assert_int_equal(m->content.len, 0);
    assert_int_equal(m->trailers.n, 0);
}

static void rfc9292_known_request(void **state)
{
    size_t n;
    uint8_t *p = unhex(ex_known_req, &n);
    at_bhttp_msg *m = decode_ok(p, n, AT_BHTTP_REQUEST);
    assert_false(m->indeterminate);
    check_hello_request(m);
    /* Re-encoding truncates the empty content and trailers (the RFC notes
     * the last two bytes can go), and the truncated form decodes the same. */
    at_buf b;
    at_buf_init(&b);
    assert_int_equal(at_bhttp_encode(m, &b, NULL), AT_OK);
    assert_int_equal(b.len, n - 2);
    assert_memory_equal(b.p, p, n - 2);
    at_bhttp_msg *m2 = decode_ok(p, n - 1, AT_BHTTP_REQUEST);
    check_hello_request(m2);
    at_bhttp_msg_free(m2);
    m2 = decode_ok(p, n - 2, AT_BHTTP_REQUEST);
    check_hello_request(m2);
    at_bhttp_msg_free(m2);
    at_buf_cleanup(&b);
    at_bhttp_msg_free(m);
    free(p);
}

static void rfc9292_indeterminate_request(void **state)
{
    size_t n;
    uint8_t *p = join_hex(indet_req_parts, &n);
    at_bhttp_msg *m = decode_ok(p, n, AT_BHTTP_REQUEST);
    assert_true(m->indeterminate);
    check_hello_request(m);
    /* Our indeterminate encoding is the example without its padding. */
    at_buf b;
    at_buf_init(&b);
    assert_int_equal(at_bhttp_encode_indeterminate(m, &b, NULL), AT_OK);
    assert_int_equal(b.len, n - 10);
    assert_memory_equal(b.p, p, n - 10);
    /* Up to 12 bytes can be removed without changing the meaning. */
    for (size_t cut = 0; cut <= 12; cut++) {
        at_bhttp_msg *m2 = decode_ok(p, n - cut, AT_BHTTP_REQUEST);
        check_hello_request(m2);
        at_bhttp_msg_free(m2);
    }
    /* Non-zero padding is invalid. */
    at_diag d = {{0}};
    p[n - 3] = 0x01;
    assert_int_equal(decode_rc(p, n, &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "padding"));
    at_buf_cleanup(&b);
    at_bhttp_msg_free(m);
    free(p);
}

static void check_sleep_response(const at_bhttp_msg *m, bool with_content)
{
    assert_false(m->is_request);
    assert_int_equal(m->ninfo, 2);
    assert_int_equal(m->info[0].status, 102);
    assert_int_equal(m->info[0].fields.n, 1);
    assert_string_equal(m->info[0].fields.v[0].name, "running");
    assert_string_equal(m->info[0].fields.v[0].value, "\"sleep 15\"");
    assert_int_equal(m->info[1].status, 103);
    assert_int_equal(m->info[1].fields.n, 2);
    assert_string_equal(m->info[1].fields.v[1].value, "</script.js>; rel=preload; as=script");
    assert_int_equal(m->status, 200);
    assert_int_equal(m->headers.n, 8);
    assert_string_equal(at_bhttp_fields_get(&m->headers, "etag"), "\"34aa387-d-1568eb00\"");
    assert_string_equal(at_bhttp_fields_get(&m->headers, "content-type"), "text/plain");
    if (with_content) {
        const char body[] = "Hello World! My content includes a trailing CRLF.\r\n";
        assert_int_equal(m->content.len, sizeof body - 1);
        assert_memory_equal(m->content.p, body, sizeof body - 1);
    }
}

static void rfc9292_indeterminate_response(void **state)
{
    size_t n;
    uint8_t *p = join_hex(indet_res_parts, &n);
    at_bhttp_msg *m = decode_ok(p, n, AT_BHTTP_RESPONSE);
    check_sleep_response(m, true);
    at_buf b;
    at_buf_init(&b);
    assert_int_equal(at_bhttp_encode_indeterminate(m, &b, NULL), AT_OK);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.p, p, n);
    /* Known-length round trip of the same message. */
    at_buf_reset(&b);
    assert_int_equal(at_bhttp_encode(m, &b, NULL), AT_OK);
    at_bhttp_msg *m2 = decode_ok(b.p, b.len, AT_BHTTP_RESPONSE);
    check_sleep_response(m2, true);
    assert_false(m2->indeterminate);
    at_bhttp_msg_free(m2);
    at_buf_cleanup(&b);
    at_bhttp_msg_free(m);
    free(p);
}

static void rfc9292_known_response(void **state)
{
    size_t n;
    uint8_t *p = unhex(ex_known_res, &n);
    at_bhttp_msg *m = decode_ok(p, n, AT_BHTTP_RESPONSE);
    assert_int_equal(m->status, 200);
    assert_int_equal(m->headers.n, 0);
    assert_int_equal(m->content.len, 29);
    assert_memory_equal(m->content.p, "This content contains CRLF.\r\n", 29);
    assert_int_equal(m->trailers.n, 1);
    assert_string_equal(m->trailers.v[0].name, "trailer");
    assert_string_equal(m->trailers.v[0].value, "text");
    at_buf b;
    at_buf_init(&b);
    assert_int_equal(at_bhttp_encode(m, &b, NULL), AT_OK);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.p, p, n);
    at_buf_cleanup(&b);
    at_bhttp_msg_free(m);
    free(p);
}

static void rfc9458_messages_built(void **state)
{
    at_bhttp_msg *m = NULL;
    at_buf b;
    at_buf_init(&b);
    char hex[128];
    assert_int_equal(at_bhttp_request_new("GET", "https", "example.com", "/", &m, NULL), AT_OK);
    assert_int_equal(at_bhttp_encode(m, &b, NULL), AT_OK);
    at_hex_encode(b.p, b.len, hex);
    assert_string_equal(hex, ohttp_req);
    at_bhttp_msg_free(m);
    at_buf_reset(&b);
    assert_int_equal(at_bhttp_response_new(200, &m, NULL), AT_OK);
    assert_int_equal(at_bhttp_encode(m, &b, NULL), AT_OK);
    at_hex_encode(b.p, b.len, hex);
    assert_string_equal(hex, ohttp_res);
    at_bhttp_msg_free(m);
    at_buf_cleanup(&b);
}

/* Every prefix of every example either decodes (a §3.8 boundary) or is
 * AT_E_TRUNCATED; nothing else. */
static void truncation_everywhere(void **state)
{
    const char *hexes[] = {ex_known_req, ex_known_res, ohttp_req, ohttp_res};
    for (int k = 0; k < 6; k++) {
        size_t n;
        uint8_t *p = k < 4 ? unhex(hexes[k], &n) : join_hex(k == 4 ? indet_req_parts : indet_res_parts, &n);
        int ok = 0;
        for (size_t cut = 0; cut < n; cut++) {
            at_diag d = {{0}};
            at_err rc = decode_rc(p, cut, &d);
            if (rc == AT_OK)
                ok++;
            else
                assert_int_equal(rc, AT_E_TRUNCATED);
        }
        /* Known-length messages with sections, and the indeterminate
         * examples, have proper prefixes that are whole messages. */
        if (k != 2 && k != 3)
            assert_true(ok >= 1);
        free(p);
    }
    /* Specific cases. */
    at_diag d = {{0}};
    assert_int_equal(decode_hex_rc("", &d), AT_E_TRUNCATED);
    assert_int_equal(decode_hex_rc("01", &d), AT_E_TRUNCATED); /* no status */
    assert_int_equal(decode_hex_rc("0140", &d), AT_E_TRUNCATED);
    assert_int_equal(decode_hex_rc("014066", &d), AT_E_TRUNCATED); /* ends in a 102 */
    assert_int_equal(decode_hex_rc("0140c8", &d), AT_OK);
    assert_int_equal(decode_hex_rc("0140c80005", &d), AT_E_TRUNCATED); /* content cut */
    assert_int_equal(decode_hex_rc("0140c8000548656c6c6f", &d), AT_OK);
    /* Indeterminate: after a content chunk the terminator is required. */
    assert_int_equal(decode_hex_rc("0340c8000548656c6c6f", &d), AT_E_TRUNCATED);
    assert_non_null(strstr(d.msg, "terminator"));
    assert_int_equal(decode_hex_rc("0340c8000548656c6c6f00", &d), AT_OK);
    assert_int_equal(decode_hex_rc("0340c800", &d), AT_OK);
    /* Indeterminate header section with a field but no terminator. */
    assert_int_equal(decode_hex_rc("0340c80161016200", &d), AT_OK);
    assert_int_equal(decode_hex_rc("0340c801610162", &d), AT_E_TRUNCATED);
}

static void oversized_lengths(void **state)
{
    at_diag d = {{0}};
    /* Method length 2^62-1, no bytes behind it: refused at once. */
    assert_int_equal(decode_hex_rc("00ffffffffffffffff", &d), AT_E_TOO_LARGE);
    assert_non_null(strstr(d.msg, "method length"));
    /* Path length just over the limit (8193 = 0x4000|0x2001... as varint 0x6001). */
    assert_int_equal(decode_hex_rc("0003474554056874747073006001", &d), AT_E_TOO_LARGE);
    assert_non_null(strstr(d.msg, "path length"));
    /* Header section length 2^30 > limit. */
    assert_int_equal(decode_hex_rc("0140c8c000000040000000", &d), AT_E_TOO_LARGE);
    assert_non_null(strstr(d.msg, "section length"));
    /* Content length 2^40: refused before any byte arrives. */
    assert_int_equal(decode_hex_rc("0140c800c000010000000000", &d), AT_E_TOO_LARGE);
    assert_non_null(strstr(d.msg, "content length"));
    /* Indeterminate chunk length 2^62-1. */
    assert_int_equal(decode_hex_rc("0340c800ffffffffffffffff", &d), AT_E_TOO_LARGE);
    /* Indeterminate field name and value lengths. */
    assert_int_equal(decode_hex_rc("0340c8bfffffff", &d), AT_E_TOO_LARGE);
    assert_int_equal(decode_hex_rc("0340c80161bfffffff", &d), AT_E_TOO_LARGE);
    /* One indeterminate field line of a 40000-byte name and a 40000-byte
     * value: refused once the value's length is read, before its bytes. */
    {
        at_bhttp_decoder *dec = at_bhttp_decoder_new(AT_BHTTP_ANY);
        static uint8_t name[40000];
        memset(name, 'n', sizeof name);
        assert_int_equal(at_bhttp_decoder_feed(dec, AT_SPAN("\x03\x40\xc8\x80\x00\x9c\x40", 7), NULL, &d),
                         AT_OK);
        assert_int_equal(at_bhttp_decoder_feed(dec, AT_SPAN(name, sizeof name), NULL, &d), AT_OK);
        assert_int_equal(at_bhttp_decoder_feed(dec, AT_SPAN("\x80\x00\x9c\x40", 4), NULL, &d),
                         AT_E_TOO_LARGE);
        assert_non_null(strstr(d.msg, "field section over"));
        at_bhttp_decoder_free(dec);
    }
    /* Trailer section length in a known-length message. */
    assert_int_equal(decode_hex_rc("0140c80000c0000000ffffffff", &d), AT_E_TOO_LARGE);

    /* Too many field lines (indeterminate, "a: b" x 129). */
    at_buf b;
    at_buf_init(&b);
    assert_int_equal(at_buf_append(&b, "\x03\x40\xc8", 3), AT_OK);
    for (int i = 0; i <= AT_MAX_BHTTP_FIELDS; i++)
        assert_int_equal(at_buf_append(&b,
                                       "\x01"
                                       "a\x01"
                                       "b",
                                       4),
                         AT_OK);
    assert_int_equal(at_buf_append(&b, "\x00", 1), AT_OK);
    assert_int_equal(decode_rc(b.p, b.len, &d), AT_E_TOO_LARGE);
    assert_non_null(strstr(d.msg, "field lines"));
    /* Too many informational responses. */
    at_buf_reset(&b);
    assert_int_equal(at_buf_u8(&b, 3), AT_OK);
    for (int i = 0; i <= AT_MAX_BHTTP_INFORMATIONAL; i++)
        assert_int_equal(at_buf_append(&b, "\x40\x64\x00", 3), AT_OK);
    assert_int_equal(at_buf_append(&b, "\x40\xc8\x00\x00\x00", 5), AT_OK);
    assert_int_equal(decode_rc(b.p, b.len, &d), AT_E_TOO_LARGE);
    /* A field section over the byte limit, from many medium values. */
    at_buf_reset(&b);
    assert_int_equal(at_buf_append(&b, "\x03\x40\xc8", 3), AT_OK);
    static uint8_t val[8000];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(at_buf_append(&b,
                                       "\x01"
                                       "a",
                                       2),
                         AT_OK);
        assert_int_equal(at_buf_varint(&b, sizeof val), AT_OK);
        assert_int_equal(at_buf_append(&b, val, sizeof val), AT_OK);
    }
    assert_int_equal(decode_rc(b.p, b.len, &d), AT_E_TOO_LARGE);
    assert_non_null(strstr(d.msg, "over"));
    at_buf_cleanup(&b);
}

static void invalid_messages(void **state)
{
    at_diag d = {{0}};
    assert_int_equal(decode_hex_rc("04", &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "framing indicator"));
    assert_int_equal(decode_hex_rc("014063", &d), AT_E_BAD_FIELD); /* status 99 */
    assert_int_equal(decode_hex_rc("014258", &d), AT_E_BAD_FIELD); /* status 600 */
    assert_non_null(strstr(d.msg, "status"));
    /* Uppercase field name. */
    assert_int_equal(decode_hex_rc("0140c804014101620000", &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "uppercase"));
    /* Space in a name; zero-length name. */
    assert_int_equal(decode_hex_rc("0140c8060361206201620000", &d), AT_E_BAD_FIELD);
    assert_int_equal(decode_hex_rc("0140c80300016200", &d), AT_E_BAD_FIELD);
    /* :path in a header section; connection-specific field. */
    assert_int_equal(decode_hex_rc("0140c808053a70617468012f", &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, ":path"));
    assert_int_equal(decode_hex_rc("0140c80f0a636f6e6e656374696f6e03666f6f", &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "connection"));
    /* Value with CR; value with leading space. */
    assert_int_equal(decode_hex_rc("0140c806016103620d63", &d), AT_E_BAD_FIELD);
    assert_int_equal(decode_hex_rc("0140c806016103206263", &d), AT_E_BAD_FIELD);
    /* Field line overrunning its known section length. */
    assert_int_equal(decode_hex_rc("0140c80301610562", &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "overruns"));
    /* Pseudo-field after a regular one; pseudo-field in trailers. */
    assert_int_equal(decode_hex_rc("0140c80b01610162043a78797a0178", &d), AT_E_BAD_FIELD);
    assert_int_equal(decode_hex_rc("0140c8000006033a797a0178", &d), AT_E_BAD_FIELD);
    /* Request control data: method with a space, path with a control byte. */
    assert_int_equal(decode_hex_rc("000347205405687474707300012f", &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "method"));
    assert_int_equal(decode_hex_rc("00034745540568747470730001", &d), AT_E_TRUNCATED);
    assert_int_equal(decode_hex_rc("0003474554056874747073000109", &d), AT_E_BAD_FIELD);
    assert_int_equal(decode_hex_rc("0003474554056874747073000100", &d), AT_E_BAD_FIELD);
    /* The wrong kind. */
    at_bhttp_msg *m = NULL;
    size_t n;
    uint8_t *p = unhex(ohttp_res, &n);
    assert_int_equal(at_bhttp_decode(AT_SPAN(p, n), AT_BHTTP_REQUEST, &m, &d), AT_E_BAD_FIELD);
    assert_null(m);
    free(p);
    p = unhex(ohttp_req, &n);
    assert_int_equal(at_bhttp_decode(AT_SPAN(p, n), AT_BHTTP_RESPONSE, &m, &d), AT_E_BAD_FIELD);
    free(p);
}

static void incremental_decoding(void **state)
{
    size_t n;
    uint8_t *p = join_hex(indet_res_parts, &n);
    at_bhttp_decoder *dec = at_bhttp_decoder_new(AT_BHTTP_RESPONSE);
    assert_non_null(dec);
    at_buf content;
    at_buf_init(&content);
    at_diag d = {{0}};
    size_t head_at = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(at_bhttp_decoder_feed(dec, AT_SPAN(p + i, 1), &content, &d), AT_OK);
        if (!head_at && at_bhttp_decoder_head(dec))
            head_at = i + 1;
    }
    /* The head is available before the content; content streamed out. */
    assert_true(head_at > 0 && head_at < n - 50);
    assert_int_equal(at_bhttp_decoder_finish(dec, &d), AT_OK);
    at_bhttp_msg *m = at_bhttp_decoder_take(dec);
    check_sleep_response(m, false);
    assert_int_equal(m->content.len, 0);
    assert_int_equal(content.len, 51);
    assert_memory_equal(content.p, "Hello World!", 12);
    at_bhttp_msg_free(m);
    at_bhttp_decoder_free(dec);

    /* Errors are sticky, and finishing early is refused. */
    dec = at_bhttp_decoder_new(AT_BHTTP_ANY);
    assert_int_equal(at_bhttp_decoder_feed(dec, AT_SPAN("\x09", 1), NULL, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_decoder_feed(dec, AT_SPAN("\x00", 1), NULL, &d), AT_E_BAD_FIELD);
    assert_null(at_bhttp_decoder_take(dec));
    at_bhttp_decoder_free(dec);
    dec = at_bhttp_decoder_new(AT_BHTTP_ANY);
    assert_int_equal(at_bhttp_decoder_feed(dec, AT_SPAN(p, 40), NULL, &d), AT_OK);
    assert_int_equal(at_bhttp_decoder_finish(dec, &d), AT_E_TRUNCATED);
    at_bhttp_decoder_free(dec);

    /* Streamed encoding decodes to the same message. */
    at_bhttp_msg *r = NULL;
    assert_int_equal(at_bhttp_response_new(200, &r, &d), AT_OK);
    assert_int_equal(at_bhttp_add_header(r, "Content-Type", AT_SPAN("text/event-stream", 17), &d), AT_OK);
    at_buf wire;
    at_buf_init(&wire);
    assert_int_equal(at_bhttp_encode_head(r, &wire, &d), AT_OK);
    assert_int_equal(at_bhttp_encode_chunk(AT_SPAN("data: a\n\n", 9), &wire, &d), AT_OK);
    assert_int_equal(at_bhttp_encode_chunk(AT_SPAN_NULL, &wire, &d), AT_OK);
    assert_int_equal(at_bhttp_encode_chunk(AT_SPAN("data: b\n\n", 9), &wire, &d), AT_OK);
    assert_int_equal(at_bhttp_add_trailer(r, "x-done", AT_SPAN("1", 1), &d), AT_OK);
    assert_int_equal(at_bhttp_encode_tail(r, &wire, &d), AT_OK);
    m = decode_ok(wire.p, wire.len, AT_BHTTP_RESPONSE);
    assert_true(m->indeterminate);
    assert_string_equal(at_bhttp_fields_get(&m->headers, "content-type"), "text/event-stream");
    assert_int_equal(m->content.len, 18);
    assert_memory_equal(m->content.p, "data: a\n\ndata: b\n\n", 18);
    assert_string_equal(at_bhttp_fields_get(&m->trailers, "x-done"), "1");
    at_bhttp_msg_free(m);
    at_bhttp_msg_free(r);
    at_buf_cleanup(&wire);
    at_buf_cleanup(&content);
    free(p);
}

static void builder_checks(void **state)
{
    at_bhttp_msg *m = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_bhttp_request_new("GET", "https", "", "", &m, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_request_new("", "https", "", "/", &m, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_request_new("GET", "https", "a b", "/", &m, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_request_new("CONNECT", "", "example.com:443", "", &m, &d), AT_OK);
    at_bhttp_msg_free(m);
    assert_int_equal(at_bhttp_response_new(199, &m, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_request_new("POST", "https", "x", "/v1/chat", &m, &d), AT_OK);
    assert_int_equal(at_bhttp_add_header(m, "Content-Type", AT_SPAN("application/json", 16), &d), AT_OK);
    assert_string_equal(m->headers.v[0].name, "content-type");
    assert_int_equal(at_bhttp_add_header(m, "Bad Name", AT_SPAN("x", 1), &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_add_header(m, "x", AT_SPAN(" x", 2), &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_add_header(m, "x", AT_SPAN("a\nb", 3), &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_add_header(m, "Transfer-Encoding", AT_SPAN("chunked", 7), &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_add_header(m, ":x", AT_SPAN("y", 1), &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_add_trailer(m, "x-sum", AT_SPAN("1", 1), &d), AT_OK);
    assert_int_equal(at_bhttp_add_informational(m, 103, NULL, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_append_content(m, AT_SPAN("{}", 2), &d), AT_OK);
    at_buf b;
    at_buf_init(&b);
    assert_int_equal(at_bhttp_encode(m, &b, &d), AT_OK);
    at_bhttp_msg *m2 = decode_ok(b.p, b.len, AT_BHTTP_REQUEST);
    assert_string_equal(m2->path, "/v1/chat");
    assert_string_equal(at_bhttp_fields_get(&m2->headers, "content-type"), "application/json");
    assert_string_equal(at_bhttp_fields_get(&m2->trailers, "x-sum"), "1");
    assert_int_equal(m2->content.len, 2);
    at_bhttp_msg_free(m2);
    at_bhttp_msg_free(m);
    at_buf_cleanup(&b);

    assert_int_equal(at_bhttp_response_new(200, &m, &d), AT_OK);
    size_t idx = 99;
    assert_int_equal(at_bhttp_add_informational(m, 99, &idx, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_add_informational(m, 100, &idx, &d), AT_OK);
    assert_int_equal(idx, 0);
    assert_int_equal(at_bhttp_add_info_field(m, 1, "a", AT_SPAN("b", 1), &d), AT_E_BAD_FIELD);
    assert_int_equal(at_bhttp_add_info_field(m, 0, "a", AT_SPAN("b", 1), &d), AT_OK);
    at_bhttp_msg_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc9292_known_request),
        cmocka_unit_test(rfc9292_indeterminate_request),
        cmocka_unit_test(rfc9292_indeterminate_response),
        cmocka_unit_test(rfc9292_known_response),
        cmocka_unit_test(rfc9458_messages_built),
        cmocka_unit_test(truncation_everywhere),
        cmocka_unit_test(oversized_lengths),
        cmocka_unit_test(invalid_messages),
        cmocka_unit_test(incremental_decoding),
        cmocka_unit_test(builder_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
