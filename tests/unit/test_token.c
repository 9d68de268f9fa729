/* Unit tests for lib/token.c: token files (surrounding whitespace ignored,
 * nothing else tolerated), generation and hashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "token.h"

static char path[] = "/tmp/attest-token-XXXXXX";

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void token_files(void **state)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char tok[32];
    at_diag d = {{0}};
    write_file("  \tat_abcdef \r\n\n");
    assert_int_equal(at_token_read_file(path, tok, sizeof tok, &d), AT_OK);
    assert_string_equal(tok, "at_abcdef");
    write_file("at_x");
    assert_int_equal(at_token_read_file(path, tok, sizeof tok, &d), AT_OK);
    assert_string_equal(tok, "at_x");
    write_file(" \n\t ");
    assert_int_equal(at_token_read_file(path, tok, sizeof tok, &d), AT_E_BAD_FIELD);
    write_file("at_a at_b\n");
    assert_int_equal(at_token_read_file(path, tok, sizeof tok, &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "whitespace"));
    write_file("0123456789012345678901234567890123456789");
    assert_int_equal(at_token_read_file(path, tok, sizeof tok, &d), AT_E_BAD_FIELD);
    unlink(path);
    assert_int_equal(at_token_read_file(path, tok, sizeof tok, &d), AT_E_IO);
}

static void generate_and_hash(void **state)
{
    char a[AT_TOKEN_MAX], b[AT_TOKEN_MAX];
    assert_int_equal(at_token_generate(a), AT_OK);
    assert_int_equal(at_token_generate(b), AT_OK);
    assert_true(strncmp(a, "at_", 3) == 0 && strlen(a) == 3 + 43);
    assert_string_not_equal(a, b);
    uint8_t h1[32], h2[32], h3[32];
    at_token_hash(a, h1);
    at_token_hash(a, h2);
    at_token_hash(b, h3);
    assert_memory_equal(h1, h2, 32);
    assert_memory_not_equal(h1, h3, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_files),
        cmocka_unit_test(generate_and_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
