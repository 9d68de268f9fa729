/* hpke: RFC 9180 Hybrid Public Key Encryption for the suites attest speaks:
 * KEM DHKEM(X25519, HKDF-SHA256), KDF HKDF-SHA256, AEAD AES-128-GCM,
 * AES-256-GCM or ChaCha20-Poly1305; base, psk, auth and auth_psk modes.
 * Trust boundary: `enc` and ciphertexts are attacker-supplied; keys and
 * derived secrets live only in wiped memory or inside OpenSSL's EVP_PKEY.
 *
 * Built on OpenSSL 3.0 primitives (X25519 via EVP_PKEY_derive, HKDF via
 * EVP_KDF, AEADs via EVP_CIPHER). Where configure found OpenSSL >= 3.2
 * (AT_HAVE_OSSL_HPKE), base-mode contexts are run by OpenSSL's own
 * OSSL_HPKE_* API behind this same interface. */
#ifndef AT_HPKE_H
#define AT_HPKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/* RFC 9180 §7 identifiers. */
#define AT_HPKE_KEM_X25519_SHA256 0x0020
#define AT_HPKE_KDF_HKDF_SHA256 0x0001
#define AT_HPKE_AEAD_AES_128_GCM 0x0001
#define AT_HPKE_AEAD_AES_256_GCM 0x0002
#define AT_HPKE_AEAD_CHACHA20_POLY1305 0x0003

/* Sizes for DHKEM(X25519) and the supported AEADs (RFC 9180 §7.1, §7.3). */
#define AT_HPKE_NENC 32   /* encapsulated key */
#define AT_HPKE_NPK 32    /* public key */
#define AT_HPKE_NSK 32    /* private key */
#define AT_HPKE_NH 32     /* HKDF-SHA256 output */
#define AT_HPKE_NT 16     /* AEAD tag, all three AEADs */
#define AT_HPKE_NN 12     /* AEAD nonce, all three AEADs */
#define AT_HPKE_MAX_NK 32 /* largest AEAD key (AES-256, ChaCha20) */
/* LabeledExpand's output is at most 255 * Nh (RFC 9180 §4). */
#define AT_HPKE_MAX_EXPORT (255 * AT_HPKE_NH)

typedef struct {
    uint16_t kem, kdf, aead;
} at_hpke_suite;

typedef enum {
    AT_HPKE_MODE_BASE = 0,
    AT_HPKE_MODE_PSK = 1,
    AT_HPKE_MODE_AUTH = 2,
    AT_HPKE_MODE_AUTH_PSK = 3,
} at_hpke_mode;

/* AT_OK when every id of the suite is one this module implements, else
 * AT_E_UNSUPPORTED_SUITE naming the id. */
at_err at_hpke_suite_check(at_hpke_suite s, at_diag *d) AT_MUST_USE;
/* Nk of an AEAD id; 0 when unsupported. */
size_t at_hpke_aead_nk(uint16_t aead);
/* Stable names for messages: "AES-128-GCM", ...; "unknown" otherwise. */
const char *at_hpke_aead_name(uint16_t aead);

/* ---- keys ---------------------------------------------------------------
 * An X25519 key pair, or a public key alone. Private keys stay inside an
 * EVP_PKEY (OpenSSL wipes them on free); copies handed out are at_secret. */
typedef struct at_hpke_key at_hpke_key;

/* Fresh random key pair. Caller frees with at_hpke_key_free. */
at_err at_hpke_key_generate(uint16_t kem, at_hpke_key **out, at_diag *d) AT_MUST_USE;
/* DeriveKeyPair(ikm) (RFC 9180 §7.1.3); deterministic. Caller frees. */
at_err at_hpke_key_derive(uint16_t kem, at_span ikm, at_hpke_key **out, at_diag *d) AT_MUST_USE;
/* From a serialized private key (Nsk bytes). Caller frees. */
at_err at_hpke_key_from_private(uint16_t kem, at_span sk, at_hpke_key **out, at_diag *d) AT_MUST_USE;
/* From a serialized public key (Npk bytes); attacker-supplied bytes are
 * fine here. Caller frees. */
at_err at_hpke_key_from_public(uint16_t kem, at_span pk, at_hpke_key **out, at_diag *d) AT_MUST_USE;
/* The serialized public key (Npk bytes), borrowed from the key. */
at_span at_hpke_key_public(const at_hpke_key *k);
bool at_hpke_key_has_private(const at_hpke_key *k);
uint16_t at_hpke_key_kem(const at_hpke_key *k);
/* A copy of the serialized private key. Caller frees with at_secret_free. */
at_err at_hpke_key_private(const at_hpke_key *k, at_secret **out, at_diag *d) AT_MUST_USE;
void at_hpke_key_free(at_hpke_key *k); /* accepts NULL */

