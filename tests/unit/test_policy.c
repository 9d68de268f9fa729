/* Unit tests for lib/policy.c: strict parsing (every field, unknown keys,
 * wrong types, hex, indices, duplicates, integer ranges, size), the lint
 * findings, PCR evaluation reports (which index, missing vs mismatched,
 * expected vs actual), canonical JSON and its digest, and at_policy_check's
 * codes. */
#include "test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "enc.h"
#include "policy.h"

#define H0 "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
#define HA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HC "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static at_err parse(const char *json, at_policy **out)
{
    at_diag d = {{0}};
    at_policy *p = NULL;
    at_err rc = at_policy_parse(json, strlen(json), &p, &d);
    if (rc == AT_OK) {
        assert_non_null(p);
        if (out)
            *out = p;
        else
            at_policy_free(p);
    } else {
        assert_null(p);
        assert_true(d.msg[0] != '\0');
    }
    return rc;
}

static at_err parse_only(const char *json) { return parse(json, NULL); }

static at_err lint(const char *json, at_diag *d)
{
    at_policy *p = NULL;
    assert_int_equal(parse(json, &p), AT_OK);
    at_err rc = at_policy_lint(p, d);
    at_policy_free(p);
    return rc;
}

static void parse_minimal_defaults(void **state)
{
    at_policy *p = NULL;
    assert_int_equal(parse("{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"" HA "\"]}}", &p), AT_OK);
    assert_int_equal(p->format, AT_FORMAT_NITRO_ENCLAVE);
    assert_int_equal(p->n_pcrs, 1);
    assert_int_equal(p->pcrs[0].index, 0);
    assert_int_equal(p->pcrs[0].n, 1);
    assert_int_equal(p->pcrs[0].values[0][0], 0xaa);
    assert_int_equal(p->max_document_age_s, AT_POLICY_DEFAULT_MAX_AGE_S);
    assert_int_equal(p->session_ttl_s, AT_POLICY_DEFAULT_SESSION_TTL_S);
    assert_true(p->require_nonce);
    assert_true(p->require_public_key);
    assert_null(p->module_ids);
    assert_null(p->provenance);
    at_policy_free(p);
    at_policy_free(NULL);
}

static void parse_every_field(void **state)
{
    const char *j = "{\"format\":\"nitro-tpm\","
                    "\"pcrs\":{\"12\":[\"" HA "\"],\"4\":[\"" HB "\",\"" HC "\"],\"31\":[]},"
                    "\"max_document_age_s\":60,\"session_ttl_s\":5,"
                    "\"require_nonce\":false,\"require_public_key\":false,"
                    "\"module_ids\":[\"i-1-tpm0\",\"i-2-tpm0\"],"
                    "\"provenance\":{\"tool\":\"nitro-tpm-pcr-compute\",\"n\":[1,2]}}";
    at_policy *p = NULL;
    assert_int_equal(parse(j, &p), AT_OK);
    assert_int_equal(p->format, AT_FORMAT_NITRO_TPM);
    assert_int_equal(p->n_pcrs, 3);
    /* sorted by index, values in the order given */
    assert_int_equal(p->pcrs[0].index, 4);
    assert_int_equal(p->pcrs[0].n, 2);
    assert_int_equal(p->pcrs[0].values[0][47], 0xbb);
    assert_int_equal(p->pcrs[0].values[1][47], 0xcc);
    assert_int_equal(p->pcrs[1].index, 12);
    assert_int_equal(p->pcrs[2].index, 31);
    assert_int_equal(p->pcrs[2].n, 0);
    assert_int_equal(p->max_document_age_s, 60);
    assert_int_equal(p->session_ttl_s, 5);
    assert_false(p->require_nonce);
    assert_false(p->require_public_key);
    assert_int_equal(p->n_module_ids, 2);
    assert_string_equal(p->module_ids[1], "i-2-tpm0");
    assert_non_null(p->provenance);
    assert_string_equal(json_string_value(json_object_get(p->provenance, "tool")), "nitro-tpm-pcr-compute");
    at_policy_free(p);
}

