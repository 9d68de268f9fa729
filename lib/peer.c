/* peer: the mutual attestation handshake state machine, its key schedule
 * and the record layer (docs/mutual-attestation.md). Parses attacker-
 * supplied handshake messages and records; the peer's document goes
 * through lib/evidence and lib/binding before any key is derived. */
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "enc.h"
#include "evidence.h"
#include "peer.h"

#define LABEL_RESPONDER "attest peer v1 responder"
#define LABEL_INITIATOR "attest peer v1 initiator"
#define LABEL_KEYS "attest peer v1 keys"

typedef enum {
    ST_NEW,
    ST_AWAIT_RESPONSE,
    ST_AWAIT_HELLO,
    ST_AWAIT_FINISH,
    ST_AWAIT_CONFIRM,
    ST_ESTABLISHED,
    ST_CLOSED,
    ST_REFUSED
} state;

struct at_peer {
    at_peer_opts o;
    state st;
    at_err refusal;
    bool by_peer;
    EVP_PKEY *eph; /* our ephemeral X25519 key */
    uint8_t my_pk[AT_PEER_KEY_LEN], peer_pk[AT_PEER_KEY_LEN];
    uint8_t my_nonce[AT_PEER_NONCE_LEN], peer_nonce[AT_PEER_NONCE_LEN];
    at_buf m1, m2; /* transcript so far */
    at_peer_keys keys;
    bool have_keys;
    uint64_t send_seq, recv_seq;
    json_t *info;
};

/* ---- key schedule ---- */

static at_err hkdf(int mode, at_span salt, at_span ikm, const char *info, uint8_t *out, size_t n, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM ps[6], *q = ps;
    AT_ENSURE(c != NULL, d, AT_E_INTERNAL, "peer: HKDF unavailable");
    *q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    *q++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    if (mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY)
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt.p, salt.len);
    else
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
    *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm.p, ikm.len);
    *q = OSSL_PARAM_construct_end();
    AT_OSSL(EVP_KDF_derive(c, out, n, ps), d);
    rc = AT_OK;
out:
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(kdf);
    return rc;
}

at_err at_peer_key_schedule(at_span ss, const uint8_t th[32], at_peer_keys *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t prk[32];
    at_peer_keys k;
    AT_TRY(hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, AT_SPAN(th, 32), ss, NULL, prk, sizeof prk, d));
    at_span p = AT_SPAN(prk, sizeof prk);
    int e = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    AT_TRY(hkdf(e, AT_SPAN_NULL, p, "attest peer v1 a->b", k.key_ab, sizeof k.key_ab, d));
    AT_TRY(hkdf(e, AT_SPAN_NULL, p, "attest peer v1 b->a", k.key_ba, sizeof k.key_ba, d));
    AT_TRY(hkdf(e, AT_SPAN_NULL, p, "attest peer v1 a->b iv", k.iv_ab, sizeof k.iv_ab, d));
    AT_TRY(hkdf(e, AT_SPAN_NULL, p, "attest peer v1 b->a iv", k.iv_ba, sizeof k.iv_ba, d));
    AT_TRY(hkdf(e, AT_SPAN_NULL, p, "attest peer v1 exporter", k.exporter, sizeof k.exporter, d));
    AT_TRY(hkdf(e, AT_SPAN_NULL, p, "attest peer v1 confirm", k.confirm, sizeof k.confirm, d));
    memcpy(out, &k, sizeof k);
    rc = AT_OK;
out:
    at_wipe(prk, sizeof prk);
    at_wipe(&k, sizeof k);
    return rc;
}

/* ---- state ---- */

