/* fuzz_cose: libFuzzer target for the document parser and verifier. Each
 * input goes through at_evidence_verify (AWS root and a fixed simulator
 * root pinned, at the document's time and at a fixed "now" with a policy
 * and an expected nonce), through at_cose_sign1_decode and
 * at_nitro_payload_decode directly, through the CBOR gate, and, when it
 * looks like text, through base64 first. Invariants that must hold for any
 * input abort, so the fuzzer reports them. tests/fuzz/replay.c replays the
 * corpus (tests/fuzz/corpus/cose) under `make check`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_limits.h"
#include "cbor_rd.h"
#include "cose.h"
#include "enc.h"
#include "evidence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static at_trust *trust;
static at_policy *policy;

#define CHECK(cond)                                                                                  \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            fprintf(stderr, "fuzz_cose: invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                                 \
        }                                                                                            \
    } while (0)

static void init(void)
{
    at_diag d = {{0}};
    /* A small cache, so eviction runs too. */
    trust = at_trust_new(16);
    CHECK(trust);
    CHECK(at_trust_add_aws_root(trust, &d) == AT_OK);
    /* The root of the simulator PKI that minted the sim documents of the
     * corpus (its keys were thrown away). */
    if (at_trust_add_root_file(trust, AT_SRCDIR "/tests/fuzz/sim_root.pem", &d) != AT_OK)
        fprintf(stderr, "fuzz_cose: no simulator root (%s); AWS root only\n", d.msg);
    static const char pol[] =
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"000000000000000000000000000000000000"
        "000000000000000000000000000000000000000000000000000000000000\"]},"
        "\"module_ids\":[\"i-0123456789abcdef0-enc0123456789abcdef\"],\"max_document_age_s\":300}";
    CHECK(at_policy_parse(pol, sizeof pol - 1, &policy, &d) == AT_OK);
}

static void check_summary(const at_evidence *ev, at_err rc)
{
    CHECK(ev->result == rc);
    if (rc == AT_OK)
        CHECK(ev->decoded && ev->chain_checked);
    json_t *j = at_evidence_json(ev);
    CHECK(j);
    CHECK(json_is_true(json_object_get(j, "valid")) == (rc == AT_OK));
    char *s = json_dumps(j, JSON_COMPACT);
    CHECK(s);
    free(s);
    json_decref(j);
}

static void verify_doc(const uint8_t *p, size_t n)
{
    at_evidence ev;
    at_verify_opts o = {.time_mode = AT_TIME_DOCUMENT};
    at_err rc = at_evidence_verify(trust, AT_SPAN(p, n), &o, &ev);
    check_summary(&ev, rc);
    if (rc == AT_OK) {
        /* A valid document's fields are within the published limits. */
        CHECK(ev.payload.n_pcrs >= 1 && ev.payload.n_pcrs <= AT_MAX_PCRS);
        CHECK(ev.payload.n_cabundle >= 1 && ev.payload.n_cabundle <= AT_MAX_CABUNDLE);
        CHECK(ev.payload.nonce.len <= AT_MAX_OPTIONAL_FIELD);
        CHECK(ev.cose.signature.len == AT_COSE_ES384_SIG_LEN);
        CHECK(n <= AT_MAX_DOCUMENT_BYTES);
    }
    bool was_valid = rc == AT_OK;
    uint64_t ts = ev.decoded ? ev.payload.timestamp_ms : 0;
    at_evidence_cleanup(&ev);

    /* A fixed "now", a policy and an expected nonce: the later checks. */
    static const uint8_t nonce[] = {1, 2, 3, 4};
    at_verify_opts o2 = {.time_mode = AT_TIME_GIVEN,
                         .at_ms = was_valid ? (int64_t)ts + 1000 : 1700000000000LL,
                         .policy = policy,
                         .check_nonce = true,
                         .nonce = AT_SPAN(nonce, sizeof nonce)};
    rc = at_evidence_verify(trust, AT_SPAN(p, n), &o2, &ev);
    check_summary(&ev, rc);
    at_evidence_cleanup(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        init();
        ready = 1;
    }
    at_diag d = {{0}};

    verify_doc(data, size);

    /* The layers on their own. */
    at_cose_sign1 m;
    if (at_cose_sign1_decode(AT_SPAN(data, size), &m, &d) == AT_OK) {
        CHECK(m.root && m.signature.len == AT_COSE_ES384_SIG_LEN && m.payload.len > 0);
        at_nitro_payload p;
        if (at_nitro_payload_decode(m.payload, AT_FORMAT_AUTO, &p, &d) == AT_OK)
            at_nitro_payload_cleanup(&p);
        at_cose_sign1_cleanup(&m);
    }
    at_nitro_payload p;
    if (at_nitro_payload_decode(AT_SPAN(data, size), AT_FORMAT_AUTO, &p, &d) == AT_OK) {
        CHECK(p.n_pcrs >= 1 && p.module_id[0] != '\0');
        at_nitro_payload_cleanup(&p);
    }
    static const at_cbor_limits lim = {AT_MAX_CBOR_DEPTH, AT_MAX_CBOR_ITEMS};
    cbor_item_t *it = NULL;
    size_t item_len = 0;
    at_err scan = at_cbor_scan(AT_SPAN(data, size), &lim, &item_len, &d);
    if (scan == AT_OK)
        CHECK(item_len >= 1 && item_len <= size);
    if (at_cbor_decode(AT_SPAN(data, size), &lim, &it, &d) == AT_OK) {
        CHECK(scan == AT_OK && item_len == size);
        CHECK(at_cbor_type_name(it) != NULL);
        cbor_decref(&it);
    }

    /* Documents arrive as base64 in JSON and on the command line. */
    if (size > 0 && size <= 2 * AT_MAX_DOCUMENT_BYTES && data[0] != 0x84 && data[0] != 0xd2) {
        uint8_t *raw = NULL;
        size_t raw_len = 0;
        if (at_b64_decode_new((const char *)data, size, &raw, &raw_len) == AT_OK) {
            verify_doc(raw, raw_len);
            free(raw);
        }
    }
    return 0;
}
