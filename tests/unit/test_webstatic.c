/* Unit tests for lib/webstatic: only allow-listed names are served (a path
 * outside the list, a traversal or a file beside the listed ones is not),
 * each with its Content-Type, the strict CSP and an ETag that answers 304;
 * bad names, missing and oversized files are refused at start with their
 * exact code. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "webstatic.h"

static char dir[64];

static void put(const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_webstatic-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    put("index.html", "<!doctype html><title>t</title>");
    put("app.js", "'use strict';");
    put("style.css", "body{}");
    put("secret.txt", "not listed");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *const page[] = {"index.html", "app.js", "style.css"};

static at_webstatic *load(const char *prefix)
{
    at_webstatic *w = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_webstatic_new(dir, prefix, page, 3, &w, &d), AT_OK);
    return w;
}

static void serves_the_listed_files(void **state)
{
    (void)state;
    at_webstatic *w = load("/");
    at_http_resp r = {0};
    assert_true(at_webstatic_serve(w, "GET", "/", NULL, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/html; charset=utf-8");
    assert_int_equal(r.len, strlen("<!doctype html><title>t</title>"));
    assert_memory_equal(r.body, "<!doctype html>", 15);
    assert_non_null(strstr(r.headers, "Content-Security-Policy: default-src 'none'; script-src 'self'; "));
    assert_non_null(strstr(r.headers, "frame-ancestors 'none'\n"));
    assert_non_null(strstr(r.headers, "Referrer-Policy: no-referrer\n"));
    assert_non_null(strstr(r.headers, "Cache-Control: no-cache\n"));
    char *etag = strstr(r.headers, "ETag: \"");
    assert_non_null(etag);
    char tag[40];
    assert_int_equal(sscanf(etag, "ETag: %39s", tag), 1);
    assert_int_equal(strlen(tag), 34);
    free(r.body);

    at_http_resp j = {0};
    assert_true(at_webstatic_serve(w, "GET", "/app.js", NULL, &j));
    assert_string_equal(j.content_type, "text/javascript; charset=utf-8");
    free(j.body);
    at_http_resp c = {0};
    assert_true(at_webstatic_serve(w, "HEAD", "/style.css", NULL, &c));
    assert_string_equal(c.content_type, "text/css; charset=utf-8");
    free(c.body);

    /* The ETag it gave answers 304 with no body; another one the file. */
    at_http_resp n = {0};
    assert_true(at_webstatic_serve(w, "GET", "/index.html", tag, &n));
    assert_int_equal(n.status, 304);
    assert_null(n.body);
    at_http_resp o = {0};
    assert_true(at_webstatic_serve(w, "GET", "/index.html", "\"0000\"", &o));
    assert_int_equal(o.status, 200);
    free(o.body);
    at_webstatic_free(w);
}

static void serves_nothing_else(void **state)
{
    (void)state;
    at_webstatic *w = load("/");
    static const char *const paths[] = {
        "/secret.txt", "/../etc/passwd", "/./app.js",   "//app.js", "/app.js/",
        "/APP.JS",     "/app.js%00",     "/sub/app.js", "",         "/index"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        at_http_resp r = {0};
        assert_false(at_webstatic_serve(w, "GET", paths[i], NULL, &r));
        assert_int_equal(r.status, 0);
        assert_null(r.body);
    }
    at_http_resp r = {0};
    assert_false(at_webstatic_serve(w, "POST", "/", NULL, &r));
    assert_false(at_webstatic_serve(w, "DELETE", "/app.js", NULL, &r));
    assert_false(at_webstatic_serve(NULL, "GET", "/", NULL, &r));
    at_webstatic_free(w);
}

static void under_a_prefix(void **state)
{
    (void)state;
    at_webstatic *w = load("/console/");
    at_http_resp r = {0};
    assert_true(at_webstatic_serve(w, "GET", "/console/", NULL, &r));
    assert_string_equal(r.content_type, "text/html; charset=utf-8");
    free(r.body);
    at_http_resp j = {0};
    assert_true(at_webstatic_serve(w, "GET", "/console/app.js", NULL, &j));
    free(j.body);
    at_http_resp x = {0};
    assert_false(at_webstatic_serve(w, "GET", "/console", NULL, &x));
    assert_false(at_webstatic_serve(w, "GET", "/", NULL, &x));
    assert_false(at_webstatic_serve(w, "GET", "/app.js", NULL, &x));
    at_webstatic_free(w);
}

static void refuses_bad_sets(void **state)
{
    (void)state;
    at_webstatic *w = NULL;
    at_diag d = {{0}};
    static const char *const bad_names[] = {"../index.html", ".hidden.js", "a/b.js", "run.exe", "noext", ""};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        const char *one[] = {bad_names[i]};
        assert_int_equal(at_webstatic_new(dir, "/", one, 1, &w, &d), AT_E_BAD_REQUEST);
        assert_non_null(strstr(d.msg, "file name"));
    }
    const char *missing[] = {"index.html", "gone.js"};
    assert_int_equal(at_webstatic_new(dir, "/", missing, 2, &w, &d), AT_E_IO);
    assert_non_null(strstr(d.msg, "gone.js"));
    assert_int_equal(at_webstatic_new(dir, "console/", page, 3, &w, &d), AT_E_BAD_REQUEST);
    assert_int_equal(at_webstatic_new(dir, "/console", page, 3, &w, &d), AT_E_BAD_REQUEST);
    assert_int_equal(at_webstatic_new("", "/", page, 3, &w, &d), AT_E_BAD_REQUEST);
    /* One byte over the cap. */
    char *big = malloc(AT_WEBSTATIC_MAX_FILE + 2);
    assert_non_null(big);
    memset(big, 'x', AT_WEBSTATIC_MAX_FILE + 1);
    big[AT_WEBSTATIC_MAX_FILE + 1] = '\0';
    put("big.js", big);
    free(big);
    const char *large[] = {"big.js"};
    assert_int_equal(at_webstatic_new(dir, "/", large, 1, &w, &d), AT_E_TOO_LARGE);
    assert_null(w);
    assert_null(at_webstatic_content_type("x.exe"));
    assert_string_equal(at_webstatic_content_type("a.svg"), "image/svg+xml");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(serves_the_listed_files, setup, teardown),
        cmocka_unit_test_setup_teardown(serves_nothing_else, setup, teardown),
        cmocka_unit_test_setup_teardown(under_a_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_bad_sets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
