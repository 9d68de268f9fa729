/* Unit tests for lib/attester.c: the NSM request is the CBOR the NSM API
 * expects, its response is parsed strictly, the simulator attester and the
 * nitro-tpm tool path produce documents carrying the caller's fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "attester.h"
#include "cbor_wr.h"
#include "cose.h"
#include "nitro.h"
#include "sim.h"

static void nsm_request_encoding(void **state)
{
    at_buf b;
    at_buf_init(&b);
    assert_int_equal(at_nsm_attestation_request(AT_SPAN("\x01\x02", 2), AT_SPAN_NULL, AT_SPAN("k", 1), &b),
                     AT_OK);
    /* {"Attestation": {"user_data": null, "nonce": h'0102', "public_key": h'6b'}} */
    static const uint8_t want[] = {0xa1, 0x6b, 'A',  't', 't', 'e', 's', 't',  'a',  't',  'i',  'o',
                                   'n',  0xa3, 0x69, 'u', 's', 'e', 'r', '_',  'd',  'a',  't',  'a',
                                   0xf6, 0x65, 'n',  'o', 'n', 'c', 'e', 0x42, 0x01, 0x02, 0x6a, 'p',
                                   'u',  'b',  'l',  'i', 'c', '_', 'k', 'e',  'y',  0x41, 'k'};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.p, want, sizeof want);
    at_buf_cleanup(&b);
    uint8_t big[1025] = {0};
    at_buf_init(&b);
    assert_int_equal(at_nsm_attestation_request(AT_SPAN(big, sizeof big), AT_SPAN_NULL, AT_SPAN_NULL, &b),
                     AT_E_TOO_LARGE);
    at_buf_cleanup(&b);
}

static void nsm_response_parsing(void **state)
{
    at_buf r;
    at_buf_init(&r);
    at_cbor_put_head(&r, AT_CBOR_MAP, 1);
    at_cbor_put_text(&r, "Attestation");
    at_cbor_put_head(&r, AT_CBOR_MAP, 1);
    at_cbor_put_text(&r, "document");
    at_cbor_put_bytes(&r, AT_SPAN("\x84\x44\xa1\x01\x38\x22", 6));
    at_span doc;
    at_diag d = {{0}};
    assert_int_equal(at_nsm_parse_attestation_response(at_buf_span(&r), &doc, &d), AT_OK);
    assert_int_equal(doc.len, 6);
    assert_memory_equal(doc.p, "\x84\x44\xa1\x01\x38\x22", 6);
    assert_true(doc.p >= r.p && doc.p + doc.len <= r.p + r.len);
    at_buf_cleanup(&r);

    /* {"Error": "InvalidArgument"} */
    at_buf_init(&r);
    at_cbor_put_head(&r, AT_CBOR_MAP, 1);
    at_cbor_put_text(&r, "Error");
    at_cbor_put_text(&r, "InvalidArgument");
    assert_int_equal(at_nsm_parse_attestation_response(at_buf_span(&r), &doc, &d), AT_E_UNAVAILABLE);
    assert_non_null(strstr(d.msg, "InvalidArgument"));
    at_buf_cleanup(&r);

    /* wrong shapes */
    at_buf_init(&r);
    at_cbor_put_head(&r, AT_CBOR_MAP, 1);
    at_cbor_put_text(&r, "Attestation");
    at_cbor_put_head(&r, AT_CBOR_MAP, 1);
    at_cbor_put_text(&r, "document");
    at_cbor_put_text(&r, "not bytes");
    assert_int_equal(at_nsm_parse_attestation_response(at_buf_span(&r), &doc, &d), AT_E_BAD_FIELD);
    at_buf_u8(&r, 0);
    assert_int_equal(at_nsm_parse_attestation_response(at_buf_span(&r), &doc, &d), AT_E_MALFORMED_CBOR);
    at_buf_cleanup(&r);
    assert_int_equal(at_nsm_parse_attestation_response(AT_SPAN("\xa1", 1), &doc, &d), AT_E_MALFORMED_CBOR);
}

