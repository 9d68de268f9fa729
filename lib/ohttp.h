/* ohttp: Oblivious HTTP (RFC 9458) and Chunked Oblivious HTTP
 * (draft-ietf-ohai-chunked-ohttp-08): key configurations, the server's key
 * set and key file, and both ends of an exchange (client: gateway and
 * attestctl; server: the agent). Trust boundary: key configurations from
 * the network, encapsulated requests (anonymous senders) and responses are
 * attacker-supplied; private keys stay in at_hpke_key, derived response
 * keys in wiped memory.
 *
 * Media types: message/ohttp-req and message/ohttp-res carry one
 * Encapsulated Request / Response (RFC 9458 §4):
 *   request  = key_id(1) kem_id(2) kdf_id(2) aead_id(2) enc(32) ct
 *              HPKE info = "message/bhttp request" 0x00 hdr
 *   response = response_nonce(max(Nn,Nk)) ct, key and nonce from
 *              Export("message/bhttp response", max(Nn,Nk)) (RFC 9458 §4.4)
 * message/ohttp-chunked-req and message/ohttp-chunked-res carry the chunked
 * variant: the same header (info "message/bhttp chunked request") or nonce
 * (export label "message/bhttp chunked response"), then chunks
 *   non-final: varint(len(ct)) ct,   ct = Seal("", chunk), chunk non-empty
 *   final:     varint(0) ct,         ct = Seal("final", chunk), to the end
 * Request chunks use the HPKE context's sequence; response chunk i uses
 * nonce XOR i. A stream that ends without the final chunk is AT_E_TRUNCATED;
 * replayed, reordered or altered chunks fail authentication.
 * application/ohttp-keys is a list of key configurations, each with a
 * 2-byte length prefix (RFC 9458 §3.2). */
#ifndef AT_OHTTP_H
#define AT_OHTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bhttp.h"
#include "buf.h"
#include "err.h"
#include "hpke.h"
#include "at_limits.h"

#define AT_OHTTP_MEDIA_REQ "message/ohttp-req"
#define AT_OHTTP_MEDIA_RES "message/ohttp-res"
#define AT_OHTTP_MEDIA_CHUNKED_REQ "message/ohttp-chunked-req"
#define AT_OHTTP_MEDIA_CHUNKED_RES "message/ohttp-chunked-res"
#define AT_OHTTP_MEDIA_KEYS "application/ohttp-keys"

/* ---- key configurations (RFC 9458 §3) ---------------------------------- */

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
at_err at_ohttp_key_config_encode(const at_ohttp_key_config *kc, at_buf *out,
                                  at_diag *d) AT_MUST_USE;
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
at_err at_ohttp_key_config_suite(const at_ohttp_key_config *kc, at_hpke_suite *out,
                                 at_diag *d) AT_MUST_USE;

/* ---- server key set ---------------------------------------------------------
 * Several X25519 keys by key id. Key file (text, secret, written mode 0600):
 *
 *   # comment lines and blank lines are ignored
 *   attest-ohttp-keys v1
 *   key <key_id 0..255> x25519 <private key, 64 hex> <kdf>:<aead>[,<kdf>:<aead>]...
 *
 * kdf and aead are 4 hex digits each, e.g. 0001:0001,0001:0002,0001:0003. */
typedef struct at_ohttp_keyset at_ohttp_keyset;

/* An empty set. Caller frees with at_ohttp_keyset_free. */
at_err at_ohttp_keyset_new(at_ohttp_keyset **out, at_diag *d) AT_MUST_USE;
/* A fresh key under key_id offering HKDF-SHA256 with AES-128-GCM,
 * AES-256-GCM and ChaCha20-Poly1305. AT_E_CONFLICT when the id is taken. */
at_err at_ohttp_keyset_generate(at_ohttp_keyset *ks, uint8_t key_id, at_diag *d) AT_MUST_USE;
/* A key from its serialized private key, offering syms (NULL/0 = the
 * default three). The secret is copied into the key. */
