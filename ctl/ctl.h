/* ctl: the subcommands of attestctl and the small helpers they share
 * (reading files, exit codes). Each cmd_* gets argv with argv[0] = its name. */
#ifndef AT_CTL_H
#define AT_CTL_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bhttp.h"
#include "buf.h"
#include "httpc.h"

enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

int cmd_attest(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_ear(int argc, char **argv);
int cmd_model(int argc, char **argv);
int ctl_secret_release(int argc, char **argv);
int cmd_peer(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_secret(int argc, char **argv);
int cmd_session(int argc, char **argv);
int cmd_sim(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_hpke(int argc, char **argv);
int cmd_ohttp(int argc, char **argv);

/* Read a whole file ("-" = stdin) of at most max bytes. Caller frees *out.
 * Returns 0, or prints why to stderr and returns -1. */
int ctl_read_file(const char *path, size_t max, uint8_t **out, size_t *len);
/* Add each --header "Name: value" to m (blanks around the value trimmed).
 * *have_ctype / *have_date (either may be NULL) are set when one names
 * content-type / date. AT_E_BAD_REQUEST naming the header, or bhttp's
 * code for a field it refuses. */
at_err ctl_bhttp_add_headers(at_bhttp_msg *m, const char *const *headers, size_t n, bool *have_ctype,
                             bool *have_date, at_diag *d) AT_MUST_USE;
/* Write bytes to a file with the given mode: a regular file atomically
 * (lib/file: temporary file, fsync, rename), "-" or a device in place.
 * 0 or -1 (printed). */
int ctl_write_file(const char *path, const void *p, size_t len, int mode);

/* Print why json_load_file failed as "attestctl WHO: PATH: line L column C:
 * text", or the open error alone (jansson's line is -1 then). */
void ctl_json_load_error(const char *who, const char *path, const json_error_t *je);
/* true for --help / -h / help: every command answers it on stdout, exit 0. */
bool ctl_is_help(const char *arg);
/* A token written by the tools: --out FILE is created 0600 (never a
 * world-readable shell redirect); without --out it goes to stdout. 0 or -1. */
int ctl_write_token(const char *out_path, const char *token);

/* Talking to the verifier: --verifier URL (env ATTEST_VERIFIER, default
 * http://127.0.0.1:8440; also unix:PATH[,URL] or vsock:CID:PORT[,URL] as
 * for the servers) and --token-file F (env ATTEST_TOKEN). */
typedef struct {
    char url[1024];
    char token[512];
    bool bad; /* ctl_getopt met a token file it could not read */
} ctl_client;
void ctl_client_defaults(ctl_client *c);
int ctl_client_token_file(ctl_client *c, const char *path);
/* The two options of every command that calls the verifier, for its
 * getopt table. */
#define CTL_CLIENT_OPTS \
    {"verifier", required_argument, NULL, 'v'}, { "token-file", required_argument, NULL, 't' }
/* getopt_long(argc, argv, "", opts) that takes --verifier and --token-file
 * into cl itself and returns the other options: -1 at the end, and also
 * when the token file cannot be read (said on stderr, cl->bad set: the
 * caller returns CTL_USAGE). */
int ctl_getopt(ctl_client *cl, int argc, char **argv, const struct option *opts);
/* 0 on a 2xx answer (JSON in *out when not NULL), the HTTP status on
 * another answer (error printed; the error JSON in *out), -1 when the
 * verifier cannot be reached. */
int ctl_client_call(const ctl_client *c, const char *method, const char *path, json_t *body, json_t **out);
void ctl_print_json(json_t *j);

#endif
