/* bench/verify: documents per second through at_evidence_verify, per core
 * and on all cores, for the three certificate-cache paths, against the raw
 * cost of ECDSA P-384 verifications over a message of the document's size
 * measured in the same run:
 *   cold       cache cleared before every document: 5 ECDSA verifications
 *              (3 intermediates + leaf + document signature)
 *   cached-int intermediates cached, a new leaf every document: 2
 *   cached     the same document again (whole chain cached): 1
 * The last line is `ratio warm/raw1=<x> cached/raw2=<x> full/raw5=<x>`
 * (per-core figures; 1.00 would mean no overhead beyond the verifications).
 * Each case runs in slices, each paired with an adjacent slice of raw
 * verifications; ratios and rates are medians over the slices. Per-core
 * rates count the threads' CPU time (so preemption by other jobs on a shared
 * machine does not count), all-cores totals count wall time.
 * Seconds per case: AT_BENCH_SECONDS (default 1), or -t SECONDS; -j THREADS
 * for the all-cores pass (default: online CPUs); -m cold|int|cached|raw runs
 * that one case only, on -j threads (for profiling). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evidence.h"
#include "sim.h"

#define N_LEAVES 64

static double seconds = 1.0;
static at_buf docs[N_LEAVES]; /* same PKI, distinct leaves */
static at_span root_der;
static int64_t doc_time_ms;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU time of the calling thread: per-core rates are operations per CPU
 * second, so time the thread spends preempted by other jobs on a shared
 * machine does not count against it. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const at_diag *d)
{
    fprintf(stderr, "bench/verify: %s: %s\n", what, d ? d->msg : "");
    exit(1);
}

static at_trust *new_trust(size_t cache)
{
    at_diag d = {{0}};
    at_trust *t = at_trust_new(cache);
    if (!t || at_trust_add_root_der(t, root_der, &d) != AT_OK)
        die("trust", &d);
    return t;
}

enum mode { COLD, CACHED_INT, CACHED, RAW, N_MODES };
static const char *mode_name[N_MODES] = {
    "cold documents (full chain, 5 verifications)",
    "cached intermediates (new leaf, 2 verifications)",
    "cached chain (same document, 1 verification)",
    "raw ECDSA P-384 verifications",
};

struct job {
    enum mode mode;
    at_trust *shared; /* CACHED_INT / CACHED */
    int id;
    uint64_t ops;
    double elapsed; /* wall seconds */
    double cpu;     /* CPU seconds of this thread */
    int failures;
};

/* Raw ECDSA P-384: sign a message of the document's size once, then verify
 * it over and over, Init + DigestVerify each time (what one document
 * signature costs through the EVP API). */
static void raw_loop(struct job *j, double until)
{
    size_t n = docs[0].len;
    uint8_t *msg = malloc(n);
    memset(msg, 0x5a, n);
    EVP_PKEY *k = EVP_EC_gen("P-384");
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    uint8_t sig[160];
    size_t sl = sizeof sig;
    if (!k || !c || EVP_DigestSignInit(c, NULL, EVP_sha384(), NULL, k) != 1 ||
        EVP_DigestSign(c, sig, &sl, msg, n) != 1)
        die("raw: sign", NULL);
    uint64_t ops = 0;
    double t0 = now_s(), c0 = cpu_s(), t;
    do {
        for (int i = 0; i < 16; i++) {
            if (EVP_DigestVerifyInit(c, NULL, EVP_sha384(), NULL, k) != 1 ||
                EVP_DigestVerify(c, sig, sl, msg, n) != 1)
                j->failures++;
            ops++;
        }
    } while ((t = now_s()) < until);
    j->ops = ops;
    j->elapsed = t - t0;
    j->cpu = cpu_s() - c0;
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(k);
    free(msg);
}

