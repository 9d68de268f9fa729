/* sealfile: chunked AES-256-GCM files (see sealfile.h). Sealed files are
 * attacker-reachable input: the header is read through bounded lengths and
 * every chunk must authenticate before its plaintext is written. */
#include "sealfile.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"

#define MAGIC_V1 "ATSEAL01"
#define MAGIC_V2 "ATSEAL02"
#define TAG_LEN 16
#define NONCE_PREFIX_OFF 12
/* magic, chunk, nonce prefix, key id, two length-prefixed names */
#define HEADER_MAX (8 + 4 + 8 + AT_SEALFILE_KEY_ID_LEN + 2 * (1 + AT_SEALFILE_NAME_MAX))
#define KEY_ID_LABEL "attest sealfile key id"

typedef struct {
    uint8_t b[HEADER_MAX]; /* the header's exact bytes */
    size_t len;
} hdr_bytes;

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void nonce_for(const hdr_bytes *h, uint32_t index, uint8_t nonce[12])
{
    memcpy(nonce, h->b + NONCE_PREFIX_OFF, 8);
    put_u32(nonce + 8, index);
}

/* Names as the verifier accepts them (verifier/common.c valid_name). */
static bool is_valid_name(const char *s, size_t n)
{
    if (n == 0)
        return true;
    if (n > AT_SEALFILE_NAME_MAX || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

void at_sealfile_key_id(const uint8_t key[AT_SEALFILE_KEY_LEN], uint8_t id[AT_SEALFILE_KEY_ID_LEN])
{
    uint8_t mac[32];
    unsigned int n = sizeof mac;
    if (!HMAC(EVP_sha256(), key, AT_SEALFILE_KEY_LEN, (const uint8_t *)KEY_ID_LABEL, strlen(KEY_ID_LABEL),
              mac, &n))
        memset(mac, 0, sizeof mac); /* never matches a real id: open fails closed */
    memcpy(id, mac, AT_SEALFILE_KEY_ID_LEN);
}

/* Read up to n bytes (fewer only at end of file). */
static ssize_t read_full(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static uint64_t size_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
}

/* Read and check the header from fd; h->b/len keep its exact bytes. */
static at_err read_header(int fd, const char *what, hdr_bytes *h, at_sealfile_header *out, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_sealfile_header hd;
    memset(&hd, 0, sizeof hd);
    h->len = 0;
    AT_ENSURE(
        read_full(fd, h->b, 20) == 20 && (memcmp(h->b, MAGIC_V1, 8) == 0 || memcmp(h->b, MAGIC_V2, 8) == 0),
        d, AT_E_BAD_FIELD, "%s: not a sealed model file (expected an ATSEAL01 or ATSEAL02 header)", what);
    h->len = 20;
    hd.version = h->b[7] == '1' ? 1 : 2;
    hd.chunk_size = get_u32(h->b + 8);
    AT_ENSURE(hd.chunk_size == AT_SEALFILE_CHUNK, d, AT_E_BAD_FIELD, "%s: chunk size %u, expected %u", what,
              hd.chunk_size, AT_SEALFILE_CHUNK);
    if (hd.version == 2) {
        AT_ENSURE(read_full(fd, h->b + h->len, AT_SEALFILE_KEY_ID_LEN + 1) == AT_SEALFILE_KEY_ID_LEN + 1, d,
                  AT_E_TRUNCATED, "%s: header truncated at the key id", what);
        memcpy(hd.key_id, h->b + h->len, AT_SEALFILE_KEY_ID_LEN);
        hd.has_key_id = true;
        h->len += AT_SEALFILE_KEY_ID_LEN + 1;
        char *names[2] = {hd.secret, hd.policy};
        const char *labels[2] = {"secret", "policy"};
        for (int i = 0; i < 2; i++) {
            size_t n = h->b[h->len - 1];
            AT_ENSURE(n <= AT_SEALFILE_NAME_MAX, d, AT_E_BAD_FIELD,
                      "%s: header %s name of %zu bytes, at most %d", what, labels[i], n,
                      AT_SEALFILE_NAME_MAX);
            size_t want = n + (i == 0); /* the policy length byte follows the secret */
            AT_ENSURE(read_full(fd, h->b + h->len, want) == (ssize_t)want, d, AT_E_TRUNCATED,
                      "%s: header truncated in the %s name", what, labels[i]);
            AT_ENSURE(is_valid_name((const char *)h->b + h->len, n), d, AT_E_BAD_FIELD,
                      "%s: header %s name is not [A-Za-z0-9._-]{1,128}", what, labels[i]);
            memcpy(names[i], h->b + h->len, n);
            names[i][n] = '\0';
            h->len += want;
        }
    }
    hd.sealed_bytes = size_of(fd);
    if (hd.sealed_bytes >= h->len) {
        uint64_t body = hd.sealed_bytes - h->len, whole = (uint64_t)hd.chunk_size + TAG_LEN;
        uint64_t full = body / whole, rem = body % whole;
        hd.plaintext_bytes = full * hd.chunk_size + (rem >= TAG_LEN ? rem - TAG_LEN : 0);
    }
    if (out)
        *out = hd;
    rc = AT_OK;
out:
    return rc;
}

at_err at_sealfile_inspect(const char *path, at_sealfile_header *h, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    hdr_bytes hb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    AT_ENSURE(fd >= 0, d, AT_E_IO, "%s: %s", path, strerror(errno));
    AT_TRY(read_header(fd, path, &hb, h, d));
    rc = AT_OK;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

at_err at_sealfile_check_secret(const char *path, const char *secret, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_sealfile_header h;
    AT_TRY(at_sealfile_inspect(path, &h, d));
    AT_ENSURE(
        !h.secret[0] || strcmp(h.secret, secret) == 0, d, AT_E_SECRET_NAME_MISMATCH,
        "%s: sealed for secret '%s', --model-secret is '%.160s' (another model's key would not open it)",
        path, h.secret, secret);
    rc = AT_OK;
out:
    return rc;
}

static void progress(const at_sealfile_opts *o, uint64_t done, uint64_t total)
{
    if (o && o->progress)
        o->progress(o->progress_arg, done, total);
}

/* One AES-256-GCM context per thread: the key schedule is made once, each
 * chunk only sets its nonce. Chunks are sealed and opened in place in the
 * read buffer (which has room for the tag), so no byte is copied between
 * the read and the write. */
static at_err gcm_begin(EVP_CIPHER_CTX **cc, bool enc, const uint8_t key[AT_SEALFILE_KEY_LEN], at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    AT_ENSURE((*cc = EVP_CIPHER_CTX_new()), d, AT_E_INTERNAL, "out of memory");
    AT_OSSL(EVP_CipherInit_ex2(*cc, EVP_aes_256_gcm(), key, NULL, enc, NULL), d);
    rc = AT_OK;
out:
    return rc;
}

/* Seal: p[0..n) in place, the tag appended at p[n..n+16). Open: p[0..n)
 * is ciphertext || tag (n >= 16); the plaintext is p[0..n-16) once the tag
 * verified, and wiped when it does not. */
static at_err gcm_chunk(EVP_CIPHER_CTX *cc, bool enc, const uint8_t nonce[12], at_span aad, uint8_t *p,
                        size_t n, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    int l = 0, f = 0;
    size_t body = enc ? n : n - TAG_LEN;
    AT_OSSL(EVP_CipherInit_ex2(cc, NULL, NULL, nonce, enc, NULL), d);
    if (!enc)
        AT_OSSL(EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, p + body), d);
    AT_OSSL(EVP_CipherUpdate(cc, NULL, &l, aad.p, (int)aad.len), d);
    if (body)
        AT_OSSL(EVP_CipherUpdate(cc, p, &l, p, (int)body), d);
    if (EVP_CipherFinal_ex(cc, p + body, &f) != 1) {
        ERR_clear_error();
        rc = at_fail(d, enc ? AT_E_INTERNAL : AT_E_DECRYPT_FAILED, "aes-256-gcm: %s",
                     enc ? "sealing failed" : "authentication tag does not verify");
        goto out;
    }
    if (enc)
        AT_OSSL(EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, p + body), d);
    rc = AT_OK;
out:
    if (rc != AT_OK && !enc)
        OPENSSL_cleanse(p, body);
    return rc;
}

static void hex16(const uint8_t *p, char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/* The chunk pipeline. The calling thread reads chunks in order into a ring
 * of slots, hands each to the crypto threads once it knows whether it is
 * the last, and writes the slots back in order as they complete; the
 * crypto threads (and the caller, while it waits) seal or open whole
 * chunks in place, each with its own AES-GCM context. At most `nslots`
 * chunks are in memory. Everything the output sees is decided by the
 * caller in chunk order, so the bytes written, the error reported and the
 * progress calls are the same for any number of threads: a chunk's
 * plaintext is written only after its tag verified, and a failure at
 * chunk k stops before anything of chunk k or later is written. */
typedef struct {
    uint8_t *p;
    size_t n; /* seal: plaintext bytes; open: ciphertext || tag */
    uint32_t index;
    int final;
    bool done;
    at_err rc;
    at_diag d;
} slot;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t job, done; /* a chunk to take; a chunk finished */
    bool enc, stop;
    const hdr_bytes *h; /* read-only while chunks flow */
    slot *slots;
    unsigned nslots;
    uint64_t dispatched, taken; /* chunks handed out; chunks taken by a thread */
} pipeline;

typedef struct {
    pipeline *pl;
    EVP_CIPHER_CTX *cc;
} worker;

static void run_chunk(const pipeline *pl, EVP_CIPHER_CTX *cc, slot *s)
{
    uint8_t nonce[12], aad[HEADER_MAX + 5];
    memcpy(aad, pl->h->b, pl->h->len);
    put_u32(aad + pl->h->len, s->index);
    aad[pl->h->len + 4] = (uint8_t)s->final;
    nonce_for(pl->h, s->index, nonce);
    s->rc = gcm_chunk(cc, pl->enc, nonce, AT_SPAN(aad, pl->h->len + 5), s->p, s->n, &s->d);
}

/* Take the next chunk handed out (mu held); NULL when there is none. */
static slot *take(pipeline *pl)
{
    return pl->taken < pl->dispatched ? &pl->slots[pl->taken++ % pl->nslots] : NULL;
}

static void finish(pipeline *pl, slot *s)
{
    pthread_mutex_lock(&pl->mu);
    s->done = true;
    pthread_cond_signal(&pl->done);
    pthread_mutex_unlock(&pl->mu);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pipeline *pl = w->pl;
    pthread_mutex_lock(&pl->mu);
    for (;;) {
        slot *s = NULL;
        while (!pl->stop && !(s = take(pl)))
            pthread_cond_wait(&pl->job, &pl->mu);
        if (!s)
            break;
        pthread_mutex_unlock(&pl->mu);
        run_chunk(pl, w->cc, s);
        finish(pl, s);
        pthread_mutex_lock(&pl->mu);
    }
    pthread_mutex_unlock(&pl->mu);
    return NULL;
}

static void dispatch(pipeline *pl, slot *s)
{
    pthread_mutex_lock(&pl->mu);
    s->done = false;
    pl->dispatched++;
    pthread_cond_signal(&pl->job);
    pthread_mutex_unlock(&pl->mu);
}

/* Wait until s is done, sealing or opening other handed-out chunks (in
 * order) with cc meanwhile instead of idling. */
static void await(pipeline *pl, EVP_CIPHER_CTX *cc, slot *s)
{
    pthread_mutex_lock(&pl->mu);
    while (!s->done) {
        slot *t = take(pl);
        if (!t) {
            pthread_cond_wait(&pl->done, &pl->mu);
            continue;
        }
        pthread_mutex_unlock(&pl->mu);
        run_chunk(pl, cc, t);
        finish(pl, t);
        pthread_mutex_lock(&pl->mu);
    }
    pthread_mutex_unlock(&pl->mu);
}

static unsigned thread_count(const at_sealfile_opts *o)
{
    unsigned n = o ? o->threads : 0;
    if (n == 0) {
        cpu_set_t set;
        n = sched_getaffinity(0, sizeof set, &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
    }
    return n < 1 ? 1 : n > AT_SEALFILE_THREADS_MAX ? AT_SEALFILE_THREADS_MAX : n;
}

/* Seal (enc) or open in -> out after the header h, which was written (seal)
 * or read (open) already; *done counts the input bytes consumed. */
static at_err stream(bool enc, int in, int out, const uint8_t key[AT_SEALFILE_KEY_LEN], const hdr_bytes *h,
                     const at_sealfile_opts *o, EVP_MD_CTX *md, uint64_t *done, uint64_t *ptlen, at_diag *d)
{
    at_err rc = AT_E_INTERNAL, pend_rc = AT_OK;
    const char *what = enc ? "input" : "sealed file";
    const size_t bufmax = AT_SEALFILE_CHUNK + TAG_LEN, want = enc ? AT_SEALFILE_CHUNK : bufmax;
    const uint64_t total = size_of(in);
    unsigned threads = thread_count(o), nworkers = 0;
    pipeline pl = {.enc = enc, .h = h, .nslots = 2 * threads + 2};
    worker w[AT_SEALFILE_THREADS_MAX];
    pthread_t tid[AT_SEALFILE_THREADS_MAX];
    EVP_CIPHER_CTX *cc = NULL;
    at_diag pend_d = {{0}};
    uint64_t head = 0, filled = 0, pend_seq = 0;
    slot *held = NULL; /* read, not yet handed out: is it the last? */
    bool reading = true, sync = false;
    AT_ENSURE((pl.slots = calloc(pl.nslots, sizeof *pl.slots)), d, AT_E_INTERNAL, "out of memory");
    for (unsigned i = 0; i < pl.nslots; i++)
        AT_ENSURE((pl.slots[i].p = malloc(bufmax)), d, AT_E_INTERNAL, "out of memory");
    AT_TRY(gcm_begin(&cc, enc, key, d));
    AT_ENSURE(pthread_mutex_init(&pl.mu, NULL) == 0, d, AT_E_INTERNAL, "pthread_mutex_init failed");
    if (pthread_cond_init(&pl.job, NULL) != 0 || pthread_cond_init(&pl.done, NULL) != 0) {
        pthread_mutex_destroy(&pl.mu);
        rc = at_fail(d, AT_E_INTERNAL, "pthread_cond_init failed");
        goto out;
    }
    sync = true;
    /* Workers take no signals (the caller's handlers stay on its thread).
     * A thread that cannot start is not an error: the caller does the work. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i + 1 < threads; i++) {
        at_diag ignored;
        w[nworkers] = (worker){.pl = &pl};
        if (gcm_begin(&w[nworkers].cc, enc, key, &ignored) != AT_OK) {
            EVP_CIPHER_CTX_free(w[nworkers].cc);
            break;
        }
        if (pthread_create(&tid[nworkers], NULL, worker_main, &w[nworkers]) != 0) {
            EVP_CIPHER_CTX_free(w[nworkers].cc);
            break;
        }
        nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    for (;;) {
        if (reading && filled - head < pl.nslots) {
            slot *s = &pl.slots[filled % pl.nslots];
            /* read_full stops short only at end of file */
            ssize_t r = held && held->n < want ? 0 : read_full(in, s->p, want);
            if (r < 0) {
                pend_rc = at_fail(&pend_d, AT_E_IO, "%s: %s", what, strerror(errno));
                pend_seq = pl.dispatched;
                reading = false;
                continue;
            }
            if (held) {
                held->final = r == 0;
                dispatch(&pl, held);
                held = NULL;
            }
            if (r == 0 && filled > 0) {
                reading = false;
                continue;
            }
            if (filled == UINT32_MAX || (!enc && r < TAG_LEN)) {
                pend_rc = filled == UINT32_MAX
                              ? at_fail(&pend_d, AT_E_TOO_LARGE, "%s: too large", what)
                              : at_fail(&pend_d, AT_E_TRUNCATED, "sealed file: truncated at chunk %u",
                                        (unsigned)filled);
                pend_seq = pl.dispatched;
                reading = false;
                continue;
            }
            if (enc && md)
                AT_OSSL(EVP_DigestUpdate(md, s->p, (size_t)r), d);
            s->n = (size_t)r;
            s->index = (uint32_t)filled++;
            held = s;
            continue;
        }
        if (pend_rc != AT_OK && head == pend_seq) {
            memcpy(d, &pend_d, sizeof *d);
            rc = pend_rc;
            goto out;
        }
        AT_ENSURE(head < pl.dispatched, d, AT_E_INTERNAL, "sealfile: pipeline stalled at chunk %u",
                  (unsigned)head);
        slot *s = &pl.slots[head % pl.nslots];
        await(&pl, cc, s);
        if (s->rc != AT_OK && enc) {
            memcpy(d, &s->d, sizeof *d);
            rc = s->rc;
            goto out;
        }
        if (s->rc != AT_OK) {
            /* A file cut at a chunk boundary: the last chunk present was not
             * sealed as the final one. */
            rc = at_fail(d, s->final ? AT_E_TRUNCATED : AT_E_DECRYPT_FAILED,
                         "sealed file: chunk %u does not open%s", s->index,
                         s->final ? " as the last one (file truncated or altered)"
                                  : " (wrong key or altered file)");
            goto out;
        }
        size_t len = enc ? s->n + TAG_LEN : s->n - TAG_LEN;
        if (!enc && md)
            AT_OSSL(EVP_DigestUpdate(md, s->p, len), d);
        AT_ENSURE(at_file_write_full(out, s->p, len), d, AT_E_IO, "output: write failed: %s",
                  strerror(errno));
        *ptlen += enc ? s->n : len;
        *done += s->n;
        progress(o, *done, total);
        head++;
        if (s->final)
            break;
    }
    rc = AT_OK;
out:
    if (sync) {
        pthread_mutex_lock(&pl.mu);
        pl.stop = true;
        pthread_cond_broadcast(&pl.job);
        pthread_mutex_unlock(&pl.mu);
    }
    for (unsigned i = 0; i < nworkers; i++) {
        pthread_join(tid[i], NULL);
        EVP_CIPHER_CTX_free(w[i].cc);
    }
    if (sync) {
        pthread_cond_destroy(&pl.job);
        pthread_cond_destroy(&pl.done);
        pthread_mutex_destroy(&pl.mu);
    }
    EVP_CIPHER_CTX_free(cc);
    for (unsigned i = 0; pl.slots && i < pl.nslots; i++)
        at_wipe_free(pl.slots[i].p, bufmax);
    free(pl.slots);
    return rc;
}

