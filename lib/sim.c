/* sim: a local Nitro hypervisor stand-in. Holds private keys of a test PKI
 * (never trusted by default) and mints documents byte-compatible with what
 * the NSM and NitroTPM emit. */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cbor_wr.h"
#include "clock.h"
#include "cose.h"
#include "enc.h"
#include "x509v.h"

static const char *level_file[AT_SIM_LEVELS] = {"root", "regional", "zonal", "instance-ca", "leaf"};
static const int64_t lifetime[AT_SIM_LEVELS] = {AT_SIM_LIFETIME_ROOT, AT_SIM_LIFETIME_REGIONAL,
                                                AT_SIM_LIFETIME_ZONAL, AT_SIM_LIFETIME_INSTANCE_CA,
                                                AT_SIM_LIFETIME_LEAF};
/* How far before "now" sim init starts each level, so documents a few hours
 * in the past can be minted without renewing CAs. */
static const int64_t init_backdate[AT_SIM_LEVELS] = {24 * 3600, 2 * 24 * 3600, 24 * 3600, 6 * 3600, 0};
/* A certificate is reused for a document only if it covers the timestamp
 * with this much to spare. */
#define SPARE_S (15 * 60)

struct at_sim_pki {
    char *dir;
    char instance_id[20]; /* i- + 17 hex */
    X509 *cert[AT_SIM_LEVELS];
    EVP_PKEY *key[AT_SIM_LEVELS];
    uint8_t *der[AT_SIM_LEVELS];
    size_t der_len[AT_SIM_LEVELS];
};

void at_sim_pki_free(at_sim_pki *pki)
{
    if (!pki)
        return;
    for (int i = 0; i < AT_SIM_LEVELS; i++) {
        X509_free(pki->cert[i]);
        EVP_PKEY_free(pki->key[i]);
        OPENSSL_free(pki->der[i]);
    }
    free(pki->dir);
    free(pki);
}

const char *at_sim_instance_id(const at_sim_pki *pki) { return pki->instance_id; }

at_span at_sim_cert_der(const at_sim_pki *pki, int level)
{
    if (level < 0 || level >= AT_SIM_LEVELS)
        return AT_SPAN_NULL;
    return AT_SPAN(pki->der[level], pki->der_len[level]);
}

static char *path_of(const char *dir, const char *name, const char *ext)
{
    size_t n = strlen(dir) + strlen(name) + strlen(ext) + 3;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s", dir, name, ext);
    return p;
}

static void subject_for(const at_sim_pki *pki, int level, X509_NAME *n)
{
    char cn[160];
    switch (level) {
    case AT_SIM_ROOT:
        snprintf(cn, sizeof cn, "sim.nitro-enclaves");
        break;
    case AT_SIM_REGIONAL:
        snprintf(cn, sizeof cn, "%.16s.us-sim-1.sim.nitro-enclaves", pki->instance_id + 2);
        break;
    case AT_SIM_ZONAL:
        snprintf(cn, sizeof cn, "%.16s.zonal.us-sim-1.sim.nitro-enclaves", pki->instance_id + 3);
        break;
    case AT_SIM_INSTANCE_CA:
        snprintf(cn, sizeof cn, "%s.us-sim-1.sim.nitro-enclaves", pki->instance_id);
        break;
    default:
        snprintf(cn, sizeof cn, "%s-enc%.16s.us-sim-1.sim", pki->instance_id, pki->instance_id + 2);
        break;
    }
    X509_NAME_add_entry_by_txt(n, "C", MBSTRING_ASC, (const unsigned char *)"US", -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"attest simulator", -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_ASC, (const unsigned char *)"AWS-sim", -1, -1, 0);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e)
        return 0;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok;
}

