/* fuzz_policy: the policy JSON an owner sends (lib/policy) and the verifier's
 * other small parsers of request text: release proofs (lib/seal), document
 * bindings (lib/binding: a decoded binding re-encodes to the same bytes), NSM
 * responses (lib/attester), base64/hex (lib/enc). Besides not crashing:
 * a parsed policy's canonical form parses again to the same canonical form,
 * and evaluation against a fixed document never reads out of bounds. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attester.h"
#include "binding.h"
#include "enc.h"
#include "policy.h"
#include "seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    at_diag d;
    at_policy *p = NULL;
    if (at_policy_parse((const char *)data, size, &p, &d) == AT_OK) {
        if (at_policy_lint(p, &d) != AT_OK) { /* a finding is an answer, not a fault */
        }
        char *c1 = at_policy_canonical_json(p);
        at_policy *q = NULL;
        if (!c1 || at_policy_parse(c1, strlen(c1), &q, &d) != AT_OK)
            abort();
        char *c2 = at_policy_canonical_json(q);
        if (!c2 || strcmp(c1, c2) != 0)
            abort();
        at_nitro_payload doc;
        memset(&doc, 0, sizeof doc);
        doc.format = p->format;
        doc.n_pcrs = 24;
        for (unsigned i = 0; i < 24; i++) {
            doc.pcrs[i].index = (uint8_t)i;
            doc.pcrs[i].len = AT_SHA384_LEN;
            memset(doc.pcrs[i].value, (int)i, AT_SHA384_LEN);
        }
        at_pcr_report r;
        if (at_policy_check(p, &doc, 0, &r, &d) != AT_OK) { /* a mismatch is an answer */
        }
        if (r.n_failures > AT_MAX_PCRS)
            abort();
        json_decref(at_pcr_report_json(p, &r));
        free(c1);
        free(c2);
        at_policy_free(q);
        at_policy_free(p);
    }

    at_binding b;
    if (at_binding_decode(AT_SPAN(data, size), &b, &d) == AT_OK) {
        if (size != (b.has_endpoint ? AT_BINDING_LEN_ENDPOINT : AT_BINDING_LEN_NO_ENDPOINT) ||
            memcmp(data, AT_BINDING_MAGIC, 3) != 0 || data[4] != (uint8_t)b.purpose)
            abort();
        if (at_binding_check(AT_SPAN(data, size), AT_PURPOSE_SESSION, "http://x", &d) != AT_OK) {
            /* a refusal is an answer */
        }
    }

    char *text = malloc(size + 1);
    if (!text)
        return 0;
    if (size)
        memcpy(text, data, size); /* data may be NULL when size is 0 */
    text[size] = '\0';
    int64_t ts;
    uint8_t mac[32];
    if (at_release_proof_parse(text, &ts, mac, &d) != AT_OK) { /* refusals are answers */
    }
    uint8_t *out = NULL;
    size_t outlen = 0;
    if (at_b64_decode_new(text, strlen(text), &out, &outlen) == AT_OK) {
        char *again = at_b64_encode_new(AT_SPAN(out, outlen));
        uint8_t *back = NULL;
        size_t backlen = 0;
        if (!again || at_b64_decode_new(again, strlen(again), &back, &backlen) != AT_OK ||
            backlen != outlen || (outlen && memcmp(back, out, outlen) != 0))
            abort();
        free(again);
        free(back);
        free(out);
    }
    free(text);

    at_span docspan;
    if (at_nsm_parse_attestation_response(AT_SPAN(data, size), &docspan, &d) != AT_OK) {
        /* refusals are answers */
    }
    return 0;
}
