/* bench/hpke: single-shot HPKE seal+open per second for 1 KiB and 64 KiB
 * messages, against the raw cost of what HPKE cannot avoid, measured in the
 * same run with OpenSSL directly: an X25519 key generation and two X25519
 * derivations (sender and recipient) plus one AEAD seal and open of the
 * same size. The ratio is HPKE's overhead (HKDF key schedule, framing,
 * allocations). usage: bench/hpke [SECONDS per measurement, default 1] */
#include "config.h"

#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hpke.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench/hpke: %s failed\n", what);
    exit(2);
}

typedef struct {
    at_hpke_suite suite;
    const at_hpke_key *kR;
    const uint8_t *msg;
    size_t len;
    at_buf sealed, opened;
} hpke_job;

static void hpke_once(void *arg)
{
    hpke_job *j = arg;
    at_hpke_params p = {.info = AT_SPAN("attest bench", 12)};
    at_buf_reset(&j->sealed);
    at_buf_reset(&j->opened);
    if (at_hpke_seal_single(j->suite, &p, j->kR, AT_SPAN_NULL, AT_SPAN(j->msg, j->len), &j->sealed, NULL) !=
            AT_OK ||
        at_hpke_open_single(j->suite, &p, j->kR, AT_SPAN_NULL, at_buf_span(&j->sealed), &j->opened, NULL) !=
            AT_OK ||
        j->opened.len != j->len)
        die("hpke seal/open");
}

typedef struct {
    const EVP_CIPHER *cipher;
    EVP_PKEY *kR;
    const uint8_t *msg;
    size_t len;
    uint8_t *ct, *pt;
} raw_job;

static void x25519(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t out[32])
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
    size_t n = 32;
    if (!c || EVP_PKEY_derive_init(c) != 1 || EVP_PKEY_derive_set_peer(c, peer) != 1 ||
        EVP_PKEY_derive(c, out, &n) != 1)
        die("x25519");
    EVP_PKEY_CTX_free(c);
}

static void aead(const EVP_CIPHER *cipher, int enc, const uint8_t *key, const uint8_t *nonce,
                 const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[16])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n;
    if (!c || EVP_CipherInit_ex2(c, cipher, key, nonce, enc, NULL) != 1 ||
        (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, tag) != 1) ||
        EVP_CipherUpdate(c, out, &n, in, (int)len) != 1 || EVP_CipherFinal_ex(c, out + n, &n) != 1 ||
        (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag) != 1))
        die("aead");
    EVP_CIPHER_CTX_free(c);
}

static void raw_once(void *arg)
{
    raw_job *j = arg;
    uint8_t ss_s[32], ss_r[32], tag[16], nonce[12] = {0};
    EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (!eph)
        die("keygen");
    x25519(eph, j->kR, ss_s); /* sender: DH(skE, pkR) */
    x25519(j->kR, eph, ss_r); /* recipient: DH(skR, pkE) */
    aead(j->cipher, 1, ss_s, nonce, j->msg, j->len, j->ct, tag);
    aead(j->cipher, 0, ss_r, nonce, j->ct, j->len, j->pt, tag);
    EVP_PKEY_free(eph);
}

/* Operations per second of fn over about `secs` seconds. */
static double rate(void (*fn)(void *), void *arg, double secs)
{
    for (int i = 0; i < 20; i++)
        fn(arg); /* warm up */
    double t0 = now(), t;
    long n = 0;
    do {
        for (int i = 0; i < 16; i++)
            fn(arg);
        n += 16;
        t = now() - t0;
    } while (t < secs);
    return (double)n / t;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    if (secs <= 0)
        secs = 1.0;
    static uint8_t msg[64 * 1024], ct[64 * 1024], pt[64 * 1024];
    if (RAND_bytes(msg, sizeof msg) != 1)
        die("RAND_bytes");
    at_hpke_key *kR = NULL;
    if (at_hpke_key_generate(AT_HPKE_KEM_X25519_SHA256, &kR, NULL) != AT_OK)
        die("at_hpke_key_generate");
    at_secret *sk = NULL;
    if (at_hpke_key_private(kR, &sk, NULL) != AT_OK)
        die("at_hpke_key_private");
    EVP_PKEY *rawR = EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL, sk->p, sk->len);
    at_secret_free(sk);
    if (!rawR)
        die("raw key");

    static const struct {
        uint16_t id;
        const char *cipher;
    } aeads[] = {{AT_HPKE_AEAD_AES_128_GCM, "AES-128-GCM"},
                 {AT_HPKE_AEAD_AES_256_GCM, "AES-256-GCM"},
                 {AT_HPKE_AEAD_CHACHA20_POLY1305, "ChaCha20-Poly1305"}};
    static const size_t sizes[] = {1024, 64 * 1024};
    double ratio[2] = {0, 0};

    printf("hpke bench: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, single-shot base mode\n"
           "backend %s; %.1f s per measurement; one op = seal + open\n\n",
           at_hpke_backend(), secs);
    printf("%-18s %6s %14s %14s %8s\n", "aead", "size", "hpke ops/s", "raw ops/s", "ratio");
    for (size_t a = 0; a < sizeof aeads / sizeof *aeads; a++) {
        EVP_CIPHER *cipher = EVP_CIPHER_fetch(NULL, aeads[a].cipher, NULL);
        if (!cipher)
            die("EVP_CIPHER_fetch");
        for (size_t s = 0; s < 2; s++) {
            hpke_job hj = {{AT_HPKE_KEM_X25519_SHA256, AT_HPKE_KDF_HKDF_SHA256, aeads[a].id},
                           kR,
                           msg,
                           sizes[s],
                           {0},
                           {0}};
            at_buf_init(&hj.sealed);
            at_buf_init(&hj.opened);
            raw_job rj = {cipher, rawR, msg, sizes[s], ct, pt};
            double h = rate(hpke_once, &hj, secs), r = rate(raw_once, &rj, secs);
            if (memcmp(pt, msg, sizes[s]) != 0)
                die("raw round trip");
            printf("%-18s %5zuK %14.0f %14.0f %8.2f\n", aeads[a].cipher, sizes[s] / 1024, h, r, r / h);
            if (a == 0)
                ratio[s] = r / h; /* time(hpke) / time(raw) */
            at_buf_cleanup(&hj.sealed);
            at_buf_cleanup(&hj.opened);
        }
        EVP_CIPHER_free(cipher);
    }
    printf("\n(ratio = HPKE time per op / raw X25519 keygen + 2 derives + AEAD seal+open)\n");
    printf("ratio seal_open_1k/raw=%.2f seal_open_64k/raw=%.2f\n", ratio[0], ratio[1]);
    EVP_PKEY_free(rawR);
    at_hpke_key_free(kR);
    return 0;
}