/* Issue the certificate of `level` (new key) under level-1, valid from nb. */
static at_err issue(at_sim_pki *pki, int level, int64_t nb, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    EVP_PKEY *key = EVP_EC_gen("P-384");
    X509 *x = X509_new();
    ASN1_INTEGER *serial = NULL;
    BIGNUM *bn = NULL;
    unsigned char rnd[16];
    AT_ENSURE(key && x, d, AT_E_INTERNAL, "sim: key generation failed");
    AT_OSSL(X509_set_version(x, 2), d);
    AT_OSSL(RAND_bytes(rnd, sizeof rnd), d);
    rnd[0] &= 0x7f;
    AT_ENSURE((bn = BN_bin2bn(rnd, sizeof rnd, NULL)) && (serial = BN_to_ASN1_INTEGER(bn, NULL)), d,
              AT_E_INTERNAL, "sim: serial");
    AT_OSSL(X509_set_serialNumber(x, serial), d);
    subject_for(pki, level, X509_get_subject_name(x));
    X509 *issuer = level == AT_SIM_ROOT ? x : pki->cert[level - 1];
    EVP_PKEY *issuer_key = level == AT_SIM_ROOT ? key : pki->key[level - 1];
    AT_ENSURE(issuer && issuer_key, d, AT_E_INTERNAL, "sim: issuer of %s missing", level_file[level]);
    AT_OSSL(X509_set_issuer_name(x, X509_get_subject_name(issuer)), d);
    AT_ENSURE(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) &&
                  ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(nb + lifetime[level])),
              d, AT_E_INTERNAL, "sim: validity");
    AT_OSSL(X509_set_pubkey(x, key), d);
    static const char *pathlen[] = {"critical,CA:TRUE", "critical,CA:TRUE,pathlen:2",
                                    "critical,CA:TRUE,pathlen:1", "critical,CA:TRUE,pathlen:0"};
    if (level == AT_SIM_LEAF) {
        /* Genuine leaves carry no AKI: reproduce that. */
        AT_ENSURE(add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") &&
                      add_ext(x, issuer, NID_key_usage, "critical,digitalSignature"),
                  d, AT_E_INTERNAL, "sim: leaf extensions");
    } else {
        AT_ENSURE(add_ext(x, issuer, NID_basic_constraints, pathlen[level]) &&
                      add_ext(x, issuer, NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign") &&
                      add_ext(x, issuer, NID_subject_key_identifier, "hash"),
                  d, AT_E_INTERNAL, "sim: CA extensions");
        if (level != AT_SIM_ROOT)
            AT_ENSURE(add_ext(x, issuer, NID_authority_key_identifier, "keyid:always"), d, AT_E_INTERNAL,
                      "sim: AKI");
    }
    AT_ENSURE(X509_sign(x, issuer_key, EVP_sha384()) > 0, d, AT_E_INTERNAL, "sim: signing");
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    AT_ENSURE(n > 0, d, AT_E_INTERNAL, "sim: DER");
    X509_free(pki->cert[level]);
    EVP_PKEY_free(pki->key[level]);
    OPENSSL_free(pki->der[level]);
    pki->cert[level] = x;
    pki->key[level] = key;
    pki->der[level] = der;
    pki->der_len[level] = (size_t)n;
    x = NULL;
    key = NULL;
    rc = AT_OK;
out:
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(key);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return rc;
}

