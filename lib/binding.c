/* binding: encoder and strict decoder of the document binding (what a
 * document is for and which endpoint it serves) in user_data, and the one
 * check the verifier, attestctl and the gateway make on it. user_data is
 * signed but its layout is attacker-chosen until this code accepts it. */
#include <openssl/crypto.h>
#include <string.h>

#include "binding.h"
#include "enc.h"
#include "hash.h"

const char *at_purpose_name(at_purpose p)
{
    switch (p) {
    case AT_PURPOSE_SESSION:
        return "session";
    case AT_PURPOSE_EVIDENCE:
        return "evidence";
    case AT_PURPOSE_PEER:
        return "peer";
    }
    return "unknown";
}

bool at_purpose_parse(const char *s, at_purpose *out)
{
    if (strcmp(s, "session") == 0)
        *out = AT_PURPOSE_SESSION;
    else if (strcmp(s, "evidence") == 0)
        *out = AT_PURPOSE_EVIDENCE;
    else
        return false;
    return true;
}

static bool endpoint_hash(const char *endpoint, uint8_t out[32])
{
    return at_sha256(AT_SPAN(endpoint, strlen(endpoint)), out, NULL) == AT_OK;
}

at_err at_binding_encode(at_purpose purpose, const char *endpoint, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t h[32];
    bool has_ep = endpoint && endpoint[0];
    AT_ENSURE(purpose == AT_PURPOSE_SESSION || purpose == AT_PURPOSE_EVIDENCE, d, AT_E_BAD_REQUEST,
              "binding: purpose %d cannot be encoded with an endpoint", (int)purpose);
    AT_ENSURE(!has_ep || endpoint_hash(endpoint, h), d, AT_E_INTERNAL, "binding: SHA-256 failed");
    AT_TRY(at_buf_append(out, AT_BINDING_MAGIC, 3));
    AT_TRY(at_buf_u8(out, AT_BINDING_VERSION));
    AT_TRY(at_buf_u8(out, (uint8_t)purpose));
    AT_TRY(at_buf_u8(out, has_ep ? 1 : 0));
    if (has_ep)
        AT_TRY(at_buf_append(out, h, sizeof h));
    rc = AT_OK;
out:
    return rc;
}

at_err at_binding_decode(at_span ud, at_binding *out, at_diag *d)
{
    at_reader r;
    at_span magic, h = AT_SPAN_NULL;
    uint8_t version, purpose, kind;
    if (ud.len == 0)
        return at_fail(d, AT_E_MISSING_FIELD, "user_data: no document binding (absent or empty)");
    at_reader_init(&r, ud.p, ud.len);
    if (!at_reader_take(&r, 3, &magic) || memcmp(magic.p, AT_BINDING_MAGIC, 3) != 0)
        return at_fail(d, AT_E_BAD_FIELD,
                       "user_data: not a document binding (expected magic \"ATB\", %zu bytes of other data)",
                       ud.len);
    if (!at_reader_u8(&r, &version) || version != AT_BINDING_VERSION)
        return at_fail(d, AT_E_BAD_FIELD, "user_data: binding version %s%u, expected %d",
                       ud.len < 4 ? "(missing) " : "", ud.len < 4 ? 0u : (unsigned)version,
                       AT_BINDING_VERSION);
    if (!at_reader_u8(&r, &purpose) ||
        (purpose != AT_PURPOSE_SESSION && purpose != AT_PURPOSE_EVIDENCE && purpose != AT_PURPOSE_PEER))
        return at_fail(d, AT_E_BAD_FIELD,
                       "user_data: binding purpose %d, expected 1 (session), 2 (evidence) or 3 (peer)",
                       ud.len < 5 ? -1 : (int)purpose);
    if (!at_reader_u8(&r, &kind) || kind > 2)
        return at_fail(
            d, AT_E_BAD_FIELD,
            "user_data: binding endpoint kind %d, expected 0 (none), 1 (SHA-256) or 2 (transcript)",
            ud.len < 6 ? -1 : (int)kind);
    if ((kind == 2) != (purpose == AT_PURPOSE_PEER))
        return at_fail(d, AT_E_BAD_FIELD,
                       "user_data: binding kind %d with purpose %d, a transcript (kind 2) goes with purpose "
                       "3 (peer) only",
                       (int)kind, (int)purpose);
    if (kind != 0 && !at_reader_take(&r, 32, &h))
        return at_fail(d, AT_E_BAD_FIELD, "user_data: binding endpoint hash of %zu bytes, expected 32",
                       at_reader_left(&r));
    if (!at_reader_at_end(&r))
        return at_fail(d, AT_E_BAD_FIELD, "user_data: %zu bytes after the binding, expected none",
                       at_reader_left(&r));
    out->version = version;
    out->purpose = (at_purpose)purpose;
    out->has_endpoint = kind == 1;
    out->has_transcript = kind == 2;
    memset(out->endpoint_sha256, 0, sizeof out->endpoint_sha256);
    memset(out->transcript_sha256, 0, sizeof out->transcript_sha256);
    if (kind == 1)
        memcpy(out->endpoint_sha256, h.p, 32);
    if (kind == 2)
        memcpy(out->transcript_sha256, h.p, 32);
    return AT_OK;
}

