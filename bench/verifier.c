/* bench/verifier: attestations per second through the real attest-verifier
 * over HTTP on loopback (full cycle: challenge + attestation + fsync'd
 * audit row, group-committed), beside the in-process verification rate and
 * the raw ECDSA P-384 rate measured in the same run.
 *
 *   bench/verifier [--verifier PATH] [--connections N] [--docs N] [--seconds S]
 *                  [--replay-every K] [--check]
 *
 * --check turns it into a load test (tests/e2e/verifier_load.sh): it fails
 * unless every request got its expected answer (201, or 409 nonce_reused for
 * the documents deliberately replayed every K-th time). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "binding.h"
#include "ear.h"
#include "enc.h"
#include "evidence.h"
#include "seal.h"
#include "ohttp.h"
#include "sim.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---- in-process figures -------------------------------------------------- */

/* Claims of a real token's size (16 PCRs in hex, ~2.4 KB); set in main. */
static char pcrs[2401];

struct inproc {
    at_signer *signer; /* pipeline: also seal and sign, as an attestation does */
    int pipeline;
    at_trust *trust;
    at_policy *policy;
    at_span doc;
    EVP_PKEY *key;
    uint8_t msg[5000];
    double seconds;
    unsigned long done;
    int raw;
};

static void *inproc_worker(void *arg)
{
    struct inproc *w = arg;
    double end = now_s() + w->seconds;
    unsigned long n = 0;
    uint8_t sig[128];
    size_t siglen = sizeof sig;
    if (w->raw) {
        /* Each thread its own key: raw means no sharing at all. */
        w->key = EVP_EC_gen("P-384");
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        EVP_DigestSignInit(c, NULL, EVP_sha384(), NULL, w->key);
        EVP_DigestSign(c, sig, &siglen, w->msg, sizeof w->msg);
        EVP_MD_CTX_free(c);
    }
    while (now_s() < end) {
        for (int i = 0; i < 20; i++) {
            if (w->raw) {
                EVP_MD_CTX *c = EVP_MD_CTX_new();
                EVP_DigestVerifyInit(c, NULL, EVP_sha384(), NULL, w->key);
                if (EVP_DigestVerify(c, sig, siglen, w->msg, sizeof w->msg) != 1)
                    abort();
                EVP_MD_CTX_free(c);
            } else {
                at_verify_opts o = {.policy = w->policy};
                at_evidence ev;
                if (at_evidence_verify(w->trust, w->doc, &o, &ev) != AT_OK) {
                    fprintf(stderr, "in-process verification failed: %s\n", ev.diag.msg);
                    abort();
                }
                if (w->pipeline) {
                    /* The rest of an attestation's crypto: the session key
                     * sealed to the attested key, the EAR signed. */
                    uint8_t sk[32] = {7};
                    at_buf sealed;
                    at_buf_init(&sealed);
                    at_diag d;
                    char *tok = NULL;
                    json_t *claims =
                        json_pack("{s:s,s:I,s:I,s:s,s:s}", "iss", "attest-verifier", "iat", (json_int_t)1,
                                  "exp", (json_int_t)2, "eat_profile", AT_EAR_PROFILE, "pcrs", pcrs);
                    if (at_seal_to_key_config(ev.payload.public_key, AT_SEAL_INFO_SESSION, AT_SPAN(sk, 32),
                                              &sealed, &d) != AT_OK ||
                        at_signer_sign(w->signer, claims, &tok, &d) != AT_OK)
                        abort();
                    json_decref(claims);
                    free(tok);
                    at_buf_cleanup(&sealed);
                }
                at_evidence_cleanup(&ev);
            }
            n++;
        }
    }
    w->done = n;
    if (w->raw)
        EVP_PKEY_free(w->key);
    return NULL;
}

static double inproc_rate(struct inproc *tmpl, int threads)
{
    pthread_t t[64];
    struct inproc w[64];
    for (int i = 0; i < threads; i++) {
        w[i] = *tmpl;
        pthread_create(&t[i], NULL, inproc_worker, &w[i]);
    }
    unsigned long total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        total += w[i].done;
    }
    return (double)total / tmpl->seconds;
}