static void parse_refusals(void **state)
{
#define POL(rest) "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"" HA "\"]}" rest "}"
    static const char *bad[] = {
        /* unknown keys (also near misses and case) */
        POL(",\"max_age\":5"),
        POL(",\"Format\":\"nitro-tpm\""),
        POL(",\"pcr\":{}"),
        /* missing / wrong format */
        "{\"pcrs\":{\"0\":[\"" HA "\"]}}",
        "{\"format\":\"auto\",\"pcrs\":{}}",
        "{\"format\":\"nitro\",\"pcrs\":{}}",
        "{\"format\":1,\"pcrs\":{}}",
        "{\"format\":null,\"pcrs\":{}}",
        /* missing / wrong pcrs */
        "{\"format\":\"nitro-enclave\"}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":[]}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":\"" HA "\"}}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[1]}}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[null]}}",
        /* indices */
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"01\":[\"" HA "\"]}}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"32\":[\"" HA "\"]}}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"-1\":[\"" HA "\"]}}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"\":[\"" HA "\"]}}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\" 1\":[\"" HA "\"]}}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"1 \":[\"" HA "\"]}}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"+1\":[\"" HA "\"]}}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"a\":[\"" HA "\"]}}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"100\":[\"" HA "\"]}}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"4294967296\":[\"" HA "\"]}}",
        /* duplicates: a value twice, a key twice (pcr index, top level) */
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"" HA "\",\"" HB "\",\"" HA "\"]}}",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"" HA "\"],\"0\":[\"" HB "\"]}}",
        POL(",\"format\":\"nitro-tpm\""),
        /* integers: wrong type, out of range, huge */
        POL(",\"max_document_age_s\":\"300\""),
        POL(",\"max_document_age_s\":300.0"),
        POL(",\"max_document_age_s\":0"),
        POL(",\"max_document_age_s\":-1"),
        POL(",\"max_document_age_s\":86401"),
        POL(",\"max_document_age_s\":9223372036854775807"),
        POL(",\"max_document_age_s\":99999999999999999999999"),
        POL(",\"max_document_age_s\":1e3"),
        POL(",\"session_ttl_s\":4"),
        POL(",\"session_ttl_s\":604801"),
        POL(",\"session_ttl_s\":true"),
        /* booleans */
        POL(",\"require_nonce\":\"true\""),
        POL(",\"require_nonce\":1"),
        POL(",\"require_public_key\":null"),
        /* module ids */
        POL(",\"module_ids\":\"i-1\""),
        POL(",\"module_ids\":[]"),
        POL(",\"module_ids\":[1]"),
        POL(",\"module_ids\":[\"\"]"),
        POL(",\"module_ids\":[\"i-1\\u0000x\"]"),
        POL(",\"module_ids\":null"),
        /* provenance */
        POL(",\"provenance\":\"nitro-cli\""),
        POL(",\"provenance\":[]"),
        /* not a policy at all */
        "[]",
        "null",
        "{",
        "",
        "{\"format\":\"nitro-enclave\",\"pcrs\":{}} x",
    };
#undef POL
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse_only(bad[i]) != AT_E_BAD_FIELD)
            fail_msg("accepted or wrong code: %s", bad[i]);
    }
    /* Hex: short, long, odd, prefixed, not hex, a space, SHA-256 sized:
     * a prefix followed by the tail of HA, so each is 96 characters unless
     * the length itself is the point. */
    static const struct {
        const char *pre;
        size_t skip;
    } hexes[] = {{"", 2}, {"aa", 0}, {"a", 0}, {"0x", 2}, {"gg", 2}, {"a a", 3}, {"", 32}};
    for (size_t i = 0; i < sizeof hexes / sizeof hexes[0]; i++) {
        char j[512];
        snprintf(j, sizeof j, "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"%s%s\"]}}", hexes[i].pre,
                 &HA[hexes[i].skip]);
        assert_int_equal(parse_only(j), AT_E_BAD_FIELD);
    }
    /* Upper case hex is fine (and canonicalised later). */
    char up[256];
    snprintf(
        up, sizeof up, "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"%s\"]}}",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(parse_only(up), AT_OK);
}