at_err at_sealfile_seal_fd(int in, int out, const uint8_t key[AT_SEALFILE_KEY_LEN], const at_sealfile_opts *o,
                           at_sealfile_result *res, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    hdr_bytes h;
    /* The plaintext's SHA-256 only when the caller takes a result. */
    EVP_MD_CTX *md = res ? EVP_MD_CTX_new() : NULL;
    uint64_t done = 0, ptlen = 0;
    const char *names[2] = {o && o->secret ? o->secret : "", o && o->policy ? o->policy : ""};
    AT_ENSURE(md || !res, d, AT_E_INTERNAL, "out of memory");
    for (int i = 0; i < 2; i++)
        AT_ENSURE(is_valid_name(names[i], strlen(names[i])), d, AT_E_BAD_FIELD,
                  "%s name '%.140s': expected [A-Za-z0-9._-]{1,128}", i ? "policy" : "secret", names[i]);
    if (md)
        AT_OSSL(EVP_DigestInit_ex(md, EVP_sha256(), NULL), d);
    (void)posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
    memcpy(h.b, MAGIC_V2, 8);
    put_u32(h.b + 8, AT_SEALFILE_CHUNK);
    AT_ENSURE(RAND_bytes(h.b + NONCE_PREFIX_OFF, 8) == 1, d, AT_E_INTERNAL, "no randomness");
    at_sealfile_key_id(key, h.b + 20);
    h.len = 20 + AT_SEALFILE_KEY_ID_LEN;
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(names[i]);
        h.b[h.len++] = (uint8_t)n;
        memcpy(h.b + h.len, names[i], n);
        h.len += n;
    }
    AT_ENSURE(at_file_write_full(out, h.b, h.len), d, AT_E_IO, "output: write failed: %s", strerror(errno));
    AT_TRY(stream(true, in, out, key, &h, o, md, &done, &ptlen, d));
    if (res) {
        memset(res, 0, sizeof *res);
        AT_OSSL(EVP_DigestFinal_ex(md, res->sha256, NULL), d);
        res->plaintext_bytes = ptlen;
        res->header.version = AT_SEALFILE_VERSION;
        res->header.chunk_size = AT_SEALFILE_CHUNK;
        res->header.has_key_id = true;
        memcpy(res->header.key_id, h.b + 20, AT_SEALFILE_KEY_ID_LEN);
        snprintf(res->header.secret, sizeof res->header.secret, "%s", names[0]);
        snprintf(res->header.policy, sizeof res->header.policy, "%s", names[1]);
        res->header.plaintext_bytes = ptlen;
        res->header.sealed_bytes =
            h.len + ptlen + (ptlen / AT_SEALFILE_CHUNK + (ptlen % AT_SEALFILE_CHUNK || !ptlen)) * TAG_LEN;
    }
    rc = AT_OK;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

