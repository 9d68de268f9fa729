/* bhttp: Binary HTTP messages (RFC 9292), the plaintext inside OHTTP.
 * Decodes attacker-supplied known- and indeterminate-length requests and
 * responses, whole or incrementally (for streamed answers), with every
 * length checked against lib/limits.h before it is waited for or stored;
 * encodes known-length messages, and indeterminate-length ones in pieces. */
#ifndef AT_BHTTP_H
#define AT_BHTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "at_limits.h"

#define AT_BHTTP_MEDIA_TYPE "message/bhttp"

/* One field line. name is lowercase; name and value are NUL-terminated
 * (neither may contain NUL, RFC 9292 §3.6 via RFC 9113 §8.2.1). Owned by
 * the message. */
typedef struct {
    char *name;
    char *value;
    size_t name_len, value_len;
} at_bhttp_field;

typedef struct {
    at_bhttp_field *v;
    size_t n, cap;
    size_t bytes; /* sum of name and value lengths, against the limit */
} at_bhttp_fields;

typedef struct {
    int status; /* 100..199 */
    at_bhttp_fields fields;
} at_bhttp_info;

/* A request or response. Strings are NUL-terminated and owned. */
typedef struct {
    bool is_request;
    bool indeterminate; /* framing it was decoded from */
    /* requests (RFC 9292 §3.4); authority may be "" */
    char *method, *scheme, *authority, *path;
    /* responses (§3.5): final status 200..599 and informational ones */
    int status;
    at_bhttp_info info[AT_MAX_BHTTP_INFORMATIONAL];
    size_t ninfo;
    at_bhttp_fields headers, trailers;
    at_buf content;
} at_bhttp_msg;

typedef enum { AT_BHTTP_ANY, AT_BHTTP_REQUEST, AT_BHTTP_RESPONSE } at_bhttp_kind;

/* ---- building and encoding ------------------------------------------------ */

/* A request with the given control data, validated (method a token,
 * scheme/path non-empty visible ASCII unless CONNECT, authority visible
 * ASCII or ""). Caller frees with at_bhttp_msg_free. */
at_err at_bhttp_request_new(const char *method, const char *scheme, const char *authority, const char *path,
                            at_bhttp_msg **out, at_diag *d) AT_MUST_USE;
/* A response with a final status 200..599. Caller frees. */
at_err at_bhttp_response_new(int status, at_bhttp_msg **out, at_diag *d) AT_MUST_USE;
/* Add a field line; the name is lowercased, then name and value are checked
 * by RFC 9113 §8.2 rules (token name, no CR/LF/NUL, no surrounding
 * whitespace, no connection-specific fields). AT_E_BAD_FIELD / AT_E_TOO_LARGE. */
at_err at_bhttp_add_header(at_bhttp_msg *m, const char *name, at_span value, at_diag *d) AT_MUST_USE;
at_err at_bhttp_add_trailer(at_bhttp_msg *m, const char *name, at_span value, at_diag *d) AT_MUST_USE;
/* Responses: add an informational response (100..199) before the final
 * one; *idx (may be NULL) receives its index for at_bhttp_add_info_field. */
at_err at_bhttp_add_informational(at_bhttp_msg *m, int status, size_t *idx, at_diag *d) AT_MUST_USE;
at_err at_bhttp_add_info_field(at_bhttp_msg *m, size_t idx, const char *name, at_span value,
                               at_diag *d) AT_MUST_USE;
/* Append to the content (at most AT_MAX_BHTTP_CONTENT in all). */
at_err at_bhttp_append_content(at_bhttp_msg *m, at_span s, at_diag *d) AT_MUST_USE;
/* First value of a field by (case-insensitive) name, or NULL. Borrowed. */
const char *at_bhttp_fields_get(const at_bhttp_fields *f, const char *name);

/* Known-length encoding (RFC 9292 §3.1), appended to out. Trailing empty
 * sections are truncated away as §3.8 allows. */
at_err at_bhttp_encode(const at_bhttp_msg *m, at_buf *out, at_diag *d) AT_MUST_USE;
/* Indeterminate-length encoding (§3.2) in pieces, for streaming: the head
 * (framing, informational responses, control data, header section), then
 * any number of content chunks (an empty one writes nothing), then the tail
 * (content terminator, trailer section). */
at_err at_bhttp_encode_head(const at_bhttp_msg *m, at_buf *out, at_diag *d) AT_MUST_USE;
at_err at_bhttp_encode_chunk(at_span chunk, at_buf *out, at_diag *d) AT_MUST_USE;
at_err at_bhttp_encode_tail(const at_bhttp_msg *m, at_buf *out, at_diag *d) AT_MUST_USE;
/* The three together, with m's content as one chunk. */
at_err at_bhttp_encode_indeterminate(const at_bhttp_msg *m, at_buf *out, at_diag *d) AT_MUST_USE;

void at_bhttp_msg_free(at_bhttp_msg *m); /* accepts NULL */

/* ---- decoding --------------------------------------------------------------
 * Whole message: known- or indeterminate-length, padding checked to be
 * zero, truncation accepted only where §3.8 allows it (AT_E_TRUNCATED
 * elsewhere). `expect` refuses the other kind. Caller frees *out. */
at_err at_bhttp_decode(at_span in, at_bhttp_kind expect, at_bhttp_msg **out, at_diag *d) AT_MUST_USE;

/* Incremental decoder: feed bytes as they arrive. Content is appended to
 * content_out when given (streaming; the message then keeps none), else
 * kept in the message. Errors are sticky. */
typedef struct at_bhttp_decoder at_bhttp_decoder;

/* Caller frees with at_bhttp_decoder_free. NULL on OOM. */
at_bhttp_decoder *at_bhttp_decoder_new(at_bhttp_kind expect);
at_err at_bhttp_decoder_feed(at_bhttp_decoder *dec, at_span in, at_buf *content_out, at_diag *d) AT_MUST_USE;
/* The message so far once its control data and header section are
 * complete (status and headers usable), else NULL. Borrowed. */
const at_bhttp_msg *at_bhttp_decoder_head(const at_bhttp_decoder *dec);
/* End of input: AT_OK when the message ended where it may (§3.8). */
at_err at_bhttp_decoder_finish(at_bhttp_decoder *dec, at_diag *d) AT_MUST_USE;
/* After a successful finish: the message, ownership to the caller. */
at_bhttp_msg *at_bhttp_decoder_take(at_bhttp_decoder *dec);
void at_bhttp_decoder_free(at_bhttp_decoder *dec); /* accepts NULL */

#endif