static void parse_limits(void **state)
{
    /* 64 values per PCR accepted, 65 refused; a module id of 128 / 129. */
    at_buf b;
    at_buf_init(&b);
    for (int n = 64; n <= 65; n++) {
        at_buf_reset(&b);
        at_buf_printf(&b, "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[");
        for (int i = 0; i < n; i++)
            at_buf_printf(&b, "%s\"%02x%s\"", i ? "," : "", i, &HA[2]);
        at_buf_printf(&b, "]}}");
        at_policy *p = NULL;
        at_diag d = {{0}};
        at_err rc = at_policy_parse((const char *)b.p, b.len, &p, &d);
        assert_int_equal(rc, n == 64 ? AT_OK : AT_E_BAD_FIELD);
        if (p) {
            assert_int_equal(p->pcrs[0].n, 64);
            at_policy_free(p);
        }
    }
    char id[140];
    for (int n = 128; n <= 129; n++) {
        memset(id, 'i', (size_t)n);
        id[n] = '\0';
        at_buf_reset(&b);
        at_buf_printf(&b, "{\"format\":\"nitro-enclave\",\"pcrs\":{},\"module_ids\":[\"%s\"]}", id);
        at_buf_u8(&b, 0);
        assert_int_equal(parse_only((const char *)b.p), n == 128 ? AT_OK : AT_E_BAD_FIELD);
    }
    /* All 32 indices in one policy. */
    at_buf_reset(&b);
    at_buf_printf(&b, "{\"format\":\"nitro-enclave\",\"pcrs\":{");
    for (int i = 0; i < 32; i++)
        at_buf_printf(&b, "%s\"%d\":[\"%s\"]", i ? "," : "", i, HA);
    at_buf_printf(&b, "}}");
    at_buf_u8(&b, 0);
    assert_int_equal(parse_only((const char *)b.p), AT_OK);
    /* Above 64 KiB of JSON: too large before parsing. */
    at_buf_reset(&b);
    at_buf_printf(&b, "{\"format\":\"nitro-enclave\",\"pcrs\":{},\"provenance\":{\"x\":\"");
    while (b.len <= AT_POLICY_MAX_JSON_BYTES)
        at_buf_printf(&b, "xxxxxxxxxxxxxxxx");
    at_buf_printf(&b, "\"}}");
    at_policy *p = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_policy_parse((const char *)b.p, b.len, &p, &d), AT_E_TOO_LARGE);
    assert_null(p);
    at_buf_cleanup(&b);
    /* at_policy_from_json with a non-object. */
    json_t *arr = json_array();
    assert_int_equal(at_policy_from_json(arr, &p, &d), AT_E_BAD_FIELD);
    json_decref(arr);
}

static void lint_findings(void **state)
{
    at_diag d = {{0}};
    /* nitro-tpm pinning PCR4 alone (GHSA-xrv8-2pf5-f3q7) */
    assert_int_equal(lint("{\"format\":\"nitro-tpm\",\"pcrs\":{\"4\":[\"" HA "\"]}}", &d), AT_E_POLICY_LINT);
    assert_non_null(strstr(d.msg, "PCR12"));
    assert_int_equal(lint("{\"format\":\"nitro-tpm\",\"pcrs\":{\"4\":[\"" HA "\"],\"12\":[\"" H0 "\"]}}", &d),
                     AT_OK);
    assert_int_equal(lint("{\"format\":\"nitro-tpm\",\"pcrs\":{\"4\":[\"" HA "\"],\"7\":[\"" HB "\"]}}", &d),
                     AT_OK);
    /* PCR4+15 is still PCR4 without 12 or 7. */
    assert_int_equal(lint("{\"format\":\"nitro-tpm\",\"pcrs\":{\"4\":[\"" HA "\"],\"15\":[\"" HB "\"]}}", &d),
                     AT_E_POLICY_LINT);
    /* Without PCR4 there is no boot-loader trap to flag. */
    assert_int_equal(lint("{\"format\":\"nitro-tpm\",\"pcrs\":{\"7\":[\"" HB "\"]}}", &d), AT_OK);
    /* The same PCR4-alone pattern in an enclave policy means something else. */
    assert_int_equal(lint("{\"format\":\"nitro-enclave\",\"pcrs\":{\"4\":[\"" HA "\"]}}", &d), AT_OK);
    /* All-zero PCR0/1/2 in an enclave policy: a debug-mode enclave. */
    for (int i = 0; i <= 2; i++) {
        char j[512];
        snprintf(j, sizeof j, "{\"format\":\"nitro-enclave\",\"pcrs\":{\"%d\":[\"" HA "\",\"" H0 "\"]}}", i);
        assert_int_equal(lint(j, &d), AT_E_POLICY_LINT);
        assert_non_null(strstr(d.msg, "debug"));
    }
    assert_int_equal(lint("{\"format\":\"nitro-enclave\",\"pcrs\":{\"3\":[\"" H0 "\"]}}", &d), AT_OK);
    /* Empty allow-list; no PCRs at all. */
    assert_int_equal(lint("{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"" HA "\"],\"1\":[]}}", &d),
                     AT_E_POLICY_LINT);
    assert_non_null(strstr(d.msg, "pcrs.1"));
    assert_int_equal(lint("{\"format\":\"nitro-enclave\",\"pcrs\":{}}", &d), AT_E_POLICY_LINT);
    assert_int_equal(lint("{\"format\":\"nitro-tpm\",\"pcrs\":{}}", &d), AT_E_POLICY_LINT);
    /* Every finding is listed. */
    assert_int_equal(
        lint("{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"" H0 "\"],\"1\":[\"" H0 "\"],\"5\":[]}}", &d),
        AT_E_POLICY_LINT);
    assert_non_null(strstr(d.msg, "3 findings"));
    assert_non_null(strstr(d.msg, "pcrs.0"));
    assert_non_null(strstr(d.msg, "pcrs.1"));
    assert_non_null(strstr(d.msg, "pcrs.5"));
    /* 32 findings do not overflow the message. */
    at_buf b;
    at_buf_init(&b);
    at_buf_printf(&b, "{\"format\":\"nitro-enclave\",\"pcrs\":{");
    for (int i = 0; i < 32; i++)
        at_buf_printf(&b, "%s\"%d\":[]", i ? "," : "", i);
    at_buf_printf(&b, "}}");
    at_buf_u8(&b, 0);
    assert_int_equal(lint((const char *)b.p, &d), AT_E_POLICY_LINT);
    assert_non_null(strstr(d.msg, "32 findings"));
    assert_true(strlen(d.msg) < AT_DIAG_MAX);
    at_buf_cleanup(&b);
}