static at_err save_level(const at_sim_pki *pki, int level, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    char *cp = path_of(pki->dir, level_file[level], ".pem");
    char *kp = path_of(pki->dir, level_file[level], ".key");
    FILE *f = NULL;
    int fd = -1, closed;
    AT_ENSURE(cp && kp, d, AT_E_INTERNAL, "out of memory");
    AT_ENSURE((f = fopen(cp, "w")), d, AT_E_IO, "sim: %s: %s", cp, strerror(errno));
    AT_ENSURE(PEM_write_X509(f, pki->cert[level]) == 1, d, AT_E_IO, "sim: writing %s", cp);
    closed = fclose(f);
    f = NULL;
    AT_ENSURE(closed == 0, d, AT_E_IO, "sim: writing %s", cp);
    fd = open(kp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    AT_ENSURE(fd >= 0 && fchmod(fd, 0600) == 0, d, AT_E_IO, "sim: %s: %s", kp, strerror(errno));
    AT_ENSURE((f = fdopen(fd, "w")), d, AT_E_IO, "sim: %s", kp);
    fd = -1;
    AT_ENSURE(PEM_write_PrivateKey(f, pki->key[level], NULL, NULL, 0, NULL, NULL) == 1, d, AT_E_IO,
              "sim: writing %s", kp);
    closed = fclose(f);
    f = NULL;
    AT_ENSURE(closed == 0, d, AT_E_IO, "sim: writing %s", kp);
    rc = AT_OK;
out:
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    free(cp);
    free(kp);
    return rc;
}

static at_err save_instance_id(const at_sim_pki *pki, at_diag *d)
{
    char *p = path_of(pki->dir, "instance-id", "");
    FILE *f = p ? fopen(p, "w") : NULL;
    at_err rc = f && fprintf(f, "%s\n", pki->instance_id) > 0 ? AT_OK : AT_E_IO;
    if (f && fclose(f) != 0)
        rc = AT_E_IO;
    free(p);
    return rc == AT_OK ? AT_OK : at_fail(d, AT_E_IO, "sim: cannot write instance-id");
}

at_err at_sim_pki_init(const char *dir, int64_t now_s, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_sim_pki *pki = calloc(1, sizeof *pki);
    AT_ENSURE(pki && (pki->dir = strdup(dir)), d, AT_E_INTERNAL, "out of memory");
    AT_ENSURE(mkdir(dir, 0700) == 0 || errno == EEXIST, d, AT_E_IO, "sim: mkdir %s: %s", dir,
              strerror(errno));
    uint8_t rnd[9];
    AT_OSSL(RAND_bytes(rnd, sizeof rnd), d);
    char hex[19];
    at_hex_encode(rnd, sizeof rnd, hex);
    snprintf(pki->instance_id, sizeof pki->instance_id, "i-%.17s", hex);
    for (int level = AT_SIM_ROOT; level <= AT_SIM_INSTANCE_CA; level++) {
        AT_TRY(issue(pki, level, now_s - init_backdate[level], d));
        AT_TRY(save_level(pki, level, d));
    }
    AT_TRY(save_instance_id(pki, d));
    /* A stale leaf from an earlier PKI would not chain: remove it. */
    char *lp = path_of(dir, "leaf", ".pem"), *lk = path_of(dir, "leaf", ".key");
    if (lp)
        unlink(lp);
    if (lk)
        unlink(lk);
    free(lp);
    free(lk);
    rc = AT_OK;
out:
    at_sim_pki_free(pki);
    return rc;
}

static at_err load_level(at_sim_pki *pki, int level, bool optional, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    char *cp = path_of(pki->dir, level_file[level], ".pem");
    char *kp = path_of(pki->dir, level_file[level], ".key");
    FILE *f = NULL;
    AT_ENSURE(cp && kp, d, AT_E_INTERNAL, "out of memory");
    if (!(f = fopen(cp, "r"))) {
        AT_ENSURE(optional && errno == ENOENT, d, AT_E_IO, "sim: %s: %s (run 'attestctl sim init')", cp,
                  strerror(errno));
        rc = AT_OK;
        goto out;
    }
    pki->cert[level] = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    AT_ENSURE((f = fopen(kp, "r")), d, AT_E_IO, "sim: %s: %s", kp, strerror(errno));
    pki->key[level] = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    f = NULL;
    AT_ENSURE(pki->cert[level] && pki->key[level], d, AT_E_IO, "sim: unreadable %s", cp);
    int n = i2d_X509(pki->cert[level], &pki->der[level]);
    AT_ENSURE(n > 0, d, AT_E_INTERNAL, "sim: DER");
    pki->der_len[level] = (size_t)n;
    rc = AT_OK;
out:
    ERR_clear_error();
    free(cp);
    free(kp);
    return rc;
}

at_err at_sim_pki_load(const char *dir, at_sim_pki **out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_sim_pki *pki = calloc(1, sizeof *pki);
    FILE *f = NULL;
    char *ip = NULL;
    AT_ENSURE(pki && (pki->dir = strdup(dir)), d, AT_E_INTERNAL, "out of memory");
    for (int level = 0; level < AT_SIM_LEVELS; level++)
        AT_TRY(load_level(pki, level, level == AT_SIM_LEAF, d));
    ip = path_of(dir, "instance-id", "");
    AT_ENSURE(ip && (f = fopen(ip, "r")), d, AT_E_IO, "sim: %s/instance-id missing", dir);
    AT_ENSURE(fgets(pki->instance_id, sizeof pki->instance_id, f) && strlen(pki->instance_id) == 19 &&
                  strncmp(pki->instance_id, "i-", 2) == 0,
              d, AT_E_IO, "sim: %s/instance-id unreadable", dir);
    *out = pki;
    pki = NULL;
    rc = AT_OK;
out:
    if (f)
        fclose(f);
    free(ip);
    at_sim_pki_free(pki);
    return rc;
}

static bool covers(X509 *x, int64_t t, int64_t spare)
{
    int64_t nb, na;
    if (!x || !at_asn1_time_unix(X509_get0_notBefore(x), &nb) ||
        !at_asn1_time_unix(X509_get0_notAfter(x), &na))
        return false;
    return nb <= t && t + spare <= na;
}

/* Renew every level that does not cover t, and all below it. */
static at_err ensure_chain(at_sim_pki *pki, int64_t t, bool new_leaf, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    int first = AT_SIM_LEVELS;
    for (int level = AT_SIM_REGIONAL; level < AT_SIM_LEVELS && first == AT_SIM_LEVELS; level++)
        if (!covers(pki->cert[level], t, level == AT_SIM_LEAF ? SPARE_S : 2 * SPARE_S))
            first = level;
    if (new_leaf && first > AT_SIM_LEAF)
        first = AT_SIM_LEAF;
    AT_ENSURE(covers(pki->cert[AT_SIM_ROOT], t, 0), d, AT_E_CERT_EXPIRED,
              "sim: the simulator root does not cover the timestamp");
    for (int level = first; level < AT_SIM_LEVELS; level++) {
        /* A new leaf starts a minute before the document, as the NSM's
         * does; a renewed CA starts a little earlier than that. */
        int64_t nb = level == AT_SIM_LEAF ? t - 60 : t - init_backdate[level] / 2 - 3600;
        AT_TRY(issue(pki, level, nb, d));
        AT_TRY(save_level(pki, level, d));
    }
    rc = AT_OK;
out:
    return rc;
}

void at_sim_default_pcrs(at_format f, at_span seed, bool set[AT_MAX_PCRS],
                         uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN])
{
    unsigned n = f == AT_FORMAT_NITRO_TPM ? 24 : 16;
    for (unsigned i = 0; i < AT_MAX_PCRS; i++) {
        set[i] = i < n;
        memset(pcr[i], 0, AT_SHA384_LEN);
    }
    const unsigned *derived;
    static const unsigned enclave_derived[] = {0, 1, 2, 99};
    static const unsigned tpm_derived[] = {0, 1, 4, 7, 99};
    derived = f == AT_FORMAT_NITRO_TPM ? tpm_derived : enclave_derived;
    for (; *derived != 99; derived++) {
        char label[48];
        snprintf(label, sizeof label, "attest-sim %s pcr%u", f == AT_FORMAT_NITRO_TPM ? "tpm" : "enclave",
                 *derived);
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        unsigned int len = 0;
        if (c && EVP_DigestInit_ex(c, EVP_sha384(), NULL) == 1 &&
            EVP_DigestUpdate(c, label, strlen(label)) == 1 &&
            (seed.len == 0 || EVP_DigestUpdate(c, seed.p, seed.len) == 1))
            EVP_DigestFinal_ex(c, pcr[*derived], &len);
        EVP_MD_CTX_free(c);
    }
    if (f == AT_FORMAT_NITRO_TPM)
        for (unsigned i = 17; i <= 22; i++)
            memset(pcr[i], 0xff, AT_SHA384_LEN);
}

