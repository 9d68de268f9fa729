/* ohttp: Oblivious HTTP (RFC 9458) and its chunked variant
 * (draft-ietf-ohai-chunked-ohttp-08) on lib/hpke. Parses attacker-supplied
 * key configurations, encapsulated requests and responses through the
 * bounded reader; holds the gateway's private keys and the per-exchange
 * response keys, wiping both when freed. */
#include "config.h"

#include "ohttp.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enc.h"

static const char label_req[] = "message/bhttp request";
static const char label_res[] = "message/bhttp response";
static const char label_creq[] = "message/bhttp chunked request";
static const char label_cres[] = "message/bhttp chunked response";
static const char aad_final[] = "final";

#define HDR_LEN 7 /* key_id(1) kem_id(2) kdf_id(2) aead_id(2) */
#define ENTROPY_MAX AT_HPKE_MAX_NK

/* max(Nn, Nk): the response nonce and exported secret length (§4.4). */
static size_t entropy_len(uint16_t aead)
{
    size_t nk = at_hpke_aead_nk(aead);
    return nk > AT_HPKE_NN ? nk : AT_HPKE_NN;
}

static bool suite_supported(uint16_t kdf, uint16_t aead)
{
    return kdf == AT_HPKE_KDF_HKDF_SHA256 && at_hpke_aead_nk(aead) != 0;
}

/* ---- key configurations ------------------------------------------------------ */

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
        return at_fail(d, AT_E_UNSUPPORTED_SUITE,
                       "key config %u: kem_id 0x%04x (only 0x0020, X25519)", id, kem);
    if (!at_reader_take(r, AT_HPKE_NPK, &pk))
        return at_fail(d, AT_E_TRUNCATED, "key config %u: public key: expected %d bytes, got %zu",
                       id, AT_HPKE_NPK, at_reader_left(r));
    if (!at_reader_u16(r, &symlen))
        return at_fail(d, AT_E_TRUNCATED, "key config %u: symmetric algorithms length truncated",
                       id);
    if (symlen == 0 || symlen % 4 != 0)
        return at_fail(d, AT_E_BAD_FIELD,
                       "key config %u: symmetric algorithms length %u is not a positive multiple of 4",
                       id, symlen);
    if (symlen / 4 > AT_MAX_OHTTP_SUITES)
        return at_fail(d, AT_E_TOO_LARGE, "key config %u: %u symmetric suites, limit %d", id,
                       symlen / 4, AT_MAX_OHTTP_SUITES);
    if (!at_reader_sub(r, symlen, &syms))
        return at_fail(d, AT_E_TRUNCATED,
                       "key config %u: symmetric algorithms: expected %u bytes, got %zu", id,
                       symlen, at_reader_left(r));
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
        return at_fail(d, AT_E_BAD_FIELD, "key config %u: %zu trailing bytes", kc.key_id,
                       at_reader_left(&r));
    *out = kc;
    return AT_OK;
}

at_err at_ohttp_key_config_encode(const at_ohttp_key_config *kc, at_buf *out, at_diag *d)
{
    if (kc->nsym == 0 || kc->nsym > AT_MAX_OHTTP_SUITES)
        return at_fail(d, AT_E_BAD_FIELD, "key config %u: %zu symmetric suites", kc->key_id,
                       kc->nsym);
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

at_err at_ohttp_keys_parse(at_span in, at_ohttp_key_config *out, size_t cap, size_t *n,
                           at_diag *d)
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
            return at_fail(d, AT_E_TOO_LARGE, "ohttp-keys: more than %d configurations",
                           AT_MAX_OHTTP_KEYS);
        if (!at_reader_u16(&r, &len))
            return at_fail(d, AT_E_TRUNCATED, "ohttp-keys[%zu]: length truncated", seen - 1);
        if (!at_reader_sub(&r, len, &sub))
            return at_fail(d, AT_E_TRUNCATED, "ohttp-keys[%zu]: expected %u bytes, got %zu",
                           seen - 1, len, at_reader_left(&r));
        at_err rc = read_config(&sub, &kc, d);
        if (rc == AT_E_UNSUPPORTED_SUITE)
            continue; /* RFC 9458 §3.2: skip what we cannot use */
        if (rc != AT_OK) {
            at_diag_prefix(d, "ohttp-keys[%zu]: ", seen - 1);
            return rc;
        }
        if (!at_reader_at_end(&sub))
            return at_fail(d, AT_E_BAD_FIELD, "ohttp-keys[%zu]: %zu bytes after the configuration",
                           seen - 1, at_reader_left(&sub));
        found[usable++] = kc;
    }
    if (usable == 0)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE,
                       "ohttp-keys: none of %zu configurations uses X25519", seen);
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
    return at_fail(d, rc, "neither a key configuration (%.150s) nor an ohttp-keys list (%.150s)",
                   d1.msg, d2.msg);
}

at_err at_ohttp_key_config_suite(const at_ohttp_key_config *kc, at_hpke_suite *out, at_diag *d)
{
    for (size_t i = 0; i < kc->nsym; i++)
        if (suite_supported(kc->sym[i].kdf, kc->sym[i].aead)) {
            *out = (at_hpke_suite){kc->kem, kc->sym[i].kdf, kc->sym[i].aead};
            return AT_OK;
        }
    return at_fail(d, AT_E_UNSUPPORTED_SUITE,
                   "key config %u: none of its %zu (KDF, AEAD) pairs is supported", kc->key_id,
                   kc->nsym);
}

/* ---- key set ---------------------------------------------------------------------- */

typedef struct {
    uint8_t id;
    at_hpke_key *key;
    size_t nsym;
    at_ohttp_sym sym[AT_MAX_OHTTP_SUITES];
} ks_entry;

struct at_ohttp_keyset {
    size_t n;
    ks_entry e[AT_MAX_OHTTP_KEYS];
};

static const at_ohttp_sym default_syms[] = {
    {AT_HPKE_KDF_HKDF_SHA256, AT_HPKE_AEAD_AES_128_GCM},
    {AT_HPKE_KDF_HKDF_SHA256, AT_HPKE_AEAD_AES_256_GCM},
    {AT_HPKE_KDF_HKDF_SHA256, AT_HPKE_AEAD_CHACHA20_POLY1305},
};

at_err at_ohttp_keyset_new(at_ohttp_keyset **out, at_diag *d)
{
    at_ohttp_keyset *ks = calloc(1, sizeof *ks);
    if (!ks)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    *out = ks;
    return AT_OK;
}

void at_ohttp_keyset_free(at_ohttp_keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++)
        at_hpke_key_free(ks->e[i].key);
    at_wipe(ks, sizeof *ks);
    free(ks);
}

static const ks_entry *find_key(const at_ohttp_keyset *ks, uint8_t id)
{
    for (size_t i = 0; i < ks->n; i++)
        if (ks->e[i].id == id)
            return &ks->e[i];
    return NULL;
}