at_err at_ohttp_keyset_add_private(at_ohttp_keyset *ks, uint8_t key_id, at_span sk,
                                   const at_ohttp_sym *syms, size_t nsym,
                                   at_diag *d) AT_MUST_USE;
size_t at_ohttp_keyset_count(const at_ohttp_keyset *ks);
/* Key id of the i-th key (insertion order). */
uint8_t at_ohttp_keyset_id(const at_ohttp_keyset *ks, size_t i);
/* The configuration of one key (AT_E_UNKNOWN_KEY_ID when absent). */
at_err at_ohttp_keyset_config(const at_ohttp_keyset *ks, uint8_t key_id,
                              at_ohttp_key_config *out, at_diag *d) AT_MUST_USE;
/* Every key's configuration in application/ohttp-keys form, appended. */
at_err at_ohttp_keyset_keys(const at_ohttp_keyset *ks, at_buf *out, at_diag *d) AT_MUST_USE;
/* Key file text. parse reads attacker-influenced text strictly; serialize
 * appends to out, which should be a secret buffer. */
at_err at_ohttp_keyset_parse(at_span text, at_ohttp_keyset **out, at_diag *d) AT_MUST_USE;
at_err at_ohttp_keyset_serialize(const at_ohttp_keyset *ks, at_buf *out, at_diag *d) AT_MUST_USE;
/* Files: load refuses files over AT_MAX_OHTTP_KEYFILE; save creates or
 * replaces path with mode 0600 (never following a symlink). */
at_err at_ohttp_keyset_load(const char *path, at_ohttp_keyset **out, at_diag *d) AT_MUST_USE;
at_err at_ohttp_keyset_save(const at_ohttp_keyset *ks, const char *path, at_diag *d) AT_MUST_USE;
void at_ohttp_keyset_free(at_ohttp_keyset *ks); /* wipes; accepts NULL */
/* The HPKE key pair under key_id (borrowed from the set), NULL when absent.
 * For values sealed to the attested key outside OHTTP (session keys,
 * released secrets: lib/seal.h). */
const at_hpke_key *at_ohttp_keyset_key(const at_ohttp_keyset *ks, uint8_t key_id);

/* ---- client side (gateway, attestctl) ----------------------------------------
 * One exchange: encapsulate a request to a key configuration, then open the
 * answer with the same object. */
typedef struct at_ohttp_client at_ohttp_client;

/* suite NULL = at_ohttp_key_config_suite(kc); a given suite must be listed
 * in kc. chunked selects the chunked media types. Caller frees. */
at_err at_ohttp_client_new(const at_ohttp_key_config *kc, const at_hpke_suite *suite,
                           bool chunked, at_ohttp_client **out, at_diag *d) AT_MUST_USE;
/* TESTS ONLY: a fixed ephemeral private key skE (RFC 9458 Appendix A and
 * the chunked draft's example publish it). Never for real traffic. */
at_err at_ohttp_client_new_det(const at_ohttp_key_config *kc, const at_hpke_suite *suite,
                               bool chunked, at_span skE, at_ohttp_client **out,
                               at_diag *d) AT_MUST_USE;
/* Non-chunked: the whole Encapsulated Request for bhttp, appended; once. */
at_err at_ohttp_client_seal_request(at_ohttp_client *c, at_span bhttp, at_buf *out,
                                    at_diag *d) AT_MUST_USE;
/* Non-chunked: open a whole Encapsulated Response; plaintext appended. */
at_err at_ohttp_client_open_response(at_ohttp_client *c, at_span body, at_buf *out,
                                     at_diag *d) AT_MUST_USE;
/* Chunked request: seal the next piece (the first call also writes the
 * header). Pieces over AT_OHTTP_SEND_CHUNK are split; a non-final piece must
 * be non-empty; final ends the request (AAD "final"). */
at_err at_ohttp_client_seal_chunk(at_ohttp_client *c, at_span piece, bool final, at_buf *out,
                                  at_diag *d) AT_MUST_USE;