static void set_pcr(at_nitro_payload *doc, unsigned idx, uint8_t fill)
{
    at_pcr *q = &doc->pcrs[doc->n_pcrs++];
    q->index = (uint8_t)idx;
    q->len = 48;
    memset(q->value, fill, 48);
}

static void doc_init(at_nitro_payload *doc, at_format f)
{
    memset(doc, 0, sizeof *doc);
    doc->format = f;
    snprintf(doc->module_id, sizeof doc->module_id, "i-1-enc1");
    doc->timestamp_ms = 1700000000000ULL;
    static const uint8_t key[] = {1, 2, 3}, nonce[] = {9};
    doc->has_public_key = doc->has_nonce = true;
    doc->public_key = AT_SPAN(key, 3);
    doc->nonce = AT_SPAN(nonce, 1);
}

static void eval_report(void **state)
{
    at_policy *p = NULL;
    assert_int_equal(parse("{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"" HA "\",\"" HB
                           "\"],\"2\":[\"" HC "\"],\"8\":[\"" HA "\"]}}",
                           &p),
                     AT_OK);
    at_nitro_payload doc;
    at_pcr_report r;
    at_diag d = {{0}};
    doc_init(&doc, AT_FORMAT_NITRO_ENCLAVE);
    set_pcr(&doc, 0, 0xbb); /* second allowed value */
    set_pcr(&doc, 1, 0x11); /* not listed: not checked */
    set_pcr(&doc, 2, 0xcc);
    set_pcr(&doc, 8, 0xaa);
    assert_int_equal(at_policy_eval_pcrs(p, &doc, &r, &d), AT_OK);
    assert_int_equal(r.n_failures, 0);
    assert_int_equal(at_policy_eval_pcrs(p, &doc, NULL, &d), AT_OK);
    /* PCR2 mismatched. */
    doc.pcrs[2].value[47] = 0xcd;
    assert_int_equal(at_policy_eval_pcrs(p, &doc, &r, &d), AT_E_PCR_MISMATCH);
    assert_int_equal(r.n_failures, 1);
    assert_int_equal(r.failures[0].index, 2);
    assert_false(r.failures[0].missing);
    assert_memory_equal(r.failures[0].actual, doc.pcrs[2].value, 48);
    assert_non_null(strstr(d.msg, "PCR2"));
    char hex[97];
    at_hex_encode(doc.pcrs[2].value, 48, hex);
    assert_non_null(strstr(d.msg, hex)); /* actual */
    assert_non_null(strstr(d.msg, HC));  /* expected */
    /* And PCR8 missing too: both reported, in index order. */
    doc.n_pcrs = 3;
    assert_int_equal(at_policy_eval_pcrs(p, &doc, &r, &d), AT_E_PCR_MISMATCH);
    assert_int_equal(r.n_failures, 2);
    assert_int_equal(r.failures[0].index, 2);
    assert_int_equal(r.failures[1].index, 8);
    assert_true(r.failures[1].missing);
    assert_non_null(strstr(d.msg, "PCR8: missing"));
    assert_non_null(strstr(d.msg, "2 PCRs"));
    json_t *j = at_pcr_report_json(p, &r);
    assert_int_equal(json_array_size(j), 2);
    json_t *f0 = json_array_get(j, 0), *f1 = json_array_get(j, 1);
    assert_int_equal(json_integer_value(json_object_get(f0, "index")), 2);
    assert_string_equal(json_string_value(json_object_get(f0, "actual")), hex);
    assert_string_equal(json_string_value(json_array_get(json_object_get(f0, "allowed"), 0)), HC);
    assert_true(json_is_null(json_object_get(f1, "actual")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(f1, "allowed"), 0)), HA);
    json_decref(j);
    /* PCR0: a value allowed for another index is still a mismatch. */
    doc_init(&doc, AT_FORMAT_NITRO_ENCLAVE);
    set_pcr(&doc, 0, 0xcc);
    set_pcr(&doc, 2, 0xcc);
    set_pcr(&doc, 8, 0xaa);
    assert_int_equal(at_policy_eval_pcrs(p, &doc, &r, &d), AT_E_PCR_MISMATCH);
    assert_int_equal(r.failures[0].index, 0);
    assert_non_null(strstr(d.msg, "one of"));
    at_policy_free(p);
    /* An empty allow-list admits nothing (if lint was overridden). */
    assert_int_equal(parse("{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[]}}", &p), AT_OK);
    doc_init(&doc, AT_FORMAT_NITRO_ENCLAVE);
    set_pcr(&doc, 0, 0);
    assert_int_equal(at_policy_eval_pcrs(p, &doc, &r, &d), AT_E_PCR_MISMATCH);
    assert_non_null(strstr(d.msg, "empty allow-list"));
    at_policy_free(p);
}

