/* fuzz_pcrimport: lib/pcrimport on attacker bytes (the verifier's
 * POST /v1/policies/{name}/import takes the files from the network). The
 * first byte picks the options (format hint, allowed missing registers);
 * the rest is split at 0xff bytes into up to AT_PCRIMPORT_MAX_FILES + 1
 * files. The properties: a merge that succeeds is a JSON object that the
 * policy parser accepts again from its own text; a refusal says why. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcrimport.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *names[] = {"f0", "f1",  "f2",  "f3",  "f4",  "f5",  "f6",  "f7", "f8",
                                  "f9", "f10", "f11", "f12", "f13", "f14", "f15", "f16"};
    enum { MAXF = AT_PCRIMPORT_MAX_FILES + 1 };
    if (size < 1)
        return 0;
    at_pcrimport_opts o = {.format = (data[0] & 3) == 1   ? "nitro-enclave"
                                     : (data[0] & 3) == 2 ? "nitro-tpm"
                                                          : NULL,
                           .allow_missing = (data[0] & 4) ? 0x1000u : 0};
    at_span files[MAXF];
    size_t n = 0, start = 1;
    for (size_t i = 1; i <= size && n < MAXF; i++) {
        if (i == size || data[i] == 0xff) {
            files[n++] = AT_SPAN(data + start, i - start);
            start = i + 1;
        }
    }
    json_t *out = NULL;
    at_diag d = {{0}};
    at_err rc = at_pcrimport(files, names, n, &o, &out, &d);
    if (rc == AT_OK) {
        check(json_is_object(out));
        char *text = json_dumps(out, JSON_COMPACT);
        check(text != NULL);
        at_policy *p = NULL;
        check(at_policy_parse(text, strlen(text), &p, &d) == AT_OK);
        at_policy_free(p);
        free(text);
        json_decref(out);
    } else {
        check(out == NULL && d.msg[0] != '\0');
    }
    return 0;
}