static void *run_job(void *arg)
{
    struct job *j = arg;
    double until = now_s() + seconds;
    if (j->mode == RAW) {
        raw_loop(j, until);
        return NULL;
    }
    at_trust *t = j->mode == COLD ? new_trust(0) : j->shared;
    at_verify_opts o = {.time_mode = AT_TIME_GIVEN, .at_ms = doc_time_ms + 1000};
    uint64_t ops = 0;
    size_t k = (size_t)j->id * 7;
    double t0 = now_s(), c0 = cpu_s(), now;
    do {
        const at_buf *doc = &docs[j->mode == CACHED ? 0 : k++ % N_LEAVES];
        if (j->mode == COLD)
            at_trust_cache_clear(t);
        at_evidence ev;
        if (at_evidence_verify(t, at_buf_span(doc), &o, &ev) != AT_OK)
            j->failures++;
        at_evidence_cleanup(&ev);
        ops++;
    } while ((now = now_s()) < until);
    j->ops = ops;
    j->elapsed = now - t0;
    j->cpu = cpu_s() - c0;
    if (j->mode == COLD)
        at_trust_unref(t);
    return NULL;
}

/* Run one mode on `threads` threads; returns operations per CPU second per
 * thread (per core) and, in *total, operations per wall second of all
 * threads together. */
static double bench(enum mode m, int threads, double *total, at_trust_stats *st)
{
    at_trust *shared = NULL;
    if (m == CACHED_INT) {
        /* Room for the 3 intermediates and a couple of leaves per thread:
         * the intermediates are touched by every document, so the LRU
         * evicts the oldest leaf and every document takes the
         * one-signature path (the counters below prove it). */
        shared = new_trust(3 + 2 * (size_t)threads);
    } else if (m == CACHED) {
        shared = new_trust(0);
    }
    if (shared) { /* warm it */
        at_evidence ev;
        at_verify_opts o = {.time_mode = AT_TIME_GIVEN, .at_ms = doc_time_ms + 1000};
        if (at_evidence_verify(shared, at_buf_span(&docs[0]), &o, &ev) != AT_OK)
            die("warm-up", &ev.diag);
        at_evidence_cleanup(&ev);
        at_trust_stats zero;
        at_trust_stats_get(shared, &zero);
        (void)zero;
    }
    at_trust_stats before = {0};
    if (shared)
        at_trust_stats_get(shared, &before);
    pthread_t th[256];
    struct job jobs[256];
    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct job){.mode = m, .shared = shared, .id = i};
        if (pthread_create(&th[i], NULL, run_job, &jobs[i]) != 0)
            die("pthread_create", NULL);
    }
    double per = 0, sum = 0;
    int failures = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        sum += jobs[i].ops / jobs[i].elapsed;
        per += jobs[i].ops / jobs[i].cpu;
        failures += jobs[i].failures;
    }
    if (failures)
        fprintf(stderr, "bench/verify: %d verifications failed in mode %d\n", failures, m);
    per /= threads;
    *total = sum;
    memset(st, 0, sizeof *st);
    if (shared) {
        at_trust_stats_get(shared, st);
        st->full -= before.full;
        st->cached_issuer -= before.cached_issuer;
        st->cached_leaf -= before.cached_leaf;
        st->failed -= before.failed;
        at_trust_unref(shared);
    }
    return per;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double tmp[64];
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