/* Takes key (freed on failure). */
static at_err add_key(at_ohttp_keyset *ks, uint8_t id, at_hpke_key *key, const at_ohttp_sym *syms,
                      size_t nsym, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    if (!syms || nsym == 0) {
        syms = default_syms;
        nsym = sizeof default_syms / sizeof *default_syms;
    }
    AT_ENSURE(find_key(ks, id) == NULL, d, AT_E_CONFLICT, "key_id %u: already in the key set", id);
    AT_ENSURE(ks->n < AT_MAX_OHTTP_KEYS, d, AT_E_TOO_LARGE, "key set: more than %d keys",
              AT_MAX_OHTTP_KEYS);
    AT_ENSURE(nsym <= AT_MAX_OHTTP_SUITES, d, AT_E_TOO_LARGE, "key %u: %zu suites, limit %d", id,
              nsym, AT_MAX_OHTTP_SUITES);
    for (size_t i = 0; i < nsym; i++)
        AT_ENSURE(suite_supported(syms[i].kdf, syms[i].aead), d, AT_E_UNSUPPORTED_SUITE,
                  "key %u: suite %04x:%04x is not implemented", id, syms[i].kdf, syms[i].aead);
    ks_entry *e = &ks->e[ks->n++];
    e->id = id;
    e->key = key;
    key = NULL;
    e->nsym = nsym;
    memcpy(e->sym, syms, nsym * sizeof *syms);
    rc = AT_OK;
out:
    at_hpke_key_free(key);
    return rc;
}

at_err at_ohttp_keyset_generate(at_ohttp_keyset *ks, uint8_t key_id, at_diag *d)
{
    at_hpke_key *k = NULL;
    if (find_key(ks, key_id))
        return at_fail(d, AT_E_CONFLICT, "key_id %u: already in the key set", key_id);
    at_err rc = at_hpke_key_generate(AT_HPKE_KEM_X25519_SHA256, &k, d);
    if (rc != AT_OK)
        return rc;
    return add_key(ks, key_id, k, NULL, 0, d);
}

at_err at_ohttp_keyset_add_private(at_ohttp_keyset *ks, uint8_t key_id, at_span sk,
                                   const at_ohttp_sym *syms, size_t nsym, at_diag *d)
{
    at_hpke_key *k = NULL;
    at_err rc = at_hpke_key_from_private(AT_HPKE_KEM_X25519_SHA256, sk, &k, d);
    if (rc != AT_OK)
        return rc;
    return add_key(ks, key_id, k, syms, nsym, d);
}

size_t at_ohttp_keyset_count(const at_ohttp_keyset *ks) { return ks->n; }

uint8_t at_ohttp_keyset_id(const at_ohttp_keyset *ks, size_t i)
{
    return i < ks->n ? ks->e[i].id : 0;
}

static void entry_config(const ks_entry *e, at_ohttp_key_config *kc)
{
    memset(kc, 0, sizeof *kc);
    kc->key_id = e->id;
    kc->kem = at_hpke_key_kem(e->key);
    memcpy(kc->pk, at_hpke_key_public(e->key).p, AT_HPKE_NPK);
    kc->nsym = e->nsym;
    memcpy(kc->sym, e->sym, e->nsym * sizeof *e->sym);
}

at_err at_ohttp_keyset_config(const at_ohttp_keyset *ks, uint8_t key_id, at_ohttp_key_config *out,
                              at_diag *d)
{
    const ks_entry *e = find_key(ks, key_id);
    if (!e)
        return at_fail(d, AT_E_UNKNOWN_KEY_ID, "key_id %u: not in the key set", key_id);
    entry_config(e, out);
    return AT_OK;
}

at_err at_ohttp_keyset_keys(const at_ohttp_keyset *ks, at_buf *out, at_diag *d)
{
    at_buf one;
    at_err rc = AT_OK;
    at_buf_init(&one);
    for (size_t i = 0; i < ks->n && rc == AT_OK; i++) {
        at_ohttp_key_config kc;
        entry_config(&ks->e[i], &kc);
        at_buf_reset(&one);
        rc = at_ohttp_key_config_encode(&kc, &one, d);
        if (rc == AT_OK) {
            (void)at_buf_u16(out, (uint16_t)one.len);
            (void)at_buf_append_span(out, at_buf_span(&one));
            rc = at_buf_status(out);
        }
    }
    at_buf_cleanup(&one);
    return rc;
}

/* Key file text. */
static const char keyfile_magic[] = "attest-ohttp-keys v1";

static bool span_eq_str(at_span s, const char *lit)
{
    return at_span_eq(s, AT_SPAN(lit, strlen(lit)));
}

static at_span next_token(at_span *line)
{
    size_t i = 0;
    while (i < line->len && (line->p[i] == ' ' || line->p[i] == '\t'))
        i++;
    size_t start = i;
    while (i < line->len && line->p[i] != ' ' && line->p[i] != '\t')
        i++;
    at_span t = AT_SPAN(line->p + start, i - start);
    line->p += i;
    line->len -= i;
    return t;
}

static bool parse_hex16(at_span t, uint16_t *v)
{
    uint8_t b[2];
    size_t n;
    if (t.len != 4 || at_hex_decode((const char *)t.p, 4, b, 2, &n) != AT_OK)
        return false;
    *v = (uint16_t)(b[0] << 8 | b[1]);
    return true;
}

static at_err parse_key_line(at_ohttp_keyset *ks, size_t lineno, at_span line, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    uint8_t sk[AT_HPKE_NSK];
    size_t n = 0, nsym = 0;
    at_ohttp_sym syms[AT_MAX_OHTTP_SUITES];
    unsigned id = 0;

    at_span t = next_token(&line);
    AT_ENSURE(span_eq_str(t, "key"), d, AT_E_BAD_FIELD, "key file line %zu: expected \"key\"",
              lineno);
    t = next_token(&line);
    AT_ENSURE(t.len >= 1 && t.len <= 3, d, AT_E_BAD_FIELD, "key file line %zu: key_id", lineno);
    for (size_t i = 0; i < t.len; i++) {
        AT_ENSURE(t.p[i] >= '0' && t.p[i] <= '9', d, AT_E_BAD_FIELD,
                  "key file line %zu: key_id is not decimal", lineno);
        id = id * 10 + (unsigned)(t.p[i] - '0');
    }
    AT_ENSURE(id <= 255, d, AT_E_BAD_FIELD, "key file line %zu: key_id %u over 255", lineno, id);
    t = next_token(&line);
    AT_ENSURE(span_eq_str(t, "x25519"), d, AT_E_UNSUPPORTED_SUITE,
              "key file line %zu: key type: expected x25519", lineno);
    t = next_token(&line);
    AT_ENSURE(t.len == 2 * AT_HPKE_NSK &&
                  at_hex_decode((const char *)t.p, t.len, sk, sizeof sk, &n) == AT_OK &&
                  n == AT_HPKE_NSK,
              d, AT_E_BAD_FIELD, "key file line %zu: private key: expected %d hex digits", lineno,
              2 * AT_HPKE_NSK);
    t = next_token(&line);
    AT_ENSURE(t.len > 0, d, AT_E_BAD_FIELD, "key file line %zu: suites missing", lineno);
    while (t.len) {
        AT_ENSURE(nsym < AT_MAX_OHTTP_SUITES, d, AT_E_TOO_LARGE,
                  "key file line %zu: more than %d suites", lineno, AT_MAX_OHTTP_SUITES);
        AT_ENSURE(t.len >= 9 && t.p[4] == ':' && parse_hex16(AT_SPAN(t.p, 4), &syms[nsym].kdf) &&
                      parse_hex16(AT_SPAN(t.p + 5, 4), &syms[nsym].aead) &&
                      (t.len == 9 || t.p[9] == ','),
                  d, AT_E_BAD_FIELD, "key file line %zu: suite %zu: expected KDF:AEAD in hex",
                  lineno, nsym);
        nsym++;
        size_t adv = t.len == 9 ? 9 : 10;
        t.p += adv;
        t.len -= adv;
        AT_ENSURE(adv == 9 || t.len > 0, d, AT_E_BAD_FIELD, "key file line %zu: trailing comma",
                  lineno);
    }
    AT_ENSURE(next_token(&line).len == 0, d, AT_E_BAD_FIELD,
              "key file line %zu: unexpected text after the suites", lineno);
    rc = at_ohttp_keyset_add_private(ks, (uint8_t)id, AT_SPAN(sk, sizeof sk), syms, nsym, d);
    if (rc != AT_OK)
        at_diag_prefix(d, "key file line %zu: ", lineno);
out:
    at_wipe(sk, sizeof sk);
    return rc;
}

