/* attestctl: command-line entry point; dispatches to one file per
 * subcommand (ctl/cmd_*.c). Exit codes: 0 ok, 1 a check failed, 2 usage/IO. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "httpc.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    /* one line per subcommand, alphabetical */
    {"attest", cmd_attest, "attest once as an agent would (sim, nsm or nitro-tpm), keep the session"},
    {"audit", cmd_audit, "query, export and verify the verifier's audit log"},
    {"ear", cmd_ear, "verify an attestation result token against the verifier's JWKS"},
    {"hpke", cmd_hpke, "HPKE / OHTTP gateway keys (keygen, config)"},
    {"model", cmd_model, "seal model weights for an attested environment (and open them)"},
    {"ohttp", cmd_ohttp, "Oblivious HTTP client: send a sealed request"},
    {"peer", cmd_peer, "mutual attestation with another service, then a protected channel"},
    {"policy", cmd_policy, "put, get, revoke and import PCR policies"},
    {"secret", cmd_secret, "store a secret on the verifier, bound to a policy"},
    {"session", cmd_session, "list the verifier's sessions, revoke one"},
    {"sim", cmd_sim, "simulated Nitro PKI and attestation documents (tests, demos)"},
    {"token", cmd_token, "create (in the database), list and revoke API tokens"},
    {"verify", cmd_verify, "verify attestation documents offline, print JSON"},
    {"version", cmd_version, "print the version"},
};

static int usage(FILE *f)
{
    fprintf(f, "usage: attestctl COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'attestctl COMMAND --help' describes one command.\n");
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    at_httpc_global_init();
    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)
        return usage(stdout);
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
        return cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            /* `attestctl C SUB --help`: C's usage, for every command alike
             * (never parsed as SUB's arguments: `sim init --help` made a
             * folder named --help). */
            if (argc >= 4 && argv[2][0] != '-' &&
                (strcmp(argv[3], "--help") == 0 || strcmp(argv[3], "-h") == 0)) {
                char *help[] = {argv[1], (char *)"--help", NULL};
                return commands[i].run(2, help);
            }
            return commands[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "attestctl: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