/* ---- contexts ------------------------------------------------------------
 * Mode inputs. Zero-initialised means base mode with an empty info. psk and
 * psk_id go together (psk modes only); `auth` is the sender's key pair on
 * the sending side and the sender's public key on the receiving side (auth
 * modes only). Borrowed for the duration of the setup call. */
typedef struct {
    at_hpke_mode mode;
    at_span info;
    at_span psk;
    at_span psk_id;
    const at_hpke_key *auth;
} at_hpke_params;

typedef struct at_hpke_ctx at_hpke_ctx;

/* SetupS (RFC 9180 §5.1): encapsulate to pkR, write enc (AT_HPKE_NENC
 * bytes) and a sending context. params NULL = base mode, empty info.
 * Caller frees *out with at_hpke_ctx_free. */
at_err at_hpke_setup_sender(at_hpke_suite suite, const at_hpke_params *params, const at_hpke_key *pkR,
                            uint8_t enc[AT_HPKE_NENC], at_hpke_ctx **out, at_diag *d) AT_MUST_USE;
/* SetupR: decapsulate enc (attacker-supplied) with skR. AT_E_BAD_FIELD when
 * enc has the wrong length or is a low-order point. Caller frees *out. */
at_err at_hpke_setup_recipient(at_hpke_suite suite, const at_hpke_params *params, const at_hpke_key *skR,
                               at_span enc, at_hpke_ctx **out, at_diag *d) AT_MUST_USE;

/* Seal pt with the next sequence number; appends ct (|pt| + Nt bytes) to
 * out. AT_E_SEQUENCE_OVERFLOW when the sequence number is exhausted. On
 * failure out is unchanged. Sender contexts only. */
at_err at_hpke_seal(at_hpke_ctx *c, at_span aad, at_span pt, at_buf *out, at_diag *d) AT_MUST_USE;
/* Open ct (attacker-supplied) with the next sequence number; appends the
 * plaintext to out only when the tag verifies (AT_E_DECRYPT_FAILED
 * otherwise; the sequence number then stays where it was). Recipients only. */
at_err at_hpke_open(at_hpke_ctx *c, at_span aad, at_span ct, at_buf *out, at_diag *d) AT_MUST_USE;
/* Secret export (RFC 9180 §5.3): L bytes into out (L <= AT_HPKE_MAX_EXPORT). */
at_err at_hpke_export(const at_hpke_ctx *c, at_span exporter_context, size_t L, uint8_t *out,
                      at_diag *d) AT_MUST_USE;
at_hpke_suite at_hpke_ctx_suite(const at_hpke_ctx *c);
uint64_t at_hpke_ctx_seq(const at_hpke_ctx *c);
void at_hpke_ctx_free(at_hpke_ctx *c); /* wipes; accepts NULL */

/* Single-shot (RFC 9180 §6.1): out += enc || ct. */
at_err at_hpke_seal_single(at_hpke_suite suite, const at_hpke_params *params, const at_hpke_key *pkR,
                           at_span aad, at_span pt, at_buf *out, at_diag *d) AT_MUST_USE;
/* Single-shot open of sealed = enc || ct; out += pt. AT_E_TRUNCATED when
 * sealed is shorter than enc plus a tag. */
at_err at_hpke_open_single(at_hpke_suite suite, const at_hpke_params *params, const at_hpke_key *skR,
                           at_span aad, at_span sealed, at_buf *out, at_diag *d) AT_MUST_USE;

/* ---- the suite's primitives, for protocols built on HPKE ----------------
 * (OHTTP derives its response key with these.) */
/* Extract(salt, ikm) -> prk (AT_HPKE_NH bytes). */
at_err at_hpke_kdf_extract(uint16_t kdf, at_span salt, at_span ikm, uint8_t prk[AT_HPKE_NH],
                           at_diag *d) AT_MUST_USE;
/* Expand(prk, info, L) -> out (L <= AT_HPKE_MAX_EXPORT). */
at_err at_hpke_kdf_expand(uint16_t kdf, at_span prk, at_span info, uint8_t *out, size_t L,
                          at_diag *d) AT_MUST_USE;
/* AEAD with an explicit key (Nk) and nonce (Nn); out += ct || tag. */
at_err at_hpke_aead_seal(uint16_t aead, at_span key, at_span nonce, at_span aad, at_span pt, at_buf *out,
                         at_diag *d) AT_MUST_USE;
/* out += pt when the tag verifies, else AT_E_DECRYPT_FAILED, out unchanged. */
at_err at_hpke_aead_open(uint16_t aead, at_span key, at_span nonce, at_span aad, at_span ct, at_buf *out,
                         at_diag *d) AT_MUST_USE;
/* Which implementation runs contexts: "openssl-3.0-primitives" or
 * "openssl-ossl-hpke". */
const char *at_hpke_backend(void);

#endif
