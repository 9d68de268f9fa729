/* ohttp_config: key configurations (lib/ohttp_config.h). Parses
 * attacker-supplied key configurations and lists through the bounded
 * reader; holds no secrets. */
#include "ohttp_config.h"

#include <string.h>

bool at_ohttp_suite_supported(uint16_t kdf, uint16_t aead)
{
    return kdf == AT_HPKE_KDF_HKDF_SHA256 && at_hpke_aead_nk(aead) != 0;
}

/* One configuration from r. AT_E_UNSUPPORTED_SUITE only for its KEM, so a
 * list reader can skip it. */
static at_err read_config(at_reader *r, at_ohttp_key_config *kc, at_diag *d)
{
    uint8_t id;
    uint16_t kem, symlen;
    at_span pk;
    at_reader syms;

    if (!at_reader_u8(r, &id) || !at_reader_u16(r, &kem))
        return at_fail(d, AT_E_TRUNCATED, "key config: key_id and kem_id truncated");
    if (kem != AT_HPKE_KEM_X25519_SHA256)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE, "key config %u: kem_id 0x%04x (only 0x0020, X25519)", id,
                       kem);
    if (!at_reader_take(r, AT_HPKE_NPK, &pk))
        return at_fail(d, AT_E_TRUNCATED, "key config %u: public key: expected %d bytes, got %zu", id,
                       AT_HPKE_NPK, at_reader_left(r));
    if (!at_reader_u16(r, &symlen))
        return at_fail(d, AT_E_TRUNCATED, "key config %u: symmetric algorithms length truncated", id);
    if (symlen == 0 || symlen % 4 != 0)
        return at_fail(d, AT_E_BAD_FIELD,
                       "key config %u: symmetric algorithms length %u is not a positive multiple of 4", id,
                       symlen);
    if (symlen / 4 > AT_MAX_OHTTP_SUITES)
        return at_fail(d, AT_E_TOO_LARGE, "key config %u: %u symmetric suites, limit %d", id, symlen / 4,
                       AT_MAX_OHTTP_SUITES);
    if (!at_reader_sub(r, symlen, &syms))
        return at_fail(d, AT_E_TRUNCATED, "key config %u: symmetric algorithms: expected %u bytes, got %zu",
                       id, symlen, at_reader_left(r));
    kc->key_id = id;
    kc->kem = kem;
    memcpy(kc->pk, pk.p, AT_HPKE_NPK);
    kc->nsym = 0;
    while (!at_reader_at_end(&syms)) {
        at_ohttp_sym *s = &kc->sym[kc->nsym++];
        if (!at_reader_u16(&syms, &s->kdf) || !at_reader_u16(&syms, &s->aead))
            return at_fail(d, AT_E_INTERNAL, "key config: symmetric suite read");
    }
    return AT_OK;
}

at_err at_ohttp_key_config_parse(at_span in, at_ohttp_key_config *out, at_diag *d)
{
    at_ohttp_key_config kc;
    at_reader r;
    at_reader_init(&r, in.p, in.len);
    at_err rc = read_config(&r, &kc, d);
    if (rc != AT_OK)
        return rc;
    if (!at_reader_at_end(&r))
        return at_fail(d, AT_E_BAD_FIELD, "key config %u: %zu trailing bytes", kc.key_id, at_reader_left(&r));
    *out = kc;
    return AT_OK;
}

at_err at_ohttp_key_config_encode(const at_ohttp_key_config *kc, at_buf *out, at_diag *d)
{
    if (kc->nsym == 0 || kc->nsym > AT_MAX_OHTTP_SUITES)
        return at_fail(d, AT_E_BAD_FIELD, "key config %u: %zu symmetric suites", kc->key_id, kc->nsym);
    (void)at_buf_u8(out, kc->key_id);
    (void)at_buf_u16(out, kc->kem);
    (void)at_buf_append(out, kc->pk, AT_HPKE_NPK);
    (void)at_buf_u16(out, (uint16_t)(4 * kc->nsym));
    for (size_t i = 0; i < kc->nsym; i++) {
        (void)at_buf_u16(out, kc->sym[i].kdf);
        (void)at_buf_u16(out, kc->sym[i].aead);
    }
    at_err rc = at_buf_status(out);
    return rc == AT_OK ? AT_OK : at_fail(d, rc, "key config: encode buffer failed");
}