at_err at_peer_new(const at_peer_opts *o, at_peer **out, at_diag *d)
{
    if (!o ||
        (o->prover ? !o->prover->prove || !o->prover->check : !o->attester || !o->trust || !o->peer_policy))
        return at_fail(d, AT_E_BAD_REQUEST,
                       "peer: an attester, trusted roots and a peer policy (or a "
                       "prover) are required");
    if (o->role != AT_PEER_INITIATOR && o->role != AT_PEER_RESPONDER)
        return at_fail(d, AT_E_BAD_REQUEST, "peer: unknown role %d", (int)o->role);
    at_peer *p = calloc(1, sizeof *p);
    if (!p)
        return at_fail(d, AT_E_INTERNAL, "peer: out of memory");
    p->o = *o;
    p->st = o->role == AT_PEER_INITIATOR ? ST_NEW : ST_AWAIT_HELLO;
    at_buf_init(&p->m1);
    at_buf_init(&p->m2);
    *out = p;
    return AT_OK;
}

at_err at_peer_new_established(at_peer_role role, const at_peer_keys *k, at_peer **out, at_diag *d)
{
    at_peer *p = calloc(1, sizeof *p);
    if (!p)
        return at_fail(d, AT_E_INTERNAL, "peer: out of memory");
    p->o.role = role;
    p->st = ST_ESTABLISHED;
    memcpy(&p->keys, k, sizeof p->keys);
    p->have_keys = true;
    at_buf_init(&p->m1);
    at_buf_init(&p->m2);
    *out = p;
    return AT_OK;
}

static void wipe_keys(at_peer *p)
{
    at_wipe(&p->keys, sizeof p->keys);
    p->have_keys = false;
    EVP_PKEY_free(p->eph);
    p->eph = NULL;
}

void at_peer_free(at_peer *p)
{
    if (!p)
        return;
    wipe_keys(p);
    at_buf_cleanup(&p->m1);
    at_buf_cleanup(&p->m2);
    json_decref(p->info);
    at_wipe(p, sizeof *p);
    free(p);
}

/* Every refusal goes through here: no key survives it. */
static at_err refuse(at_peer *p, at_err rc)
{
    wipe_keys(p);
    json_decref(p->info);
    p->info = NULL;
    p->st = ST_REFUSED;
    p->refusal = rc;
    return rc;
}

bool at_peer_established(const at_peer *p) { return p && p->st == ST_ESTABLISHED && p->have_keys; }

bool at_peer_refused_by_peer(const at_peer *p) { return p && p->st == ST_REFUSED && p->by_peer; }

static at_err make_ephemeral(at_peer *p, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    size_t n = AT_PEER_KEY_LEN;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
    AT_ENSURE(c != NULL, d, AT_E_INTERNAL, "peer: X25519 unavailable");
    AT_OSSL(EVP_PKEY_keygen_init(c), d);
    AT_OSSL(EVP_PKEY_keygen(c, &p->eph), d);
    AT_OSSL(EVP_PKEY_get_raw_public_key(p->eph, p->my_pk, &n), d);
    AT_OSSL(RAND_bytes(p->my_nonce, sizeof p->my_nonce), d);
    rc = AT_OK;
out:
    EVP_PKEY_CTX_free(c);
    return rc;
}

static at_err x25519(at_peer *p, uint8_t ss[32], at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    size_t n = 32;
    static const uint8_t zero[32];
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, p->peer_pk, 32);
    EVP_PKEY_CTX *c = peer ? EVP_PKEY_CTX_new(p->eph, NULL) : NULL;
    AT_ENSURE(peer != NULL, d, AT_E_BAD_FIELD, "public key: not an X25519 key");
    AT_ENSURE(c != NULL, d, AT_E_INTERNAL, "peer: out of memory");
    AT_OSSL(EVP_PKEY_derive_init(c), d);
    AT_OSSL(EVP_PKEY_derive_set_peer(c, peer), d);
    AT_ENSURE(EVP_PKEY_derive(c, ss, &n) == 1 && n == 32, d, AT_E_BAD_FIELD,
              "public key: X25519 with the peer's key failed (low-order point)");
    /* RFC 7748 §6.1: an all-zero output means a low-order point. */
    AT_ENSURE(CRYPTO_memcmp(ss, zero, 32) != 0, d, AT_E_BAD_FIELD,
              "public key: the peer's X25519 key is a low-order point");
    rc = AT_OK;
