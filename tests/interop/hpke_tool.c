/* hpke_tool: lib/hpke driven from the interop test (hpke_interop.mjs), one
 * JSON request on stdin, one JSON answer on stdout; binary values in hex.
 *   {"op":"keygen"}                         -> {"sk","pk"}
 *   {"op":"derive","ikm"}                   -> {"sk","pk"}
 *   {"op":"seal","aead","mode","pkR","info","aad","pts":[...],
 *    "skS"?,"psk"?,"psk_id"?,"exporter_context","L"}
 *                                           -> {"enc","cts":[...],"exported"}
 *   {"op":"open","aead","mode","skR","enc","info","aad","cts":[...],
 *    "pkS"?,"psk"?,"psk_id"?,"exporter_context","L"}
 *                                           -> {"pts":[...],"exported"}
 * A refusal answers {"error":"<stable code>","message":"..."}; exit 2 only
 * for malformed requests. Test-only. */
#include "config.h"

#include <stdlib.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "enc.h"
#include "hpke.h"

typedef struct {
    uint8_t *p;
    size_t len;
} bytes;

static bool get_hex(json_t *req, const char *name, bool required, bytes *out)
{
    json_t *v = json_object_get(req, name);
    out->p = NULL;
    out->len = 0;
    if (!v || json_is_null(v)) {
        if (required)
            fprintf(stderr, "hpke_tool: missing \"%s\"\n", name);
        return !required;
    }
    if (!json_is_string(v) || at_hex_decode_new(json_string_value(v), &out->p, &out->len) != AT_OK) {
        fprintf(stderr, "hpke_tool: \"%s\": expected hex\n", name);
        return false;
    }
    return true;
}

static json_t *hex_json(const uint8_t *p, size_t len)
{
    char *h = at_hex_encode_new(AT_SPAN(p, len));
    json_t *s = json_string(h ? h : "");
    free(h);
    return s;
}

static json_t *refusal(at_err e, const at_diag *d)
{
    return json_pack("{s:s, s:s}", "error", at_err_str(e), "message", d->msg);
}

static json_t *key_json(at_hpke_key *k)
{
    at_secret *sk = NULL;
    at_diag d = {{0}};
    if (at_hpke_key_private(k, &sk, &d) != AT_OK)
        return refusal(AT_E_INTERNAL, &d);
    at_span pk = at_hpke_key_public(k);
    json_t *o = json_object();
    json_object_set_new(o, "sk", hex_json(sk->p, sk->len));
    json_object_set_new(o, "pk", hex_json(pk.p, pk.len));
    at_secret_free(sk);
    return o;
}

