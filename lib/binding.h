/* binding: what an attestation document vouches for, carried in its signed
 * user_data. A document only vouches for what it signs: the agent states in
 * it what the document is for (a session with the verifier, or evidence for
 * a relying party) and which endpoint it serves, so that a document minted
 * for one purpose or endpoint cannot be presented for another.
 *
 * Wire format, version 1 (6 or 38 bytes, nothing else; documented in
 * README "Document binding"):
 *   "ATB"                  3 bytes, magic
 *   version                u8, 1
 *   purpose                u8, 1 = session, 2 = evidence (for a relying party),
 *                          3 = peer (a mutual attestation handshake, lib/peer)
 *   endpoint kind          u8, 0 = none, 1 = SHA-256 of the endpoint URL,
 *                          2 = SHA-256 handshake transcript (purpose peer only)
 *   endpoint_sha256        32 bytes, present iff kind = 1 or 2
 * Purpose peer always carries kind 2 and kind 2 only comes with purpose peer.
 * The endpoint is hashed exactly as written (no normalisation): the URL the
 * agent advertises is the URL the verifier records and gateways connect to.
 * Trust boundary: user_data comes from a document whose signature has been
 * checked, but its layout is still parsed strictly (any other length,
 * version or value is refused). */
#ifndef AT_BINDING_H
#define AT_BINDING_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define AT_BINDING_VERSION 1
#define AT_BINDING_MAGIC "ATB"
#define AT_BINDING_LEN_NO_ENDPOINT 6
#define AT_BINDING_LEN_ENDPOINT 38

typedef enum { AT_PURPOSE_SESSION = 1, AT_PURPOSE_EVIDENCE = 2, AT_PURPOSE_PEER = 3 } at_purpose;

typedef struct {
    uint8_t version;
    at_purpose purpose;
    bool has_endpoint;
    uint8_t endpoint_sha256[32];
    bool has_transcript; /* purpose peer: kind 2 */
    uint8_t transcript_sha256[32];
} at_binding;

/* "session", "evidence", "peer" (at_purpose_parse knows only the first two:
 * a peer binding is made by lib/peer, never chosen on a command line). */
const char *at_purpose_name(at_purpose p);
bool at_purpose_parse(const char *s, at_purpose *out);

/* Encode a version-1 binding for purpose and endpoint (NULL or "" = none);
 * appended to out. Purpose peer: AT_E_BAD_REQUEST (use at_binding_encode_peer). */
at_err at_binding_encode(at_purpose purpose, const char *endpoint, at_buf *out, at_diag *d) AT_MUST_USE;
/* Decode user_data strictly. AT_E_MISSING_FIELD when it is empty,
 * AT_E_BAD_FIELD when it is not a binding this code knows (magic, version,
 * purpose, endpoint kind, length). *out written only on success. */
at_err at_binding_decode(at_span user_data, at_binding *out, at_diag *d) AT_MUST_USE;
/* The one check every relying side makes: user_data must hold a binding
 * for `want`, and its endpoint must be `endpoint` (NULL = none bound).
 * AT_E_PURPOSE_MISMATCH when there is no binding or it is for another
 * purpose; AT_E_ENDPOINT_MISMATCH when the endpoints differ (message names
 * both); AT_E_BAD_FIELD when user_data is a malformed binding. */
at_err at_binding_check(at_span user_data, at_purpose want, const char *endpoint, at_diag *d) AT_MUST_USE;

/* The binding a peer handshake document carries: purpose peer, kind 2,
 * the transcript hash the document vouches for. Appended to out. */
at_err at_binding_encode_peer(const uint8_t transcript_sha256[32], at_buf *out, at_diag *d) AT_MUST_USE;
/* user_data must bind purpose peer and exactly this transcript hash:
 * AT_E_PURPOSE_MISMATCH (no binding or another purpose),
 * AT_E_TRANSCRIPT_MISMATCH (message names both hashes), AT_E_BAD_FIELD. */
at_err at_binding_check_peer(at_span user_data, const uint8_t transcript_sha256[32], at_diag *d) AT_MUST_USE;

#endif