/* Chunked response: feed bytes as they arrive; the plaintext of every
 * chunk completed by them is appended to out. */
at_err at_ohttp_client_feed(at_ohttp_client *c, at_span in, at_buf *out,
                            at_diag *d) AT_MUST_USE;
/* End of the response stream: opens the final chunk (appended to out).
 * AT_E_TRUNCATED when the final chunk never came. */
at_err at_ohttp_client_finish(at_ohttp_client *c, at_buf *out, at_diag *d) AT_MUST_USE;
/* The suite in use. */
at_hpke_suite at_ohttp_client_suite(const at_ohttp_client *c);
void at_ohttp_client_free(at_ohttp_client *c); /* wipes; accepts NULL */

/* ---- server side (the agent) ------------------------------------------------
 * Built for an HTTP handler: request body bytes in, (request, response
 * context) out; response bytes in, sealed body out; or the same chunk by
 * chunk. The key set is borrowed and must outlive the exchange. */
typedef struct at_ohttp_server at_ohttp_server;

/* Non-chunked: open a whole message/ohttp-req body; the Binary HTTP request
 * bytes are appended to out. Errors: AT_E_TRUNCATED (short header, enc or
 * ciphertext), AT_E_UNKNOWN_KEY_ID, AT_E_UNSUPPORTED_SUITE (not offered for
 * that key), AT_E_DECRYPT_FAILED, AT_E_TOO_LARGE. Caller frees *srv. */
at_err at_ohttp_server_open_request(const at_ohttp_keyset *ks, at_span body, at_buf *out,
                                    at_ohttp_server **srv, at_diag *d) AT_MUST_USE;
/* The same, decoding the Binary HTTP request too. Caller frees both. */
at_err at_ohttp_server_open_bhttp(const at_ohttp_keyset *ks, at_span body,
                                  at_bhttp_msg **req, at_ohttp_server **srv,
                                  at_diag *d) AT_MUST_USE;
/* Non-chunked: seal the Binary HTTP response; message/ohttp-res appended. */
at_err at_ohttp_server_seal_response(at_ohttp_server *s, at_span bhttp, at_buf *out,
                                     at_diag *d) AT_MUST_USE;
/* Chunked: an exchange whose header has not arrived yet. Caller frees. */
at_err at_ohttp_server_new_chunked(const at_ohttp_keyset *ks, at_ohttp_server **out,
                                   at_diag *d) AT_MUST_USE;
/* Chunked request: feed body bytes as they arrive (header first); the
 * plaintext of every completed chunk is appended to out. */
at_err at_ohttp_server_feed(at_ohttp_server *s, at_span in, at_buf *out,
                            at_diag *d) AT_MUST_USE;
/* End of the request body: opens the final chunk into out; AT_E_TRUNCATED
 * when it never came. */
at_err at_ohttp_server_finish(at_ohttp_server *s, at_buf *out, at_diag *d) AT_MUST_USE;
/* True once the request's header has been read (a response may start). */
bool at_ohttp_server_ready(const at_ohttp_server *s);
/* Chunked response: seal the next piece (the first call writes the response
 * nonce); same splitting and final rules as the client. */
at_err at_ohttp_server_seal_chunk(at_ohttp_server *s, at_span piece, bool final, at_buf *out,
                                  at_diag *d) AT_MUST_USE;
/* TESTS ONLY: use this response nonce (max(Nn, Nk) bytes) instead of a
 * random one; before the response's first byte. */
at_err at_ohttp_server_set_nonce_for_tests(at_ohttp_server *s, at_span nonce,
                                           at_diag *d) AT_MUST_USE;
/* The key id and suite the request used. */
uint8_t at_ohttp_server_key_id(const at_ohttp_server *s);
at_hpke_suite at_ohttp_server_suite(const at_ohttp_server *s);
void at_ohttp_server_free(at_ohttp_server *s); /* wipes; accepts NULL */

#endif