static void canonical_json(void **state)
{
    const char *a = "{\"format\":\"nitro-enclave\",\"pcrs\":{\"2\":[\"" HC "\"],\"0\":[\"" HA "\",\"" HB
                    "\"]},\"require_nonce\":true,\"module_ids\":[\"i-1\"],"
                    "\"provenance\":{\"tool\":\"nitro-cli\",\"image\":\"x\"}}";
    const char *b = "{\"provenance\":{\"image\":\"x\",\"tool\":\"nitro-cli\"},\"module_ids\":[\"i-1\"],"
                    "\"pcrs\":{\"0\":[\"" HA "\",\"" HB "\"],\"2\":[\"CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
                    "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC\"]},"
                    "\"max_document_age_s\":300,\"format\":\"nitro-enclave\"}";
    at_policy *pa = NULL, *pb = NULL, *pc = NULL;
    assert_int_equal(parse(a, &pa), AT_OK);
    assert_int_equal(parse(b, &pb), AT_OK);
    char *ca = at_policy_canonical_json(pa), *cb = at_policy_canonical_json(pb);
    assert_string_equal(ca, cb);
    /* Defaults are spelled out, keys sorted, hex lower case, compact. */
    assert_non_null(strstr(ca, "\"max_document_age_s\":300"));
    assert_non_null(strstr(ca, "\"session_ttl_s\":600"));
    assert_non_null(strstr(ca, "\"require_public_key\":true"));
    assert_non_null(strstr(ca, HC));
    assert_null(strchr(ca, ' '));
    assert_true(strstr(ca, "\"format\"") < strstr(ca, "\"max_document_age_s\""));
    assert_true(strstr(ca, "\"pcrs\"") < strstr(ca, "\"require_nonce\""));
    uint8_t ha[32], hb[32], hc[32];
    assert_int_equal(at_policy_sha256(pa, ha), AT_OK);
    assert_int_equal(at_policy_sha256(pb, hb), AT_OK);
    assert_memory_equal(ha, hb, 32);
    /* Parsing the canonical form gives the canonical form again. */
    assert_int_equal(parse(ca, &pc), AT_OK);
    char *cc = at_policy_canonical_json(pc);
    assert_string_equal(ca, cc);
    /* Any change of meaning changes the digest: order of allowed values
     * is kept (it is how the owner wrote it), a value, a default. */
    pc->max_document_age_s = 301;
    assert_int_equal(at_policy_sha256(pc, hc), AT_OK);
    assert_memory_not_equal(ha, hc, 32);
    pc->max_document_age_s = 300;
    pc->pcrs[0].values[0][0] ^= 1;
    assert_int_equal(at_policy_sha256(pc, hc), AT_OK);
    assert_memory_not_equal(ha, hc, 32);
    free(ca);
    free(cb);
    free(cc);
    at_policy_free(pa);
    at_policy_free(pb);
    at_policy_free(pc);
}

