/* Tests for lib/file: atomic writes. write() is wrapped (-Wl,--wrap=write)
 * so a failure after the temporary file exists can be injected. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "file.h"

ssize_t __real_write(int fd, const void *p, size_t n);
ssize_t __wrap_write(int fd, const void *p, size_t n);

static int fail_writes; /* > 0: the next write writes 1 byte, then fails */
static int short_done;

ssize_t __wrap_write(int fd, const void *p, size_t n)
{
    if (fail_writes > 0) {
        if (!short_done && n > 1) {
            short_done = 1;
            return __real_write(fd, p, 1);
        }
        fail_writes--;
        errno = ENOSPC;
        return -1;
    }
    return __real_write(fd, p, n);
}

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_file-XXXXXX");
    fail_writes = 0;
    short_done = 0;
    return mkdtemp(dir) ? 0 : -1;
}

static int entries(void)
{
    DIR *dp = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(dp);
    return n;
}

static int teardown(void **state)
{
    (void)state;
    DIR *dp = opendir(dir);
    struct dirent *e;
    char p[512];
    while ((e = readdir(dp)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(dp);
    return rmdir(dir);
}

static void expect_content(const char *path, const char *want)
{
    char got[256] = "";
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(got, 1, sizeof got - 1, f);
    fclose(f);
    got[n] = '\0';
    assert_string_equal(got, want);
}

static void writes_whole_file_with_mode(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/key", dir);
    at_diag d = {{0}};
    assert_int_equal(at_file_write_atomic(p, AT_SPAN("secret\n", 7), 0600, true, &d), AT_OK);
    expect_content(p, "secret\n");
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(entries(), 1); /* no temporary file left */
}

static void replaces_unless_exclusive(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/state", dir);
    at_diag d = {{0}};
    assert_int_equal(at_file_write_atomic(p, AT_SPAN("one", 3), 0644, false, &d), AT_OK);
    assert_int_equal(at_file_write_atomic(p, AT_SPAN("two", 3), 0644, false, &d), AT_OK);
    expect_content(p, "two");
    assert_int_equal(at_file_write_atomic(p, AT_SPAN("three", 5), 0600, true, &d), AT_E_CONFLICT);
    assert_non_null(strstr(d.msg, "exists already"));
    expect_content(p, "two");
    assert_int_equal(entries(), 1);
}

static void failed_write_leaves_no_file(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/admin.token", dir);
    at_diag d = {{0}};
    fail_writes = 1;
    assert_int_equal(at_file_write_atomic(p, AT_SPAN("0123456789abcdef\n", 17), 0600, true, &d), AT_E_IO);
    assert_true(short_done); /* one byte was written before the failure */
    assert_non_null(strstr(d.msg, "write failed"));
    assert_int_equal(access(p, F_OK), -1); /* no partial file for the next start */
    assert_int_equal(entries(), 0);        /* and no temporary one */
}

static void failed_replace_keeps_old_file(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/state", dir);
    at_diag d = {{0}};
    assert_int_equal(at_file_write_atomic(p, AT_SPAN("old", 3), 0600, false, &d), AT_OK);
    fail_writes = 1;
    assert_int_equal(at_file_write_atomic(p, AT_SPAN("newer", 5), 0600, false, &d), AT_E_IO);
    expect_content(p, "old");
    assert_int_equal(entries(), 1);
}

static void missing_folder_is_io(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/no/such/key", dir);
    at_diag d = {{0}};
    assert_int_equal(at_file_write_atomic(p, AT_SPAN("x", 1), 0600, false, &d), AT_E_IO);
    assert_non_null(strstr(d.msg, "temporary file"));
    assert_int_equal(at_file_write_atomic("", AT_SPAN("x", 1), 0600, false, &d), AT_E_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(writes_whole_file_with_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(replaces_unless_exclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_write_leaves_no_file, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_replace_keeps_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_folder_is_io, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
