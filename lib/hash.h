/* hash: one-shot SHA-256 and SHA-384 over bytes in memory. Every failure is
 * returned: a digest that keys a cache, a lookup or a stored record must
 * never be uninitialised bytes, so no caller ignores one. */
#ifndef AT_HASH_H
#define AT_HASH_H

#include <stdint.h>

#include "buf.h"
#include "err.h"

#define AT_SHA256_LEN 32

/* out is written only on success; AT_E_INTERNAL (detail in d, which may be
 * NULL) when OpenSSL fails. in.p may be NULL when in.len is 0. */
at_err at_sha256(at_span in, uint8_t out[AT_SHA256_LEN], at_diag *d) AT_MUST_USE;
at_err at_sha384(at_span in, uint8_t out[48], at_diag *d) AT_MUST_USE;
/* SHA-256 as 64 lowercase hex digits and a NUL. */
at_err at_sha256_hex(at_span in, char out[2 * AT_SHA256_LEN + 1], at_diag *d) AT_MUST_USE;

#endif