static char dir[64];

static void sim_and_tpm_attesters(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/attest-ut-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char pki[128], tool[160];
    snprintf(pki, sizeof pki, "%s/pki", dir);
    at_diag d = {{0}};
    assert_int_equal(at_sim_pki_init(pki, time(NULL), &d), AT_OK);

    at_attester *a = NULL;
    at_attester_opts o = {.sim_pki = pki};
    assert_int_equal(at_attester_open(AT_ATTESTER_SIM, &o, &a, &d), AT_OK);
    at_buf doc;
    at_buf_init(&doc);
    assert_int_equal(
        at_attester_document(a, AT_SPAN("nonce", 5), AT_SPAN("ud", 2), AT_SPAN("pk", 2), &doc, &d), AT_OK);
    at_cose_sign1 m;
    at_nitro_payload p;
    assert_int_equal(at_cose_sign1_decode(at_buf_span(&doc), &m, &d), AT_OK);
    assert_int_equal(at_nitro_payload_decode(m.payload, AT_FORMAT_AUTO, &p, &d), AT_OK);
    assert_true(p.has_nonce && p.nonce.len == 5 && memcmp(p.nonce.p, "nonce", 5) == 0);
    assert_true(p.has_user_data && p.user_data.len == 2);
    assert_true(p.has_public_key && p.public_key.len == 2);
    at_nitro_payload_cleanup(&p);
    at_cose_sign1_cleanup(&m);
    at_attester_close(a);

    /* nitro-tpm: a stand-in for AWS's tool that records its arguments and
     * writes a fixed "document" to stdout. */
    snprintf(tool, sizeof tool, "%s/fake-tpm-attest", dir);
    FILE *f = fopen(tool, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\necho \"$@\" > %s/args\ncat \"$2\" > %s/nonce\nprintf 'DOC'\n", dir, dir);
    fclose(f);
    chmod(tool, 0700);
    at_attester_opts t = {.tpm_tool = tool};
    assert_int_equal(at_attester_open(AT_ATTESTER_NITRO_TPM, &t, &a, &d), AT_OK);
    at_buf_reset(&doc);
    assert_int_equal(at_attester_document(a, AT_SPAN("N1", 2), AT_SPAN_NULL, AT_SPAN("PK", 2), &doc, &d),
                     AT_OK);
    assert_int_equal(doc.len, 3);
    assert_memory_equal(doc.p, "DOC", 3);
    char path[128], buf[256] = "";
    snprintf(path, sizeof path, "%s/args", dir);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_non_null(strstr(buf, "--nonce"));
    assert_non_null(strstr(buf, "--public-key"));
    assert_null(strstr(buf, "--user-data"));
    snprintf(path, sizeof path, "%s/nonce", dir);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, sizeof buf, f), 2);
    fclose(f);
    assert_memory_equal(buf, "N1", 2);
    at_attester_close(a);

    /* a failing tool is an error, not an empty document */
    t.tpm_tool = "/bin/false";
    assert_int_equal(at_attester_open(AT_ATTESTER_NITRO_TPM, &t, &a, &d), AT_OK);
    at_buf_reset(&doc);
    assert_int_equal(at_attester_document(a, AT_SPAN("N", 1), AT_SPAN_NULL, AT_SPAN_NULL, &doc, &d),
                     AT_E_UNAVAILABLE);
    assert_int_equal(doc.len, 0);
    at_attester_close(a);
    at_buf_cleanup(&doc);

    /* no NSM device outside an enclave */
    at_attester_opts n = {.nsm_device = "/nonexistent/nsm"};
    assert_int_equal(at_attester_open(AT_ATTESTER_NSM, &n, &a, &d), AT_E_UNAVAILABLE);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nsm_request_encoding),
        cmocka_unit_test(nsm_response_parsing),
        cmocka_unit_test(sim_and_tpm_attesters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