out:
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(peer);
    return rc;
}

/* SHA-256(label || for each message: u32 length || message). */
static at_err transcript(const char *label, const at_span *msgs, size_t n, uint8_t out[32], at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    unsigned int len = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    AT_ENSURE(c != NULL, d, AT_E_INTERNAL, "peer: out of memory");
    AT_OSSL(EVP_DigestInit_ex(c, EVP_sha256(), NULL), d);
    AT_OSSL(EVP_DigestUpdate(c, label, strlen(label)), d);
    for (size_t i = 0; i < n; i++) {
        uint8_t l[4] = {(uint8_t)(msgs[i].len >> 24), (uint8_t)(msgs[i].len >> 16),
                        (uint8_t)(msgs[i].len >> 8), (uint8_t)msgs[i].len};
        AT_OSSL(EVP_DigestUpdate(c, l, 4), d);
        if (msgs[i].len)
            AT_OSSL(EVP_DigestUpdate(c, msgs[i].p, msgs[i].len), d);
    }
    AT_OSSL(EVP_DigestFinal_ex(c, out, &len), d);
    rc = AT_OK;
out:
    EVP_MD_CTX_free(c);
    return rc;
}

/* Our document: nonce = the peer's nonce, public_key = our ephemeral key,
 * user_data = binding(peer, th). */
static at_err my_document(at_peer *p, const uint8_t th[32], at_buf *doc, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_buf ud;
    at_buf_init(&ud);
    if (p->o.prover) {
        rc = p->o.prover->prove(p->o.prover->ctx, th, p->info, doc, d);
        goto out;
    }
    AT_TRY(at_binding_encode_peer(th, &ud, d));
    AT_TRY(at_attester_document(p->o.attester, AT_SPAN(p->peer_nonce, AT_PEER_NONCE_LEN), at_buf_span(&ud),
                                AT_SPAN(p->my_pk, AT_PEER_KEY_LEN), doc, d));
    rc = AT_OK;
out:
    at_buf_cleanup(&ud);
    return rc;
}

static json_t *info_json(const at_peer *p, const at_nitro_payload *pl)
{
    json_t *o = json_object();
    uint8_t h[32];
    char hex[65] = "";
    if (!o)
        return NULL;
    json_object_set_new(o, "format", json_string(at_format_name(pl->format)));
    json_object_set_new(o, "module_id", json_string(pl->module_id));
    json_object_set_new(o, "timestamp_ms", json_integer((json_int_t)pl->timestamp_ms));
    json_object_set_new(o, "pcrs", at_nitro_pcrs_json(pl));
    if (at_policy_sha256(p->o.peer_policy, h) == AT_OK)
        at_hex_encode(h, 32, hex);
    json_object_set_new(o, "policy_sha256", json_string(hex));
    return o;
}

