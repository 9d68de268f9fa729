/* Helpers shared by the evidence-core unit tests (static, header only):
 * reading test data, a simulator PKI in a mkdtemp directory that is removed
 * afterwards, and a payload builder whose fields can be replaced, removed or
 * re-encoded one by one to make malformed documents. */
#ifndef AT_TEST_UTIL_H
#define AT_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw, mkdtemp */
#endif
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cbor_wr.h"
#include "nitro.h"
#include "sim.h"
#include "x509v.h"

#define TU_DATA AT_SRCDIR "/tests/data/nitro"

/* The genuine AWS documents in tests/data/nitro, without extension. */
static const char *const tu_genuine[] = {
    "anjuna_prod_2021",      "anjuna_pubkey_2021",
    "blocky_maxfields_2024", "blocky_maxfields_debug_2024",
    "eternis_2024",          "ev_beta_debug_2022",
    "ev_beta_prod_2022",     "ev_ga_2023",
    "fastcrypto_indef_2025", "marlin_nitroprover_2024",
    "marlin_pcr16_2025",     "sequence_2025",
    "vaportpm_tpm_20260201", "vaportpm_tpm_20260203",
};
#define TU_N_GENUINE (sizeof tu_genuine / sizeof tu_genuine[0])

/* Whole file into a malloc'd buffer; aborts the test program on failure. */
static inline uint8_t *tu_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        abort();
    }
    size_t cap = 1 << 20, n = 0, r;
    uint8_t *p = malloc(cap);
    if (!p)
        abort();
    while ((r = fread(p + n, 1, cap - n, f)) > 0 && (n += r) < cap)
        ;
    fclose(f);
    if (n == cap) /* test data is small */
        abort();
    *len = n;
    return p;
}

static inline uint8_t *tu_read_genuine(const char *name, const char *ext, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s%s", TU_DATA, name, ext);
    return tu_read(path, len);
}

static int tu_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* A fresh simulator PKI in its own temporary directory. */
typedef struct {
    char dir[64];
    at_sim_pki *pki;
} tu_sim;

static inline int tu_sim_init(tu_sim *s, int64_t now_s)
{
    at_diag d = {{0}};
    snprintf(s->dir, sizeof s->dir, "/tmp/attest-test-XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    if (at_sim_pki_init(s->dir, now_s, &d) != AT_OK || at_sim_pki_load(s->dir, &s->pki, &d) != AT_OK) {
        fprintf(stderr, "sim: %s\n", d.msg);
        return -1;
    }
    /* Mint once so a leaf exists for builders that sign their own payloads. */
    at_sim_doc_opts o = {.timestamp_ms = now_s * 1000, .new_leaf = true};
    at_buf b;
    at_buf_init(&b);
    at_err rc = at_sim_doc(s->pki, &o, &b, &d);
    at_buf_cleanup(&b);
    if (rc != AT_OK) {
        fprintf(stderr, "sim doc: %s\n", d.msg);
        return -1;
    }
    return 0;
}