at_err at_ohttp_keyset_parse(at_span text, at_ohttp_keyset **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_ohttp_keyset *ks = NULL;
    at_reader r;
    size_t lineno = 0;
    bool header = false;

    AT_ENSURE(text.len <= AT_MAX_OHTTP_KEYFILE, d, AT_E_TOO_LARGE, "key file: over %d bytes",
              AT_MAX_OHTTP_KEYFILE);
    AT_TRY(at_ohttp_keyset_new(&ks, d));
    at_reader_init(&r, text.p, text.len);
    while (!at_reader_at_end(&r)) {
        size_t left = at_reader_left(&r);
        const uint8_t *start = r.p + r.off;
        const uint8_t *nl = memchr(start, '\n', left);
        at_span line;
        if (!at_reader_take(&r, nl ? (size_t)(nl - start) : left, &line) ||
            (nl && !at_reader_skip(&r, 1)))
            AT_ENSURE(false, d, AT_E_INTERNAL, "key file: reader");
        lineno++;
        if (line.len && line.p[line.len - 1] == '\r')
            line.len--;
        if (line.len == 0 || line.p[0] == '#')
            continue;
        if (!header) {
            AT_ENSURE(span_eq_str(line, keyfile_magic), d, AT_E_BAD_FIELD,
                      "key file line %zu: expected \"%s\"", lineno, keyfile_magic);
            header = true;
            continue;
        }
        AT_TRY(parse_key_line(ks, lineno, line, d));
    }
    AT_ENSURE(header, d, AT_E_BAD_FIELD, "key file: not an attest OHTTP key file");
    AT_ENSURE(ks->n > 0, d, AT_E_BAD_FIELD, "key file: no keys");
    *out = ks;
    ks = NULL;
    rc = AT_OK;
out:
    at_ohttp_keyset_free(ks);
    return rc;
}

at_err at_ohttp_keyset_serialize(const at_ohttp_keyset *ks, at_buf *out, at_diag *d)
{
    at_err rc = AT_OK;
    (void)at_buf_printf(out, "# attest OHTTP key set (RFC 9458 keys). SECRET: keep mode 0600.\n"
                             "# key <key_id> x25519 <private key hex> <kdf>:<aead>,...\n%s\n",
                        keyfile_magic);
    for (size_t i = 0; i < ks->n && rc == AT_OK; i++) {
        const ks_entry *e = &ks->e[i];
        at_secret *sk = NULL;
        char hex[2 * AT_HPKE_NSK + 1];
        rc = at_hpke_key_private(e->key, &sk, d);
        if (rc != AT_OK)
            break;
        at_hex_encode(sk->p, sk->len, hex);
        at_secret_free(sk);
        (void)at_buf_printf(out, "key %u x25519 %s ", e->id, hex);
        at_wipe(hex, sizeof hex);
        for (size_t j = 0; j < e->nsym; j++)
            (void)at_buf_printf(out, "%s%04x:%04x", j ? "," : "", e->sym[j].kdf, e->sym[j].aead);
        (void)at_buf_u8(out, '\n');
        rc = at_buf_status(out);
        if (rc != AT_OK)
            rc = at_fail(d, rc, "key file: buffer failed");
    }
    return rc;
}

at_err at_ohttp_keyset_load(const char *path, at_ohttp_keyset **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_buf b;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    at_buf_init_secret(&b);
    at_buf_set_max(&b, AT_MAX_OHTTP_KEYFILE + 1);
    AT_ENSURE(fd >= 0, d, AT_E_IO, "key file %s: %s", path, strerror(errno));
    AT_ENSURE(fstat(fd, &st) == 0, d, AT_E_IO, "key file %s: %s", path, strerror(errno));
    AT_ENSURE(S_ISREG(st.st_mode), d, AT_E_IO, "key file %s: not a regular file", path);
    /* Like ssh: a private key others can read is refused, not used. */
    AT_ENSURE((st.st_mode & 077) == 0, d, AT_E_FORBIDDEN,
              "key file %s: mode %04o lets others read it (chmod 600)", path,
              (unsigned)(st.st_mode & 07777));
    for (;;) {
        AT_ENSURE(at_buf_reserve(&b, 4096) == AT_OK, d, AT_E_TOO_LARGE,
                  "key file %s: over %d bytes", path, AT_MAX_OHTTP_KEYFILE);
        ssize_t n = read(fd, b.p + b.len, b.cap - b.len);
        if (n < 0 && errno == EINTR)
            continue;
        AT_ENSURE(n >= 0, d, AT_E_IO, "key file %s: %s", path, strerror(errno));
        if (n == 0)
            break;
        b.len += (size_t)n;
    }
    rc = at_ohttp_keyset_parse(at_buf_span(&b), out, d);
out:
    if (fd >= 0)
        close(fd);
    at_buf_cleanup(&b);
    return rc;
}

at_err at_ohttp_keyset_save(const at_ohttp_keyset *ks, const char *path, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_buf b;
    int fd = -1;
    size_t done = 0;

    at_buf_init_secret(&b);
    AT_TRY(at_ohttp_keyset_serialize(ks, &b, d));
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    AT_ENSURE(fd >= 0, d, AT_E_IO, "key file %s: %s", path, strerror(errno));
    AT_ENSURE(fchmod(fd, 0600) == 0, d, AT_E_IO, "key file %s: chmod: %s", path, strerror(errno));
    while (done < b.len) {
        ssize_t n = write(fd, b.p + done, b.len - done);
        if (n < 0 && errno == EINTR)
            continue;
        AT_ENSURE(n > 0, d, AT_E_IO, "key file %s: %s", path, strerror(errno));
        done += (size_t)n;
    }
    AT_ENSURE(fsync(fd) == 0, d, AT_E_IO, "key file %s: fsync: %s", path, strerror(errno));
    rc = AT_OK;
out:
    if (fd >= 0 && close(fd) != 0 && rc == AT_OK)
        rc = at_fail(d, AT_E_IO, "key file %s: close: %s", path, strerror(errno));
    at_buf_cleanup(&b);
    return rc;
}

