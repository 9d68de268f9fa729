/* bench/seal: sealing and opening a model file (lib/sealfile) in MB/s,
 * against what cannot be avoided, measured in the same run on the same
 * file: plain copying (read + write in 1 MiB pieces) and raw AES-256-GCM
 * over the bytes in memory. Goal: seal/open >= 0.8 of plain copying, peak
 * RSS <= 64 MiB. Seal and open run on one thread per CPU (the default) and,
 * for comparison in the same run, on one thread. usage: bench/seal [MiB, default 1024]; the files go to
 * $AT_BENCH_DIR (default /dev/shm, else /tmp) and are removed. */
#include "config.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
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

/* CPU seconds of the whole process (every thread) so far. */
static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "bench/seal: %s failed\n", what);
    exit(2);
}

/* Seal or open from -> to on `threads` threads (0 = the default). */
static double seal_file(bool seal, const char *from, const char *to, const uint8_t *key, unsigned threads)
{
    at_diag d = {{0}};
    at_sealfile_opts o = {.threads = threads};
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0)
        die("open");
    double t = now();
    at_err rc = seal ? at_sealfile_seal_fd(in, out, key, &o, NULL, &d)
                     : at_sealfile_open_fd(in, out, key, &o, NULL, &d);
    if (rc != AT_OK || fsync(out) != 0)
        die(rc != AT_OK ? d.msg : "fsync");
    t = now() - t;
    close(in);
    close(out);
    return t;
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

    double c_copy = cpu(), t_copy = copy_file(plain, copy, buf);
    c_copy = cpu() - c_copy;
    unlink(copy);
    /* raw AES-256-GCM over the same number of bytes, one chunk at a time */
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    double t_aes = now();
    for (size_t i = 0; i < mib; i++) {
        int l = 0;
        iv[11] = (uint8_t)i;
        if (!c || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv) != 1 ||
            EVP_EncryptUpdate(c, ct, &l, buf, AT_SEALFILE_CHUNK) != 1 ||
            EVP_EncryptFinal_ex(c, ct + l, &l) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
            die("aes-256-gcm");
    }
    t_aes = now() - t_aes;
    EVP_CIPHER_CTX_free(c);

    /* lib/sealfile's fd API, fsync'd like the copy (the path API adds a
     * temporary name and a rename around it) */
    double c_seal = cpu(), t_seal = seal_file(true, plain, sealed, key, 0);
    c_seal = cpu() - c_seal;
    double c_open = cpu(), t_open = seal_file(false, sealed, opened, key, 0);
    c_open = cpu() - c_open;
    double t_seal1 = seal_file(true, plain, sealed, key, 1);
    double t_open1 = seal_file(false, sealed, opened, key, 1);
    unlink(plain);
    unlink(sealed);
    unlink(opened);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("seal/open %zu MiB in %s, %ld CPUs online (same run):\n", mib, dir, sysconf(_SC_NPROCESSORS_ONLN));
    printf("  plain copy     %8.0f MB/s  %.2f CPU s\n", mb / t_copy, c_copy);
    printf("  AES-256-GCM    %8.0f MB/s (in memory)\n", mb / t_aes);
    printf("  seal           %8.0f MB/s  %.2f of copying, %.2f of AES, %.2f CPU s (%.1f busy)\n", mb / t_seal,
           t_copy / t_seal, t_aes / t_seal, c_seal, c_seal / t_seal);
    printf("  open           %8.0f MB/s  %.2f of copying, %.2f of AES, %.2f CPU s (%.1f busy)\n", mb / t_open,
           t_copy / t_open, t_aes / t_open, c_open, c_open / t_open);
    printf("  seal, 1 thread %8.0f MB/s  %.2f of copying\n", mb / t_seal1, t_copy / t_seal1);
    printf("  open, 1 thread %8.0f MB/s  %.2f of copying\n", mb / t_open1, t_copy / t_open1);
    printf("  peak RSS       %8ld KiB\n", ru.ru_maxrss);
    free(buf);
    free(ct);
    return 0;
}