static inline void tu_sim_cleanup(tu_sim *s)
{
    at_sim_pki_free(s->pki);
    s->pki = NULL;
    if (s->dir[0])
        nftw(s->dir, tu_rm_one, 8, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = '\0';
}

/* A trust set pinning the simulator's root (and the AWS root if aws). */
static inline at_trust *tu_trust(const tu_sim *s, bool aws, size_t cache)
{
    at_diag d = {{0}};
    at_trust *t = at_trust_new(cache);
    if (!t)
        return NULL;
    if ((s && at_trust_add_root_der(t, at_sim_cert_der(s->pki, AT_SIM_ROOT), &d) != AT_OK) ||
        (aws && at_trust_add_aws_root(t, &d) != AT_OK)) {
        fprintf(stderr, "trust: %s\n", d.msg);
        at_trust_unref(t);
        return NULL;
    }
    return t;
}

static inline int64_t tu_now_s(void) { return (int64_t)time(NULL); }

/* ---- BER variants of DER ------------------------------------------------- */

/* Re-encode the DER TLV at p (len bytes) into out, node number `target` (in
 * pre-order, 0 = the outermost) getting a BER form DER forbids: its length
 * written in a non-minimal long form (indefinite false) or, when it is
 * constructed, as indefinite length with end-of-contents. Lengths of the
 * nodes around it are recomputed. Returns the bytes of p consumed. */
static inline size_t tu_ber_node(const uint8_t *p, size_t len, int target, bool indefinite, int *count,
                                 at_buf *out)
{
    if (len < 2)
        abort();
    uint8_t id = p[0];
    size_t off = 2, clen = p[1];
    if (clen & 0x80) {
        size_t k = clen & 0x7f;
        clen = 0;
        for (size_t i = 0; i < k; i++)
            clen = clen << 8 | p[2 + i];
        off += k;
    }
    if (off + clen > len)
        abort();
    int me = (*count)++;
    at_buf inner;
    at_buf_init(&inner);
    if (id & 0x20)
        for (size_t k = 0; k < clen;)
            k += tu_ber_node(p + off + k, clen - k, target, indefinite, count, &inner);
    else
        at_buf_append(&inner, p + off, clen);
    at_buf_append(out, &id, 1);
    if (me == target && indefinite && (id & 0x20)) {
        at_buf_append(out, "\x80", 1);
        at_buf_append_span(out, at_buf_span(&inner));
        at_buf_append(out, "\x00\x00", 2);
    } else {
        uint8_t h[4];
        size_t n = inner.len, hl;
        if (me == target) { /* 3 length octets, the first zero */
            h[0] = 0x83, h[1] = 0, h[2] = (uint8_t)(n >> 8), h[3] = (uint8_t)n, hl = 4;
        } else if (n < 0x80) {
            h[0] = (uint8_t)n, hl = 1;
        } else if (n < 0x100) {
            h[0] = 0x81, h[1] = (uint8_t)n, hl = 2;
        } else {
            h[0] = 0x82, h[1] = (uint8_t)(n >> 8), h[2] = (uint8_t)n, hl = 3;
        }
        at_buf_append(out, h, hl);
        at_buf_append_span(out, at_buf_span(&inner));
    }
    at_buf_cleanup(&inner);
    return off + clen;
}

static inline void tu_ber_variant(at_span der, int target, bool indefinite, at_buf *out)
{
    int count = 0;
    at_buf_init(out);
    tu_ber_node(der.p, der.len, target, indefinite, &count, out);
}

/* ---- payload builder ---------------------------------------------------- */

#define TU_MAX_FIELDS 16
typedef struct {
    char key[32];
    at_buf val; /* the value, already CBOR-encoded */
} tu_field;

typedef struct {
    tu_field f[TU_MAX_FIELDS];
    size_t n;
    bool definite; /* 0xa9 map (else 0xbf ... 0xff) */
} tu_payload;

/* The (empty) value buffer for key, appended at the end when new. */
static inline at_buf *tu_payload_val(tu_payload *p, const char *key)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->f[i].key, key) == 0) {
            at_buf_reset(&p->f[i].val);
            return &p->f[i].val;
        }
    if (p->n == TU_MAX_FIELDS)
        abort();
    tu_field *f = &p->f[p->n++];
    snprintf(f->key, sizeof f->key, "%s", key);
    at_buf_init(&f->val);
    return &f->val;
}

static inline void tu_payload_del(tu_payload *p, const char *key)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->f[i].key, key) == 0) {
            at_buf_cleanup(&p->f[i].val);
            memmove(&p->f[i], &p->f[i + 1], (p->n - i - 1) * sizeof p->f[0]);
            p->n--;
            return;
        }
}

static inline void tu_payload_cleanup(tu_payload *p)
{
    for (size_t i = 0; i < p->n; i++)
        at_buf_cleanup(&p->f[i].val);
    p->n = 0;
}

/* A PCR map with indices first..first+n-1 of len bytes each (value byte
 * i+1 repeated, so no PCR is all zero). */
static inline void tu_put_pcrs(at_buf *b, unsigned first, unsigned n, size_t len)
{
    uint8_t v[80];
    at_cbor_put_head(b, AT_CBOR_MAP, n);
    for (unsigned i = first; i < first + n; i++) {
        at_cbor_put_uint(b, i);
        memset(v, (int)(i + 1), sizeof v);
        at_cbor_put_bytes(b, AT_SPAN(v, len));
    }
}