at_err at_sealfile_open_fd(int in, int out, const uint8_t key[AT_SEALFILE_KEY_LEN], const at_sealfile_opts *o,
                           at_sealfile_result *res, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    hdr_bytes h;
    at_sealfile_header hd;
    uint8_t kid[AT_SEALFILE_KEY_ID_LEN];
    EVP_MD_CTX *md = res ? EVP_MD_CTX_new() : NULL;
    uint64_t done = 0, ptlen = 0;
    AT_ENSURE(md || !res, d, AT_E_INTERNAL, "out of memory");
    if (md)
        AT_OSSL(EVP_DigestInit_ex(md, EVP_sha256(), NULL), d);
    (void)posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
    AT_TRY(read_header(in, "sealed file", &h, &hd, d));
    done = h.len;
    if (hd.has_key_id) {
        at_sealfile_key_id(key, kid);
        if (CRYPTO_memcmp(kid, hd.key_id, sizeof kid) != 0) {
            char want[33], got[33];
            hex16(hd.key_id, want);
            hex16(kid, got);
            rc = at_fail(d, AT_E_DECRYPT_FAILED,
                         "sealed file: key_id %s, the key given has key_id %s (wrong key)", want, got);
            goto out;
        }
    }
    AT_TRY(stream(false, in, out, key, &h, o, md, &done, &ptlen, d));
    if (res) {
        memset(res, 0, sizeof *res);
        AT_OSSL(EVP_DigestFinal_ex(md, res->sha256, NULL), d);
        res->plaintext_bytes = ptlen;
        res->header = hd;
        res->header.plaintext_bytes = ptlen;
    }
    rc = AT_OK;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

typedef at_err (*stream_fn)(int, int, const uint8_t *, const at_sealfile_opts *, at_sealfile_result *,
                            at_diag *);

static at_err by_path(stream_fn fn, const char *in_path, const char *out_path, const uint8_t *key, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_outfile of = {.fd = -1};
    int in = open(in_path, O_RDONLY | O_CLOEXEC);
    AT_ENSURE(in >= 0, d, AT_E_IO, "%s: %s", in_path, strerror(errno));
    AT_TRY(at_outfile_open(&of, out_path, true, in, d));
    rc = fn(in, of.fd, key, NULL, NULL, d);
    if (rc != AT_OK) {
        at_diag_prefix(d, "%s: ", in_path);
        goto out;
    }
    AT_TRY(at_outfile_commit(&of, d));
    rc = AT_OK;
out:
    if (in >= 0)
        close(in);
    at_outfile_cleanup(&of);
    return rc;
}

at_err at_sealfile_seal(const char *in_path, const char *out_path, const uint8_t key[AT_SEALFILE_KEY_LEN],
                        at_diag *d)
{
    return by_path(at_sealfile_seal_fd, in_path, out_path, key, d);
}

at_err at_sealfile_open(const char *in_path, const char *out_path, const uint8_t key[AT_SEALFILE_KEY_LEN],
                        at_diag *d)
{
    return by_path(at_sealfile_open_fd, in_path, out_path, key, d);
}
