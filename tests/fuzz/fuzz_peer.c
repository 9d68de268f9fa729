/* fuzz_peer: lib/peer's parsers on attacker bytes. The first input byte
 * picks the target:
 *  0: an initiator after HELLO reads the rest as RESPONSE (or an ALERT):
 *     the layout checks, the evidence core on the document, the binding;
 *  1: a responder reads the rest as HELLO (only layouts that would not make
 *     a document, so no attester runs);
 *  2: an established responder opens records (u16 length, record)...; the
 *     properties: a refused record leaves no plaintext and ends the
 *     channel, nothing is accepted after CLOSE, and a record sealed by
 *     the initiator with the same keys opens to its plaintext;
 *  3: lib/peer_http's message reassembly reads record plaintexts (u16
 *     length, plaintext)... with a 4 KiB maximum; the properties: a
 *     completed message has the announced length and fits the maximum, a
 *     refusal is sticky, the end is clean only between messages, and the
 *     input sealed as one message (at_peer_http_seal) joins back whole. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"
#include "peer_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool cond)
{
    if (!cond)
        abort();
}

static at_trust *trust;
static at_policy *policy;
static at_attester *att;

static void init(void)
{
    at_diag d = {{0}};
    static const char pol[] = "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\""
                              "111111111111111111111111111111111111111111111111111111111111111111111111111111"
                              "111111111111111111\"]}}";
    at_attester_opts ao = {.tpm_tool = "/nonexistent/nitro-tpm-attest"};
    trust = at_trust_new(0);
    if (!trust || at_trust_add_root_file(trust, AT_SRCDIR "/tests/fuzz/sim_root.pem", &d) != AT_OK ||
        at_policy_parse(pol, strlen(pol), &policy, &d) != AT_OK ||
        at_attester_open(AT_ATTESTER_NITRO_TPM, &ao, &att, &d) != AT_OK)
        abort();
}

static void records(at_span in)
{
    at_peer_keys k;
    memset(&k, 0x42, sizeof k);
    at_peer *a = NULL, *b = NULL;
    at_diag d = {{0}};
    check(at_peer_new_established(AT_PEER_INITIATOR, &k, &a, &d) == AT_OK);
    check(at_peer_new_established(AT_PEER_RESPONDER, &k, &b, &d) == AT_OK);
    at_reader r;
    at_reader_init(&r, in.p, in.len);
    at_buf pt, rec;
    at_buf_init(&pt);
    at_buf_init(&rec);
    bool closed = false, dead = false;
    uint16_t n;
    at_span s;
    while (at_reader_u16(&r, &n) && at_reader_take(&r, n, &s)) {
        size_t before = pt.len;
        at_err rc = at_peer_open(b, s, &pt, &closed, &d);
        if (rc != AT_OK) {
            check(pt.len == before);
            dead = true;
            check(!at_peer_established(b));
            break;
        }
        if (closed)
            break;
    }
    if (closed) {
        bool again;
        check(at_peer_open(b, AT_SPAN(in.p, in.len), &pt, &again, &d) != AT_OK);
    }
    /* Round trip with fresh states: what the initiator seals opens. */
    at_peer_free(b);
    b = NULL;
    check(at_peer_new_established(AT_PEER_RESPONDER, &k, &b, &d) == AT_OK);
    at_span msg =
        AT_SPAN(in.p, in.len > AT_PEER_MAX_RECORD_PLAINTEXT ? AT_PEER_MAX_RECORD_PLAINTEXT : in.len);
    at_buf_reset(&pt);
    check(at_peer_seal(a, false, msg, &rec, &d) == AT_OK);
    check(at_peer_open(b, at_buf_span(&rec), &pt, &closed, &d) == AT_OK && !closed);
    check(pt.len == msg.len && (msg.len == 0 || memcmp(pt.p, msg.p, msg.len) == 0));
    (void)dead;
    at_buf_cleanup(&pt);
    at_buf_cleanup(&rec);
    at_peer_free(a);
    at_peer_free(b);
}

