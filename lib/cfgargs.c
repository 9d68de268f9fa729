/* cfgargs: a JSON object of long flag names turned into argv entries,
 * checked against the getopt table before anything is parsed. */
#include "cfgargs.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 512

static const struct option *find_opt(const struct option *opts, const char *name)
{
    for (; opts->name; opts++)
        if (strcmp(opts->name, name) == 0)
            return opts;
    return NULL;
}

static at_err push(char **v, int *n, const char *s, at_diag *d)
{
    if (*n >= MAX_ARGS - 1)
        return at_fail(d, AT_E_BAD_REQUEST, "config: more than %d flags", MAX_ARGS / 2);
    if (!(v[*n] = strdup(s)))
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    (*n)++;
    return AT_OK;
}

/* One value of key as the flag's argument text. */
static at_err value_text(const char *path, const char *key, json_t *x, char *buf, size_t len, at_diag *d)
{
    if (json_is_string(x))
        snprintf(buf, len, "%s", json_string_value(x));
    else if (json_is_integer(x))
        snprintf(buf, len, "%lld", (long long)json_integer_value(x));
    else if (json_is_real(x))
        snprintf(buf, len, "%.17g", json_real_value(x));
    else
        return at_fail(d, AT_E_BAD_REQUEST, "%s: %s: expected a string or a number", path, key);
    return AT_OK;
}

static at_err load(const char *path, const struct option *opts, char **v, int *n, at_diag *d)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return je.line < 1 ? at_fail(d, AT_E_BAD_REQUEST, "--config: %s", je.text)
                           : at_fail(d, AT_E_BAD_REQUEST, "%s: line %d column %d: %s", path, je.line,
                                     je.column, je.text);
    at_err rc = AT_OK;
    if (!json_is_object(j)) {
        rc = at_fail(d, AT_E_BAD_REQUEST, "%s: expected a JSON object of flag names", path);
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(j, key, val)
    {
        const struct option *o = find_opt(opts, key);
        if (!o || strcmp(key, "config") == 0 || strcmp(key, "help") == 0 || strcmp(key, "version") == 0) {
            rc = at_fail(d, AT_E_BAD_REQUEST, "%s: unknown key \"%.64s\" (keys are the long flag names)",
                         path, key);
            goto out;
        }
        char flag[80];
        snprintf(flag, sizeof flag, "--%s", key);
        if (o->has_arg == no_argument) {
            if (!json_is_boolean(val)) {
                rc = at_fail(d, AT_E_BAD_REQUEST, "%s: %s: expected true or false", path, key);
                goto out;
            }
            if (json_is_true(val) && (rc = push(v, n, flag, d)) != AT_OK)
                goto out;
            continue;
        }
        size_t count = json_is_array(val) ? json_array_size(val) : 1;
        for (size_t i = 0; i < count; i++) {
            json_t *x = json_is_array(val) ? json_array_get(val, i) : val;
            char text[4096];
            if ((rc = value_text(path, key, x, text, sizeof text, d)) != AT_OK ||
                (rc = push(v, n, flag, d)) != AT_OK || (rc = push(v, n, text, d)) != AT_OK)
                goto out;
        }
    }
out:
    json_decref(j);
    return rc;
}

at_err at_cfgargs_expand(int argc, char **argv, const struct option *opts, int *out_argc, char ***out_argv,
                         at_diag *d)
{
    char **v = calloc(MAX_ARGS + (size_t)argc + 1, sizeof *v);
    int n = 0;
    if (!v)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    at_err rc = push(v, &n, argv[0], d);
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
    }
    if (rc == AT_OK && path)
        rc = load(path, opts, v, &n, d);
    for (int i = 1; rc == AT_OK && i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--config=", 9) == 0)
            continue;
        if (!(v[n] = strdup(argv[i])))
            rc = at_fail(d, AT_E_INTERNAL, "out of memory");
        else
            n++;
    }
    if (rc != AT_OK) {
        at_cfgargs_free(n, v);
        return rc;
    }
    *out_argc = n;
    *out_argv = v;
    return AT_OK;
}

void at_cfgargs_free(int argc, char **argv)
{
    if (!argv)
        return;
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
}