/* The peer's document, checked in full against the handshake so far. */
static at_err check_document(at_peer *p, at_span doc, const uint8_t th[32], at_diag *d)
{
    if (p->o.prover) {
        json_t *info = NULL;
        at_err prc = p->o.prover->check(p->o.prover->ctx, doc, th, &info, d);
        if (prc == AT_OK && !info)
            prc = at_fail(d, AT_E_INTERNAL, "peer: the prover named no peer");
        if (prc == AT_OK)
            p->info = info;
        else
            json_decref(info);
        return prc;
    }
    at_evidence ev;
    at_verify_opts vo = {
        .check_nonce = true, .nonce = AT_SPAN(p->my_nonce, AT_PEER_NONCE_LEN), .policy = p->o.peer_policy};
    if (p->o.at_ms > 0) {
        vo.time_mode = AT_TIME_GIVEN;
        vo.at_ms = p->o.at_ms;
    }
    at_err rc = at_evidence_verify(p->o.trust, doc, &vo, &ev);
    const at_nitro_payload *pl = &ev.payload;
    /* Our own document sent back names our own key: say so before what
     * else is wrong with it (its nonce, its transcript). */
    if (ev.decoded && pl->has_public_key &&
        at_span_eq_ct(pl->public_key, AT_SPAN(p->my_pk, AT_PEER_KEY_LEN))) {
        rc = at_fail(d, AT_E_REFLECTION, "document: binds this side's own ephemeral key (reflected)");
        goto out;
    }
    if (rc != AT_OK) {
        if (d)
            memcpy(d->msg, ev.diag.msg, sizeof d->msg);
        goto out;
    }
    if (!pl->has_public_key || !at_span_eq_ct(pl->public_key, AT_SPAN(p->peer_pk, AT_PEER_KEY_LEN))) {
        char want[65], got[65] = "none";
        at_hex_encode(p->peer_pk, 32, want);
        if (pl->has_public_key)
            at_hex_encode(pl->public_key.p, pl->public_key.len > 32 ? 32 : pl->public_key.len, got);
        rc = at_fail(d, AT_E_TRANSCRIPT_MISMATCH,
                     "public_key: the document binds %s, the handshake carries %s", got, want);
        goto out;
    }
    if ((rc = at_binding_check_peer(pl->has_user_data ? pl->user_data : AT_SPAN_NULL, th, d)) != AT_OK)
        goto out;
    if (!(p->info = info_json(p, pl)))
        rc = at_fail(d, AT_E_INTERNAL, "peer: out of memory");
out:
    at_evidence_cleanup(&ev);
    return rc;
}

static at_err derive(at_peer *p, at_span m3, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t ss[32], th[32];
    at_span msgs[3] = {at_buf_span(&p->m1), at_buf_span(&p->m2), m3};
    AT_TRY(x25519(p, ss, d));
    AT_TRY(transcript(LABEL_KEYS, msgs, 3, th, d));
    AT_TRY(at_peer_key_schedule(AT_SPAN(ss, 32), th, &p->keys, d));
    p->have_keys = true;
    EVP_PKEY_free(p->eph); /* forward secrecy: the ephemeral key is done */
    p->eph = NULL;
    rc = AT_OK;
out:
    at_wipe(ss, sizeof ss);
    return rc;
}

at_err at_peer_start(at_peer *p, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    if (p->st != ST_NEW)
        return at_fail(d, AT_E_BAD_REQUEST, "peer: start is for a new initiator only");
    AT_TRY(make_ephemeral(p, d));
    AT_TRY(at_buf_u8(&p->m1, AT_PEER_MSG_HELLO));
    AT_TRY(at_buf_u8(&p->m1, AT_PEER_VERSION));
    AT_TRY(at_buf_append(&p->m1, p->my_nonce, AT_PEER_NONCE_LEN));
    AT_TRY(at_buf_append(&p->m1, p->my_pk, AT_PEER_KEY_LEN));
    AT_TRY(at_buf_append_span(out, at_buf_span(&p->m1)));
    p->st = ST_AWAIT_RESPONSE;
    rc = AT_OK;
out:
    return rc == AT_OK ? rc : refuse(p, rc);
}

at_err at_peer_alert(at_err code, at_buf *out)
{
    const char *s = at_err_str(code);
    size_t n = strlen(s);
    at_err rc = AT_E_INTERNAL;
    AT_TRY(at_buf_u8(out, AT_PEER_MSG_ALERT));
    AT_TRY(at_buf_u8(out, AT_PEER_VERSION));
    AT_TRY(at_buf_u8(out, (uint8_t)n));
    AT_TRY(at_buf_append(out, s, n));
    rc = AT_OK;
out:
    return rc;
}

static at_err peer_alert(at_peer *p, at_reader *r, at_diag *d)
{
    uint8_t n;
    at_span code;
    at_err rc = AT_E_BAD_FIELD;
    if (at_reader_u8(r, &n) && at_reader_take(r, n, &code) && at_reader_at_end(r)) {
        char s[256];
        memcpy(s, code.p, code.len);
        s[code.len] = '\0';
        rc = at_err_from_str(s);
        if (rc == AT_OK)
            rc = AT_E_INTERNAL;
        at_fail(d, rc, "the peer refused the handshake: %s", at_err_str(rc));
        p->by_peer = true;
    } else {
        at_fail(d, rc, "alert: malformed");
    }
    return rc;
}