static void messages(at_span in)
{
    at_diag d = {{0}};
    at_peer_http_rx rx;
    at_peer_http_rx_init(&rx, 4096);
    at_reader r;
    at_reader_init(&r, in.p, in.len);
    uint16_t n;
    at_span s;
    bool failed = false;
    while (at_reader_u16(&r, &n) && at_reader_take(&r, n, &s)) {
        bool done = false;
        at_err rc = at_peer_http_rx_feed(&rx, s, &done, &d);
        if (rc != AT_OK) {
            check(!done);
            failed = true;
            break;
        }
        if (done)
            check(rx.msg.len == rx.want && rx.msg.len > 0 && rx.msg.len <= 4096 && !rx.inside);
    }
    if (failed) {
        bool done;
        check(at_peer_http_rx_feed(&rx, AT_SPAN("\0\0\0\1x", 5), &done, &d) != AT_OK);
    } else {
        check((at_peer_http_rx_end(&rx, &d) == AT_OK) == !rx.inside);
    }
    at_peer_http_rx_cleanup(&rx);

    /* Round trip: the input as one message, over records, joins back. */
    if (in.len == 0 || in.len > AT_PEER_HTTP_MAX_MESSAGE)
        return;
    at_peer_keys k;
    memset(&k, 0x24, sizeof k);
    at_peer *a = NULL, *b = NULL;
    check(at_peer_new_established(AT_PEER_INITIATOR, &k, &a, &d) == AT_OK);
    check(at_peer_new_established(AT_PEER_RESPONDER, &k, &b, &d) == AT_OK);
    at_buf wire, pt;
    at_buf_init(&wire);
    at_buf_init(&pt);
    at_peer_http_rx_init(&rx, AT_PEER_HTTP_MAX_MESSAGE);
    check(at_peer_http_seal(a, in, &wire, &d) == AT_OK);
    at_reader_init(&r, wire.p, wire.len);
    uint32_t len;
    bool done = false;
    while (at_reader_u32(&r, &len) && at_reader_take(&r, len, &s)) {
        bool closed = true;
        check(!done);
        at_buf_reset(&pt);
        check(at_peer_open(b, s, &pt, &closed, &d) == AT_OK && !closed);
        check(at_peer_http_rx_feed(&rx, at_buf_span(&pt), &done, &d) == AT_OK);
    }
    check(done && at_reader_at_end(&r) && rx.msg.len == in.len && memcmp(rx.msg.p, in.p, in.len) == 0);
    at_peer_http_rx_cleanup(&rx);
    at_buf_cleanup(&wire);
    at_buf_cleanup(&pt);
    at_peer_free(a);
    at_peer_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!trust)
        init();
    if (size == 0)
        return 0;
    at_span in = AT_SPAN(data + 1, size - 1);
    at_diag d = {{0}};
    at_buf out;
    at_buf_init(&out);
    at_peer_opts o = {.attester = att, .trust = trust, .peer_policy = policy};
    at_peer *p = NULL;
    switch (data[0] % 4) {
    case 0:
        o.role = AT_PEER_INITIATOR;
        check(at_peer_new(&o, &p, &d) == AT_OK);
        check(at_peer_start(p, &out, &d) == AT_OK);
        at_buf_reset(&out);
        /* No document signed by the fuzzer verifies: always refused, no key. */
        check(at_peer_handle(p, in, &out, &d) != AT_OK);
        check(out.len == 0 && !at_peer_established(p));
        break;
    case 1:
        if (in.len == 66 && in.p[0] == AT_PEER_MSG_HELLO && in.p[1] == AT_PEER_VERSION)
            break; /* valid: would make a document */
        o.role = AT_PEER_RESPONDER;
        check(at_peer_new(&o, &p, &d) == AT_OK);
        check(at_peer_handle(p, in, &out, &d) != AT_OK);
        check(out.len == 0);
        break;
    case 2:
        records(in);
        break;
    default:
        messages(in);
        break;
    }
    at_peer_free(p);
    at_buf_cleanup(&out);
    return 0;
}
