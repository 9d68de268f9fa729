/* ohttp_keyset: the server's key set and key file (lib/ohttp_keyset.h).
 * Reads the key file (attacker-influenced text) strictly and size-capped;
 * private keys stay in at_hpke_key and every copy is wiped. */
#include "config.h"

#include "ohttp_keyset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enc.h"

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
    AT_ENSURE(ks->n < AT_MAX_OHTTP_KEYS, d, AT_E_TOO_LARGE, "key set: more than %d keys", AT_MAX_OHTTP_KEYS);
    AT_ENSURE(nsym <= AT_MAX_OHTTP_SUITES, d, AT_E_TOO_LARGE, "key %u: %zu suites, limit %d", id, nsym,
              AT_MAX_OHTTP_SUITES);
    for (size_t i = 0; i < nsym; i++)
        AT_ENSURE(at_ohttp_suite_supported(syms[i].kdf, syms[i].aead), d, AT_E_UNSUPPORTED_SUITE,
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

at_err at_ohttp_keyset_add_private(at_ohttp_keyset *ks, uint8_t key_id, at_span sk, const at_ohttp_sym *syms,
                                   size_t nsym, at_diag *d)
{
    at_hpke_key *k = NULL;
    at_err rc = at_hpke_key_from_private(AT_HPKE_KEM_X25519_SHA256, sk, &k, d);
    if (rc != AT_OK)
        return rc;
    return add_key(ks, key_id, k, syms, nsym, d);
}

size_t at_ohttp_keyset_count(const at_ohttp_keyset *ks) { return ks->n; }

uint8_t at_ohttp_keyset_id(const at_ohttp_keyset *ks, size_t i) { return i < ks->n ? ks->e[i].id : 0; }

static void entry_config(const ks_entry *e, at_ohttp_key_config *kc)
{
    memset(kc, 0, sizeof *kc);
    kc->key_id = e->id;
    kc->kem = at_hpke_key_kem(e->key);
    memcpy(kc->pk, at_hpke_key_public(e->key).p, AT_HPKE_NPK);
    kc->nsym = e->nsym;
    memcpy(kc->sym, e->sym, e->nsym * sizeof *e->sym);
}

at_err at_ohttp_keyset_config(const at_ohttp_keyset *ks, uint8_t key_id, at_ohttp_key_config *out, at_diag *d)
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

static bool span_eq_str(at_span s, const char *lit) { return at_span_eq(s, AT_SPAN(lit, strlen(lit))); }

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
    AT_ENSURE(span_eq_str(t, "key"), d, AT_E_BAD_FIELD, "key file line %zu: expected \"key\"", lineno);
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
                  at_hex_decode((const char *)t.p, t.len, sk, sizeof sk, &n) == AT_OK && n == AT_HPKE_NSK,
              d, AT_E_BAD_FIELD, "key file line %zu: private key: expected %d hex digits", lineno,
              2 * AT_HPKE_NSK);
    t = next_token(&line);
    AT_ENSURE(t.len > 0, d, AT_E_BAD_FIELD, "key file line %zu: suites missing", lineno);
    while (t.len) {
        AT_ENSURE(nsym < AT_MAX_OHTTP_SUITES, d, AT_E_TOO_LARGE, "key file line %zu: more than %d suites",
                  lineno, AT_MAX_OHTTP_SUITES);
        AT_ENSURE(t.len >= 9 && t.p[4] == ':' && parse_hex16(AT_SPAN(t.p, 4), &syms[nsym].kdf) &&
                      parse_hex16(AT_SPAN(t.p + 5, 4), &syms[nsym].aead) && (t.len == 9 || t.p[9] == ','),
                  d, AT_E_BAD_FIELD, "key file line %zu: suite %zu: expected KDF:AEAD in hex", lineno, nsym);
        nsym++;
        size_t adv = t.len == 9 ? 9 : 10;
        t.p += adv;
        t.len -= adv;
        AT_ENSURE(adv == 9 || t.len > 0, d, AT_E_BAD_FIELD, "key file line %zu: trailing comma", lineno);
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
        if (!at_reader_take(&r, nl ? (size_t)(nl - start) : left, &line) || (nl && !at_reader_skip(&r, 1)))
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
    (void)at_buf_printf(out,
                        "# attest OHTTP key set (RFC 9458 keys). SECRET: keep mode 0600.\n"
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
              "key file %s: mode %04o lets others read it (chmod 600)", path, (unsigned)(st.st_mode & 07777));
    for (;;) {
        AT_ENSURE(at_buf_reserve(&b, 4096) == AT_OK, d, AT_E_TOO_LARGE, "key file %s: over %d bytes", path,
                  AT_MAX_OHTTP_KEYFILE);
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

const at_hpke_key *at_ohttp_keyset_key(const at_ohttp_keyset *ks, uint8_t key_id)
{
    const ks_entry *e = find_key(ks, key_id);
    return e ? e->key : NULL;
}

bool at_ohttp_keyset_offers(const at_ohttp_keyset *ks, uint8_t key_id, at_hpke_suite suite)
{
    const ks_entry *e = find_key(ks, key_id);
    if (!e || suite.kem != at_hpke_key_kem(e->key))
        return false;
    bool listed = false;
    for (size_t i = 0; i < e->nsym; i++)
        listed |= e->sym[i].kdf == suite.kdf && e->sym[i].aead == suite.aead;
    return listed;
}