static const char *expected_name(state s)
{
    switch (s) {
    case ST_AWAIT_HELLO:
        return "hello (1)";
    case ST_AWAIT_RESPONSE:
        return "response (2)";
    case ST_AWAIT_FINISH:
        return "finish (3)";
    case ST_AWAIT_CONFIRM:
        return "confirm (4)";
    default:
        return "none";
    }
}

at_err at_peer_handle(at_peer *p, at_span msg, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_reader r;
    uint8_t type = 0, version = 0;
    uint8_t th[32];
    at_buf reply;
    at_buf_init(&reply);
    if (p->st == ST_REFUSED)
        return at_fail(d, p->refusal, "peer: the handshake was refused (%s)", at_err_str(p->refusal));
    if (p->st != ST_AWAIT_HELLO && p->st != ST_AWAIT_RESPONSE && p->st != ST_AWAIT_FINISH &&
        p->st != ST_AWAIT_CONFIRM)
        return at_fail(d, AT_E_UNEXPECTED_MESSAGE, "peer: no handshake message expected now");
    at_reader_init(&r, msg.p, msg.len);
    AT_ENSURE(msg.len <= AT_PEER_MAX_MESSAGE, d, AT_E_TOO_LARGE, "message: %zu bytes, at most %d", msg.len,
              AT_PEER_MAX_MESSAGE);
    AT_ENSURE(at_reader_u8(&r, &type) && at_reader_u8(&r, &version), d, AT_E_TRUNCATED,
              "message: %zu bytes, expected at least 2 (type, version)", msg.len);
    AT_ENSURE(version == AT_PEER_VERSION, d, AT_E_BAD_FIELD, "message: version %u, expected %d", version,
              AT_PEER_VERSION);
    if (type == AT_PEER_MSG_ALERT) {
        rc = peer_alert(p, &r, d);
        goto out;
    }
    switch (p->st) {
    case ST_AWAIT_HELLO: {
        at_span n, k;
        AT_ENSURE(type == AT_PEER_MSG_HELLO, d, AT_E_UNEXPECTED_MESSAGE, "message: type %u, expected %s",
                  type, expected_name(p->st));
        AT_ENSURE(at_reader_take(&r, AT_PEER_NONCE_LEN, &n) && at_reader_take(&r, AT_PEER_KEY_LEN, &k) &&
                      at_reader_at_end(&r),
                  d, AT_E_BAD_FIELD, "hello: %zu bytes, expected %d", msg.len,
                  2 + AT_PEER_NONCE_LEN + AT_PEER_KEY_LEN);
        memcpy(p->peer_nonce, n.p, n.len);
        memcpy(p->peer_pk, k.p, k.len);
        AT_TRY(at_buf_append_span(&p->m1, msg));
        AT_TRY(make_ephemeral(p, d));
        AT_ENSURE(CRYPTO_memcmp(p->peer_pk, p->my_pk, 32) != 0 &&
                      CRYPTO_memcmp(p->peer_nonce, p->my_nonce, 32) != 0,
                  d, AT_E_REFLECTION, "hello: carries this side's own nonce or key");
        AT_TRY(at_buf_u8(&p->m2, AT_PEER_MSG_RESPONSE));
        AT_TRY(at_buf_u8(&p->m2, AT_PEER_VERSION));
        AT_TRY(at_buf_append(&p->m2, p->my_nonce, AT_PEER_NONCE_LEN));
        AT_TRY(at_buf_append(&p->m2, p->my_pk, AT_PEER_KEY_LEN));
        at_span pre[2] = {at_buf_span(&p->m1), at_buf_span(&p->m2)};
        AT_TRY(transcript(LABEL_RESPONDER, pre, 2, th, d));
        AT_TRY(my_document(p, th, &p->m2, d));
        AT_TRY(at_buf_status(&p->m2));
        AT_TRY(at_buf_append_span(&reply, at_buf_span(&p->m2)));
        p->st = ST_AWAIT_FINISH;
        break;
    }
    case ST_AWAIT_RESPONSE: {
        at_span n, k, doc;
        AT_ENSURE(type == AT_PEER_MSG_RESPONSE, d, AT_E_UNEXPECTED_MESSAGE, "message: type %u, expected %s",
                  type, expected_name(p->st));
        AT_ENSURE(at_reader_take(&r, AT_PEER_NONCE_LEN, &n) && at_reader_take(&r, AT_PEER_KEY_LEN, &k), d,
                  AT_E_BAD_FIELD, "response: %zu bytes, expected at least %d", msg.len,
                  2 + AT_PEER_NONCE_LEN + AT_PEER_KEY_LEN);
        doc = at_reader_rest(&r);
        memcpy(p->peer_nonce, n.p, n.len);
        memcpy(p->peer_pk, k.p, k.len);
        AT_ENSURE(CRYPTO_memcmp(p->peer_pk, p->my_pk, 32) != 0 &&
                      CRYPTO_memcmp(p->peer_nonce, p->my_nonce, 32) != 0,
                  d, AT_E_REFLECTION, "response: carries this side's own nonce or key");
        at_span pre[2] = {at_buf_span(&p->m1), AT_SPAN(msg.p, 2 + AT_PEER_NONCE_LEN + AT_PEER_KEY_LEN)};
        AT_TRY(transcript(LABEL_RESPONDER, pre, 2, th, d));
        AT_TRY(check_document(p, doc, th, d));
        AT_TRY(at_buf_append_span(&p->m2, msg));
        /* FINISH: our document over the transcript including RESPONSE. */
        at_span full[2] = {at_buf_span(&p->m1), at_buf_span(&p->m2)};
        AT_TRY(transcript(LABEL_INITIATOR, full, 2, th, d));
        AT_TRY(at_buf_u8(&reply, AT_PEER_MSG_FINISH));
        AT_TRY(at_buf_u8(&reply, AT_PEER_VERSION));
        AT_TRY(my_document(p, th, &reply, d));
        AT_TRY(at_buf_status(&reply));
        AT_TRY(derive(p, at_buf_span(&reply), d));
        p->st = ST_AWAIT_CONFIRM;
        break;
    }
    case ST_AWAIT_FINISH: {
        AT_ENSURE(type == AT_PEER_MSG_FINISH, d, AT_E_UNEXPECTED_MESSAGE, "message: type %u, expected %s",
                  type, expected_name(p->st));
        at_span full[2] = {at_buf_span(&p->m1), at_buf_span(&p->m2)};
        AT_TRY(transcript(LABEL_INITIATOR, full, 2, th, d));
        AT_TRY(check_document(p, at_reader_rest(&r), th, d));
        if (p->o.prover && p->o.prover->accepted)
            AT_TRY(p->o.prover->accepted(p->o.prover->ctx, th, p->info, d));
        AT_TRY(derive(p, msg, d));
        AT_TRY(at_buf_u8(&reply, AT_PEER_MSG_CONFIRM));
        AT_TRY(at_buf_u8(&reply, AT_PEER_VERSION));
        AT_TRY(at_buf_append(&reply, p->keys.confirm, sizeof p->keys.confirm));
        p->st = ST_ESTABLISHED;
        break;
    }
    case ST_AWAIT_CONFIRM: {
        at_span c;
        AT_ENSURE(type == AT_PEER_MSG_CONFIRM, d, AT_E_UNEXPECTED_MESSAGE, "message: type %u, expected %s",
                  type, expected_name(p->st));
        AT_ENSURE(at_reader_take(&r, AT_PEER_KEY_LEN, &c) && at_reader_at_end(&r), d, AT_E_BAD_FIELD,
                  "confirm: %zu bytes, expected %d", msg.len, 2 + AT_PEER_KEY_LEN);
        AT_ENSURE(CRYPTO_memcmp(c.p, p->keys.confirm, AT_PEER_KEY_LEN) == 0, d, AT_E_TRANSCRIPT_MISMATCH,
                  "confirm: the peer derived other keys (the transcripts differ)");
        p->st = ST_ESTABLISHED;
        break;
    }
    default:
        break;
    }
    AT_TRY(at_buf_append_span(out, at_buf_span(&reply)));
    rc = AT_OK;
out:
    at_buf_cleanup(&reply);
    return rc == AT_OK ? rc : refuse(p, rc);
}

