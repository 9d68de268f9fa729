/* buf: spans (borrowed bytes), the bounded reader every parser of untrusted
 * bytes goes through, growable buffers and wiped secret buffers.
 * Reader rule: a failed read leaves the offset unchanged; bounds are checked
 * as `n > len - off`, never `off + n > len`. */
#ifndef AT_BUF_H
#define AT_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Borrowed bytes: never freed through a span. */
typedef struct {
    const uint8_t *p;
    size_t len;
} at_span;

#define AT_SPAN(ptr, n) ((at_span){(const uint8_t *)(ptr), (n)})
#define AT_SPAN_NULL ((at_span){NULL, 0})

bool at_span_eq(at_span a, at_span b);    /* not constant time */
bool at_span_eq_ct(at_span a, at_span b); /* constant time in content */

typedef struct {
    const uint8_t *p;
    size_t len;
    size_t off;
} at_reader;

void at_reader_init(at_reader *r, const void *p, size_t len);
size_t at_reader_left(const at_reader *r);
bool at_reader_at_end(const at_reader *r);
bool at_reader_take(at_reader *r, size_t n, at_span *out) AT_MUST_USE;
bool at_reader_skip(at_reader *r, size_t n) AT_MUST_USE;
bool at_reader_u8(at_reader *r, uint8_t *v) AT_MUST_USE;
bool at_reader_u16(at_reader *r, uint16_t *v) AT_MUST_USE; /* big endian */
bool at_reader_u32(at_reader *r, uint32_t *v) AT_MUST_USE;
bool at_reader_u64(at_reader *r, uint64_t *v) AT_MUST_USE;
/* A sub-reader over the next n bytes; the parent advances past them. */
bool at_reader_sub(at_reader *r, size_t n, at_reader *sub) AT_MUST_USE;
/* QUIC variable-length integer (RFC 9000 §16), used by Binary HTTP. */
bool at_reader_varint(at_reader *r, uint64_t *v) AT_MUST_USE;
/* The rest of the bytes, leaving the reader at its end. */
at_span at_reader_rest(at_reader *r);

/* Growable byte buffer. Errors are sticky: after a failed append every later
 * append is a no-op and at_buf_status() reports AT_E_INTERNAL / AT_E_TOO_LARGE.
 * A buffer made with at_buf_init_secret() is wiped whenever it is freed or
 * grown. */
typedef struct {
    uint8_t *p;
    size_t len;
    size_t cap;
    size_t max; /* 0 = no cap beyond SIZE_MAX/2 */
    bool secret;
    at_err status;
} at_buf;

void at_buf_init(at_buf *b);
void at_buf_init_secret(at_buf *b);
void at_buf_set_max(at_buf *b, size_t max);
at_err at_buf_status(const at_buf *b);
at_err at_buf_reserve(at_buf *b, size_t more);
at_err at_buf_append(at_buf *b, const void *p, size_t n);
at_err at_buf_append_span(at_buf *b, at_span s);
at_err at_buf_u8(at_buf *b, uint8_t v);
at_err at_buf_u16(at_buf *b, uint16_t v);
at_err at_buf_u32(at_buf *b, uint32_t v);
at_err at_buf_u64(at_buf *b, uint64_t v);
at_err at_buf_varint(at_buf *b, uint64_t v); /* QUIC varint; v < 2^62 */
at_err at_buf_printf(at_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
at_span at_buf_span(const at_buf *b);
/* Hand the bytes to the caller (free() them; at_secret_wipe_free for secrets);
 * the buffer is left empty. NULL when the buffer is empty or failed. */
uint8_t *at_buf_take(at_buf *b, size_t *len);
void at_buf_reset(at_buf *b);   /* len = 0, keeps storage (wiped if secret) */
void at_buf_cleanup(at_buf *b); /* frees (and wipes if secret) */

/* Fixed-size secret bytes on the heap, wiped on free. */
typedef struct {
    uint8_t *p;
    size_t len;
} at_secret;

/* Caller owns the result; free with at_secret_free. NULL on OOM. */
at_secret *at_secret_new(size_t len);
at_secret *at_secret_dup(at_span s);
void at_secret_free(at_secret *s); /* accepts NULL */
void at_wipe(void *p, size_t n);
void at_wipe_free(void *p, size_t n); /* wipe then free(); accepts NULL */

/* Checked size arithmetic: false on overflow. */
static inline bool at_size_add(size_t a, size_t b, size_t *out) { return !__builtin_add_overflow(a, b, out); }
static inline bool at_size_mul(size_t a, size_t b, size_t *out) { return !__builtin_mul_overflow(a, b, out); }

#endif
