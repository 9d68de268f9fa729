/* Unit tests for lib/sealfile.c and lib/file.c (at_outfile): format 2 round trips
 * (empty, exact multiple of the chunk, partial last chunk) with the secret
 * and policy names authenticated; format 1 files still open; outputs are
 * whole or nothing, never over the input or an existing file unasked;
 * any thread count gives the bytes the format defines, and a bad chunk in
 * the middle stops the output before any of its plaintext. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "hpke.h"
#include "file.h"
#include "sealfile.h"

static char dir[64];
static const uint8_t key[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static char *path(const char *name)
{
    static char p[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
    return p[i];
}

static void write_bytes(const char *p, const uint8_t *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static uint8_t *read_bytes(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static int n_entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
    closedir(d);
    return n;
}

/* Seal through the fd API with names, open again, compare. */
static void round_trip_size(size_t n)
{
    uint8_t *pt = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        pt[i] = (uint8_t)(i * 7 + 3);
    write_bytes(path("in"), pt, n);
    at_diag d = {{0}};
    int in = open(path("in"), O_RDONLY), out = open(path("s"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    at_sealfile_opts o = {.secret = "model-key", .policy = "llm"};
    at_sealfile_result r;
    assert_int_equal(at_sealfile_seal_fd(in, out, key, &o, &r, &d), AT_OK);
    close(in);
    close(out);
    assert_int_equal(r.plaintext_bytes, n);
    at_sealfile_header h;
    assert_int_equal(at_sealfile_inspect(path("s"), &h, &d), AT_OK);
    assert_int_equal(h.version, 2);
    assert_string_equal(h.secret, "model-key");
    assert_string_equal(h.policy, "llm");
    assert_int_equal(h.plaintext_bytes, n);
    assert_int_equal(h.sealed_bytes, r.header.sealed_bytes);
    uint8_t kid[16];
    at_sealfile_key_id(key, kid);
    assert_memory_equal(h.key_id, kid, 16);
    unlink(path("o"));
    assert_int_equal(at_sealfile_open(path("s"), path("o"), key, &d), AT_OK);
    size_t m;
    uint8_t *got = read_bytes(path("o"), &m);
    assert_int_equal(m, n);
    assert_memory_equal(got, pt, n);
    free(got);
    free(pt);
}

static void round_trips(void **state)
{
    (void)state;
    round_trip_size(0);
    round_trip_size(1);
    round_trip_size(AT_SEALFILE_CHUNK);
    round_trip_size(2 * AT_SEALFILE_CHUNK + 17);
}

/* The names are in every chunk's AAD: editing one makes the file fail. */
static void header_authenticated(void **state)
{
    (void)state;
    round_trip_size(100);
    size_t n;
    uint8_t *b = read_bytes(path("s"), &n);
    /* header: 8 magic, 4 chunk, 8 nonce, 16 key id, 1 len, "model-key", 1 len, "llm" */
    size_t pol = 8 + 4 + 8 + 16 + 1 + 9 + 1;
    assert_memory_equal(b + pol, "llm", 3);
    b[pol] = 'L';
    write_bytes(path("t"), b, n);
    at_diag d = {{0}};
    at_sealfile_header h;
    assert_int_equal(at_sealfile_inspect(path("t"), &h, &d), AT_OK);
    assert_string_equal(h.policy, "Llm");
    assert_int_equal(at_sealfile_open(path("t"), path("t.out"), key, &d), AT_E_TRUNCATED);
    assert_int_equal(access(path("t.out"), F_OK), -1);
    /* a name the verifier would not accept is refused in the header */
    b[pol] = '/';
    write_bytes(path("t"), b, n);
    assert_int_equal(at_sealfile_inspect(path("t"), &h, &d), AT_E_BAD_FIELD);
    /* and when sealing */
    int in = open(path("in"), O_RDONLY), out = open(path("u"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    at_sealfile_opts o = {.secret = "../x", .policy = "llm"};
    assert_int_equal(at_sealfile_seal_fd(in, out, key, &o, NULL, &d), AT_E_BAD_FIELD);
    close(in);
    close(out);
    /* another key: refused by key id before any chunk */
    uint8_t other[32] = {9};
    assert_int_equal(at_sealfile_open(path("s"), path("t.out"), other, &d), AT_E_DECRYPT_FAILED);
    assert_non_null(strstr(d.msg, "key_id"));
    free(b);
}

/* Format 1 ("ATSEAL01", 20-byte header in the AAD) still opens. */
static void format1_opens(void **state)
{
    (void)state;
    uint8_t hdr[25] = {'A', 'T', 'S', 'E', 'A', 'L', '0', '1', 0, 0x10, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    const char *msg = "format one model";
    uint8_t nonce[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0};
    hdr[24] = 1; /* index 0, final */
    at_buf ct;
    at_buf_init(&ct);
    at_diag d = {{0}};
    assert_int_equal(at_hpke_aead_seal(AT_HPKE_AEAD_AES_256_GCM, AT_SPAN(key, 32), AT_SPAN(nonce, 12),
                                       AT_SPAN(hdr, 25), AT_SPAN(msg, strlen(msg)), &ct, &d),
                     AT_OK);
    uint8_t file[20 + 64];
    memcpy(file, hdr, 20);
    memcpy(file + 20, ct.p, ct.len);
    write_bytes(path("v1"), file, 20 + ct.len);
    at_sealfile_header h;
    assert_int_equal(at_sealfile_inspect(path("v1"), &h, &d), AT_OK);
    assert_int_equal(h.version, 1);
    assert_false(h.has_key_id);
    assert_int_equal(h.plaintext_bytes, strlen(msg));
    unlink(path("v1.out"));
    assert_int_equal(at_sealfile_open(path("v1"), path("v1.out"), key, &d), AT_OK);
    size_t n;
    uint8_t *got = read_bytes(path("v1.out"), &n);
    assert_int_equal(n, strlen(msg));
    assert_memory_equal(got, msg, n);
    free(got);
    at_buf_cleanup(&ct);
}

static void outfile_rules(void **state)
{
    (void)state;
    at_diag d = {{0}};
    at_outfile o;
    write_bytes(path("keep"), (const uint8_t *)"keep", 4);
    int entries = n_entries();
    assert_int_equal(at_outfile_open(&o, path("keep"), false, -1, &d), AT_E_CONFLICT);
    int in = open(path("keep"), O_RDONLY);
    assert_int_equal(at_outfile_open(&o, path("keep"), true, in, &d), AT_E_CONFLICT);
    assert_int_equal(link(path("keep"), path("keep.hard")), 0);
    assert_int_equal(at_outfile_open(&o, path("keep.hard"), true, in, &d), AT_E_CONFLICT);
    close(in);
    unlink(path("keep.hard"));
    /* abort leaves nothing */
    assert_int_equal(at_outfile_open(&o, path("new"), false, -1, &d), AT_OK);
    assert_int_equal(write(o.fd, "x", 1), 1);
    assert_int_equal(n_entries(), entries + 1);
    at_outfile_cleanup(&o);
    assert_int_equal(n_entries(), entries);
    /* a file that appears meanwhile is not replaced */
    assert_int_equal(at_outfile_open(&o, path("race"), false, -1, &d), AT_OK);
    write_bytes(path("race"), (const uint8_t *)"theirs", 6);
    assert_int_equal(at_outfile_commit(&o, &d), AT_E_CONFLICT);
    at_outfile_cleanup(&o);
    assert_int_equal(n_entries(), entries + 1);
    /* commit makes it appear, 0600 */
    assert_int_equal(at_outfile_open(&o, path("new"), false, -1, &d), AT_OK);
    assert_int_equal(at_outfile_commit(&o, &d), AT_OK);
    at_outfile_cleanup(&o);
    struct stat st;
    assert_int_equal(stat(path("new"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* the agent's path API replaces an existing output, never the input */
    assert_int_equal(at_sealfile_seal(path("keep"), path("keep"), key, &d), AT_E_CONFLICT);
    size_t n;
    uint8_t *b = read_bytes(path("keep"), &n);
    assert_int_equal(n, 4);
    free(b);
    assert_int_equal(at_sealfile_seal(path("keep"), path("new"), key, &d), AT_OK);
}

/* The agent's check: the recorded secret name must be the one it was told
 * to ask for; a file that records none (offline seal, ATSEAL01) passes. */
static void secret_name_checked(void **state)
{
    (void)state;
    round_trip_size(10);
    at_diag d = {{0}};
    assert_int_equal(at_sealfile_check_secret(path("s"), "model-key", &d), AT_OK);
    assert_int_equal(at_sealfile_check_secret(path("s"), "other-key", &d), AT_E_SECRET_NAME_MISMATCH);
    assert_non_null(strstr(d.msg, "'model-key'"));
    assert_non_null(strstr(d.msg, "'other-key'"));
    assert_int_equal(at_sealfile_check_secret(path("s"), "model-ke", &d), AT_E_SECRET_NAME_MISMATCH);
    assert_int_equal(at_sealfile_seal(path("in"), path("anon"), key, &d), AT_OK);
    assert_int_equal(at_sealfile_check_secret(path("anon"), "any-key", &d), AT_OK);
    assert_int_equal(at_sealfile_check_secret(path("absent"), "model-key", &d), AT_E_IO);
}

typedef struct {
    int calls;
    uint64_t last, total;
    bool monotonic;
} progress_log;

static void log_progress(void *arg, uint64_t done, uint64_t total)
{
    progress_log *l = arg;
    l->monotonic = l->monotonic && done > l->last;
    l->calls++;
    l->last = done;
    l->total = total;
}

#define MT_SIZE (5 * AT_SEALFILE_CHUNK + 123)

static uint8_t *mt_plaintext(void)
{
    uint8_t *pt = malloc(MT_SIZE);
    for (size_t i = 0; i < MT_SIZE; i++)
        pt[i] = (uint8_t)(i * 131 + (i >> 20));
    write_bytes(path("mt.in"), pt, MT_SIZE);
    return pt;
}

static at_err seal_with(const char *in_name, const char *out_name, unsigned threads, at_sealfile_result *r,
                        progress_log *l)
{
    at_diag d = {{0}};
    at_sealfile_opts o = {.secret = "model-key", .policy = "llm", .threads = threads};
    if (l) {
        *l = (progress_log){.monotonic = true};
        o.progress = log_progress;
        o.progress_arg = l;
    }
    int in = open(path(in_name), O_RDONLY), out = open(path(out_name), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    at_err rc = at_sealfile_seal_fd(in, out, key, &o, r, &d);
    close(in);
    close(out);
    return rc;
}

static at_err open_with(const char *in_name, const char *out_name, unsigned threads, at_sealfile_result *r,
                        progress_log *l, at_diag *d)
{
    at_sealfile_opts o = {.threads = threads};
    if (l) {
        *l = (progress_log){.monotonic = true};
        o.progress = log_progress;
        o.progress_arg = l;
    }
    int in = open(path(in_name), O_RDONLY), out = open(path(out_name), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    at_err rc = at_sealfile_open_fd(in, out, key, &o, r, d);
    close(in);
    close(out);
    return rc;
}

static off_t size_at(const char *name)
{
    struct stat st;
    assert_int_equal(stat(path(name), &st), 0);
    return st.st_size;
}

/* Sealed on 1, 2, 3 or 8 threads, every chunk is byte for byte what the
 * format defines (recomputed here one AES-GCM call per chunk, with the
 * file's nonce prefix); opening on 1 or 4 threads gives the plaintext, the
 * same SHA-256 and one progress call per chunk in order. */
static void threads_identical(void **state)
{
    (void)state;
    uint8_t *pt = mt_plaintext();
    const unsigned counts[] = {1, 2, 3, 8};
    uint8_t sha[32];
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        at_sealfile_result r;
        progress_log l;
        assert_int_equal(seal_with("mt.in", "mt.s", counts[c], &r, &l), AT_OK);
        assert_int_equal(r.plaintext_bytes, MT_SIZE);
        assert_int_equal(l.calls, 6);
        assert_true(l.monotonic);
        assert_int_equal(l.last, MT_SIZE);
        assert_int_equal(l.total, MT_SIZE);
        if (c == 0)
            memcpy(sha, r.sha256, 32);
        assert_memory_equal(r.sha256, sha, 32);
        size_t n;
        uint8_t *s = read_bytes(path("mt.s"), &n);
        size_t hlen = 8 + 4 + 8 + 16 + 1 + 9 + 1 + 3, off = hlen;
        assert_int_equal(n, r.header.sealed_bytes);
        for (uint32_t i = 0; i < 6; i++) {
            size_t len = i < 5 ? AT_SEALFILE_CHUNK : 123;
            uint8_t nonce[12], aad[sizeof "ATSEAL02" + 64];
            memcpy(nonce, s + 12, 8);
            nonce[8] = 0, nonce[9] = 0, nonce[10] = 0, nonce[11] = (uint8_t)i;
            memcpy(aad, s, hlen);
            aad[hlen] = 0, aad[hlen + 1] = 0, aad[hlen + 2] = 0, aad[hlen + 3] = (uint8_t)i;
            aad[hlen + 4] = i == 5;
            at_buf ct;
            at_buf_init(&ct);
            at_diag d = {{0}};
            assert_int_equal(at_hpke_aead_seal(AT_HPKE_AEAD_AES_256_GCM, AT_SPAN(key, 32), AT_SPAN(nonce, 12),
                                               AT_SPAN(aad, hlen + 5),
                                               AT_SPAN(pt + i * AT_SEALFILE_CHUNK, len), &ct, &d),
                             AT_OK);
            assert_int_equal(ct.len, len + 16);
            assert_memory_equal(s + off, ct.p, ct.len);
            off += ct.len;
            at_buf_cleanup(&ct);
        }
        assert_int_equal(off, n);
        free(s);
        for (unsigned t = 1; t <= 4; t += 3) {
            at_diag d = {{0}};
            assert_int_equal(open_with("mt.s", "mt.o", t, &r, &l, &d), AT_OK);
            assert_memory_equal(r.sha256, sha, 32);
            assert_int_equal(l.calls, 6);
            assert_true(l.monotonic);
            assert_int_equal(l.last, l.total);
            uint8_t *o = read_bytes(path("mt.o"), &n);
            assert_int_equal(n, MT_SIZE);
            assert_memory_equal(o, pt, MT_SIZE);
            free(o);
        }
    }
    free(pt);
}

/* Chunk 2 of 6 altered, chunks 1 and 3 swapped, the file cut after chunk 3
 * or inside a tag: on 1 and on 4 threads the same code, and the output
 * holds exactly the chunks before the bad one (the later ones, opened
 * meanwhile, are not written); through the path API nothing appears. */
static void tampered_middle_chunk(void **state)
{
    (void)state;
    uint8_t *pt = mt_plaintext();
    assert_int_equal(seal_with("mt.in", "mt.s", 0, NULL, NULL), AT_OK);
    size_t n;
    uint8_t *s = read_bytes(path("mt.s"), &n);
    const size_t hlen = 8 + 4 + 8 + 16 + 1 + 9 + 1 + 3, whole = AT_SEALFILE_CHUNK + 16;
    uint8_t *t = malloc(n);
    struct {
        const char *what;
        size_t len;
        at_err want;
        off_t written;
    } cases[4] = {{"altered", n, AT_E_DECRYPT_FAILED, 2 * AT_SEALFILE_CHUNK},
                  {"reordered", n, AT_E_DECRYPT_FAILED, AT_SEALFILE_CHUNK},
                  {"cut at a chunk", hlen + 4 * whole, AT_E_TRUNCATED, 3 * AT_SEALFILE_CHUNK},
                  {"cut in a tag", hlen + 4 * whole + 10, AT_E_TRUNCATED, 4 * AT_SEALFILE_CHUNK}};
    for (int c = 0; c < 4; c++) {
        memcpy(t, s, n);
        if (c == 0)
            t[hlen + 2 * whole + 1000] ^= 1;
        if (c == 1) {
            memcpy(t + hlen + whole, s + hlen + 3 * whole, whole);
            memcpy(t + hlen + 3 * whole, s + hlen + whole, whole);
        }
        write_bytes(path("mt.t"), t, cases[c].len);
        for (unsigned th = 1; th <= 4; th += 3) {
            at_diag d = {{0}};
            assert_int_equal(open_with("mt.t", "mt.o", th, NULL, NULL, &d), cases[c].want);
            assert_int_equal(size_at("mt.o"), cases[c].written);
            size_t m;
            uint8_t *o = read_bytes(path("mt.o"), &m);
            assert_memory_equal(o, pt, m);
            free(o);
        }
        at_diag d = {{0}};
        int entries = n_entries();
        assert_int_equal(at_sealfile_open(path("mt.t"), path("mt.new"), key, &d), cases[c].want);
        assert_int_equal(access(path("mt.new"), F_OK), -1);
        assert_int_equal(n_entries(), entries);
    }
    free(t);
    free(s);
    free(pt);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_sealfile.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trips),           cmocka_unit_test(header_authenticated),
        cmocka_unit_test(format1_opens),         cmocka_unit_test(outfile_rules),
        cmocka_unit_test(secret_name_checked),   cmocka_unit_test(threads_identical),
        cmocka_unit_test(tampered_middle_chunk),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