static json_t *run(json_t *req)
{
    const char *op = json_string_value(json_object_get(req, "op"));
    at_diag d = {{0}};
    at_hpke_key *k = NULL, *auth = NULL;
    at_hpke_ctx *ctx = NULL;
    json_t *ans = NULL;
    bytes key = {0}, enc = {0}, info = {0}, aad = {0}, psk = {0}, psk_id = {0}, authk = {0}, ectx = {0},
          ikm = {0};
    at_buf buf;
    at_buf_init_secret(&buf);

    if (!op)
        goto bad;
    if (strcmp(op, "keygen") == 0 || strcmp(op, "derive") == 0) {
        at_err e;
        if (strcmp(op, "keygen") == 0) {
            e = at_hpke_key_generate(AT_HPKE_KEM_X25519_SHA256, &k, &d);
        } else {
            if (!get_hex(req, "ikm", true, &ikm))
                goto bad;
            e = at_hpke_key_derive(AT_HPKE_KEM_X25519_SHA256, AT_SPAN(ikm.p, ikm.len), &k, &d);
        }
        ans = e == AT_OK ? key_json(k) : refusal(e, &d);
        goto out;
    }
    bool seal = strcmp(op, "seal") == 0;
    if (!seal && strcmp(op, "open") != 0)
        goto bad;
    at_hpke_suite suite = {AT_HPKE_KEM_X25519_SHA256, AT_HPKE_KDF_HKDF_SHA256,
                           (uint16_t)json_integer_value(json_object_get(req, "aead"))};
    int mode = (int)json_integer_value(json_object_get(req, "mode"));
    size_t L = (size_t)json_integer_value(json_object_get(req, "L"));
    json_t *items = json_object_get(req, seal ? "pts" : "cts");
    if (!get_hex(req, seal ? "pkR" : "skR", true, &key) || !get_hex(req, "info", false, &info) ||
        !get_hex(req, "aad", false, &aad) || !get_hex(req, "psk", false, &psk) ||
        !get_hex(req, "psk_id", false, &psk_id) || !get_hex(req, seal ? "skS" : "pkS", false, &authk) ||
        !get_hex(req, "exporter_context", false, &ectx) || !json_is_array(items) ||
        (!seal && !get_hex(req, "enc", true, &enc)))
        goto bad;

    at_err e = seal ? at_hpke_key_from_public(suite.kem, AT_SPAN(key.p, key.len), &k, &d)
                    : at_hpke_key_from_private(suite.kem, AT_SPAN(key.p, key.len), &k, &d);
    if (e == AT_OK && authk.len)
        e = seal ? at_hpke_key_from_private(suite.kem, AT_SPAN(authk.p, authk.len), &auth, &d)
                 : at_hpke_key_from_public(suite.kem, AT_SPAN(authk.p, authk.len), &auth, &d);
    at_hpke_params p = {(at_hpke_mode)mode, AT_SPAN(info.p, info.len), AT_SPAN(psk.p, psk.len),
                        AT_SPAN(psk_id.p, psk_id.len), auth};
    uint8_t encb[AT_HPKE_NENC];
    if (e == AT_OK)
        e = seal ? at_hpke_setup_sender(suite, &p, k, encb, &ctx, &d)
                 : at_hpke_setup_recipient(suite, &p, k, AT_SPAN(enc.p, enc.len), &ctx, &d);
    if (e != AT_OK) {
        ans = refusal(e, &d);
        goto out;
    }
    json_t *outs = json_array();
    ans = json_object();
    if (seal)
        json_object_set_new(ans, "enc", hex_json(encb, sizeof encb));
    json_object_set_new(ans, seal ? "cts" : "pts", outs);
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        bytes in = {0};
        if (!json_is_string(item) || at_hex_decode_new(json_string_value(item), &in.p, &in.len) != AT_OK) {
            json_decref(ans);
            ans = NULL;
            goto bad;
        }
        at_buf_reset(&buf);
        e = seal ? at_hpke_seal(ctx, AT_SPAN(aad.p, aad.len), AT_SPAN(in.p, in.len), &buf, &d)
                 : at_hpke_open(ctx, AT_SPAN(aad.p, aad.len), AT_SPAN(in.p, in.len), &buf, &d);
        free(in.p);
        if (e != AT_OK) {
            json_decref(ans);
            ans = refusal(e, &d);
            goto out;
        }
        json_array_append_new(outs, hex_json(buf.p, buf.len));
    }
    if (L) {
        uint8_t x[AT_HPKE_MAX_EXPORT];
        e = at_hpke_export(ctx, AT_SPAN(ectx.p, ectx.len), L, x, &d);
        if (e != AT_OK) {
            json_decref(ans);
            ans = refusal(e, &d);
            goto out;
        }
        json_object_set_new(ans, "exported", hex_json(x, L));
    }
    goto out;
bad:
    fprintf(stderr, "hpke_tool: malformed request\n");
out:
    at_hpke_ctx_free(ctx);
    at_hpke_key_free(k);
    at_hpke_key_free(auth);
    free(key.p);
    free(enc.p);
    free(info.p);
    free(aad.p);
    free(psk.p);
    free(psk_id.p);
    free(authk.p);
    free(ectx.p);
    free(ikm.p);
    at_buf_cleanup(&buf);
    return ans;
}

int main(void)
{
    json_error_t jerr;
    json_t *req = json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr);
    if (!req || !json_is_object(req)) {
        fprintf(stderr, "hpke_tool: stdin: %s\n", req ? "not an object" : jerr.text);
        json_decref(req);
        return 2;
    }
    json_t *ans = run(req);
    json_decref(req);
    if (!ans)
        return 2;
    json_object_set_new(ans, "backend", json_string(at_hpke_backend()));
    char *s = json_dumps(ans, JSON_COMPACT);
    json_decref(ans);
    if (!s)
        return 2;
    puts(s);
    free(s);
    return 0;
}
