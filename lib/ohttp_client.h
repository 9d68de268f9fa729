/* ohttp_client: the client end of one Oblivious HTTP exchange (RFC 9458
 * and the chunked draft), used by the gateway and attestctl. Responses are
 * attacker-supplied; derived response keys live in wiped memory. */
#ifndef AT_OHTTP_CLIENT_H
#define AT_OHTTP_CLIENT_H

#include <stdbool.h>

#include "buf.h"
#include "err.h"
#include "hpke.h"
#include "ohttp_config.h"

/* One exchange: encapsulate a request to a key configuration, then open the
 * answer with the same object. */
typedef struct at_ohttp_client at_ohttp_client;

/* suite NULL = at_ohttp_key_config_suite(kc); a given suite must be listed
 * in kc. chunked selects the chunked media types. Caller frees. */
at_err at_ohttp_client_new(const at_ohttp_key_config *kc, const at_hpke_suite *suite, bool chunked,
                           at_ohttp_client **out, at_diag *d) AT_MUST_USE;
/* Non-chunked: the whole Encapsulated Request for bhttp, appended; once. */
at_err at_ohttp_client_seal_request(at_ohttp_client *c, at_span bhttp, at_buf *out, at_diag *d) AT_MUST_USE;
/* Non-chunked: open a whole Encapsulated Response; plaintext appended. */
at_err at_ohttp_client_open_response(at_ohttp_client *c, at_span body, at_buf *out, at_diag *d) AT_MUST_USE;
/* Chunked request: seal the next piece (the first call also writes the
 * header). Pieces over AT_OHTTP_SEND_CHUNK are split; a non-final piece must
 * be non-empty; final ends the request (AAD "final"). */
at_err at_ohttp_client_seal_chunk(at_ohttp_client *c, at_span piece, bool final, at_buf *out,
                                  at_diag *d) AT_MUST_USE;
/* Chunked response: feed bytes as they arrive; the plaintext of every
 * chunk completed by them is appended to out. */
at_err at_ohttp_client_feed(at_ohttp_client *c, at_span in, at_buf *out, at_diag *d) AT_MUST_USE;
/* End of the response stream: opens the final chunk (appended to out).
 * AT_E_TRUNCATED when the final chunk never came. */
at_err at_ohttp_client_finish(at_ohttp_client *c, at_buf *out, at_diag *d) AT_MUST_USE;
/* The suite in use. */
at_hpke_suite at_ohttp_client_suite(const at_ohttp_client *c);
void at_ohttp_client_free(at_ohttp_client *c); /* wipes; accepts NULL */

#endif
