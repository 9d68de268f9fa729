/* fuzz_sealfile: lib/sealfile's reader on attacker bytes (a sealed model is
 * published anywhere; the host that stores it may change it). The first
 * input byte picks the target:
 *  even: the rest is a sealed file, opened under a fixed key and inspected;
 *        the properties: an open that succeeds wrote exactly the plaintext
 *        length and digest it reports, and a file that opens also
 *        inspects, with the same header;
 *  odd:  the rest (after 4 bytes choosing a bit) is a plaintext, sealed
 *        under the fixed key; it must open to the same bytes, and the
 *        sealed file with that one bit flipped must not open at all, and
 *        leave no plaintext reported.
 * Files live in memfds, so nothing touches the disk. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hash.h"
#include "sealfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool cond)
{
    if (!cond)
        abort();
}

static const uint8_t key[AT_SEALFILE_KEY_LEN] = {
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
    0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};

static int mem_file(const uint8_t *p, size_t n)
{
    int fd = memfd_create("fuzz_sealfile", 0);
    check(fd >= 0);
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        check(w > 0);
        off += (size_t)w;
    }
    check(lseek(fd, 0, SEEK_SET) == 0);
    return fd;
}

static uint8_t *slurp(int fd, size_t *n)
{
    off_t end = lseek(fd, 0, SEEK_END);
    check(end >= 0 && lseek(fd, 0, SEEK_SET) == 0);
    uint8_t *p = malloc((size_t)end + 1);
    check(p != NULL);
    size_t off = 0;
    while (off < (size_t)end) {
        ssize_t r = read(fd, p + off, (size_t)end - off);
        check(r > 0);
        off += (size_t)r;
    }
    *n = (size_t)end;
    return p;
}

/* Open the sealed bytes; on success return the plaintext (caller frees). */
static at_err open_bytes(const uint8_t *p, size_t n, at_sealfile_result *res, uint8_t **plain,
                         size_t *plain_len)
{
    int in = mem_file(p, n), out = memfd_create("fuzz_sealfile_out", 0);
    check(out >= 0);
    at_sealfile_opts o = {.threads = 1};
    at_diag d = {{0}};
    memset(res, 0, sizeof *res);
    at_err rc = at_sealfile_open_fd(in, out, key, &o, res, &d);
    *plain = NULL;
    if (rc == AT_OK) {
        *plain = slurp(out, plain_len);
        /* What it reports is what it wrote. */
        check(*plain_len == res->plaintext_bytes);
        uint8_t h[AT_SHA256_LEN];
        check(at_sha256(AT_SPAN(*plain, *plain_len), h, NULL) == AT_OK);
        check(memcmp(h, res->sha256, sizeof h) == 0);
        /* A file that opens also inspects, to the same header. */
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", in);
        at_sealfile_header hdr;
        check(at_sealfile_inspect(path, &hdr, &d) == AT_OK);
        check(hdr.version == res->header.version && hdr.chunk_size == res->header.chunk_size &&
              strcmp(hdr.secret, res->header.secret) == 0 && strcmp(hdr.policy, res->header.policy) == 0);
    } else {
        check(d.msg[0] != '\0');
    }
    close(in);
    close(out);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    at_sealfile_result res;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    if ((data[0] & 1) == 0) {
        (void)open_bytes(data + 1, size - 1, &res, &plain, &plain_len);
        free(plain);
        return 0;
    }
    if (size < 5)
        return 0;
    uint32_t bit = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
    int in = mem_file(data + 5, size - 5), out = memfd_create("fuzz_sealfile_sealed", 0);
    check(out >= 0);
    at_sealfile_opts o = {.secret = "fuzz-model", .policy = "fuzz-policy", .threads = 1};
    at_diag d = {{0}};
    check(at_sealfile_seal_fd(in, out, key, &o, NULL, &d) == AT_OK);
    size_t sealed_len = 0;
    uint8_t *sealed = slurp(out, &sealed_len);
    close(in);
    close(out);
    /* Round trip. */
    check(open_bytes(sealed, sealed_len, &res, &plain, &plain_len) == AT_OK);
    check(plain_len == size - 5 && (plain_len == 0 || memcmp(plain, data + 5, plain_len) == 0));
    check(strcmp(res.header.secret, "fuzz-model") == 0 && strcmp(res.header.policy, "fuzz-policy") == 0);
    free(plain);
    plain = NULL;
    /* Any one bit flipped anywhere: refused. */
    size_t at = (size_t)(bit / 8) % sealed_len;
    sealed[at] ^= (uint8_t)(1u << (bit % 8));
    check(open_bytes(sealed, sealed_len, &res, &plain, &plain_len) != AT_OK);
    check(plain == NULL);
    free(sealed);
    return 0;
}
