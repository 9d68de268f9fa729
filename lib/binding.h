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
 *   purpose                u8, 1 = session, 2 = evidence (for a relying party)
 *   endpoint kind          u8, 0 = none, 1 = SHA-256 of the endpoint URL
 *   endpoint_sha256        32 bytes, present iff kind = 1
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

typedef enum { AT_PURPOSE_SESSION = 1, AT_PURPOSE_EVIDENCE = 2 } at_purpose;

typedef struct {
    uint8_t version;
    at_purpose purpose;
    bool has_endpoint;
    uint8_t endpoint_sha256[32];
} at_binding;

/* "session", "evidence". */
const char *at_purpose_name(at_purpose p);
bool at_purpose_parse(const char *s, at_purpose *out);

/* Encode a version-1 binding for purpose and endpoint (NULL or "" = none);
 * appended to out. */
at_err at_binding_encode(at_purpose purpose, const char *endpoint, at_buf *out,
                         at_diag *d) AT_MUST_USE;
/* Decode user_data strictly. AT_E_MISSING_FIELD when it is empty,
 * AT_E_BAD_FIELD when it is not a binding this code knows (magic, version,
 * purpose, endpoint kind, length). *out written only on success. */
at_err at_binding_decode(at_span user_data, at_binding *out, at_diag *d) AT_MUST_USE;
/* The one check every relying side makes: user_data must hold a binding
 * for `want`, and its endpoint must be `endpoint` (NULL = none bound).
 * AT_E_PURPOSE_MISMATCH when there is no binding or it is for another
 * purpose; AT_E_ENDPOINT_MISMATCH when the endpoints differ (message names
 * both); AT_E_BAD_FIELD when user_data is a malformed binding. */
at_err at_binding_check(at_span user_data, at_purpose want, const char *endpoint,
                        at_diag *d) AT_MUST_USE;

#endif