static void put_optional(at_buf *b, const char *key, bool has, at_span v)
{
    at_cbor_put_text(b, key);
    if (has)
        at_cbor_put_bytes(b, v);
    else
        at_cbor_put_null(b);
}

at_err at_sim_sign_payload(at_sim_pki *pki, at_span payload, bool tagged, at_buf *out, at_diag *d)
{
    static const uint8_t prot[] = {0xa1, 0x01, 0x38, 0x22};
    uint8_t sig[AT_COSE_ES384_SIG_LEN];
    if (!pki->key[AT_SIM_LEAF])
        return at_fail(d, AT_E_INTERNAL, "sim: no leaf key yet");
    at_err rc = at_cose_sign1_sign(AT_SPAN(prot, sizeof prot), payload, pki->key[AT_SIM_LEAF], sig, d);
    if (rc != AT_OK)
        return rc;
    if (tagged)
        at_cbor_put_head(out, AT_CBOR_TAG, 18);
    at_cbor_put_head(out, AT_CBOR_ARRAY, 4);
    at_cbor_put_bytes(out, AT_SPAN(prot, sizeof prot));
    at_cbor_put_head(out, AT_CBOR_MAP, 0);
    at_cbor_put_bytes(out, payload);
    at_cbor_put_bytes(out, AT_SPAN(sig, sizeof sig));
    return at_buf_status(out);
}

