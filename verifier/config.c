/* config: attest-verifier's configuration, from flags and an optional
 * --config FILE.json (flags override the file). Input from the operator:
 * every number is range-checked, unknown JSON keys are refused. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_limits.h"
#include "config.h"
#include "verifier.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: attest-verifier [--listen ADDR:PORT] [--db FILE|postgresql://URL] [--root PEM]...\n"
               "                       [--no-aws-root] [--admin-token-file F] [--config FILE.json]\n"
               "                       [--nonce-ttl S] [--clock-skew S] [--max-body BYTES]\n"
               "                       [--connection-limit N] [--per-ip-limit N] [--rate R] [--burst B]\n"
               "                       [--audit-rate N] [--audit-verify-interval S]\n"
               "                       [--request-timeout S]\n"
               "                       [--tls-cert PEM --tls-key PEM] [--port-file F]\n"
               "                       [--log-level debug|info|warn|error] [--storage-key-file F]\n"
               "                       [--issuer URL] [--web-root DIR]\n"
               "       attest-verifier --db FILE --rotate-signing-key\n"
               "Defaults: --listen 127.0.0.1:8440 --db ./attest.db; the AWS Nitro root G1 is\n"
               "always trusted unless --no-aws-root. SIGHUP reloads roots and keys, SIGUSR1\n"
               "prunes used nonces/proofs and ends expired sessions now (else every 30 s).\n"
               "--test-clock-file F (tests only) adds the offset in seconds written in F to\n"
               "the clock.\n"
               "GET /console/ serves the web console from --web-root (default the installed\n"
               "copy); a --web-root given must hold its files.\n");
}

static int set_root(verifier_config *c, const char *path)
{
    if (c->n_root_files == MAX_ROOT_FILES) {
        fprintf(stderr, "attest-verifier: at most %d roots\n", MAX_ROOT_FILES);
        return -1;
    }
    c->root_files[c->n_root_files++] = strdup(path);
    return 0;
}

static int load_config_file(verifier_config *c, const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j || !json_is_object(j)) {
        if (j)
            fprintf(stderr, "attest-verifier: %s: not a JSON object\n", path);
        else if (je.line < 1) /* did not open: jansson's text names the file and why */
            fprintf(stderr, "attest-verifier: --config: %s\n", je.text);
        else
            fprintf(stderr, "attest-verifier: %s: line %d column %d: %s\n", path, je.line, je.column,
                    je.text);
        json_decref(j);
        return -1;
    }
    static const char *const keys[] = {"listen",
                                       "db",
                                       "roots",
                                       "no_aws_root",
                                       "admin_token_file",
                                       "storage_key_file",
                                       "tls_cert_file",
                                       "tls_key_file",
                                       "nonce_ttl_s",
                                       "clock_skew_s",
                                       "max_body_bytes",
                                       "connection_limit",
                                       "rate_per_s",
                                       "rate_burst",
                                       "audit_rate_per_min",
                                       "audit_verify_interval_s",
                                       "issuer",
                                       "web_root",
                                       NULL};
    at_diag d = {{0}};
    if (only_keys(j, keys, &d) != AT_OK) {
        fprintf(stderr, "attest-verifier: %s: %s\n", path, d.msg);
        json_decref(j);
        return -1;
    }
    const char *s;
    if ((s = json_string_value(json_object_get(j, "listen"))))
        snprintf(c->listen, sizeof c->listen, "%s", s);
    if ((s = json_string_value(json_object_get(j, "issuer"))))
        snprintf(c->issuer, sizeof c->issuer, "%s", s);
    if ((s = json_string_value(json_object_get(j, "web_root"))))
        snprintf(c->web_root, sizeof c->web_root, "%s", s);
    if ((s = json_string_value(json_object_get(j, "db"))))
        snprintf(c->db_path, sizeof c->db_path, "%s", s);
    if ((s = json_string_value(json_object_get(j, "tls_cert_file"))))
        snprintf(c->tls_cert_file, sizeof c->tls_cert_file, "%s", s);
    if ((s = json_string_value(json_object_get(j, "tls_key_file"))))
        snprintf(c->tls_key_file, sizeof c->tls_key_file, "%s", s);
    if ((s = json_string_value(json_object_get(j, "storage_key_file"))))
        snprintf(c->storage_key_file, sizeof c->storage_key_file, "%s", s);
    if ((s = json_string_value(json_object_get(j, "admin_token_file"))))
        snprintf(c->admin_token_file, sizeof c->admin_token_file, "%s", s);
    json_t *r = json_object_get(j, "roots"), *e;
    size_t i;
    json_array_foreach(r, i, e) if (json_is_string(e) && set_root(c, json_string_value(e)) != 0)
    {
        json_decref(j);
        return -1;
    }
    if (json_is_true(json_object_get(j, "no_aws_root")))
        c->no_aws_root = true;
    /* The same bounds as the flags (a negative max_body_bytes would lift the
     * body cap, a zero nonce TTL would fail every challenge). */
    static const struct {
        const char *key;
        double min, max;
    } bounds[] = {{"nonce_ttl_s", 1, 3600},
                  {"clock_skew_s", 0, 3600},
                  {"max_body_bytes", AT_HTTPD_MAX_BODY_MIN, AT_HTTPD_MAX_BODY_MAX},
                  {"connection_limit", 1, AT_HTTPD_CONNECTION_LIMIT_MAX},
                  {"rate_per_s", 0, 1000000},
                  {"rate_burst", 1, 1000000},
                  {"audit_rate_per_min", 0, 1000000},
                  {"audit_verify_interval_s", 0, 86400}};
    for (size_t k = 0; k < sizeof bounds / sizeof bounds[0]; k++) {
        json_t *x = json_object_get(j, bounds[k].key);
        bool real_ok =
            strncmp(bounds[k].key, "rate_", 5) == 0 || strcmp(bounds[k].key, "audit_rate_per_min") == 0;
        if (x && (!(json_is_integer(x) || (real_ok && json_is_real(x))) ||
                  json_number_value(x) < bounds[k].min || json_number_value(x) > bounds[k].max)) {
            fprintf(stderr, "attest-verifier: %s: %s: expected %s %.0f..%.0f\n", path, bounds[k].key,
                    real_ok ? "a number" : "an integer", bounds[k].min, bounds[k].max);
            json_decref(j);
            return -1;
        }
    }
    if (json_is_integer(json_object_get(j, "nonce_ttl_s")))
        c->nonce_ttl_s = (int)json_integer_value(json_object_get(j, "nonce_ttl_s"));
    if (json_is_integer(json_object_get(j, "clock_skew_s")))
        c->clock_skew_ms = json_integer_value(json_object_get(j, "clock_skew_s")) * 1000;
    if (json_is_integer(json_object_get(j, "max_body_bytes")))
        c->http.max_body = (size_t)json_integer_value(json_object_get(j, "max_body_bytes"));
    if (json_is_integer(json_object_get(j, "connection_limit")))
        c->http.connection_limit = (unsigned)json_integer_value(json_object_get(j, "connection_limit"));
    if (json_is_number(json_object_get(j, "rate_per_s")))
        c->rate_per_s = json_number_value(json_object_get(j, "rate_per_s"));
    if (json_is_number(json_object_get(j, "rate_burst")))
        c->rate_burst = json_number_value(json_object_get(j, "rate_burst"));
    if (json_is_number(json_object_get(j, "audit_rate_per_min")))
        c->audit_rows_per_min = json_number_value(json_object_get(j, "audit_rate_per_min"));
    if (json_is_integer(json_object_get(j, "audit_verify_interval_s")))
        c->audit_verify_interval_s = (int)json_integer_value(json_object_get(j, "audit_verify_interval_s"));
    json_decref(j);
    return 0;
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end || v < min || v > max) {
        fprintf(stderr, "attest-verifier: %s: expected %ld..%ld, got '%s'\n", opt, min, max, s);
        exit(2);
    }
    return v;
}