static void check_codes(void **state)
{
    at_policy *p = NULL;
    assert_int_equal(parse("{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"" HA "\"]},"
                           "\"module_ids\":[\"i-1-enc1\",\"i-2-enc2\"],\"max_document_age_s\":60}",
                           &p),
                     AT_OK);
    at_nitro_payload doc;
    at_pcr_report r;
    at_diag d = {{0}};
    int64_t ts = 1700000000000LL;
    doc_init(&doc, AT_FORMAT_NITRO_ENCLAVE);
    set_pcr(&doc, 0, 0xaa);
    assert_int_equal(at_policy_check(p, &doc, ts, &r, &d), AT_OK);
    /* format */
    doc.format = AT_FORMAT_NITRO_TPM;
    assert_int_equal(at_policy_check(p, &doc, ts, &r, &d), AT_E_FORMAT_MISMATCH);
    doc.format = AT_FORMAT_NITRO_ENCLAVE;
    /* PCRs before the rest */
    doc.pcrs[0].value[0] = 0;
    snprintf(doc.module_id, sizeof doc.module_id, "i-3");
    assert_int_equal(at_policy_check(p, &doc, ts, &r, &d), AT_E_PCR_MISMATCH);
    assert_int_equal(r.n_failures, 1);
    doc.pcrs[0].value[0] = 0xaa;
    /* module id */
    assert_int_equal(at_policy_check(p, &doc, ts, &r, &d), AT_E_MODULE_ID_MISMATCH);
    assert_non_null(strstr(d.msg, "i-3"));
    snprintf(doc.module_id, sizeof doc.module_id, "i-2-enc");
    assert_int_equal(at_policy_check(p, &doc, ts, &r, &d), AT_E_MODULE_ID_MISMATCH);
    snprintf(doc.module_id, sizeof doc.module_id, "i-2-enc2");
    assert_int_equal(at_policy_check(p, &doc, ts, &r, &d), AT_OK);
    /* key required: absent, or present but empty */
    doc.has_public_key = false;
    doc.public_key = AT_SPAN_NULL;
    assert_int_equal(at_policy_check(p, &doc, ts, &r, &d), AT_E_KEY_REQUIRED);
    doc.has_public_key = true;
    assert_int_equal(at_policy_check(p, &doc, ts, &r, &d), AT_E_KEY_REQUIRED);
    doc.public_key = AT_SPAN("k", 1);
    /* nonce required */
    doc.has_nonce = false;
    doc.nonce = AT_SPAN_NULL;
    assert_int_equal(at_policy_check(p, &doc, ts, &r, &d), AT_E_NONCE_MISMATCH);
    doc.has_nonce = true;
    assert_int_equal(at_policy_check(p, &doc, ts, &r, &d), AT_E_NONCE_MISMATCH);
    doc.nonce = AT_SPAN("n", 1);
    /* age: exactly the limit is fine, one millisecond more is not */
    assert_int_equal(at_policy_check(p, &doc, ts + 60000, &r, &d), AT_OK);
    assert_int_equal(at_policy_check(p, &doc, ts + 60001, &r, &d), AT_E_DOCUMENT_TOO_OLD);
    assert_int_equal(at_policy_check(p, &doc, ts + 86400000LL, &r, &d), AT_E_DOCUMENT_TOO_OLD);
    at_policy_free(p);
    /* Requirements switched off. */
    assert_int_equal(parse("{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"" HA "\"]},"
                           "\"require_nonce\":false,\"require_public_key\":false}",
                           &p),
                     AT_OK);
    doc.has_nonce = doc.has_public_key = false;
    assert_int_equal(at_policy_check(p, &doc, ts + 300000, NULL, &d), AT_OK);
    assert_int_equal(at_policy_check(p, &doc, ts + 300001, NULL, &d), AT_E_DOCUMENT_TOO_OLD);
    at_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_minimal_defaults), cmocka_unit_test(parse_every_field),
        cmocka_unit_test(parse_refusals),         cmocka_unit_test(parse_limits),
        cmocka_unit_test(lint_findings),          cmocka_unit_test(eval_report),
        cmocka_unit_test(canonical_json),         cmocka_unit_test(check_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