/* ---- HTTP ------------------------------------------------------------------ */

struct resp {
    char buf[65536];
    size_t len;
};

static size_t collect(char *p, size_t s, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t len = s * n;
    if (len > sizeof r->buf - 1 - r->len)
        len = sizeof r->buf - 1 - r->len;
    memcpy(r->buf + r->len, p, len);
    r->len += len;
    r->buf[r->len] = '\0';
    return s * n;
}

static long post(CURL *c, const char *url, const char *token, const char *method, const char *body,
                 struct resp *r)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[600];
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    h = curl_slist_append(h, "Expect:");
    r->len = 0;
    r->buf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    return status;
}

struct client {
    const char *base;
    char **bodies; /* attestation request bodies, pre-minted */
    size_t n;
    int replay_every;
    unsigned long ok, expected_refusals, unexpected;
    char first_error[300];
};

static void *client_worker(void *arg)
{
    struct client *w = arg;
    CURL *c = curl_easy_init();
    struct resp *r = malloc(sizeof *r);
    char url_c[300], url_a[300];
    snprintf(url_c, sizeof url_c, "%s/v1/challenge", w->base);
    snprintf(url_a, sizeof url_a, "%s/v1/attestations", w->base);
    for (size_t i = 0; i < w->n; i++) {
        /* The full cycle: a challenge (its nonce went into a pre-minted
         * document earlier, so this one is only paid for) + attestation. */
        long s1 = post(c, url_c, NULL, "POST", "{}", r);
        bool replay = w->replay_every && i > 0 && (i + 1) % (size_t)w->replay_every == 0;
        long s2 = post(c, url_a, NULL, "POST", w->bodies[replay ? i - 1 : i], r);
        if (s1 == 201 && s2 == 201) {
            w->ok++;
        } else if (replay && s1 == 201 && s2 == 409 && strstr(r->buf, "nonce_reused")) {
            w->expected_refusals++;
        } else {
            if (!w->unexpected)
                snprintf(w->first_error, sizeof w->first_error, "challenge %ld, attestation %ld: %.200s", s1,
                         s2, r->buf);
            w->unexpected++;
        }
    }
    free(r);
    curl_easy_cleanup(c);
    return NULL;
}

static char *json_field(const char *body, const char *key)
{
    json_t *j = json_loads(body, 0, NULL);
    const char *s = json_string_value(json_object_get(j, key));
    char *out = s ? strdup(s) : NULL;
    json_decref(j);
    return out;
}

struct minter {
    at_sim_pki *pki;
    at_span kc;
    at_span bind; /* user_data: the session binding (lib/binding) */
    const char *base;
    char **bodies;
    size_t from, to;
    pthread_mutex_t *lock;
    int failed;
};

static void *mint_worker(void *arg)
{
    struct minter *m = arg;
    CURL *c = curl_easy_init();
    struct resp *r = malloc(sizeof *r);
    char url[300];
    snprintf(url, sizeof url, "%s/v1/challenge", m->base);
    for (size_t i = m->from; i < m->to; i++) {
        if (post(c, url, NULL, "POST", "{}", r) != 201) {
            m->failed = 1;
            break;
        }
        char *nb = json_field(r->buf, "nonce");
        uint8_t *nonce = NULL;
        size_t nlen = 0;
        if (!nb || at_b64_decode_new(nb, strlen(nb), &nonce, &nlen) != AT_OK) {
            m->failed = 1;
            free(nb);
            break;
        }
        free(nb);
        at_sim_doc_opts o = {.has_nonce = true,
                             .nonce = AT_SPAN(nonce, nlen),
                             .has_public_key = true,
                             .public_key = m->kc,
                             .has_user_data = true,
                             .user_data = m->bind};
        at_buf doc;
        at_buf_init(&doc);
        at_diag d = {{0}};
        /* The PKI's files are shared: minting (which may renew the leaf) is
         * serialised, signing is the only real work and is fast enough. */
        pthread_mutex_lock(m->lock);
        at_err rc = at_sim_doc(m->pki, &o, &doc, &d);
        pthread_mutex_unlock(m->lock);
        free(nonce);
        if (rc != AT_OK) {
            fprintf(stderr, "mint: %s\n", d.msg);
            m->failed = 1;
            at_buf_cleanup(&doc);
            break;
        }
        char *ev = at_b64_encode_new(at_buf_span(&doc));
        at_buf_cleanup(&doc);
        size_t n = strlen(ev) + 64;
        m->bodies[i] = malloc(n);
        snprintf(m->bodies[i], n, "{\"evidence\":\"%s\",\"policy\":\"bench\"}", ev);
        free(ev);
    }
    free(r);
    curl_easy_cleanup(c);
    return NULL;
}

