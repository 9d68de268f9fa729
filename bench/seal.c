/* bench/seal: sealing and opening a model file (lib/sealfile) in MB/s,
 * against what cannot be avoided, measured in the same run on the same
 * file: plain copying (read + write in 1 MiB pieces) and raw AES-256-GCM
 * over the bytes in memory. Goal: seal/open >= 0.8 of plain copying, peak
 * RSS <= 64 MiB. usage: bench/seal [MiB, default 1024]; the files go to
 * $AT_BENCH_DIR (default /dev/shm, else /tmp) and are removed. */
#include "config.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "sealfile.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench/seal: %s failed\n", what);
    exit(2);
}

static double copy_file(const char *from, const char *to, uint8_t *buf)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0)
        die("open");
    double t = now();
    ssize_t n;
    while ((n = read(in, buf, AT_SEALFILE_CHUNK)) > 0)
        if (write(out, buf, (size_t)n) != n)
            die("write");
    if (n < 0 || fsync(out) != 0)
        die("copy");
    t = now() - t;
    close(in);
    close(out);
    return t;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    const char *dir = getenv("AT_BENCH_DIR");
    if (!dir)
        dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char plain[512], copy[512], sealed[512], opened[512];
    snprintf(plain, sizeof plain, "%s/at-bench-seal.%d.in", dir, (int)getpid());
    snprintf(copy, sizeof copy, "%s/at-bench-seal.%d.copy", dir, (int)getpid());
    snprintf(sealed, sizeof sealed, "%s/at-bench-seal.%d.sealed", dir, (int)getpid());
    snprintf(opened, sizeof opened, "%s/at-bench-seal.%d.out", dir, (int)getpid());
    uint8_t *buf = malloc(AT_SEALFILE_CHUNK + 16), *ct = malloc(AT_SEALFILE_CHUNK + 16);
    uint8_t key[AT_SEALFILE_KEY_LEN] = {7}, iv[12] = {0}, tag[16];
    if (!buf || !ct)
        die("malloc");
    int fd = open(plain, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    for (size_t i = 0; i < AT_SEALFILE_CHUNK; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t i = 0; i < mib; i++)
        if (fd < 0 || write(fd, buf, AT_SEALFILE_CHUNK) != AT_SEALFILE_CHUNK)
            die("writing the input");
    close(fd);
    double mb = (double)mib * AT_SEALFILE_CHUNK / 1e6;

    double t_copy = copy_file(plain, copy, buf);
    unlink(copy);
    /* raw AES-256-GCM over the same number of bytes, one chunk at a time */
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    double t_aes = now();
    for (size_t i = 0; i < mib; i++) {
        int l = 0;
        iv[11] = (uint8_t)i;
        if (!c || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv) != 1 ||
            EVP_EncryptUpdate(c, ct, &l, buf, AT_SEALFILE_CHUNK) != 1 || EVP_EncryptFinal_ex(c, ct + l, &l) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
            die("aes-256-gcm");
    }
    t_aes = now() - t_aes;
    EVP_CIPHER_CTX_free(c);

    at_diag d = {{0}};
    unlink(sealed);
    double t_seal = now();
    if (at_sealfile_seal(plain, sealed, key, &d) != AT_OK)
        die(d.msg);
    t_seal = now() - t_seal;
    unlink(opened);
    double t_open = now();
    if (at_sealfile_open(sealed, opened, key, &d) != AT_OK)
        die(d.msg);
    t_open = now() - t_open;
    unlink(plain);
    unlink(sealed);
    unlink(opened);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("seal/open %zu MiB in %s (same run):\n", mib, dir);
    printf("  plain copy     %8.0f MB/s\n", mb / t_copy);
    printf("  AES-256-GCM    %8.0f MB/s (in memory)\n", mb / t_aes);
    printf("  seal           %8.0f MB/s  %.2f of copying, %.2f of AES\n", mb / t_seal, t_copy / t_seal,
           t_aes / t_seal);
    printf("  open           %8.0f MB/s  %.2f of copying, %.2f of AES\n", mb / t_open, t_copy / t_open,
           t_aes / t_open);
    printf("  peak RSS       %8ld KiB\n", ru.ru_maxrss);
    free(buf);
    free(ct);
    return 0;
}