/* ---- response keys (RFC 9458 §4.4; chunked draft §6.2) ------------------------ */

typedef struct {
    uint16_t aead;
    size_t nk;
    uint8_t key[AT_HPKE_MAX_NK];
    uint8_t nonce[AT_HPKE_NN];
    uint64_t counter;
} resp_keys;

static at_err derive_response_keys(const at_hpke_ctx *ctx, const char *label, at_span enc,
                                   at_span response_nonce, resp_keys *rk, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_hpke_suite s = at_hpke_ctx_suite(ctx);
    size_t el = entropy_len(s.aead);
    uint8_t secret[ENTROPY_MAX], prk[AT_HPKE_NH], salt[AT_HPKE_NENC + ENTROPY_MAX];

    AT_ENSURE(response_nonce.len == el && enc.len == AT_HPKE_NENC, d, AT_E_INTERNAL,
              "response nonce of %zu bytes", response_nonce.len);
    AT_TRY(at_hpke_export(ctx, AT_SPAN(label, strlen(label)), el, secret, d));
    memcpy(salt, enc.p, enc.len);
    memcpy(salt + enc.len, response_nonce.p, el);
    AT_TRY(at_hpke_kdf_extract(s.kdf, AT_SPAN(salt, enc.len + el), AT_SPAN(secret, el), prk, d));
    rk->aead = s.aead;
    rk->nk = at_hpke_aead_nk(s.aead);
    rk->counter = 0;
    AT_TRY(at_hpke_kdf_expand(s.kdf, AT_SPAN(prk, sizeof prk), AT_SPAN("key", 3), rk->key, rk->nk, d));
    AT_TRY(at_hpke_kdf_expand(s.kdf, AT_SPAN(prk, sizeof prk), AT_SPAN("nonce", 5), rk->nonce,
                              AT_HPKE_NN, d));
    rc = AT_OK;
out:
    at_wipe(secret, sizeof secret);
    at_wipe(prk, sizeof prk);
    return rc;
}

/* chunk_nonce = aead_nonce XOR encode(Nn, counter); counter 0 is the
 * non-chunked nonce. */
static at_err resp_crypt(resp_keys *rk, bool seal, bool final, at_span in, at_buf *out, at_diag *d)
{
    uint8_t nonce[AT_HPKE_NN];
    at_span aad = final ? AT_SPAN(aad_final, sizeof aad_final - 1) : AT_SPAN_NULL;
    if (rk->counter == UINT64_MAX)
        return at_fail(d, AT_E_SEQUENCE_OVERFLOW, "response chunk counter exhausted");
    memcpy(nonce, rk->nonce, AT_HPKE_NN);
    for (int i = 0; i < 8; i++)
        nonce[AT_HPKE_NN - 1 - i] ^= (uint8_t)(rk->counter >> (8 * i));
    at_span key = AT_SPAN(rk->key, rk->nk), ns = AT_SPAN(nonce, sizeof nonce);
    at_err rc = seal ? at_hpke_aead_seal(rk->aead, key, ns, aad, in, out, d)
                     : at_hpke_aead_open(rk->aead, key, ns, aad, in, out, d);
    if (rc == AT_OK)
        rk->counter++;
    return rc;
}

/* ---- chunk framing, shared by both directions ------------------------------------ */

enum { RX_LEN, RX_BODY, RX_FINAL, RX_DONE };

#define RX_SLICE (16 * 1024)
#define RX_MAX_CT ((uint64_t)AT_MAX_OHTTP_CHUNK + AT_HPKE_NT)

typedef struct {
    at_buf in;
    size_t off;
    int state;
    uint64_t body_len;
    uint64_t chunks;
} chunk_rx;

/* Opens one chunk's ciphertext into out. */
typedef at_err (*open_fn)(void *self, bool final, at_span ct, at_buf *out, at_diag *d);
/* Seals one chunk's plaintext into out. */
typedef at_err (*seal_fn)(void *self, bool final, at_span pt, at_buf *out, at_diag *d);

static void rx_init(chunk_rx *rx)
{
    memset(rx, 0, sizeof *rx);
    at_buf_set_max(&rx->in, (size_t)RX_MAX_CT + RX_SLICE + 16);
    rx->state = RX_LEN;
}

static at_err rx_process(chunk_rx *rx, open_fn fn, void *self, at_buf *out, at_diag *d)
{
    for (;;) {
        at_reader r;
        uint64_t len;
        at_span ct;
        at_err rc;
        at_reader_init(&r, rx->in.p + rx->off, rx->in.len - rx->off);
        switch (rx->state) {
        case RX_LEN:
            if (!at_reader_varint(&r, &len))
                return AT_OK;
            if (len == 0) {
                rx->state = RX_FINAL;
            } else if (len > RX_MAX_CT) {
                return at_fail(d, AT_E_TOO_LARGE, "chunk %llu: length %llu, limit %llu",
                               (unsigned long long)rx->chunks, (unsigned long long)len,
                               (unsigned long long)RX_MAX_CT);
            } else if (len <= AT_HPKE_NT) {
                /* The draft: an empty non-final chunk is a decryption error. */
                return at_fail(d, AT_E_DECRYPT_FAILED, "chunk %llu: %llu bytes holds no data",
                               (unsigned long long)rx->chunks, (unsigned long long)len);
            } else {
                rx->body_len = len;
                rx->state = RX_BODY;
            }
            rx->off += r.off;
            break;
        case RX_BODY:
            if (!at_reader_take(&r, (size_t)rx->body_len, &ct))
                return AT_OK;
            rc = fn(self, false, ct, out, d);
            if (rc != AT_OK) {
                at_diag_prefix(d, "chunk %llu: ", (unsigned long long)rx->chunks);
                return rc;
            }
            rx->chunks++;
            rx->off += r.off;
            rx->state = RX_LEN;
            break;
        case RX_FINAL:
            /* The final chunk runs to the end of the stream. */
            if (at_reader_left(&r) > RX_MAX_CT)
                return at_fail(d, AT_E_TOO_LARGE, "final chunk: over %llu bytes",
                               (unsigned long long)RX_MAX_CT);
            return AT_OK;
        default:
            if (at_reader_left(&r))
                return at_fail(d, AT_E_BAD_FIELD, "data after the final chunk");
            return AT_OK;
        }
    }
}

