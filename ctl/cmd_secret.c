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
    static const struct option opts[] = {{"verifier", required_argument, NULL, 'v'},
                                         {"token-file", required_argument, NULL, 't'},
                                         {"policy", required_argument, NULL, 'p'},
                                         {"value-file", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    bool help = argc >= 2 && (ctl_is_help(argv[1]) || (argc >= 3 && ctl_is_help(argv[2])));
    if (!help && argc >= 3 && strcmp(argv[1], "release") == 0)
        return ctl_secret_release(argc - 1, argv + 1);
    if (help || argc < 3 || strcmp(argv[1], "put") != 0) {
        if (!help && argc == 2 && (strcmp(argv[1], "put") == 0 || strcmp(argv[1], "release") == 0))
            fprintf(stderr, "attestctl secret %s: missing NAME\n", argv[1]);
        fprintf(help ? stdout : stderr,
                "usage: attestctl secret put NAME --policy POLICY --value-file F"
                " [--verifier URL] [--token-file F]\n"
                "       attestctl secret release NAME --state-file F [--timestamp-ms T] [-o OUT]\n");
        return help ? CTL_OK : CTL_USAGE;
    }
    ctl_client cl;
    ctl_client_defaults(&cl);
    const char *policy = NULL, *file = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 2, argv + 2, "", opts, NULL)) != -1) {
        switch (c) {
        case 'v': snprintf(cl.url, sizeof cl.url, "%s", optarg); break;
        case 't': if (ctl_client_token_file(&cl, optarg) != 0) return CTL_USAGE; break;
        case 'p': policy = optarg; break;
        case 'f': file = optarg; break;
        default: return CTL_USAGE;
        }
    }
    if (!policy || !file) {
        fprintf(stderr, "attestctl secret put: missing %s\n",
                !policy && !file ? "--policy and --value-file" : !policy ? "--policy" : "--value-file");
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
    snprintf(path, sizeof path, "/v1/secrets/%s", argv[2]);
    int rc = ctl_client_call(&cl, "PUT", path, body, &out);
    json_decref(body);
    if (rc == 0)
        ctl_print_json(out);
    json_decref(out);
    return rc == 0 ? CTL_OK : rc < 0 ? CTL_USAGE : CTL_FAILED;
}