at_err at_sim_doc(at_sim_pki *pki, const at_sim_doc_opts *o, at_buf *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_buf p;
    at_buf_init(&p);
    at_format f = o->format == AT_FORMAT_NITRO_TPM ? AT_FORMAT_NITRO_TPM : AT_FORMAT_NITRO_ENCLAVE;
    int64_t ts = o->timestamp_ms > 0 ? o->timestamp_ms : 0;
    if (!ts)
        ts = at_wall_ms();
    AT_TRY(ensure_chain(pki, ts / 1000, o->new_leaf, d));
    for (int i = 0; i < AT_MAX_PCRS; i++)
        AT_ENSURE(!o->pcr_set[i] || f != AT_FORMAT_NITRO_TPM || i < 24, d, AT_E_BAD_FIELD,
                  "sim: nitro-tpm has PCRs 0..23, not %d", i);
    for (int i = 0; i < 3; i++) {
        at_span s = i == 0 ? o->nonce : i == 1 ? o->user_data : o->public_key;
        AT_ENSURE(s.len <= AT_MAX_OPTIONAL_FIELD, d, AT_E_BAD_FIELD,
                  "sim: optional fields hold at most %d bytes", AT_MAX_OPTIONAL_FIELD);
    }
    /* The NSM never writes an empty public_key (AWS: 1..1024 bytes). */
    AT_ENSURE(!o->has_public_key || o->public_key.len > 0, d, AT_E_BAD_FIELD,
              "sim: public_key: 0 bytes, expected 1..%d (or none)", AT_MAX_OPTIONAL_FIELD);

    bool set[AT_MAX_PCRS];
    uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN];
    at_sim_default_pcrs(f, AT_SPAN(pki->instance_id, strlen(pki->instance_id)), set, pcr);
    size_t npcr = 0;
    for (int i = 0; i < AT_MAX_PCRS; i++) {
        if (o->pcr_set[i]) {
            set[i] = true;
            memcpy(pcr[i], o->pcr[i], AT_SHA384_LEN);
        }
        npcr += set[i];
    }
    char module_id[AT_MAX_MODULE_ID + 1];
    if (o->module_id)
        snprintf(module_id, sizeof module_id, "%s", o->module_id);
    else if (f == AT_FORMAT_NITRO_TPM)
        snprintf(module_id, sizeof module_id, "%s-tpm0000000000000000", pki->instance_id);
    else
        snprintf(module_id, sizeof module_id, "%s-enc%.16s", pki->instance_id, pki->instance_id + 2);

    /* Keys in the order AWS writes them (nitro-facts.md). */
    if (o->definite_map)
        at_cbor_put_head(&p, AT_CBOR_MAP, 9);
    else
        at_cbor_put_indef_map(&p);
    at_cbor_put_text(&p, "module_id");
    at_cbor_put_text(&p, module_id);
    at_cbor_put_text(&p, "digest");
    at_cbor_put_text(&p, "SHA384");
    at_cbor_put_text(&p, "timestamp");
    at_cbor_put_uint(&p, (uint64_t)ts);
    at_cbor_put_text(&p, f == AT_FORMAT_NITRO_TPM ? "nitrotpm_pcrs" : "pcrs");
    at_cbor_put_head(&p, AT_CBOR_MAP, npcr);
    for (int i = 0; i < AT_MAX_PCRS; i++)
        if (set[i]) {
            at_cbor_put_uint(&p, (uint64_t)i);
            at_cbor_put_bytes(&p, AT_SPAN(pcr[i], AT_SHA384_LEN));
        }
    at_cbor_put_text(&p, "certificate");
    at_cbor_put_bytes(&p, at_sim_cert_der(pki, AT_SIM_LEAF));
    at_cbor_put_text(&p, "cabundle");
    at_cbor_put_head(&p, AT_CBOR_ARRAY, 4);
    for (int level = AT_SIM_ROOT; level <= AT_SIM_INSTANCE_CA; level++)
        at_cbor_put_bytes(&p, at_sim_cert_der(pki, level));
    put_optional(&p, "public_key", o->has_public_key, o->public_key);
    put_optional(&p, "user_data", o->has_user_data, o->user_data);
    put_optional(&p, "nonce", o->has_nonce, o->nonce);
    if (!o->definite_map)
        at_cbor_put_break(&p);
    AT_TRY(at_buf_status(&p));
    AT_TRY(at_sim_sign_payload(pki, at_buf_span(&p), o->tagged, out, d));
    rc = AT_OK;
out:
    at_buf_cleanup(&p);
    return rc;
}
