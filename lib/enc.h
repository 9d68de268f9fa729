/* enc: hex and base64 text encodings of binary values (API.md: base64 with
 * padding in JSON, lowercase hex for PCRs and digests). Decoders are strict
 * and read attacker-supplied text. */
#ifndef AT_ENC_H
#define AT_ENC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/* Lowercase hex into out (2*len+1 bytes, NUL-terminated). */
void at_hex_encode(const uint8_t *p, size_t len, char *out);
/* Caller frees. NULL on OOM. */
char *at_hex_encode_new(at_span s);
/* Strict hex (either case, even length) into out; *outlen = bytes written.
 * AT_E_BAD_FIELD when not hex, AT_E_TOO_LARGE when it does not fit; out and
 * *outlen are written only on success. */
at_err at_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t cap, size_t *outlen) AT_MUST_USE;
/* Decode into a new buffer the caller frees. */
at_err at_hex_decode_new(const char *hex, uint8_t **out, size_t *outlen) AT_MUST_USE;

/* Standard base64 with padding. Caller frees. NULL on OOM. */
char *at_b64_encode_new(at_span s);
/* Strict base64 (RFC 4648): the standard alphabet with padding (§4) or the
 * URL-safe alphabet without padding (§5), never a mix of alphabets; no
 * whitespace, no non-zero trailing bits. AT_E_BAD_FIELD otherwise, and
 * nothing is allocated. Caller frees *out (at_wipe_free for secrets). */
at_err at_b64_decode_new(const char *txt, size_t txtlen, uint8_t **out, size_t *outlen) AT_MUST_USE;
/* base64url without padding (JOSE). Caller frees. */
char *at_b64url_encode_new(at_span s);

/* Length of the valid UTF-8 sequence (RFC 3629: no overlongs, surrogates or
 * code points past U+10FFFF) starting at s, or 0 when s does not start one. */
size_t at_utf8_seq_len(const char *s);
/* A copy of s with every byte that does not belong to a valid UTF-8
 * sequence replaced by '?' (JSON text must be UTF-8). Caller frees; NULL on
 * OOM. */
char *at_utf8_sanitize_new(const char *s);

#endif