/* Every field of a genuine-shaped payload in AWS's order. With a simulator
 * (s != NULL) the certificates are its current leaf and bundle (call
 * at_sim_doc with new_leaf first so a leaf exists); without, placeholders. */
static inline void tu_payload_default(tu_payload *p, const tu_sim *s, at_format f, uint64_t ts_ms)
{
    static const uint8_t fake_cert[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    memset(p, 0, sizeof *p);
    char mid[80];
    if (s && f == AT_FORMAT_NITRO_TPM)
        snprintf(mid, sizeof mid, "%s-tpm0000000000000000", at_sim_instance_id(s->pki));
    else if (s)
        snprintf(mid, sizeof mid, "%s-enc%.16s", at_sim_instance_id(s->pki), at_sim_instance_id(s->pki) + 2);
    else
        snprintf(mid, sizeof mid, "i-0123456789abcdef0-enc0123456789abcdef");
    at_cbor_put_text(tu_payload_val(p, "module_id"), mid);
    at_cbor_put_text(tu_payload_val(p, "digest"), "SHA384");
    at_cbor_put_uint(tu_payload_val(p, "timestamp"), ts_ms);
    if (f == AT_FORMAT_NITRO_TPM)
        tu_put_pcrs(tu_payload_val(p, "nitrotpm_pcrs"), 0, 24, AT_SHA384_LEN);
    else
        tu_put_pcrs(tu_payload_val(p, "pcrs"), 0, 16, AT_SHA384_LEN);
    at_cbor_put_bytes(tu_payload_val(p, "certificate"),
                      s ? at_sim_cert_der(s->pki, AT_SIM_LEAF) : AT_SPAN(fake_cert, sizeof fake_cert));
    at_buf *b = tu_payload_val(p, "cabundle");
    at_cbor_put_head(b, AT_CBOR_ARRAY, 4);
    for (int l = AT_SIM_ROOT; l <= AT_SIM_INSTANCE_CA; l++)
        at_cbor_put_bytes(b, s ? at_sim_cert_der(s->pki, l) : AT_SPAN(fake_cert, sizeof fake_cert));
    at_cbor_put_null(tu_payload_val(p, "public_key"));
    at_cbor_put_null(tu_payload_val(p, "user_data"));
    at_cbor_put_null(tu_payload_val(p, "nonce"));
}

/* Encode the map into out (appended). */
static inline void tu_payload_encode(const tu_payload *p, at_buf *out)
{
    if (p->definite)
        at_cbor_put_head(out, AT_CBOR_MAP, p->n);
    else
        at_cbor_put_indef_map(out);
    for (size_t i = 0; i < p->n; i++) {
        at_cbor_put_text(out, p->f[i].key);
        at_buf_append_span(out, at_buf_span(&p->f[i].val));
    }
    if (!p->definite)
        at_cbor_put_break(out);
}

/* Decode a builder's payload; returns the code and releases the result. */
static inline at_err tu_payload_decode(const tu_payload *p, at_format expect, at_diag *d)
{
    at_buf b;
    at_buf_init(&b);
    tu_payload_encode(p, &b);
    at_nitro_payload out;
    at_err rc = at_nitro_payload_decode(at_buf_span(&b), expect, &out, d);
    if (rc == AT_OK)
        at_nitro_payload_cleanup(&out);
    at_buf_cleanup(&b);
    return rc;
}

/* A COSE_Sign1 from explicit parts (array of 4), each part pre-encoded. */
static inline void tu_cose_raw(at_buf *out, at_span prot_bstr_contents, at_span unprot_map, at_span payload,
                               at_span sig)
{
    at_cbor_put_head(out, AT_CBOR_ARRAY, 4);
    at_cbor_put_bytes(out, prot_bstr_contents);
    at_buf_append_span(out, unprot_map);
    at_cbor_put_bytes(out, payload);
    at_cbor_put_bytes(out, sig);
}

#endif
