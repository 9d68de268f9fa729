/* ohttp_server: the server end of one Oblivious HTTP exchange (the agent).
 * Encapsulated requests come from anonymous senders; the key set's private
 * keys are borrowed, derived response keys live in wiped memory. */
#ifndef AT_OHTTP_SERVER_H
#define AT_OHTTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "bhttp.h"
#include "buf.h"
#include "err.h"
#include "hpke.h"
#include "ohttp_keyset.h"

/* Built for an HTTP handler: request body bytes in, (request, response
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
at_err at_ohttp_server_open_bhttp(const at_ohttp_keyset *ks, at_span body, at_bhttp_msg **req,
                                  at_ohttp_server **srv, at_diag *d) AT_MUST_USE;
/* Non-chunked: seal the Binary HTTP response; message/ohttp-res appended. */
at_err at_ohttp_server_seal_response(at_ohttp_server *s, at_span bhttp, at_buf *out, at_diag *d) AT_MUST_USE;
/* Chunked: an exchange whose header has not arrived yet. Caller frees. */
at_err at_ohttp_server_new_chunked(const at_ohttp_keyset *ks, at_ohttp_server **out, at_diag *d) AT_MUST_USE;
/* Chunked request: feed body bytes as they arrive (header first); the
 * plaintext of every completed chunk is appended to out. */
at_err at_ohttp_server_feed(at_ohttp_server *s, at_span in, at_buf *out, at_diag *d) AT_MUST_USE;
/* End of the request body: opens the final chunk into out; AT_E_TRUNCATED
 * when it never came. */
at_err at_ohttp_server_finish(at_ohttp_server *s, at_buf *out, at_diag *d) AT_MUST_USE;
/* True once the request's header has been read (a response may start). */
bool at_ohttp_server_ready(const at_ohttp_server *s);
/* Chunked response: seal the next piece (the first call writes the response
 * nonce); same splitting and final rules as the client. */
at_err at_ohttp_server_seal_chunk(at_ohttp_server *s, at_span piece, bool final, at_buf *out,
                                  at_diag *d) AT_MUST_USE;
/* The request's header and HPKE enc (RFC 9458 section 4.3: key id, KEM,
 * KDF, AEAD, enc; 7 + 32 bytes), borrowed from s; AT_SPAN_NULL until
 * ready. A replayed request carries the same bytes (the agent's replay
 * memory keys on them). */
at_span at_ohttp_server_encapsulation(const at_ohttp_server *s);
/* The key id and suite the request used. */
uint8_t at_ohttp_server_key_id(const at_ohttp_server *s);
at_hpke_suite at_ohttp_server_suite(const at_ohttp_server *s);
void at_ohttp_server_free(at_ohttp_server *s); /* wipes; accepts NULL */

#endif