static at_err rx_feed(chunk_rx *rx, at_span in, open_fn fn, void *self, at_buf *out, at_diag *d)
{
    if (rx->state == RX_DONE && in.len)
        return at_fail(d, AT_E_BAD_FIELD, "data after the end of the stream");
    while (in.len) {
        size_t n = in.len < RX_SLICE ? in.len : RX_SLICE;
        if (rx->off) {
            size_t left = rx->in.len - rx->off;
            memmove(rx->in.p, rx->in.p + rx->off, left);
            rx->in.len = left;
            rx->off = 0;
        }
        at_err rc = at_buf_append(&rx->in, in.p, n);
        if (rc != AT_OK)
            return at_fail(d, rc, "chunk buffer refused %zu bytes", n);
        in.p += n;
        in.len -= n;
        rc = rx_process(rx, fn, self, out, d);
        if (rc != AT_OK)
            return rc;
    }
    return AT_OK;
}

static at_err rx_finish(chunk_rx *rx, open_fn fn, void *self, at_buf *out, at_diag *d)
{
    size_t pending = rx->in.len - rx->off;
    at_err rc;
    switch (rx->state) {
    case RX_LEN:
        if (pending)
            return at_fail(d, AT_E_TRUNCATED, "chunk %llu: length truncated",
                           (unsigned long long)rx->chunks);
        return at_fail(d, AT_E_TRUNCATED, "stream ended after %llu chunks without the final one",
                       (unsigned long long)rx->chunks);
    case RX_BODY:
        return at_fail(d, AT_E_TRUNCATED, "chunk %llu: %zu of %llu bytes",
                       (unsigned long long)rx->chunks, pending, (unsigned long long)rx->body_len);
    case RX_FINAL:
        if (pending < AT_HPKE_NT)
            return at_fail(d, AT_E_TRUNCATED, "final chunk: %zu bytes, shorter than a tag",
                           pending);
        rc = fn(self, true, AT_SPAN(rx->in.p + rx->off, pending), out, d);
        if (rc != AT_OK) {
            at_diag_prefix(d, "final chunk: ");
            return rc;
        }
        rx->off += pending;
        rx->state = RX_DONE;
        return AT_OK;
    default:
        return at_fail(d, AT_E_BAD_FIELD, "stream already finished");
    }
}

static void rx_cleanup(chunk_rx *rx)
{
    at_buf_cleanup(&rx->in);
}

/* Seal a piece as one or more chunks; the last one final when asked. */
static at_err tx_chunks(bool *ended, at_span piece, bool final, seal_fn fn, void *self,
                        at_buf *out, at_diag *d)
{
    for (;;) {
        size_t n = piece.len < AT_OHTTP_SEND_CHUNK ? piece.len : AT_OHTTP_SEND_CHUNK;
        bool last = n == piece.len, is_final = final && last;
        (void)at_buf_varint(out, is_final ? 0 : n + AT_HPKE_NT);
        at_err rc = at_buf_status(out);
        if (rc == AT_OK)
            rc = fn(self, is_final, AT_SPAN(piece.p, n), out, d);
        if (rc != AT_OK)
            return rc;
        if (last)
            break; /* before advancing: piece.p may be NULL (an empty piece) */
        piece.p += n;
        piece.len -= n;
    }
    *ended = final;
    return AT_OK;
}

/* ---- client ----------------------------------------------------------------------- */

struct at_ohttp_client {
    at_hpke_suite suite;
    bool chunked;
    uint8_t hdr[HDR_LEN];
    uint8_t enc[AT_HPKE_NENC];
    at_hpke_ctx *ctx;
    bool request_sent; /* whole request sealed, or header written */
    bool request_ended;
    /* response */
    uint8_t rnonce[ENTROPY_MAX];
    size_t rnonce_have;
    bool keys_ready;
    bool response_done;
    resp_keys rk;
    chunk_rx rx;
    at_err err;
};

static void put_hdr(uint8_t hdr[HDR_LEN], uint8_t key_id, at_hpke_suite s)
{
    hdr[0] = key_id;
    hdr[1] = (uint8_t)(s.kem >> 8);
    hdr[2] = (uint8_t)s.kem;
    hdr[3] = (uint8_t)(s.kdf >> 8);
    hdr[4] = (uint8_t)s.kdf;
    hdr[5] = (uint8_t)(s.aead >> 8);
    hdr[6] = (uint8_t)s.aead;
}

/* info = label || 0x00 || hdr (RFC 9458 §4.3; chunked draft §6.1) */
static at_err make_info(const char *label, const uint8_t hdr[HDR_LEN], at_buf *info, at_diag *d)
{
    (void)at_buf_append(info, label, strlen(label));
    (void)at_buf_u8(info, 0);
    (void)at_buf_append(info, hdr, HDR_LEN);
    at_err rc = at_buf_status(info);
    return rc == AT_OK ? AT_OK : at_fail(d, rc, "info: buffer failed");
}

static at_err client_new(const at_ohttp_key_config *kc, const at_hpke_suite *suite, bool chunked,
                         at_span skE, at_ohttp_client **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_ohttp_client *c = NULL;
    at_hpke_key *pkR = NULL, *eph = NULL;
    at_hpke_suite s;
    at_buf info;

    at_buf_init(&info);
    if (suite) {
        bool listed = false;
        for (size_t i = 0; i < kc->nsym; i++)
            listed |= kc->sym[i].kdf == suite->kdf && kc->sym[i].aead == suite->aead;
        AT_ENSURE(listed && suite->kem == kc->kem, d, AT_E_UNSUPPORTED_SUITE,
                  "suite 0x%04x/0x%04x/0x%04x: not offered by key config %u", suite->kem,
                  suite->kdf, suite->aead, kc->key_id);
        s = *suite;
    } else {
        AT_TRY(at_ohttp_key_config_suite(kc, &s, d));
    }
    AT_TRY(at_hpke_suite_check(s, d));
    AT_TRY(at_hpke_key_from_public(kc->kem, AT_SPAN(kc->pk, AT_HPKE_NPK), &pkR, d));
    c = calloc(1, sizeof *c);
    AT_ENSURE(c != NULL, d, AT_E_INTERNAL, "out of memory");
    rx_init(&c->rx);
    c->suite = s;
    c->chunked = chunked;
    put_hdr(c->hdr, kc->key_id, s);
    AT_TRY(make_info(chunked ? label_creq : label_req, c->hdr, &info, d));
    at_hpke_params p = {.mode = AT_HPKE_MODE_BASE, .info = at_buf_span(&info)};
    if (skE.len) {
        AT_TRY(at_hpke_key_from_private(kc->kem, skE, &eph, d));
        AT_TRY(at_hpke_setup_sender_eph(s, &p, pkR, eph, c->enc, &c->ctx, d));
    } else {
        AT_TRY(at_hpke_setup_sender(s, &p, pkR, c->enc, &c->ctx, d));
    }
    *out = c;
    c = NULL;
    rc = AT_OK;
out:
    at_buf_cleanup(&info);
    at_hpke_key_free(pkR);
    at_hpke_key_free(eph);
    at_ohttp_client_free(c);
    return rc;
}

at_err at_ohttp_client_new(const at_ohttp_key_config *kc, const at_hpke_suite *suite,
                           bool chunked, at_ohttp_client **out, at_diag *d)
{
    return client_new(kc, suite, chunked, AT_SPAN_NULL, out, d);
}