int main(int argc, char **argv)
{
    const char *env = getenv("AT_BENCH_SECONDS");
    if (env)
        seconds = atof(env);
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int opt, only = -1;
    static const char *short_name[N_MODES] = {"cold", "int", "cached", "raw"};
    while ((opt = getopt(argc, argv, "t:j:m:")) != -1) {
        if (opt == 't')
            seconds = atof(optarg);
        else if (opt == 'j')
            threads = atoi(optarg);
        else if (opt == 'm') {
            for (int m = 0; m < N_MODES; m++)
                if (strcmp(optarg, short_name[m]) == 0)
                    only = m;
            if (only < 0) {
                fprintf(stderr, "bench/verify: -m cold|int|cached|raw\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench/verify [-t SECONDS_PER_CASE] [-j THREADS] [-m MODE]\n");
            return 2;
        }
    }
    if (seconds <= 0)
        seconds = 1.0;
    if (threads < 1)
        threads = 1;
    if (threads > 256)
        threads = 256;

    /* A simulator PKI and N_LEAVES documents, each with its own leaf. */
    char dir[] = "/tmp/attest-bench-XXXXXX";
    at_diag d = {{0}};
    at_sim_pki *pki = NULL;
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    int64_t now = (int64_t)time(NULL);
    if (at_sim_pki_init(dir, now, &d) != AT_OK || at_sim_pki_load(dir, &pki, &d) != AT_OK)
        die("sim", &d);
    doc_time_ms = now * 1000;
    for (int i = 0; i < N_LEAVES; i++) {
        at_sim_doc_opts o = {.timestamp_ms = doc_time_ms, .new_leaf = true};
        at_buf_init(&docs[i]);
        if (at_sim_doc(pki, &o, &docs[i], &d) != AT_OK)
            die("sim doc", &d);
    }
    at_span r = at_sim_cert_der(pki, AT_SIM_ROOT);
    uint8_t *rcopy = malloc(r.len);
    memcpy(rcopy, r.p, r.len);
    root_der = AT_SPAN(rcopy, r.len);
    at_sim_pki_free(pki);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);

    printf("bench/verify: at_evidence_verify on %zu-byte nitro-enclave documents, %s, %.1f s per case\n",
           docs[0].len, OpenSSL_version(OPENSSL_VERSION), seconds);
    double total;
    at_trust_stats st;
    if (only >= 0) {
        double v = bench((enum mode)only, threads, &total, &st);
        printf("  %-50s %9.1f /s per thread %10.1f /s total (%d threads)\n", mode_name[only], v, total,
               threads);
        return 0;
    }
    /* The machine may be shared and its clock may boost: each case runs in
     * ROUNDS slices, each followed by a slice of raw verifications, and a
     * ratio is the median of the ratios of those adjacent pairs, so a drift
     * or a burst of foreign load hits both sides of a pair alike. Rates are
     * medians over the slices too. */
    enum { ROUNDS = 7 };
    static const double cost[N_MODES] = {5, 2, 1, 1}; /* verifications per document */
    double slice = seconds / ROUNDS;
    double full_seconds = seconds;
    double ratio[2][N_MODES];
    seconds = slice;
    for (int pass = 0; pass < 2; pass++) {
        int n = pass == 0 ? 1 : threads;
        double rate[N_MODES][ROUNDS], tot[N_MODES][ROUNDS], pr[N_MODES][ROUNDS];
        double raw_rate[N_MODES * ROUNDS], raw_tot[N_MODES * ROUNDS];
        int n_raw = 0;
        at_trust_stats paths[N_MODES];
        memset(paths, 0, sizeof paths);
        for (int round = 0; round < ROUNDS; round++)
            for (int m = 0; m < RAW; m++) {
                rate[m][round] = bench((enum mode)m, n, &tot[m][round], &st);
                paths[m].full += st.full;
                paths[m].cached_issuer += st.cached_issuer;
                paths[m].cached_leaf += st.cached_leaf;
                double raw_total;
                raw_rate[n_raw] = bench(RAW, n, &raw_total, &st);
                raw_tot[n_raw] = raw_total;
                /* per core: CPU-time rates; all cores: wall-clock throughput */
                pr[m][round] = pass == 0 ? rate[m][round] / (raw_rate[n_raw] / cost[m])
                                         : tot[m][round] / (raw_total / cost[m]);
                n_raw++;
            }
        printf("%s (%d thread%s):\n", pass == 0 ? "per core" : "all cores", n, n > 1 ? "s" : "");
        for (int m = 0; m < N_MODES; m++) {
            double v, t;
            if (m == RAW) {
                v = median(raw_rate, n_raw);
                t = median(raw_tot, n_raw);
            } else {
                v = median(rate[m], ROUNDS);
                t = median(tot[m], ROUNDS);
                ratio[pass][m] = median(pr[m], ROUNDS);
            }
            printf("  %-50s %9.1f /s per core %10.1f /s total", mode_name[m], v, t);
            if (m == CACHED_INT || m == CACHED)
                printf("  [paths: full=%llu cached_issuer=%llu cached_leaf=%llu]",
                       (unsigned long long)paths[m].full, (unsigned long long)paths[m].cached_issuer,
                       (unsigned long long)paths[m].cached_leaf);
            printf("\n");
        }
    }
    seconds = full_seconds;
    printf("all cores: ratio warm/raw1=%.2f cached/raw2=%.2f full/raw5=%.2f\n", ratio[1][CACHED],
           ratio[1][CACHED_INT], ratio[1][COLD]);
    printf("ratio warm/raw1=%.2f cached/raw2=%.2f full/raw5=%.2f\n", ratio[0][CACHED], ratio[0][CACHED_INT],
           ratio[0][COLD]);
    for (int i = 0; i < N_LEAVES; i++)
        at_buf_cleanup(&docs[i]);
    free(rcopy);
    return 0;
}
