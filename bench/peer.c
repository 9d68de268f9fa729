/* bench/peer: mutual attestation (lib/peer) on one core, in process, with
 * the simulator attester.
 *  - Handshakes per second (HELLO, RESPONSE, FINISH, CONFIRM, both sides)
 *    against the raw cost measured in the same run: 2 document signatures
 *    (at_attester_document), 2 document verifications (at_evidence_verify
 *    with nonce and policy, the same certificate cache) and 2 X25519 (key
 *    generation + derivation). The ratio raw/handshake is the share of a
 *    handshake spent on that unavoidable work (goal >= 0.8).
 *  - Record throughput for 16 KiB records (at_peer_seal + at_peer_open)
 *    against raw AES-256-GCM seal + open of 16 KiB (EVP, a context per
 *    operation as lib/peer does), ratio raw/record (goal >= 0.8).
 * usage: bench/peer [SECONDS per measurement, default 1]; e.g. 0.05 to
 * check it runs. Single thread: figures are per core. */
#include "config.h"

#include <ftw.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attester.h"
#include "binding.h"
#include "evidence.h"
#include "peer.h"
#include "policy.h"
#include "sim.h"
#include "x509v.h"

#define RECORD 16384

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const at_diag *d)
{
    fprintf(stderr, "bench/peer: %s failed%s%s\n", what, d ? ": " : "", d ? d->msg : "");
    exit(2);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

/* Operations per second of fn over about `secs` seconds. */
static double rate(void (*fn)(void *), void *arg, double secs)
{
    for (int i = 0; i < 3; i++)
        fn(arg); /* warm up (and fill the certificate cache) */
    double t0 = now(), t;
    long n = 0;
    do {
        fn(arg);
        n++;
        t = now() - t0;
    } while (t < secs);
    return (double)n / t;
}

typedef struct {
    at_attester *att_a, *att_b;
    at_trust *trust;
    at_policy *policy;
} hs_ctx;

static void handshake_once(void *arg)
{
    hs_ctx *c = arg;
    at_diag d = {{0}};
    at_peer *a = NULL, *b = NULL;
    at_peer_opts oa = {
        .role = AT_PEER_INITIATOR, .attester = c->att_a, .trust = c->trust, .peer_policy = c->policy};
    at_peer_opts ob = {
        .role = AT_PEER_RESPONDER, .attester = c->att_b, .trust = c->trust, .peer_policy = c->policy};
    at_buf m1, m2, m3, m4;
    at_buf_init(&m1);
    at_buf_init(&m2);
    at_buf_init(&m3);
    at_buf_init(&m4);
    if (at_peer_new(&oa, &a, &d) != AT_OK || at_peer_new(&ob, &b, &d) != AT_OK ||
        at_peer_start(a, &m1, &d) != AT_OK || at_peer_handle(b, at_buf_span(&m1), &m2, &d) != AT_OK ||
        at_peer_handle(a, at_buf_span(&m2), &m3, &d) != AT_OK ||
        at_peer_handle(b, at_buf_span(&m3), &m4, &d) != AT_OK || m4.len == 0 ||
        at_peer_handle(a, at_buf_span(&m4), &m1, &d) != AT_OK || !at_peer_established(a) ||
        !at_peer_established(b))
        die("handshake", &d);
    at_peer_free(a);
    at_peer_free(b);
    at_buf_cleanup(&m1);
    at_buf_cleanup(&m2);
    at_buf_cleanup(&m3);
    at_buf_cleanup(&m4);
}

static EVP_PKEY *peer; /* the other side's ephemeral key (made by the other side) */

static void x25519_once(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    EVP_PKEY_CTX *c = k ? EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL) : NULL;
    uint8_t ss[32];
    size_t n = 32;
    if (!c || !peer || EVP_PKEY_derive_init(c) != 1 || EVP_PKEY_derive_set_peer(c, peer) != 1 ||
        EVP_PKEY_derive(c, ss, &n) != 1)
        die("x25519", NULL);
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(k);
}

/* The raw cost: what a handshake cannot avoid. Each "X25519" is one key
 * generation and one derivation (with a fixed peer key), as each side does
 * once per handshake. */
static void raw_once(void *arg)
{
    hs_ctx *c = arg;
    at_diag d = {{0}};
    uint8_t nonce[AT_PEER_NONCE_LEN], pk[AT_PEER_KEY_LEN], th[32];
    at_buf ud, doc;
    at_buf_init(&ud);
    at_buf_init(&doc);
    RAND_bytes(nonce, sizeof nonce);
    RAND_bytes(pk, sizeof pk);
    RAND_bytes(th, sizeof th);
    if (at_binding_encode_peer(th, &ud, &d) != AT_OK)
        die("binding", &d);
    for (int side = 0; side < 2; side++) {
        at_buf_reset(&doc);
        if (at_attester_document(side ? c->att_b : c->att_a, AT_SPAN(nonce, sizeof nonce), at_buf_span(&ud),
                                 AT_SPAN(pk, sizeof pk), &doc, &d) != AT_OK)
            die("document", &d);
        at_evidence ev;
        at_verify_opts vo = {.check_nonce = true, .nonce = AT_SPAN(nonce, sizeof nonce), .policy = c->policy};
        if (at_evidence_verify(c->trust, at_buf_span(&doc), &vo, &ev) != AT_OK)
            die("verify", &ev.diag);
        at_evidence_cleanup(&ev);
    }
    x25519_once();
    x25519_once();
    at_buf_cleanup(&ud);
    at_buf_cleanup(&doc);
}

typedef struct {
    at_peer *a, *b;
    uint8_t *msg;
    at_buf rec, pt;
} rec_ctx;