at_err at_ohttp_keys_parse(at_span in, at_ohttp_key_config *out, size_t cap, size_t *n, at_diag *d)
{
    at_reader r;
    size_t seen = 0, usable = 0;
    /* Collected here: the caller's array is written only on success. */
    at_ohttp_key_config found[AT_MAX_OHTTP_KEYS];
    at_reader_init(&r, in.p, in.len);
    if (at_reader_at_end(&r))
        return at_fail(d, AT_E_BAD_FIELD, "ohttp-keys: empty");
    while (!at_reader_at_end(&r)) {
        uint16_t len;
        at_reader sub;
        at_ohttp_key_config kc;
        if (++seen > AT_MAX_OHTTP_KEYS)
            return at_fail(d, AT_E_TOO_LARGE, "ohttp-keys: more than %d configurations", AT_MAX_OHTTP_KEYS);
        if (!at_reader_u16(&r, &len))
            return at_fail(d, AT_E_TRUNCATED, "ohttp-keys[%zu]: length truncated", seen - 1);
        if (!at_reader_sub(&r, len, &sub))
            return at_fail(d, AT_E_TRUNCATED, "ohttp-keys[%zu]: expected %u bytes, got %zu", seen - 1, len,
                           at_reader_left(&r));
        at_err rc = read_config(&sub, &kc, d);
        if (rc == AT_E_UNSUPPORTED_SUITE)
            continue; /* RFC 9458 §3.2: skip what we cannot use */
        if (rc != AT_OK) {
            at_diag_prefix(d, "ohttp-keys[%zu]: ", seen - 1);
            return rc;
        }
        if (!at_reader_at_end(&sub))
            return at_fail(d, AT_E_BAD_FIELD, "ohttp-keys[%zu]: %zu bytes after the configuration", seen - 1,
                           at_reader_left(&sub));
        found[usable++] = kc;
    }
    if (usable == 0)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE, "ohttp-keys: none of %zu configurations uses X25519", seen);
    size_t take = usable < cap ? usable : cap;
    if (take)
        memcpy(out, found, take * sizeof *found);
    *n = take;
    return AT_OK;
}

at_err at_ohttp_key_config_load(at_span in, at_ohttp_key_config *out, at_diag *d)
{
    at_diag d1 = {{0}}, d2 = {{0}};
    at_ohttp_key_config kc;
    size_t n = 0;
    at_err rc1 = at_ohttp_key_config_parse(in, &kc, &d1);
    if (rc1 == AT_OK) {
        *out = kc;
        return AT_OK;
    }
    at_err rc2 = at_ohttp_keys_parse(in, &kc, 1, &n, &d2);
    if (rc2 == AT_OK) {
        *out = kc;
        return AT_OK;
    }
    at_err rc = rc2 == AT_E_UNSUPPORTED_SUITE ? rc2 : rc1;
    return at_fail(d, rc, "neither a key configuration (%.150s) nor an ohttp-keys list (%.150s)", d1.msg,
                   d2.msg);
}

at_err at_ohttp_key_config_suite(const at_ohttp_key_config *kc, at_hpke_suite *out, at_diag *d)
{
    for (size_t i = 0; i < kc->nsym; i++)
        if (at_ohttp_suite_supported(kc->sym[i].kdf, kc->sym[i].aead)) {
            *out = (at_hpke_suite){kc->kem, kc->sym[i].kdf, kc->sym[i].aead};
            return AT_OK;
        }
    return at_fail(d, AT_E_UNSUPPORTED_SUITE, "key config %u: none of its %zu (KDF, AEAD) pairs is supported",
                   kc->key_id, kc->nsym);
}