json_t *at_peer_info_json(const at_peer *p)
{
    return p && p->info && p->st != ST_REFUSED ? json_incref(p->info) : NULL;
}

at_err at_peer_channel_binding(const at_peer *p, uint8_t out[AT_PEER_KEY_LEN])
{
    if (!at_peer_established(p) && !(p && p->st == ST_CLOSED && p->have_keys))
        return AT_E_BAD_REQUEST;
    memcpy(out, p->keys.exporter, AT_PEER_KEY_LEN);
    return AT_OK;
}

/* ---- records ---- */

static void record_nonce(const uint8_t iv[AT_PEER_IV_LEN], uint64_t seq, uint8_t out[AT_PEER_IV_LEN])
{
    memcpy(out, iv, AT_PEER_IV_LEN);
    for (int i = 0; i < 8; i++)
        out[AT_PEER_IV_LEN - 1 - i] ^= (uint8_t)(seq >> (8 * i));
}

/* AES-256-GCM with aad = type || seq (u64 BE). */
static at_err aead(bool enc, const uint8_t key[32], const uint8_t iv[12], uint8_t type, uint64_t seq,
                   at_span in, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t nonce[12], aad[9], tag[16];
    int n = 0, n2 = 0;
    size_t body = enc ? in.len : in.len - AT_PEER_TAG_LEN;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    AT_ENSURE(c != NULL, d, AT_E_INTERNAL, "peer: out of memory");
    record_nonce(iv, seq, nonce);
    aad[0] = type;
    for (int i = 0; i < 8; i++)
        aad[1 + i] = (uint8_t)(seq >> (56 - 8 * i));
    AT_TRY(at_buf_reserve(out, body + AT_PEER_TAG_LEN));
    uint8_t *dst = out->p + out->len;
    AT_OSSL(EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce, enc ? 1 : 0), d);
    AT_OSSL(EVP_CipherUpdate(c, NULL, &n, aad, sizeof aad), d);
    if (body)
        AT_OSSL(EVP_CipherUpdate(c, dst, &n, in.p, (int)body), d);
    else
        n = 0;
    if (enc) {
        AT_OSSL(EVP_CipherFinal_ex(c, dst + n, &n2), d);
        AT_OSSL(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag), d);
        memcpy(dst + n + n2, tag, 16);
        out->len += (size_t)(n + n2) + 16;
    } else {
        memcpy(tag, in.p + body, 16);
        AT_OSSL(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag), d);
        if (EVP_CipherFinal_ex(c, dst + n, &n2) != 1) {
            at_wipe(dst, body);
            rc = at_fail(d, AT_E_DECRYPT_FAILED,
                         "record %llu: authentication failed (tampered, reordered or replayed)",
                         (unsigned long long)seq);
            goto out;
        }
        out->len += (size_t)(n + n2);
    }
    rc = AT_OK;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

