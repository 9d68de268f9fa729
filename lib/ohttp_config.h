/* ohttp_config: Oblivious HTTP key configurations (RFC 9458 §3) and the
 * application/ohttp-keys list (§3.2), parsed from attacker-supplied bytes
 * through the bounded reader and encoded. Protocol overview: ohttp.h. */
#ifndef AT_OHTTP_CONFIG_H
#define AT_OHTTP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at_limits.h"
#include "buf.h"
#include "err.h"
#include "hpke.h"

typedef struct {
    uint16_t kdf, aead;
} at_ohttp_sym;

/* One key configuration, by value. sym lists the (KDF, AEAD) pairs in the
 * order the gateway gave them, supported here or not. */
typedef struct {
    uint8_t key_id;
    uint16_t kem;
    uint8_t pk[AT_HPKE_NPK];
    size_t nsym;
    at_ohttp_sym sym[AT_MAX_OHTTP_SUITES];
} at_ohttp_key_config;

/* Exactly one key configuration, no trailing bytes. AT_E_UNSUPPORTED_SUITE
 * for a KEM other than X25519 (its key length is unknown), AT_E_TRUNCATED /
 * AT_E_BAD_FIELD / AT_E_TOO_LARGE for malformed ones. */
at_err at_ohttp_key_config_parse(at_span in, at_ohttp_key_config *out, at_diag *d) AT_MUST_USE;
/* The wire form, appended to out. */
at_err at_ohttp_key_config_encode(const at_ohttp_key_config *kc, at_buf *out, at_diag *d) AT_MUST_USE;
/* application/ohttp-keys: up to cap usable configurations into out, *n of
 * them; configurations with another KEM are skipped (RFC 9458 §3.2).
 * AT_E_UNSUPPORTED_SUITE when none is usable. */
at_err at_ohttp_keys_parse(at_span in, at_ohttp_key_config *out, size_t cap, size_t *n,
                           at_diag *d) AT_MUST_USE;
/* Either form (what --key-config accepts): a single configuration, else the
 * first usable one of a list. */
at_err at_ohttp_key_config_load(at_span in, at_ohttp_key_config *out, at_diag *d) AT_MUST_USE;
/* The first (KDF, AEAD) of kc, in its order, that this library implements.
 * AT_E_UNSUPPORTED_SUITE when none. */
at_err at_ohttp_key_config_suite(const at_ohttp_key_config *kc, at_hpke_suite *out, at_diag *d) AT_MUST_USE;

/* True when this library implements (kdf, aead) for OHTTP: HKDF-SHA256
 * with an AEAD at_hpke knows. */
bool at_ohttp_suite_supported(uint16_t kdf, uint16_t aead);

#endif