int verifier_config_parse(verifier_config *c, bool *rotate, int argc, char **argv)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "127.0.0.1:8440");
    snprintf(c->db_path, sizeof c->db_path, "./attest.db");
    c->nonce_ttl_s = AT_NONCE_TTL_S;
    c->clock_skew_ms = AT_CLOCK_SKEW_MS;
    c->http.max_body = AT_MAX_BODY_BYTES;
    c->http.connection_limit = 0; /* what the descriptor limit allows */
    c->rate_per_s = 100;
    c->rate_burst = 200;
    c->audit_rows_per_min = 60;
    c->audit_verify_interval_s = 10;
    *rotate = false;
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"db", required_argument, NULL, 'd'},
                                         {"root", required_argument, NULL, 'r'},
                                         {"no-aws-root", no_argument, NULL, 'N'},
                                         {"admin-token-file", required_argument, NULL, 'a'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"nonce-ttl", required_argument, NULL, 't'},
                                         {"clock-skew", required_argument, NULL, 's'},
                                         AT_HTTPD_LONG_OPTIONS,
                                         {"rate", required_argument, NULL, 'R'},
                                         {"burst", required_argument, NULL, 'B'},
                                         {"port-file", required_argument, NULL, 'p'},
                                         {"rotate-signing-key", no_argument, NULL, 'K'},
                                         {"log-level", required_argument, NULL, 'L'},
                                         {"tls-cert", required_argument, NULL, 'T'},
                                         {"tls-key", required_argument, NULL, 'k'},
                                         {"storage-key-file", required_argument, NULL, 'S'},
                                         {"issuer", required_argument, NULL, 'I'},
                                         {"web-root", required_argument, NULL, 'W'},
                                         {"audit-rate", required_argument, NULL, 'A'},
                                         {"audit-verify-interval", required_argument, NULL, 'E'},
                                         {"test-clock-file", required_argument, NULL, 'X'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    /* The config file first, so command-line flags override it. */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--config") == 0 && load_config_file(c, argv[i + 1]) != 0)
            return 2;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'l':
            snprintf(c->listen, sizeof c->listen, "%s", optarg);
            break;
        case 'd':
            snprintf(c->db_path, sizeof c->db_path, "%s", optarg);
            break;
        case 'r':
            if (set_root(c, optarg) != 0)
                return 2;
            break;
        case 'N':
            c->no_aws_root = true;
            break;
        case 'a':
            snprintf(c->admin_token_file, sizeof c->admin_token_file, "%s", optarg);
            break;
        case 'c':
            break;
        case 't':
            c->nonce_ttl_s = (int)parse_long("--nonce-ttl", optarg, 1, 3600);
            break;
        case 's':
            c->clock_skew_ms = parse_long("--clock-skew", optarg, 0, 3600) * 1000;
            break;
        case 'T':
            snprintf(c->tls_cert_file, sizeof c->tls_cert_file, "%s", optarg);
            break;
        case 'k':
            snprintf(c->tls_key_file, sizeof c->tls_key_file, "%s", optarg);
            break;
        case 'R':
            c->rate_per_s = (double)parse_long("--rate", optarg, 0, 1000000);
            break;
        case 'B':
            c->rate_burst = (double)parse_long("--burst", optarg, 1, 1000000);
            break;
        case 'A':
            c->audit_rows_per_min = (double)parse_long("--audit-rate", optarg, 0, 1000000);
            break;
        case 'E':
            c->audit_verify_interval_s = (int)parse_long("--audit-verify-interval", optarg, 0, 86400);
            break;
        case 'p':
            snprintf(c->port_file, sizeof c->port_file, "%s", optarg);
            break;
        case 'K':
            *rotate = true;
            break;
        case 'L':
            if (!at_log_set_level(optarg)) {
                fprintf(stderr, "attest-verifier: --log-level: expected " AT_LOG_LEVELS ", got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'X':
            at_now_set_test_clock_file(optarg);
            break;
        case 'I':
            snprintf(c->issuer, sizeof c->issuer, "%s", optarg);
            break;
        case 'W':
            snprintf(c->web_root, sizeof c->web_root, "%s", optarg);
            break;
        case 'S':
            snprintf(c->storage_key_file, sizeof c->storage_key_file, "%s", optarg);
            break;
        default: {
            int r = at_httpd_opt_default(o, optarg, &c->http, "attest-verifier", usage);
            if (r >= 0)
                return r;
            break;
        }
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    /* The EAR's "iss" is a URL (draft-ietf-rats-ear): the public one. */
    size_t il = strlen(c->issuer);
    if (il &&
        (il > 512 || (strncmp(c->issuer, "http://", 7) != 0 && strncmp(c->issuer, "https://", 8) != 0) ||
         strcspn(c->issuer, " \t\r\n\"\\") != il)) {
        fprintf(stderr,
                "attest-verifier: --issuer: expected an http:// or https:// URL of at most 512 characters, "
                "got '%.80s'\n",
                c->issuer);
        return 2;
    }
    /* Beside a SQLite file by default; a database URL has no "beside":
     * every replica must be given the same storage key file. */
    if (at_db_is_url(c->db_path) && !*rotate && (!c->storage_key_file[0] || !c->admin_token_file[0])) {
        fprintf(stderr,
                "attest-verifier: --db postgresql://...: --storage-key-file and --admin-token-file are "
                "required (the same files on every replica)\n");
        return 2;
    }
    if (!c->storage_key_file[0])
        snprintf(c->storage_key_file, sizeof c->storage_key_file, "%s.storage-key", c->db_path);
    if (!c->admin_token_file[0])
        snprintf(c->admin_token_file, sizeof c->admin_token_file, "%s.admin-token", c->db_path);
    return -1;
}
