/* fuzz_bhttp: lib/bhttp's decoder on attacker bytes. Besides not crashing,
 * checks three properties and aborts when one breaks:
 *  - incremental decoding, in pieces whose sizes come from the input, gives
 *    the same verdict and the same message as decoding the whole;
 *  - a decoded message re-encodes (known-length and indeterminate) to bytes
 *    that decode to the same message;
 *  - nothing is accepted past the limits of lib/limits.h. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bhttp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool cond)
{
    if (!cond)
        abort();
}

static bool fields_eq(const at_bhttp_fields *a, const at_bhttp_fields *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i].name, b->v[i].name) != 0 || a->v[i].value_len != b->v[i].value_len ||
            memcmp(a->v[i].value, b->v[i].value, a->v[i].value_len) != 0)
            return false;
    return true;
}

static bool msg_eq(const at_bhttp_msg *a, const at_bhttp_msg *b, bool with_content)
{
    if (a->is_request != b->is_request || !fields_eq(&a->headers, &b->headers) ||
        !fields_eq(&a->trailers, &b->trailers))
        return false;
    if (with_content && !at_span_eq(at_buf_span(&a->content), at_buf_span(&b->content)))
        return false;
    if (a->is_request)
        return strcmp(a->method, b->method) == 0 && strcmp(a->scheme, b->scheme) == 0 &&
               strcmp(a->authority, b->authority) == 0 && strcmp(a->path, b->path) == 0;
    if (a->status != b->status || a->ninfo != b->ninfo)
        return false;
    for (size_t i = 0; i < a->ninfo; i++)
        if (a->info[i].status != b->info[i].status || !fields_eq(&a->info[i].fields, &b->info[i].fields))
            return false;
    return true;
}

static void limits_hold(const at_bhttp_msg *m)
{
    check(m->headers.n <= AT_MAX_BHTTP_FIELDS && m->trailers.n <= AT_MAX_BHTTP_FIELDS);
    check(m->headers.bytes <= AT_MAX_BHTTP_SECTION_BYTES);
    check(m->ninfo <= AT_MAX_BHTTP_INFORMATIONAL);
    check(m->content.len <= AT_MAX_BHTTP_CONTENT);
}

static void reencode(const at_bhttp_msg *m, bool indeterminate)
{
    at_buf b;
    at_bhttp_msg *m2 = NULL;
    at_buf_init(&b);
    at_err rc = indeterminate ? at_bhttp_encode_indeterminate(m, &b, NULL) : at_bhttp_encode(m, &b, NULL);
    check(rc == AT_OK);
    check(at_bhttp_decode(at_buf_span(&b), AT_BHTTP_ANY, &m2, NULL) == AT_OK);
    check(msg_eq(m, m2, true));
    check(m2->indeterminate == indeterminate);
    at_bhttp_msg_free(m2);
    at_buf_cleanup(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    at_bhttp_msg *whole = NULL;
    at_err rc = at_bhttp_decode(AT_SPAN(data, size), AT_BHTTP_ANY, &whole, NULL);
    check((rc == AT_OK) == (whole != NULL));

    /* Incremental, content streamed out, in pieces of 1..8 bytes chosen
     * by the input's last byte. */
    at_bhttp_decoder *dec = at_bhttp_decoder_new(AT_BHTTP_ANY);
    at_buf content;
    at_buf_init(&content);
    size_t step = size ? (size_t)(data[size - 1] % 8) + 1 : 1;
    at_err rc2 = AT_OK;
    for (size_t off = 0; off < size && rc2 == AT_OK; off += step) {
        size_t n = size - off < step ? size - off : step;
        rc2 = at_bhttp_decoder_feed(dec, AT_SPAN(data + off, n), &content, NULL);
    }
    if (rc2 == AT_OK)
        rc2 = at_bhttp_decoder_finish(dec, NULL);
    at_bhttp_msg *inc = at_bhttp_decoder_take(dec);
    /* Streaming has no overall content cap, so it may accept what the
     * whole decoder refuses as too large; otherwise verdicts agree. */
    check(rc == rc2 || (rc == AT_E_TOO_LARGE && rc2 == AT_OK));
    if (rc == AT_OK) {
        check(inc != NULL);
        check(msg_eq(whole, inc, false));
        check(inc->content.len == 0);
        check(at_span_eq(at_buf_span(&whole->content), at_buf_span(&content)));
        limits_hold(whole);
        reencode(whole, false);
        reencode(whole, true);
    }
    at_bhttp_msg_free(inc);
    at_bhttp_decoder_free(dec);
    at_buf_cleanup(&content);
    at_bhttp_msg_free(whole);
    return 0;
}
