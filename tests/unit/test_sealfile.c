/* Unit tests for lib/sealfile.c and lib/file.c (at_outfile): format 2 round trips
 * (empty, exact multiple of the chunk, partial last chunk) with the secret
 * and policy names authenticated; format 1 files still open; outputs are
 * whole or nothing, never over the input or an existing file unasked. */
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
static const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
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
        cmocka_unit_test(round_trips),
        cmocka_unit_test(header_authenticated),
        cmocka_unit_test(format1_opens),
        cmocka_unit_test(outfile_rules),
        cmocka_unit_test(secret_name_checked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