at_err at_ohttp_client_new_det(const at_ohttp_key_config *kc, const at_hpke_suite *suite,
                               bool chunked, at_span skE, at_ohttp_client **out, at_diag *d)
{
    if (skE.len == 0)
        return at_fail(d, AT_E_KEY_REQUIRED, "skE: missing");
    return client_new(kc, suite, chunked, skE, out, d);
}

void at_ohttp_client_free(at_ohttp_client *c)
{
    if (!c)
        return;
    at_hpke_ctx_free(c->ctx);
    rx_cleanup(&c->rx);
    at_wipe(c, sizeof *c);
    free(c);
}

at_hpke_suite at_ohttp_client_suite(const at_ohttp_client *c) { return c->suite; }

/* Sticky failure: once an exchange failed mid-stream it stays failed.
 * Misuse caught before any state changed (checked in the public wrappers)
 * is reported without failing the exchange. */
#define CHECK_LIVE(obj)                                                       \
    do {                                                                      \
        if ((obj)->err != AT_OK)                                              \
            return at_fail(d, (obj)->err, "exchange failed earlier (%s)",     \
                           at_err_str((obj)->err));                          \
    } while (0)
#define RUN_STICKY(obj, expr)            \
    do {                                 \
        at_err sticky_rc_ = (expr);      \
        if (sticky_rc_ != AT_OK)         \
            (obj)->err = sticky_rc_;     \
        return sticky_rc_;               \
    } while (0)

static at_err client_seal_request(at_ohttp_client *c, at_span bhttp, at_buf *out, at_diag *d)
{
    size_t mark = out->len;
    (void)at_buf_append(out, c->hdr, HDR_LEN);
    (void)at_buf_append(out, c->enc, AT_HPKE_NENC);
    at_err rc = at_buf_status(out);
    if (rc == AT_OK)
        rc = at_hpke_seal(c->ctx, AT_SPAN_NULL, bhttp, out, d);
    if (rc != AT_OK) {
        if (at_buf_status(out) == AT_OK)
            out->len = mark;
        return rc;
    }
    c->request_sent = c->request_ended = true;
    return AT_OK;
}

at_err at_ohttp_client_seal_request(at_ohttp_client *c, at_span bhttp, at_buf *out, at_diag *d)
{
    CHECK_LIVE(c);
    if (c->chunked || c->request_sent)
        return at_fail(d, AT_E_INTERNAL, "seal_request: %s",
                       c->chunked ? "chunked exchange" : "request already sealed");
    if (bhttp.len > AT_MAX_OHTTP_MESSAGE)
        return at_fail(d, AT_E_TOO_LARGE, "request: %zu bytes, limit %d", bhttp.len,
                       AT_MAX_OHTTP_MESSAGE);
    RUN_STICKY(c, client_seal_request(c, bhttp, out, d));
}

static at_err client_open_response(at_ohttp_client *c, at_span body, at_buf *out, at_diag *d)
{
    at_err rc;
    size_t el = entropy_len(c->suite.aead);
    if (body.len < el + AT_HPKE_NT)
        return at_fail(d, AT_E_TRUNCATED,
                       "encapsulated response: %zu bytes, at least %zu (nonce and tag) needed",
                       body.len, el + AT_HPKE_NT);
    if (body.len - el > (size_t)AT_MAX_OHTTP_MESSAGE + AT_HPKE_NT)
        return at_fail(d, AT_E_TOO_LARGE, "encapsulated response: %zu bytes", body.len);
    rc = derive_response_keys(c->ctx, label_res, AT_SPAN(c->enc, AT_HPKE_NENC),
                              AT_SPAN(body.p, el), &c->rk, d);
    if (rc == AT_OK)
        rc = resp_crypt(&c->rk, false, false, AT_SPAN(body.p + el, body.len - el), out, d);
    if (rc == AT_OK)
        c->response_done = true;
    return rc;
}

at_err at_ohttp_client_open_response(at_ohttp_client *c, at_span body, at_buf *out, at_diag *d)
{
    CHECK_LIVE(c);
    if (c->chunked || !c->request_sent || c->response_done)
        return at_fail(d, AT_E_INTERNAL, "open_response: %s",
                       c->chunked ? "chunked exchange" : "no request, or already opened");
    RUN_STICKY(c, client_open_response(c, body, out, d));
}

static at_err client_chunk_seal(void *self, bool final, at_span pt, at_buf *out, at_diag *d)
{
    at_ohttp_client *c = self;
    at_span aad = final ? AT_SPAN(aad_final, sizeof aad_final - 1) : AT_SPAN_NULL;
    return at_hpke_seal(c->ctx, aad, pt, out, d);
}

static at_err client_seal_chunk(at_ohttp_client *c, at_span piece, bool final, at_buf *out,
                                at_diag *d)
{
    if (!c->request_sent) {
        (void)at_buf_append(out, c->hdr, HDR_LEN);
        (void)at_buf_append(out, c->enc, AT_HPKE_NENC);
        if (at_buf_status(out) != AT_OK)
            return at_fail(d, at_buf_status(out), "request header: buffer failed");
        c->request_sent = true;
    }
    return tx_chunks(&c->request_ended, piece, final, client_chunk_seal, c, out, d);
}

/* Chunk misuse, checked before anything is written. */
static at_err tx_usage(bool chunked, bool ended, at_span piece, bool final, at_diag *d)
{
    if (!chunked)
        return at_fail(d, AT_E_INTERNAL, "seal_chunk: not a chunked exchange");
    if (ended)
        return at_fail(d, AT_E_BAD_FIELD, "chunk after the final chunk");
    if (!final && piece.len == 0)
        return at_fail(d, AT_E_BAD_FIELD, "non-final chunk: empty (forbidden by the draft)");
    return AT_OK;
}

at_err at_ohttp_client_seal_chunk(at_ohttp_client *c, at_span piece, bool final, at_buf *out,
                                  at_diag *d)
{
    CHECK_LIVE(c);
    at_err rc = tx_usage(c->chunked, c->request_ended, piece, final, d);
    if (rc != AT_OK)
        return rc;
    RUN_STICKY(c, client_seal_chunk(c, piece, final, out, d));
}

static at_err client_chunk_open(void *self, bool final, at_span ct, at_buf *out, at_diag *d)
{
    return resp_crypt(&((at_ohttp_client *)self)->rk, false, final, ct, out, d);
}

static at_err client_feed(at_ohttp_client *c, at_span in, at_buf *out, at_diag *d)
{
    if (!c->keys_ready) {
        size_t el = entropy_len(c->suite.aead);
        size_t n = el - c->rnonce_have;
        if (n > in.len)
            n = in.len;
        if (n)
            memcpy(c->rnonce + c->rnonce_have, in.p, n);
        c->rnonce_have += n;
        in.p += n;
        in.len -= n;
        if (c->rnonce_have < el)
            return AT_OK;
        at_err rc = derive_response_keys(c->ctx, label_cres, AT_SPAN(c->enc, AT_HPKE_NENC),
                                         AT_SPAN(c->rnonce, el), &c->rk, d);
        if (rc != AT_OK)
            return rc;
        c->keys_ready = true;
    }
    return rx_feed(&c->rx, in, client_chunk_open, c, out, d);
}