at_err at_binding_encode_peer(const uint8_t th[32], at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    AT_ENSURE(th != NULL, d, AT_E_BAD_REQUEST, "binding: peer needs a transcript hash");
    AT_TRY(at_buf_append(out, AT_BINDING_MAGIC, 3));
    AT_TRY(at_buf_u8(out, AT_BINDING_VERSION));
    AT_TRY(at_buf_u8(out, (uint8_t)AT_PURPOSE_PEER));
    AT_TRY(at_buf_u8(out, 2));
    AT_TRY(at_buf_append(out, th, 32));
    rc = AT_OK;
out:
    return rc;
}

at_err at_binding_check_peer(at_span ud, const uint8_t th[32], at_diag *d)
{
    at_binding b;
    at_err rc = at_binding_decode(ud, &b, d);
    if (rc == AT_E_MISSING_FIELD)
        return at_fail(d, AT_E_PURPOSE_MISMATCH,
                       "user_data: the document binds no purpose, expected purpose peer");
    if (rc != AT_OK)
        return rc;
    if (b.purpose != AT_PURPOSE_PEER)
        return at_fail(d, AT_E_PURPOSE_MISMATCH,
                       "user_data: the document is bound to purpose %s, expected peer",
                       at_purpose_name(b.purpose));
    if (CRYPTO_memcmp(b.transcript_sha256, th, 32) != 0) {
        char got[65], want[65];
        at_hex_encode(b.transcript_sha256, 32, got);
        at_hex_encode(th, 32, want);
        return at_fail(d, AT_E_TRANSCRIPT_MISMATCH,
                       "user_data: the document binds transcript sha256 %s, this handshake's is %s", got,
                       want);
    }
    return AT_OK;
}

at_err at_binding_check(at_span ud, at_purpose want, const char *endpoint, at_diag *d)
{
    at_binding b;
    at_err rc = at_binding_decode(ud, &b, d);
    if (rc == AT_E_MISSING_FIELD)
        return at_fail(d, AT_E_PURPOSE_MISMATCH,
                       "user_data: the document binds no purpose, expected purpose %s",
                       at_purpose_name(want));
    if (rc != AT_OK)
        return rc;
    if (b.purpose != want)
        return at_fail(d, AT_E_PURPOSE_MISMATCH,
                       "user_data: the document is bound to purpose %s, expected %s",
                       at_purpose_name(b.purpose), at_purpose_name(want));
    bool want_ep = endpoint && endpoint[0];
    char got_hex[65] = "none", want_hex[65] = "none";
    if (b.has_endpoint)
        at_hex_encode(b.endpoint_sha256, 32, got_hex);
    uint8_t h[32];
    if (want_ep) {
        if (!endpoint_hash(endpoint, h))
            return at_fail(d, AT_E_INTERNAL, "binding: SHA-256 failed");
        at_hex_encode(h, 32, want_hex);
    }
    if (b.has_endpoint != want_ep || (want_ep && CRYPTO_memcmp(h, b.endpoint_sha256, 32) != 0))
        return at_fail(d, AT_E_ENDPOINT_MISMATCH,
                       "endpoint: the document binds %s%s, the request names %.200s%s%s%s",
                       b.has_endpoint ? "endpoint sha256 " : "no endpoint", b.has_endpoint ? got_hex : "",
                       want_ep ? endpoint : "no endpoint", want_ep ? " (sha256 " : "",
                       want_ep ? want_hex : "", want_ep ? ")" : "");
    return AT_OK;
}
