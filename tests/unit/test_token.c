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

#include "enc.h"
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
    assert_int_equal(at_token_hash(a, h1, NULL), AT_OK);
    assert_int_equal(at_token_hash(a, h2, NULL), AT_OK);
    assert_int_equal(at_token_hash(b, h3, NULL), AT_OK);
    assert_memory_equal(h1, h2, 32);
    assert_memory_not_equal(h1, h3, 32);
}

/* Known answers: the stored form is SHA-256 of the token's characters, no
 * more and no less (printf %s TOKEN | sha256sum), so tokens created by an
 * older release or another tool keep working. */
static void hash_known_answers(void **state)
{
    (void)state;
    static const struct {
        const char *token, *sha256;
    } kat[] = {
        {"at_x", "0afe34f6c6932b3bc13059db63374ae835d7b748b229cafbaf33d7b5049d4aee"},
        {"at_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
         "1039a76e993cd728db44461986adb4fb230116ea9b981c8075a9d6fad08a4ae1"},
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    };
    for (size_t i = 0; i < sizeof kat / sizeof *kat; i++) {
        uint8_t h[32];
        char hex[65];
        assert_int_equal(at_token_hash(kat[i].token, h, NULL), AT_OK);
        at_hex_encode(h, sizeof h, hex);
        assert_string_equal(hex, kat[i].sha256);
    }
}

static void durations(void **state)
{
    (void)state;
    at_diag d = {{0}};
    int64_t ms = 0;
    assert_int_equal(at_token_parse_duration("30d", &ms, &d), AT_OK);
    assert_true(ms == 30LL * 86400 * 1000);
    assert_int_equal(at_token_parse_duration("12h", &ms, &d), AT_OK);
    assert_true(ms == 12LL * 3600 * 1000);
    assert_int_equal(at_token_parse_duration("45m", &ms, &d), AT_OK);
    assert_true(ms == 45LL * 60 * 1000);
    assert_int_equal(at_token_parse_duration("2s", &ms, &d), AT_OK);
    assert_true(ms == 2000);
    static const char *bad[] = {
        "", "d", "0d", "12", "12x", "12hh", "-1h", " 1h", "1.5h", "99999999999999999999d", "3661d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ms = 7;
        assert_int_equal(at_token_parse_duration(bad[i], &ms, &d), AT_E_BAD_FIELD);
        assert_true(ms == 7);
    }
    assert_non_null(strstr(d.msg, "at most"));
}

static void scopes(void **state)
{
    (void)state;
    at_diag d = {{0}};
    assert_int_equal(at_token_check_scope("llm", &d), AT_OK);
    assert_int_equal(at_token_check_scope("llm,other-1,a.b_c", &d), AT_OK);
    static const char *bad[] = {"", ",", "a,", ",a", "a,,b", "a b", "a,a", "..", "a/b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(at_token_check_scope(bad[i], &d), AT_E_BAD_FIELD);
    assert_int_equal(at_token_check_scope("x,y,x", &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "twice"));
    char many[200] = "";
    for (int i = 0; i < 33; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sp%d", i ? "," : "", i);
    assert_int_equal(at_token_check_scope(many, &d), AT_E_BAD_FIELD);
    assert_non_null(strstr(d.msg, "more than 32"));
    assert_true(at_token_scope_allows(NULL, "x"));
    assert_true(at_token_scope_allows("", "x"));
    assert_true(at_token_scope_allows("llm,b", "llm"));
    assert_true(at_token_scope_allows("llm,b", "b"));
    assert_false(at_token_scope_allows("llm,b", "ll"));
    assert_false(at_token_scope_allows("llm,b", "llm,b"));
    assert_false(at_token_scope_allows("llm", "llm2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_files),
        cmocka_unit_test(generate_and_hash),
        cmocka_unit_test(hash_known_answers),
        cmocka_unit_test(durations),
        cmocka_unit_test(scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