static at_err rx_usage(bool chunked, bool started, at_diag *d)
{
    if (!chunked)
        return at_fail(d, AT_E_INTERNAL, "not a chunked exchange");
    if (!started)
        return at_fail(d, AT_E_INTERNAL, "no request sent yet");
    return AT_OK;
}

at_err at_ohttp_client_feed(at_ohttp_client *c, at_span in, at_buf *out, at_diag *d)
{
    CHECK_LIVE(c);
    at_err rc = rx_usage(c->chunked, c->request_sent, d);
    if (rc != AT_OK)
        return rc;
    RUN_STICKY(c, client_feed(c, in, out, d));
}

static at_err client_finish(at_ohttp_client *c, at_buf *out, at_diag *d)
{
    if (!c->keys_ready)
        return at_fail(d, AT_E_TRUNCATED, "response nonce: %zu of %zu bytes", c->rnonce_have,
                       entropy_len(c->suite.aead));
    return rx_finish(&c->rx, client_chunk_open, c, out, d);
}

at_err at_ohttp_client_finish(at_ohttp_client *c, at_buf *out, at_diag *d)
{
    CHECK_LIVE(c);
    at_err rc = rx_usage(c->chunked, c->request_sent, d);
    if (rc != AT_OK)
        return rc;
    RUN_STICKY(c, client_finish(c, out, d));
}

/* ---- server ------------------------------------------------------------------------- */

struct at_ohttp_server {
    const at_ohttp_keyset *ks;
    bool chunked;
    uint8_t hdr[HDR_LEN + AT_HPKE_NENC];
    size_t hdr_have;
    bool ready;
    uint8_t key_id;
    at_hpke_suite suite;
    at_hpke_ctx *ctx;
    chunk_rx rx;
    /* response */
    uint8_t test_nonce[ENTROPY_MAX];
    bool have_test_nonce;
    bool response_started, response_ended;
    resp_keys rk;
    at_err err;
};

static at_ohttp_server *server_alloc(const at_ohttp_keyset *ks, bool chunked)
{
    at_ohttp_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->ks = ks;
    s->chunked = chunked;
    rx_init(&s->rx);
    return s;
}

void at_ohttp_server_free(at_ohttp_server *s)
{
    if (!s)
        return;
    at_hpke_ctx_free(s->ctx);
    rx_cleanup(&s->rx);
    at_wipe(s, sizeof *s);
    free(s);
}

uint8_t at_ohttp_server_key_id(const at_ohttp_server *s) { return s->key_id; }
at_hpke_suite at_ohttp_server_suite(const at_ohttp_server *s) { return s->suite; }
bool at_ohttp_server_ready(const at_ohttp_server *s) { return s->ready; }

/* Key and suite from the 7-byte header (RFC 9458 §4.1). */
static at_err server_header(at_ohttp_server *s, const uint8_t *hdr, const ks_entry **entry,
                            at_diag *d)
{
    uint8_t id = hdr[0];
    at_hpke_suite su = {(uint16_t)(hdr[1] << 8 | hdr[2]), (uint16_t)(hdr[3] << 8 | hdr[4]),
                        (uint16_t)(hdr[5] << 8 | hdr[6])};
    const ks_entry *e = find_key(s->ks, id);
    if (!e)
        return at_fail(d, AT_E_UNKNOWN_KEY_ID, "key_id: %u is not one of this gateway's %zu keys",
                       id, s->ks->n);
    bool offered = su.kem == at_hpke_key_kem(e->key);
    bool listed = false;
    for (size_t i = 0; i < e->nsym; i++)
        listed |= e->sym[i].kdf == su.kdf && e->sym[i].aead == su.aead;
    if (!offered || !listed)
        return at_fail(d, AT_E_UNSUPPORTED_SUITE,
                       "suite kem 0x%04x kdf 0x%04x aead 0x%04x: not offered for key %u", su.kem,
                       su.kdf, su.aead, id);
    s->key_id = id;
    s->suite = su;
    *entry = e;
    return AT_OK;
}

static at_err server_setup(at_ohttp_server *s, const ks_entry *e, const uint8_t *hdr, at_span enc,
                           at_diag *d)
{
    at_buf info;
    at_buf_init(&info);
    at_err rc = make_info(s->chunked ? label_creq : label_req, hdr, &info, d);
    if (rc == AT_OK) {
        at_hpke_params p = {.mode = AT_HPKE_MODE_BASE, .info = at_buf_span(&info)};
        rc = at_hpke_setup_recipient(s->suite, &p, e->key, enc, &s->ctx, d);
    }
    at_buf_cleanup(&info);
    if (rc == AT_OK) {
        memcpy(s->hdr + HDR_LEN, enc.p, AT_HPKE_NENC);
        s->ready = true;
    }
    return rc;
}

at_err at_ohttp_server_open_request(const at_ohttp_keyset *ks, at_span body, at_buf *out,
                                    at_ohttp_server **srv, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_ohttp_server *s = NULL;
    const ks_entry *e = NULL;
    at_reader r;
    at_span hdr, enc;

    AT_ENSURE(body.len <= (size_t)AT_MAX_OHTTP_MESSAGE + HDR_LEN + AT_HPKE_NENC + AT_HPKE_NT, d,
              AT_E_TOO_LARGE, "encapsulated request: %zu bytes, limit %d", body.len,
              AT_MAX_OHTTP_MESSAGE);
    s = server_alloc(ks, false);
    AT_ENSURE(s != NULL, d, AT_E_INTERNAL, "out of memory");
    at_reader_init(&r, body.p, body.len);
    AT_ENSURE(at_reader_take(&r, HDR_LEN, &hdr), d, AT_E_TRUNCATED,
              "encapsulated request: header: expected %d bytes, got %zu", HDR_LEN, body.len);
    memcpy(s->hdr, hdr.p, HDR_LEN);
    AT_TRY(server_header(s, hdr.p, &e, d));
    AT_ENSURE(at_reader_take(&r, AT_HPKE_NENC, &enc), d, AT_E_TRUNCATED,
              "encapsulated request: enc: expected %d bytes, got %zu", AT_HPKE_NENC,
              at_reader_left(&r));
    AT_TRY(server_setup(s, e, hdr.p, enc, d));
    rc = at_hpke_open(s->ctx, AT_SPAN_NULL, at_reader_rest(&r), out, d);
    if (rc != AT_OK) {
        at_diag_prefix(d, "encapsulated request: ");
        goto out;
    }
    *srv = s;
    s = NULL;
    rc = AT_OK;
out:
    at_ohttp_server_free(s);
    return rc;
}

at_err at_ohttp_server_open_bhttp(const at_ohttp_keyset *ks, at_span body, at_bhttp_msg **req,
                                  at_ohttp_server **srv, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_ohttp_server *s = NULL;
    at_buf plain;

    at_buf_init_secret(&plain);
    AT_TRY(at_ohttp_server_open_request(ks, body, &plain, &s, d));
    rc = at_bhttp_decode(at_buf_span(&plain), AT_BHTTP_REQUEST, req, d);
    if (rc != AT_OK) {
        at_diag_prefix(d, "binary http request: ");
        goto out;
    }
    *srv = s;
    s = NULL;
out:
    at_buf_cleanup(&plain);
    at_ohttp_server_free(s);
    return rc;
}

