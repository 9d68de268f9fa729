/* attestctl secret put: store a value (e.g. a model's data key) on the
 * verifier, bound to a policy; it is released only to environments with a
 * live session admitted under that policy. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "enc.h"

int cmd_secret(int argc, char **argv)
{
    static const struct option opts[] = {CTL_CLIENT_OPTS,
                                         {"policy", required_argument, NULL, 'p'},
                                         {"value-file", required_argument, NULL, 'f'},
                                         {"replace", no_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    bool help = argc >= 2 && (ctl_is_help(argv[1]) || (argc >= 3 && ctl_is_help(argv[2])));
    if (!help && argc >= 3 && strcmp(argv[1], "release") == 0)
        return ctl_secret_release(argc - 1, argv + 1);
    if (help || argc < 3 || strcmp(argv[1], "put") != 0) {
        if (!help && argc == 2 && (strcmp(argv[1], "put") == 0 || strcmp(argv[1], "release") == 0))
            fprintf(stderr, "attestctl secret %s: missing NAME\n", argv[1]);
        fprintf(help ? stdout : stderr,
                "usage: attestctl secret put NAME --policy POLICY --value-file F [--replace]\n"
                "                             [--verifier URL] [--token-file F]\n"
                "       attestctl secret release NAME --state-file F [--timestamp-ms T] [-o OUT]\n");
        return help ? CTL_OK : CTL_USAGE;
    }
    ctl_client cl;
    ctl_client_defaults(&cl);
    const char *policy = NULL, *file = NULL;
    bool replace = false;
    int c;
    optind = 1;
    while ((c = ctl_getopt(&cl, argc - 2, argv + 2, opts)) != -1) {
        switch (c) {
        case 'p':
            policy = optarg;
            break;
        case 'f':
            file = optarg;
            break;
        case 'r':
            replace = true;
            break;
        default:
            return CTL_USAGE;
        }
    }
    if (cl.bad)
        return CTL_USAGE;
    if (!policy || !file) {
        fprintf(stderr, "attestctl secret put: missing %s\n",
                !policy && !file ? "--policy and --value-file"
                : !policy        ? "--policy"
                                 : "--value-file");
        return CTL_USAGE;
    }
    uint8_t *v = NULL;
    size_t n = 0;
    if (ctl_read_file(file, 32 * 1024, &v, &n) != 0)
        return CTL_USAGE;
    char *b = at_b64_encode_new(AT_SPAN(v, n));
    at_wipe_free(v, n);
    json_t *body = json_object(), *out = NULL;
    json_object_set_new(body, "policy", json_string(policy));
    json_object_set_new(body, "value", json_string(b));
    at_wipe_free(b, strlen(b));
    char path[512];
    snprintf(path, sizeof path, "/v1/secrets/%s%s", argv[2], replace ? "?replace=1" : "");
    int rc = ctl_client_call(&cl, "PUT", path, body, &out);
    json_decref(body);
    if (rc == 0)
        ctl_print_json(out);
    json_decref(out);
    return rc == 0 ? CTL_OK : rc < 0 ? CTL_USAGE : CTL_FAILED;
}