static void record_once(void *arg)
{
    rec_ctx *c = arg;
    at_diag d = {{0}};
    bool closed = false;
    at_buf_reset(&c->rec);
    at_buf_reset(&c->pt);
    if (at_peer_seal(c->a, false, AT_SPAN(c->msg, RECORD), &c->rec, &d) != AT_OK ||
        at_peer_open(c->b, at_buf_span(&c->rec), &c->pt, &closed, &d) != AT_OK || c->pt.len != RECORD)
        die("record", &d);
}

typedef struct {
    uint8_t key[32], iv[12], *msg, *ct, *pt;
} raw_rec_ctx;

static void gcm(int enc, const raw_rec_ctx *c, const uint8_t *in, uint8_t *out, uint8_t tag[16])
{
    static const uint8_t aad[9] = {0x17};
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int n;
    if (!x || EVP_CipherInit_ex2(x, EVP_aes_256_gcm(), c->key, c->iv, enc, NULL) != 1 ||
        EVP_CipherUpdate(x, NULL, &n, aad, sizeof aad) != 1 ||
        (!enc && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1) ||
        EVP_CipherUpdate(x, out, &n, in, RECORD) != 1 || EVP_CipherFinal_ex(x, out + n, &n) != 1 ||
        (enc && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1))
        die("aes-256-gcm", NULL);
    EVP_CIPHER_CTX_free(x);
}

static void raw_record_once(void *arg)
{
    raw_rec_ctx *c = arg;
    uint8_t tag[16];
    gcm(1, c, c->msg, c->ct, tag);
    gcm(0, c, c->ct, c->pt, tag);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    if (secs <= 0)
        secs = 1.0;
    char dir[] = "/tmp/attest-bench-peer-XXXXXX";
    at_diag d = {{0}};
    at_sim_pki *pki = NULL;
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    if (at_sim_pki_init(dir, (int64_t)time(NULL), &d) != AT_OK || at_sim_pki_load(dir, &pki, &d) != AT_OK)
        die("sim", &d);
    hs_ctx hc = {.trust = at_trust_new(0)};
    if (!hc.trust || at_trust_add_root_der(hc.trust, at_sim_cert_der(pki, AT_SIM_ROOT), &d) != AT_OK)
        die("trust", &d);
    at_sim_pki_free(pki);
    bool set[AT_MAX_PCRS] = {[0] = true};
    static uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN];
    memset(pcr[0], 0x11, AT_SHA384_LEN);
    at_attester_opts ao = {
        .sim_pki = dir, .sim_pcr_set = set, .sim_pcr = (const uint8_t(*)[AT_SHA384_LEN])pcr};
    if (at_attester_open(AT_ATTESTER_SIM, &ao, &hc.att_a, &d) != AT_OK ||
        at_attester_open(AT_ATTESTER_SIM, &ao, &hc.att_b, &d) != AT_OK)
        die("attester", &d);
    char json[256], p0[97];
    memset(p0, '1', 96);
    p0[96] = '\0';
    snprintf(json, sizeof json, "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"%s\"]}}", p0);
    if (at_policy_parse(json, strlen(json), &hc.policy, &d) != AT_OK)
        die("policy", &d);

    if (!(peer = EVP_PKEY_Q_keygen(NULL, NULL, "X25519")))
        die("x25519 keygen", NULL);
    printf("bench/peer: mutual attestation handshakes and 16 KiB records, one core, %s, %.2f s per case\n",
           OpenSSL_version(OPENSSL_VERSION), secs);
    double hs = rate(handshake_once, &hc, secs);
    double raw = rate(raw_once, &hc, secs);
    printf("  %-60s %9.1f /s\n", "handshake (both sides, in process)", hs);
    printf("  %-60s %9.1f /s\n", "raw: 2 document signatures + 2 verifications + 2 X25519", raw);

    /* Records: an established pair with shared random keys. */
    at_peer_keys k;
    RAND_bytes((uint8_t *)&k, sizeof k);
    rec_ctx rc = {0};
    raw_rec_ctx rr = {0};
    rc.msg = rr.msg = malloc(RECORD);
    rr.ct = malloc(RECORD);
    rr.pt = malloc(RECORD);
    if (!rc.msg || !rr.ct || !rr.pt)
        die("malloc", NULL);
    RAND_bytes(rc.msg, RECORD);
    memcpy(rr.key, k.key_ab, 32);
    memcpy(rr.iv, k.iv_ab, 12);
    at_buf_init(&rc.rec);
    at_buf_init_secret(&rc.pt);
    if (at_peer_new_established(AT_PEER_INITIATOR, &k, &rc.a, &d) != AT_OK ||
        at_peer_new_established(AT_PEER_RESPONDER, &k, &rc.b, &d) != AT_OK)
        die("established pair", &d);
    double recs = rate(record_once, &rc, secs);
    double rawrecs = rate(raw_record_once, &rr, secs);
    printf("  %-60s %9.1f MiB/s\n", "records: at_peer_seal + at_peer_open, 16 KiB",
           recs * RECORD / 1048576.0);
    printf("  %-60s %9.1f MiB/s\n", "raw: AES-256-GCM seal + open, 16 KiB", rawrecs * RECORD / 1048576.0);
    printf("ratio handshake/raw %.2f (goal >= 0.8), records/raw AES-GCM %.2f (goal >= 0.8)\n", hs / raw,
           recs / rawrecs);

    at_peer_free(rc.a);
    at_peer_free(rc.b);
    at_buf_cleanup(&rc.rec);
    at_buf_cleanup(&rc.pt);
    free(rc.msg);
    free(rr.ct);
    free(rr.pt);
    at_wipe(&k, sizeof k);
    at_attester_close(hc.att_a);
    at_attester_close(hc.att_b);
    at_policy_free(hc.policy);
    at_trust_unref(hc.trust);
    EVP_PKEY_free(peer);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}
