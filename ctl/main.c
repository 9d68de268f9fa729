/* attestctl: command-line entry point; dispatches to one file per
 * subcommand (ctl/cmd_*.c). Exit codes: 0 ok, 1 a check failed, 2 usage/IO. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    /* one line per subcommand, alphabetical */
    {"hpke", cmd_hpke, "HPKE / OHTTP gateway keys (keygen, config)"},
    {"ohttp", cmd_ohttp, "Oblivious HTTP client: send a sealed request"},
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
    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)
        return usage(stdout);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "attestctl: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
