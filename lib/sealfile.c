/* sealfile: chunked AES-256-GCM files (see sealfile.h). */
#include "sealfile.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file.h"
#include "hpke.h"

#define MAGIC "ATSEAL01"
#define HEADER_LEN (8 + 4 + 8)
#define TAG_LEN 16

static void aad_for(const uint8_t header[HEADER_LEN], uint32_t index, int final, uint8_t aad[HEADER_LEN + 5])
{
    memcpy(aad, header, HEADER_LEN);
    aad[HEADER_LEN] = (uint8_t)(index >> 24);
    aad[HEADER_LEN + 1] = (uint8_t)(index >> 16);
    aad[HEADER_LEN + 2] = (uint8_t)(index >> 8);
    aad[HEADER_LEN + 3] = (uint8_t)index;
    aad[HEADER_LEN + 4] = (uint8_t)final;
}

static void nonce_for(const uint8_t header[HEADER_LEN], uint32_t index, uint8_t nonce[12])
{
    memcpy(nonce, header + 12, 8);
    nonce[8] = (uint8_t)(index >> 24);
    nonce[9] = (uint8_t)(index >> 16);
    nonce[10] = (uint8_t)(index >> 8);
    nonce[11] = (uint8_t)index;
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

at_err at_sealfile_seal(const char *in_path, const char *out_path,
                        const uint8_t key[AT_SEALFILE_KEY_LEN], at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    int in = -1, out = -1;
    uint8_t header[HEADER_LEN], aad[HEADER_LEN + 5], nonce[12];
    uint8_t *cur = malloc(AT_SEALFILE_CHUNK), *next = malloc(AT_SEALFILE_CHUNK);
    at_buf ct;
    at_buf_init(&ct);
    AT_ENSURE(cur && next, d, AT_E_INTERNAL, "out of memory");
    AT_ENSURE((in = open(in_path, O_RDONLY | O_CLOEXEC)) >= 0, d, AT_E_IO, "%s: %s", in_path,
              strerror(errno));
    AT_ENSURE((out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) >= 0, d, AT_E_IO,
              "%s: %s", out_path, strerror(errno));
    memcpy(header, MAGIC, 8);
    header[8] = (uint8_t)(AT_SEALFILE_CHUNK >> 24);
    header[9] = (uint8_t)(AT_SEALFILE_CHUNK >> 16);
    header[10] = (uint8_t)(AT_SEALFILE_CHUNK >> 8);
    header[11] = (uint8_t)AT_SEALFILE_CHUNK;
    AT_ENSURE(RAND_bytes(header + 12, 8) == 1, d, AT_E_INTERNAL, "no randomness");
    AT_ENSURE(at_file_write_full(out, header, HEADER_LEN), d, AT_E_IO, "%s: write failed", out_path);
    /* Read one chunk ahead so the last one is known when it is sealed. */
    ssize_t n = read_full(in, cur, AT_SEALFILE_CHUNK);
    AT_ENSURE(n >= 0, d, AT_E_IO, "%s: %s", in_path, strerror(errno));
    for (uint32_t index = 0;; index++) {
        ssize_t m = n == AT_SEALFILE_CHUNK ? read_full(in, next, AT_SEALFILE_CHUNK) : 0;
        AT_ENSURE(m >= 0, d, AT_E_IO, "%s: %s", in_path, strerror(errno));
        AT_ENSURE(index != UINT32_MAX, d, AT_E_TOO_LARGE, "%s: too large", in_path);
        int final = m == 0;
        aad_for(header, index, final, aad);
        nonce_for(header, index, nonce);
        at_buf_reset(&ct);
        AT_TRY(at_hpke_aead_seal(AT_HPKE_AEAD_AES_256_GCM, AT_SPAN(key, AT_SEALFILE_KEY_LEN),
                                 AT_SPAN(nonce, 12), AT_SPAN(aad, sizeof aad), AT_SPAN(cur, (size_t)n),
                                 &ct, d));
        AT_ENSURE(at_file_write_full(out, ct.p, ct.len), d, AT_E_IO, "%s: write failed", out_path);
        if (final)
            break;
        uint8_t *t = cur;
        cur = next;
        next = t;
        n = m;
    }
    AT_ENSURE(fsync(out) == 0, d, AT_E_IO, "%s: %s", out_path, strerror(errno));
    rc = AT_OK;
out:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (rc != AT_OK && out >= 0)
        unlink(out_path);
    at_wipe_free(cur, AT_SEALFILE_CHUNK);
    at_wipe_free(next, AT_SEALFILE_CHUNK);
    at_buf_cleanup(&ct);
    return rc;
}

at_err at_sealfile_open(const char *in_path, const char *out_path,
                        const uint8_t key[AT_SEALFILE_KEY_LEN], at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    int in = -1, out = -1;
    uint8_t header[HEADER_LEN], aad[HEADER_LEN + 5], nonce[12];
    const size_t ctmax = AT_SEALFILE_CHUNK + TAG_LEN;
    uint8_t *cur = malloc(ctmax), *next = malloc(ctmax);
    at_buf pt;
    at_buf_init_secret(&pt);
    AT_ENSURE(cur && next, d, AT_E_INTERNAL, "out of memory");
    AT_ENSURE((in = open(in_path, O_RDONLY | O_CLOEXEC)) >= 0, d, AT_E_IO, "%s: %s", in_path,
              strerror(errno));
    AT_ENSURE(read_full(in, header, HEADER_LEN) == HEADER_LEN && memcmp(header, MAGIC, 8) == 0, d,
              AT_E_BAD_FIELD, "%s: not a sealed model file (expected the ATSEAL01 header)", in_path);
    uint32_t chunk = (uint32_t)header[8] << 24 | (uint32_t)header[9] << 16 |
                     (uint32_t)header[10] << 8 | header[11];
    AT_ENSURE(chunk == AT_SEALFILE_CHUNK, d, AT_E_BAD_FIELD, "%s: chunk size %u, expected %u",
              in_path, chunk, AT_SEALFILE_CHUNK);
    AT_ENSURE((out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) >= 0, d, AT_E_IO,
              "%s: %s", out_path, strerror(errno));
    ssize_t n = read_full(in, cur, ctmax);
    AT_ENSURE(n >= 0, d, AT_E_IO, "%s: %s", in_path, strerror(errno));
    for (uint32_t index = 0;; index++) {
        AT_ENSURE(n >= TAG_LEN, d, AT_E_TRUNCATED, "%s: truncated at chunk %u", in_path, index);
        ssize_t m = (size_t)n == ctmax ? read_full(in, next, ctmax) : 0;
        AT_ENSURE(m >= 0, d, AT_E_IO, "%s: %s", in_path, strerror(errno));
        AT_ENSURE(index != UINT32_MAX, d, AT_E_TOO_LARGE, "%s: too large", in_path);
        int final = m == 0;
        aad_for(header, index, final, aad);
        nonce_for(header, index, nonce);
        at_buf_reset(&pt);
        rc = at_hpke_aead_open(AT_HPKE_AEAD_AES_256_GCM, AT_SPAN(key, AT_SEALFILE_KEY_LEN),
                               AT_SPAN(nonce, 12), AT_SPAN(aad, sizeof aad), AT_SPAN(cur, (size_t)n),
                               &pt, d);
        if (rc != AT_OK) {
            /* A file cut at a chunk boundary: the last chunk present was not
             * sealed as the final one. */
            rc = at_fail(d, final ? AT_E_TRUNCATED : AT_E_DECRYPT_FAILED,
                         "%s: chunk %u does not open%s", in_path, index,
                         final ? " as the last one (file truncated or altered)" : " (wrong key or altered file)");
            goto out;
        }
        AT_ENSURE(at_file_write_full(out, pt.p ? pt.p : (const uint8_t *)"", pt.len), d, AT_E_IO,
                  "%s: write failed", out_path);
        if (final)
            break;
        uint8_t *t = cur;
        cur = next;
        next = t;
        n = m;
    }
    AT_ENSURE(fsync(out) == 0, d, AT_E_IO, "%s: %s", out_path, strerror(errno));
    rc = AT_OK;
out:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (rc != AT_OK && out >= 0)
        unlink(out_path);
    at_wipe_free(cur, ctmax);
    at_wipe_free(next, ctmax);
    at_buf_cleanup(&pt);
    return rc;
}