int main(int argc, char **argv)
{
    char verifier_bin[1024];
    snprintf(verifier_bin, sizeof verifier_bin, "%s/verifier/attest-verifier",
             getenv("AT_BUILD") ? getenv("AT_BUILD") : ".");
    int conns = 8, replay_every = 0, check = 0;
    long docs = 0;
    double seconds = 2;
    static const struct option opts[] = {{"verifier", required_argument, NULL, 'v'},
                                         {"connections", required_argument, NULL, 'c'},
                                         {"docs", required_argument, NULL, 'd'},
                                         {"seconds", required_argument, NULL, 's'},
                                         {"replay-every", required_argument, NULL, 'r'},
                                         {"check", no_argument, NULL, 'C'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'v':
            snprintf(verifier_bin, sizeof verifier_bin, "%s", optarg);
            break;
        case 'c':
            conns = atoi(optarg);
            break;
        case 'd':
            docs = atol(optarg);
            break;
        case 's':
            seconds = atof(optarg);
            break;
        case 'r':
            replay_every = atoi(optarg);
            break;
        case 'C':
            check = 1;
            break;
        default:
            fprintf(stderr, "usage: bench/verifier [--verifier PATH] [--connections N] [--docs N]"
                            " [--seconds S] [--replay-every K] [--check]\n");
            return 2;
        }
    }
    if (conns < 1 || conns > 256) {
        fprintf(stderr, "bench/verifier: --connections 1..256\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char dir[] = "/tmp/attest-bench-XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    char pki_dir[100], db[100], portfile[100], root[160], log[100];
    snprintf(pki_dir, sizeof pki_dir, "%s/pki", dir);
    snprintf(db, sizeof db, "%s/attest.db", dir);
    snprintf(portfile, sizeof portfile, "%s/port", dir);
    snprintf(root, sizeof root, "%s/root.pem", pki_dir);
    snprintf(log, sizeof log, "%s/verifier.log", dir);
    at_diag d = {{0}};
    at_sim_pki *pki = NULL;
    if (at_sim_pki_init(pki_dir, time(NULL), &d) != AT_OK || at_sim_pki_load(pki_dir, &pki, &d) != AT_OK) {
        fprintf(stderr, "bench: %s\n", d.msg);
        return 2;
    }
    at_ohttp_keyset *ks = NULL;
    at_ohttp_key_config cfg;
    at_buf kc;
    at_buf_init(&kc);
    if (at_ohttp_keyset_new(&ks, &d) != AT_OK || at_ohttp_keyset_generate(ks, 1, &d) != AT_OK ||
        at_ohttp_keyset_config(ks, 1, &cfg, &d) != AT_OK ||
        at_ohttp_key_config_encode(&cfg, &kc, &d) != AT_OK) {
        fprintf(stderr, "bench: %s\n", d.msg);
        return 2;
    }
    /* Policy from the simulator's default PCRs. */
    bool set[AT_MAX_PCRS];
    uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN];
    at_sim_default_pcrs(AT_FORMAT_NITRO_ENCLAVE,
                        AT_SPAN(at_sim_instance_id(pki), strlen(at_sim_instance_id(pki))), set, pcr);
    at_buf pj;
    at_buf_init(&pj);
    at_buf_printf(&pj, "{\"format\":\"nitro-enclave\",\"pcrs\":{");
    for (int i = 0; i < 3; i++) {
        char hex[97];
        at_hex_encode(pcr[i], 48, hex);
        at_buf_printf(&pj, "%s\"%d\":[\"%s\"]", i ? "," : "", i, hex);
    }
    at_buf_printf(&pj, "}}");
    at_buf_u8(&pj, 0);

    /* In-process: one document with a cached chain, every core. */
    int cores = ncpu();
    at_trust *trust = at_trust_new(0);
    at_policy *policy = NULL;
    at_buf doc;
    at_buf_init(&doc);
    uint8_t fixed_nonce[32] = {1};
    at_buf bind;
    at_buf_init(&bind);
    if (at_binding_encode(AT_PURPOSE_SESSION, NULL, &bind, &d) != AT_OK) {
        fprintf(stderr, "bench: %s\n", d.msg);
        return 2;
    }
    at_sim_doc_opts so = {.has_nonce = true,
                          .nonce = AT_SPAN(fixed_nonce, 32),
                          .has_public_key = true,
                          .public_key = at_buf_span(&kc),
                          .has_user_data = true,
                          .user_data = at_buf_span(&bind)};
    if (at_trust_add_root_file(trust, root, &d) != AT_OK || at_sim_doc(pki, &so, &doc, &d) != AT_OK ||
        at_policy_parse((const char *)pj.p, strlen((const char *)pj.p), &policy, &d) != AT_OK) {
        fprintf(stderr, "bench: %s\n", d.msg);
        return 2;
    }
    double inproc = 0, raw = 0, pipeline = 0;
    if (!check) {
        struct inproc w = {.trust = trust, .policy = policy, .doc = at_buf_span(&doc), .seconds = seconds};
        memset(w.msg, 0x5a, sizeof w.msg);
        memset(pcrs, 'a', sizeof pcrs - 1);
        w.raw = 1;
        raw = inproc_rate(&w, cores);
        w.raw = 0;
        inproc = inproc_rate(&w, cores);
        char *jwk = NULL;
        if (at_signer_generate(&jwk, &d) != AT_OK ||
            at_signer_new((const char *const[]){jwk}, 1, &w.signer, &d) != AT_OK) {
            fprintf(stderr, "bench: %s\n", d.msg);
            return 2;
        }
        free(jwk);
        w.pipeline = 1;
        pipeline = inproc_rate(&w, cores);
        at_signer_free(w.signer);
    }

    /* The verifier, as a separate process. */
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execl(verifier_bin, verifier_bin, "--listen", "127.0.0.1:0", "--db", db, "--root", root,
              "--port-file", portfile, "--rate", "0", "--connection-limit", "1024", (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (int i = 0; i < 6000 && !port; i++) { /* up to 60 s: valgrind, a loaded machine */
        FILE *f = fopen(portfile, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (!port)
            usleep(10000);
    }
    if (!port) {
        fprintf(stderr, "bench: the verifier did not start (%s); see %s\n", verifier_bin, log);
        kill(pid, SIGKILL);
        return 2;
    }
    char base[64], tokfile[400], token[200] = "";
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    snprintf(tokfile, sizeof tokfile, "%s.admin-token", db);
    FILE *tf = fopen(tokfile, "r");
    if (!tf || !fgets(token, sizeof token, tf)) {
        fprintf(stderr, "bench: no admin token\n");
        return 2;
    }
    fclose(tf);
    token[strcspn(token, "\r\n")] = '\0';
    CURL *c = curl_easy_init();
    struct resp *r = malloc(sizeof *r);
    char url[300];
    snprintf(url, sizeof url, "%s/v1/policies/bench", base);
    if (post(c, url, token, "PUT", (const char *)pj.p, r) != 201) {
        fprintf(stderr, "bench: policy: %s\n", r->buf);
        return 2;
    }
    curl_easy_cleanup(c);

    /* Pre-mint the documents (nonces from real challenges), then time the
     * full cycles. */
    if (!docs)
        docs = check ? 64L * conns / 8 + 128 : (long)(inproc * seconds * 1.5) + 200;
    char **bodies = calloc((size_t)docs, sizeof *bodies);
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    {
        /* One leaf for every document, as the NSM does for hours. */
        at_buf warm;
        at_buf_init(&warm);
        if (at_sim_doc(pki, &so, &warm, &d) != AT_OK) {
            fprintf(stderr, "bench: %s\n", d.msg);
            return 2;
        }
        at_buf_cleanup(&warm);
    }
    int mt = cores;
    pthread_t mth[64];
    struct minter mw[64];
    for (int i = 0; i < mt; i++) {
        mw[i] = (struct minter){.pki = pki,
                                .kc = at_buf_span(&kc),
                                .bind = at_buf_span(&bind),
                                .base = base,
                                .bodies = bodies,
                                .from = (size_t)docs * i / mt,
                                .to = (size_t)docs * (i + 1) / mt,
                                .lock = &lock};
        pthread_create(&mth[i], NULL, mint_worker, &mw[i]);
    }
    int mint_failed = 0;
    for (int i = 0; i < mt; i++) {
        pthread_join(mth[i], NULL);
        mint_failed |= mw[i].failed;
    }
    if (mint_failed) {
        fprintf(stderr, "bench: minting failed\n");
        kill(pid, SIGKILL);
        return 2;
    }
    pthread_t th[256];
    struct client cw[256];
    double t0 = now_s();
    for (int i = 0; i < conns; i++) {
        size_t from = (size_t)docs * i / conns, to = (size_t)docs * (i + 1) / conns;
        cw[i] = (struct client){
            .base = base, .bodies = bodies + from, .n = to - from, .replay_every = replay_every};
        pthread_create(&th[i], NULL, client_worker, &cw[i]);
    }
    unsigned long ok = 0, expected = 0, unexpected = 0;
    const char *first = NULL;
    for (int i = 0; i < conns; i++) {
        pthread_join(th[i], NULL);
        ok += cw[i].ok;
        expected += cw[i].expected_refusals;
        unexpected += cw[i].unexpected;
        if (cw[i].unexpected && !first)
            first = cw[i].first_error;
    }
    double elapsed = now_s() - t0;
    double http = (double)ok / elapsed;

    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;

    printf("attestations: %lu admitted, %lu refused as expected, %lu unexpected, %d connections, %.2f s\n",
           ok, expected, unexpected, conns, elapsed);
    if (first)
        printf("first unexpected answer: %s\n", first);
    printf("verifier exit: %s\n", clean ? "clean" : "NOT clean");
    int ret = 0;
    if (check) {
        bool pass = unexpected == 0 && ok > 0 && clean;
        printf("%s\n", pass ? "check passed" : "check FAILED");
        ret = pass ? 0 : 1;
        goto cleanup;
    }
    printf("cores: %d\n", cores);
    printf("raw ECDSA P-384 verify:          %8.0f /s (%8.0f /s/core)\n", raw, raw / cores);
    printf("in-process document verification: %8.0f /s (%8.0f /s/core, cached chain, with policy)\n", inproc,
           inproc / cores);
    printf("in-process attestation crypto:   %8.0f /s (%8.0f /s/core, verification + HPKE seal + EAR sign)\n",
           pipeline, pipeline / cores);
    printf("HTTP full cycle (challenge + attestation + durable audit row): %8.0f /s (%8.0f /s/core)\n", http,
           http / cores);
    printf("ratio http/inprocess=%.2f http/inprocess_crypto=%.2f inprocess/raw=%.2f\n", http / inproc,
           http / pipeline, inproc / raw);
cleanup:
    fflush(stdout);
    for (long i = 0; i < docs; i++)
        free(bodies[i]);
    free(bodies);
    free(r);
    at_buf_cleanup(&doc);
    at_buf_cleanup(&kc);
    at_buf_cleanup(&bind);
    at_buf_cleanup(&pj);
    at_policy_free(policy);
    at_trust_unref(trust);
    at_ohttp_keyset_free(ks);
    at_sim_pki_free(pki);
    curl_global_cleanup();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", dir);
    return ret;
}