at_err at_ohttp_server_set_nonce_for_tests(at_ohttp_server *s, at_span nonce, at_diag *d)
{
    size_t el = entropy_len(s->suite.aead);
    if (!s->ready || s->response_started)
        return at_fail(d, AT_E_INTERNAL, "test nonce: request not opened, or response started");
    if (nonce.len != el)
        return at_fail(d, AT_E_BAD_FIELD, "test nonce: expected %zu bytes, got %zu", el, nonce.len);
    memcpy(s->test_nonce, nonce.p, el);
    s->have_test_nonce = true;
    return AT_OK;
}

/* Writes the response nonce and derives the response keys. */
static at_err server_begin_response(at_ohttp_server *s, at_buf *out, at_diag *d)
{
    uint8_t nonce[ENTROPY_MAX];
    size_t el = entropy_len(s->suite.aead);
    if (!s->ready)
        return at_fail(d, AT_E_INTERNAL, "response before the request header");
    if (s->have_test_nonce)
        memcpy(nonce, s->test_nonce, el);
    else if (RAND_bytes(nonce, (int)el) != 1)
        return at_fail(d, AT_E_INTERNAL, "openssl: RAND_bytes failed");
    at_err rc = derive_response_keys(s->ctx, s->chunked ? label_cres : label_res,
                                     AT_SPAN(s->hdr + HDR_LEN, AT_HPKE_NENC), AT_SPAN(nonce, el),
                                     &s->rk, d);
    if (rc != AT_OK)
        return rc;
    rc = at_buf_append(out, nonce, el);
    if (rc != AT_OK)
        return at_fail(d, rc, "response nonce: buffer failed");
    s->response_started = true;
    return AT_OK;
}

static at_err server_seal_response(at_ohttp_server *s, at_span bhttp, at_buf *out, at_diag *d)
{
    size_t mark = out->len;
    at_err rc = server_begin_response(s, out, d);
    if (rc == AT_OK)
        rc = resp_crypt(&s->rk, true, false, bhttp, out, d);
    if (rc != AT_OK && at_buf_status(out) == AT_OK)
        out->len = mark;
    if (rc == AT_OK)
        s->response_ended = true;
    return rc;
}

at_err at_ohttp_server_seal_response(at_ohttp_server *s, at_span bhttp, at_buf *out, at_diag *d)
{
    CHECK_LIVE(s);
    if (s->chunked || s->response_started)
        return at_fail(d, AT_E_INTERNAL, "seal_response: %s",
                       s->chunked ? "chunked exchange" : "response already sealed");
    RUN_STICKY(s, server_seal_response(s, bhttp, out, d));
}

at_err at_ohttp_server_new_chunked(const at_ohttp_keyset *ks, at_ohttp_server **out, at_diag *d)
{
    at_ohttp_server *s = server_alloc(ks, true);
    if (!s)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    *out = s;
    return AT_OK;
}

static at_err server_chunk_open(void *self, bool final, at_span ct, at_buf *out, at_diag *d)
{
    at_ohttp_server *s = self;
    at_span aad = final ? AT_SPAN(aad_final, sizeof aad_final - 1) : AT_SPAN_NULL;
    return at_hpke_open(s->ctx, aad, ct, out, d);
}

static at_err server_feed(at_ohttp_server *s, at_span in, at_buf *out, at_diag *d)
{
    if (!s->ready) {
        const ks_entry *e = NULL;
        size_t want = sizeof s->hdr - s->hdr_have;
        size_t n = want < in.len ? want : in.len;
        bool had_hdr = s->hdr_have >= HDR_LEN;
        if (n)
            memcpy(s->hdr + s->hdr_have, in.p, n);
        s->hdr_have += n;
        in.p += n;
        in.len -= n;
        /* Refuse an unknown key id or suite as soon as the 7 bytes are in. */
        if (!had_hdr && s->hdr_have >= HDR_LEN) {
            at_err rc = server_header(s, s->hdr, &e, d);
            if (rc != AT_OK)
                return rc;
        }
        if (s->hdr_have < sizeof s->hdr)
            return AT_OK;
        at_err rc = server_header(s, s->hdr, &e, d);
        if (rc == AT_OK)
            rc = server_setup(s, e, s->hdr, AT_SPAN(s->hdr + HDR_LEN, AT_HPKE_NENC), d);
        if (rc != AT_OK)
            return rc;
    }
    return rx_feed(&s->rx, in, server_chunk_open, s, out, d);
}

at_err at_ohttp_server_feed(at_ohttp_server *s, at_span in, at_buf *out, at_diag *d)
{
    CHECK_LIVE(s);
    at_err rc = rx_usage(s->chunked, true, d);
    if (rc != AT_OK)
        return rc;
    RUN_STICKY(s, server_feed(s, in, out, d));
}

static at_err server_finish(at_ohttp_server *s, at_buf *out, at_diag *d)
{
    if (!s->ready)
        return at_fail(d, AT_E_TRUNCATED, "request header: %zu of %zu bytes", s->hdr_have,
                       sizeof s->hdr);
    return rx_finish(&s->rx, server_chunk_open, s, out, d);
}

at_err at_ohttp_server_finish(at_ohttp_server *s, at_buf *out, at_diag *d)
{
    CHECK_LIVE(s);
    at_err rc = rx_usage(s->chunked, true, d);
    if (rc != AT_OK)
        return rc;
    RUN_STICKY(s, server_finish(s, out, d));
}

static at_err server_chunk_seal(void *self, bool final, at_span pt, at_buf *out, at_diag *d)
{
    return resp_crypt(&((at_ohttp_server *)self)->rk, true, final, pt, out, d);
}

static at_err server_seal_chunk(at_ohttp_server *s, at_span piece, bool final, at_buf *out,
                                at_diag *d)
{
    if (!s->response_started) {
        at_err rc = server_begin_response(s, out, d);
        if (rc != AT_OK)
            return rc;
    }
    return tx_chunks(&s->response_ended, piece, final, server_chunk_seal, s, out, d);
}

at_err at_ohttp_server_seal_chunk(at_ohttp_server *s, at_span piece, bool final, at_buf *out,
                                  at_diag *d)
{
    CHECK_LIVE(s);
    at_err rc = tx_usage(s->chunked, s->response_ended, piece, final, d);
    if (rc == AT_OK && !s->ready)
        rc = at_fail(d, AT_E_INTERNAL, "response before the request header");
    if (rc != AT_OK)
        return rc;
    RUN_STICKY(s, server_seal_chunk(s, piece, final, out, d));
}

const at_hpke_key *at_ohttp_keyset_key(const at_ohttp_keyset *ks, uint8_t key_id)
{
    const ks_entry *e = find_key(ks, key_id);
    return e ? e->key : NULL;
}