at_err at_peer_seal(at_peer *p, bool close, at_span pt, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    bool a = p->o.role == AT_PEER_INITIATOR;
    uint8_t type = close ? AT_PEER_MSG_CLOSE : AT_PEER_MSG_DATA;
    if (!at_peer_established(p))
        return at_fail(d, AT_E_BAD_REQUEST, "peer: the channel is not established");
    if (close)
        pt = AT_SPAN_NULL;
    if (pt.len > AT_PEER_MAX_RECORD_PLAINTEXT)
        return at_fail(d, AT_E_TOO_LARGE, "record: %zu bytes, at most %d", pt.len,
                       AT_PEER_MAX_RECORD_PLAINTEXT);
    if (p->send_seq == UINT64_MAX)
        return at_fail(d, AT_E_SEQUENCE_OVERFLOW, "record: send sequence number exhausted");
    AT_TRY(at_buf_u8(out, type));
    AT_TRY(aead(true, a ? p->keys.key_ab : p->keys.key_ba, a ? p->keys.iv_ab : p->keys.iv_ba, type,
                p->send_seq, pt, out, d));
    p->send_seq++;
    rc = AT_OK;
out:
    return rc;
}

at_err at_peer_open(at_peer *p, at_span rec, at_buf *pt, bool *closed, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    bool a = p->o.role == AT_PEER_INITIATOR;
    at_reader r;
    uint8_t type = 0;
    *closed = false;
    if (p->st == ST_CLOSED)
        return at_fail(d, AT_E_UNEXPECTED_MESSAGE, "record: received after close");
    if (!at_peer_established(p))
        return at_fail(d, AT_E_BAD_REQUEST, "peer: the channel is not established");
    at_reader_init(&r, rec.p, rec.len);
    AT_ENSURE(at_reader_u8(&r, &type), d, AT_E_TRUNCATED, "record: empty");
    if (type == AT_PEER_MSG_ALERT) {
        uint8_t v;
        AT_ENSURE(at_reader_u8(&r, &v) && v == AT_PEER_VERSION, d, AT_E_BAD_FIELD, "alert: bad version");
        rc = peer_alert(p, &r, d);
        goto out;
    }
    AT_ENSURE(type == AT_PEER_MSG_DATA || type == AT_PEER_MSG_CLOSE, d, AT_E_UNEXPECTED_MESSAGE,
              "record: type %u, expected data (%d) or close (%d)", type, AT_PEER_MSG_DATA, AT_PEER_MSG_CLOSE);
    at_span body = at_reader_rest(&r);
    AT_ENSURE(body.len >= AT_PEER_TAG_LEN && body.len <= AT_PEER_MAX_RECORD_PLAINTEXT + AT_PEER_TAG_LEN, d,
              AT_E_BAD_FIELD, "record: %zu bytes of ciphertext, expected %d to %d", body.len, AT_PEER_TAG_LEN,
              AT_PEER_MAX_RECORD_PLAINTEXT + AT_PEER_TAG_LEN);
    AT_ENSURE(p->recv_seq != UINT64_MAX, d, AT_E_SEQUENCE_OVERFLOW,
              "record: receive sequence number exhausted");
    /* Straight into pt: aead() wipes what it wrote when the tag fails. */
    size_t start = pt->len;
    AT_TRY(aead(false, a ? p->keys.key_ba : p->keys.key_ab, a ? p->keys.iv_ba : p->keys.iv_ab, type,
                p->recv_seq, body, pt, d));
    if (type == AT_PEER_MSG_CLOSE && pt->len != start) {
        rc = at_fail(d, AT_E_BAD_FIELD, "close: carries %zu bytes", pt->len - start);
        at_wipe(pt->p + start, pt->len - start);
        pt->len = start;
        goto out;
    }
    p->recv_seq++;
    if (type == AT_PEER_MSG_CLOSE) {
        *closed = true;
        p->st = ST_CLOSED;
    }
    rc = AT_OK;
out:
    return rc == AT_OK ? rc : refuse(p, rc);
}

at_err at_peer_frame(at_span msg, at_buf *out)
{
    if (msg.len > UINT32_MAX)
        return AT_E_TOO_LARGE;
    at_err rc = at_buf_u32(out, (uint32_t)msg.len);
    return rc != AT_OK ? rc : at_buf_append_span(out, msg);
}
