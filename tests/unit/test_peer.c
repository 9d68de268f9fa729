/* Unit tests for lib/peer.c: the key schedule's known answer (computed
 * independently with Python's hmac), a complete handshake between two
 * simulator attesters, each refusal with its exact code on both sides and
 * no key left after it, transcript binding (a changed byte anywhere in any
 * message is refused) and the record layer (tampering, reordering, replay,
 * close). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <string.h>

#include "binding.h"
#include "enc.h"
#include "peer.h"
#include "policy.h"
#include "test_util.h"

static void hex(const char *h, uint8_t *out, size_t n)
{
    size_t got = 0;
    assert_int_equal(at_hex_decode(h, strlen(h), out, n, &got), AT_OK);
    assert_int_equal(got, n);
}

static void key_schedule_known_answer(void **state)
{
    (void)state;
    uint8_t ss[32], th[32], want[32];
    for (int i = 0; i < 32; i++)
        ss[i] = (uint8_t)i;
    memset(th, 0xa5, sizeof th);
    at_peer_keys k;
    at_diag d = {{0}};
    assert_int_equal(at_peer_key_schedule(AT_SPAN(ss, 32), th, &k, &d), AT_OK);
    hex("6902463d8ccca436e56c4d9e658d3e9185ec49a4fb130e8bccc6cd2b45219330", want, 32);
    assert_memory_equal(k.key_ab, want, 32);
    hex("7b40528f9d61f5be94803ad7f4041608ef631a963d4ec7d8aef01fe723faa683", want, 32);
    assert_memory_equal(k.key_ba, want, 32);
    hex("d9071030c212faf14b8e85ad", want, 12);
    assert_memory_equal(k.iv_ab, want, 12);
    hex("4ea3e42c511cefd87bac2209", want, 12);
    assert_memory_equal(k.iv_ba, want, 12);
    hex("4c9f7c60f3e5d336924208dab4abe0f0362a9c72dbf2eb7b6446a31e5eda91ea", want, 32);
    assert_memory_equal(k.exporter, want, 32);
    hex("af18790928ba7113a8329a248aef31fad2470ca7780236be92012c720b8c044a", want, 32);
    assert_memory_equal(k.confirm, want, 32);
    /* Another transcript, other keys. */
    at_peer_keys k2;
    th[31] ^= 1;
    assert_int_equal(at_peer_key_schedule(AT_SPAN(ss, 32), th, &k2, &d), AT_OK);
    assert_memory_not_equal(k.key_ab, k2.key_ab, 32);
}

/* ---- fixture: one simulator PKI, attesters with chosen PCR0 ---- */

typedef struct {
    tu_sim sim, foreign;
    at_trust *trust, *foreign_trust;
    at_policy *policy;
    at_attester *good_a, *good_b, *other_pcr;
} fx;

static at_attester *attester(const char *dir, uint8_t pcr0)
{
    bool set[AT_MAX_PCRS] = {0};
    static uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN];
    memset(pcr, 0, sizeof pcr);
    set[0] = true;
    memset(pcr[0], pcr0, AT_SHA384_LEN);
    at_attester_opts o = {
        .sim_pki = dir, .sim_pcr_set = set, .sim_pcr = (const uint8_t(*)[AT_SHA384_LEN])pcr};
    at_attester *a = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_attester_open(AT_ATTESTER_SIM, &o, &a, &d), AT_OK);
    return a;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || tu_sim_init(&f->sim, tu_now_s()) != 0 || tu_sim_init(&f->foreign, tu_now_s()) != 0)
        return -1;
    f->trust = tu_trust(&f->sim, false, 0);
    f->foreign_trust = tu_trust(&f->foreign, false, 0);
    char json[512];
    char p0[97];
    memset(p0, '1', 96);
    p0[96] = '\0';
    snprintf(json, sizeof json, "{\"format\":\"nitro-enclave\",\"pcrs\":{\"0\":[\"%s\"]}}", p0);
    at_diag d = {{0}};
    if (at_policy_parse(json, strlen(json), &f->policy, &d) != AT_OK)
        return -1;
    f->good_a = attester(f->sim.dir, 0x11);
    f->good_b = attester(f->sim.dir, 0x11);
    f->other_pcr = attester(f->sim.dir, 0x22);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    at_attester_close(f->good_a);
    at_attester_close(f->good_b);
    at_attester_close(f->other_pcr);
    at_policy_free(f->policy);
    at_trust_unref(f->trust);
    at_trust_unref(f->foreign_trust);
    tu_sim_cleanup(&f->sim);
    tu_sim_cleanup(&f->foreign);
    free(f);
    return 0;
}

static at_peer *new_peer(at_peer_role role, at_attester *a, at_trust *t, const at_policy *p, int64_t at_ms)
{
    at_peer_opts o = {.role = role, .attester = a, .trust = t, .peer_policy = p, .at_ms = at_ms};
    at_peer *peer = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_peer_new(&o, &peer, &d), AT_OK);
    return peer;
}

/* Change message `which` (1..4) on the wire before it is delivered. */
typedef void (*mutator)(int which, at_buf *m, void *arg);

typedef struct {
    at_err a_rc, b_rc; /* first failure each side saw (AT_OK: none) */
    at_peer *a, *b;
    at_buf m[5]; /* the messages as delivered */
} hs;

static void alert_to(at_peer *to, at_err code, at_err *to_rc)
{
    at_buf al;
    at_buf_init(&al);
    at_buf out;
    at_buf_init(&out);
    at_diag d = {{0}};
    assert_int_equal(at_peer_alert(code, &al), AT_OK);
    if (at_peer_established(to)) { /* the responder after CONFIRM: the record stream */
        bool closed;
        *to_rc = at_peer_open(to, at_buf_span(&al), &out, &closed, &d);
    } else {
        *to_rc = at_peer_handle(to, at_buf_span(&al), &out, &d);
    }
    assert_true(at_peer_refused_by_peer(to));
    assert_int_equal(out.len, 0);
    at_buf_cleanup(&al);
    at_buf_cleanup(&out);
}

/* Runs A (initiator) and B (responder); a refusal is told to the other
 * side as an alert, as attestctl does. */
static void handshake(hs *h, at_peer *a, at_peer *b, mutator mut, void *arg)
{
    at_diag d = {{0}};
    memset(h, 0, sizeof *h);
    h->a = a;
    h->b = b;
    for (int i = 0; i < 5; i++)
        at_buf_init(&h->m[i]);
    assert_int_equal(at_peer_start(a, &h->m[1], &d), AT_OK);
    for (int i = 1; i <= 4; i++) {
        if (mut)
            mut(i, &h->m[i], arg);
        bool to_b = i % 2 == 1;
        at_peer *rx = to_b ? b : a, *tx = to_b ? a : b;
        at_err *rx_rc = to_b ? &h->b_rc : &h->a_rc, *tx_rc = to_b ? &h->a_rc : &h->b_rc;
        at_buf *next = i < 4 ? &h->m[i + 1] : &h->m[0];
        at_err rc = at_peer_handle(rx, at_buf_span(&h->m[i]), next, &d);
        if (rc != AT_OK) {
            *rx_rc = rc;
            assert_false(at_peer_refused_by_peer(rx));
            alert_to(tx, rc, tx_rc);
            return;
        }
    }
}

static void hs_cleanup(hs *h)
{
    at_peer_free(h->a);
    at_peer_free(h->b);
    for (int i = 0; i < 5; i++)
        at_buf_cleanup(&h->m[i]);
}

/* Neither side holds a key after a refusal. */
static void assert_no_keys(at_peer *p)
{
    uint8_t cb[32];
    at_buf out;
    at_buf_init(&out);
    at_diag d = {{0}};
    assert_false(at_peer_established(p));
    assert_int_not_equal(at_peer_channel_binding(p, cb), AT_OK);
    assert_int_not_equal(at_peer_seal(p, false, AT_SPAN("x", 1), &out, &d), AT_OK);
    assert_int_equal(out.len, 0);
    assert_null(at_peer_info_json(p));
    at_buf_cleanup(&out);
}

static void expect_refused(hs *h, at_err code)
{
    assert_string_equal(at_err_str(h->a_rc), at_err_str(code));
    assert_string_equal(at_err_str(h->b_rc), at_err_str(code));
    assert_no_keys(h->a);
    assert_no_keys(h->b);
}

static void success_and_records(void **state)
{
    fx *f = *state;
    hs h;
    handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), NULL, NULL);
    assert_int_equal(h.a_rc, AT_OK);
    assert_int_equal(h.b_rc, AT_OK);
    assert_true(at_peer_established(h.a) && at_peer_established(h.b));
    uint8_t ca[32], cbb[32];
    assert_int_equal(at_peer_channel_binding(h.a, ca), AT_OK);
    assert_int_equal(at_peer_channel_binding(h.b, cbb), AT_OK);
    assert_memory_equal(ca, cbb, 32);
    json_t *info = at_peer_info_json(h.a);
    assert_non_null(info);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(info, "pcrs"), "0")),
        "111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111");
    json_decref(info);

    /* Records both ways; tampering, reordering and replay detected. */
    at_diag d = {{0}};
    at_buf r1, r2, r3, pt;
    at_buf_init(&r1);
    at_buf_init(&r2);
    at_buf_init(&r3);
    at_buf_init(&pt);
    bool closed;
    assert_int_equal(at_peer_seal(h.a, false, AT_SPAN("ping", 4), &r1, &d), AT_OK);
    assert_int_equal(at_peer_seal(h.a, false, AT_SPAN("pong", 4), &r2, &d), AT_OK);
    assert_int_equal(at_peer_open(h.b, at_buf_span(&r1), &pt, &closed, &d), AT_OK);
    assert_int_equal(pt.len, 4);
    assert_memory_equal(pt.p, "ping", 4);
    assert_false(closed);
    at_buf_reset(&pt);
    assert_int_equal(at_peer_open(h.b, at_buf_span(&r2), &pt, &closed, &d), AT_OK);
    assert_memory_equal(pt.p, "pong", 4);
    /* B -> A, then close. */
    assert_int_equal(at_peer_seal(h.b, false, AT_SPAN("back", 4), &r3, &d), AT_OK);
    at_buf_reset(&pt);
    assert_int_equal(at_peer_open(h.a, at_buf_span(&r3), &pt, &closed, &d), AT_OK);
    assert_memory_equal(pt.p, "back", 4);
    at_buf_reset(&r3);
    assert_int_equal(at_peer_seal(h.a, true, AT_SPAN_NULL, &r3, &d), AT_OK);
    at_buf_reset(&pt);
    assert_int_equal(at_peer_open(h.b, at_buf_span(&r3), &pt, &closed, &d), AT_OK);
    assert_true(closed);
    assert_int_equal(at_peer_open(h.b, at_buf_span(&r3), &pt, &closed, &d), AT_E_UNEXPECTED_MESSAGE);
    hs_cleanup(&h);

    /* A fresh pair: tampered, reordered, replayed records. */
    handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), NULL, NULL);
    uint8_t ca2[32];
    assert_int_equal(at_peer_channel_binding(h.a, ca2), AT_OK);
    assert_memory_not_equal(ca, ca2, 32); /* fresh every time */
    at_buf_reset(&r1);
    at_buf_reset(&r2);
    assert_int_equal(at_peer_seal(h.a, false, AT_SPAN("one", 3), &r1, &d), AT_OK);
    assert_int_equal(at_peer_seal(h.a, false, AT_SPAN("two", 3), &r2, &d), AT_OK);
    /* reordered: record 1 where 0 is expected */
    assert_int_equal(at_peer_open(h.b, at_buf_span(&r2), &pt, &closed, &d), AT_E_DECRYPT_FAILED);
    assert_no_keys(h.b); /* a failed record ends the channel */
    hs_cleanup(&h);

    /* Every byte of a record: the type (authenticated) and each
     * ciphertext and tag byte. */
    for (size_t pos = 0; pos < 1 + 3 + AT_PEER_TAG_LEN; pos++) {
        handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
                  new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), NULL, NULL);
        at_buf_reset(&r1);
        assert_int_equal(at_peer_seal(h.a, false, AT_SPAN("one", 3), &r1, &d), AT_OK);
        assert_int_equal(r1.len, 1 + 3 + AT_PEER_TAG_LEN);
        if (pos == 0)
            r1.p[0] = AT_PEER_MSG_CLOSE; /* data retyped as close */
        else
            r1.p[pos] ^= 0x80;
        at_buf_reset(&pt);
        assert_int_equal(at_peer_open(h.b, at_buf_span(&r1), &pt, &closed, &d), AT_E_DECRYPT_FAILED);
        assert_int_equal(pt.len, 0);
        assert_no_keys(h.b);
        hs_cleanup(&h);
    }
    /* an unknown record type */
    handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), NULL, NULL);
    at_buf_reset(&r1);
    assert_int_equal(at_peer_seal(h.a, false, AT_SPAN("one", 3), &r1, &d), AT_OK);
    r1.p[0] = 0x99;
    assert_int_equal(at_peer_open(h.b, at_buf_span(&r1), &pt, &closed, &d), AT_E_UNEXPECTED_MESSAGE);
    hs_cleanup(&h);
    /* replay: the same record twice */
    handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), NULL, NULL);
    at_buf_reset(&r1);
    assert_int_equal(at_peer_seal(h.a, false, AT_SPAN("one", 3), &r1, &d), AT_OK);
    at_buf_reset(&pt);
    assert_int_equal(at_peer_open(h.b, at_buf_span(&r1), &pt, &closed, &d), AT_OK);
    assert_int_equal(at_peer_open(h.b, at_buf_span(&r1), &pt, &closed, &d), AT_E_DECRYPT_FAILED);
    hs_cleanup(&h);
    at_buf_cleanup(&r1);
    at_buf_cleanup(&r2);
    at_buf_cleanup(&r3);
    at_buf_cleanup(&pt);
}

static void peer_with_other_pcrs(void **state)
{
    fx *f = *state;
    hs h;
    /* B runs something else: A refuses B. */
    handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->other_pcr, f->trust, f->policy, 0), NULL, NULL);
    expect_refused(&h, AT_E_PCR_MISMATCH);
    hs_cleanup(&h);
    /* A runs something else: B refuses A. */
    handshake(&h, new_peer(AT_PEER_INITIATOR, f->other_pcr, f->trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), NULL, NULL);
    expect_refused(&h, AT_E_PCR_MISMATCH);
    hs_cleanup(&h);
}

static void foreign_and_expired_chain(void **state)
{
    fx *f = *state;
    hs h;
    handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->foreign_trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), NULL, NULL);
    expect_refused(&h, AT_E_UNTRUSTED_ROOT);
    hs_cleanup(&h);
    int64_t later = (tu_now_s() + 2 * 24 * 3600) * 1000;
    handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, later), NULL, NULL);
    expect_refused(&h, AT_E_CERT_EXPIRED);
    hs_cleanup(&h);
}

/* Replay: RESPONSE from an earlier handshake, FINISH from an earlier one. */
static void replay(void **state)
{
    fx *f = *state;
    hs old, h;
    handshake(&old, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), NULL, NULL);
    assert_int_equal(old.a_rc, AT_OK);

    at_peer *a = new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0);
    at_buf m1, out;
    at_buf_init(&m1);
    at_buf_init(&out);
    at_diag d = {{0}};
    assert_int_equal(at_peer_start(a, &m1, &d), AT_OK);
    assert_int_equal(at_peer_handle(a, at_buf_span(&old.m[2]), &out, &d), AT_E_NONCE_MISMATCH);
    assert_no_keys(a);
    at_peer_free(a);

    /* B answers a fresh HELLO; the attacker replays the old FINISH. */
    at_peer *b = new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0);
    at_buf_reset(&out);
    assert_int_equal(at_peer_handle(b, at_buf_span(&old.m[1]), &out, &d), AT_OK);
    at_buf_reset(&out);
    assert_int_equal(at_peer_handle(b, at_buf_span(&old.m[3]), &out, &d), AT_E_NONCE_MISMATCH);
    assert_int_equal(out.len, 0);
    assert_no_keys(b);
    at_peer_free(b);
    (void)h;
    hs_cleanup(&old);
    at_buf_cleanup(&m1);
    at_buf_cleanup(&out);
}

/* FINISH carrying B's own document (from RESPONSE) back to B. */
static void reflect_finish(int which, at_buf *m, void *arg)
{
    hs *cur = arg;
    if (which != 3)
        return;
    at_buf r;
    at_buf_init(&r);
    assert_int_equal(at_buf_u8(&r, AT_PEER_MSG_FINISH), AT_OK);
    assert_int_equal(at_buf_u8(&r, AT_PEER_VERSION), AT_OK);
    assert_int_equal(at_buf_append(&r, cur->m[2].p + 66, cur->m[2].len - 66), AT_OK);
    at_buf_reset(m);
    assert_int_equal(at_buf_append_span(m, at_buf_span(&r)), AT_OK);
    at_buf_cleanup(&r);
}

/* RESPONSE that mirrors A's own HELLO. */
static void reflect_hello(int which, at_buf *m, void *arg)
{
    hs *cur = arg;
    if (which != 2)
        return;
    memcpy(m->p + 2, cur->m[1].p + 2, 64);
}

static void reflection(void **state)
{
    fx *f = *state;
    hs h;
    handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), reflect_finish, &h);
    expect_refused(&h, AT_E_REFLECTION);
    hs_cleanup(&h);
    handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), reflect_hello, &h);
    expect_refused(&h, AT_E_REFLECTION);
    hs_cleanup(&h);
}

/* A message of another type where one is expected. */
static void swap_types(int which, at_buf *m, void *arg)
{
    int *target = arg;
    if (which == *target)
        m->p[0] = (uint8_t)(which == 2 ? AT_PEER_MSG_FINISH : AT_PEER_MSG_RESPONSE);
}

static void swapped_message(void **state)
{
    fx *f = *state;
    for (int target = 1; target <= 4; target++) {
        hs h;
        handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
                  new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), swap_types, &target);
        expect_refused(&h, AT_E_UNEXPECTED_MESSAGE);
        hs_cleanup(&h);
    }
}

/* A's nonce as seen in the last HELLO (set by capture_then_session). */
static at_span fx_last_hello_nonce;
static uint8_t fx_nonce_copy[32];

/* A document bound to another purpose (a session document for the same
 * nonce and key) in RESPONSE. */
static void session_doc(int which, at_buf *m, void *arg)
{
    fx *f = arg;
    if (which != 2)
        return;
    at_buf ud, doc;
    at_buf_init(&ud);
    at_buf_init(&doc);
    at_diag d = {{0}};
    assert_int_equal(at_binding_encode(AT_PURPOSE_SESSION, NULL, &ud, &d), AT_OK);
    assert_int_equal(at_attester_document(f->good_b, fx_last_hello_nonce, at_buf_span(&ud),
                                          AT_SPAN(m->p + 34, 32), &doc, &d),
                     AT_OK);
    m->len = 66;
    assert_int_equal(at_buf_append_span(m, at_buf_span(&doc)), AT_OK);
    at_buf_cleanup(&ud);
    at_buf_cleanup(&doc);
}

static void capture_then_session(int which, at_buf *m, void *arg)
{
    if (which == 1) {
        memcpy(fx_nonce_copy, m->p + 2, 32);
        fx_last_hello_nonce = AT_SPAN(fx_nonce_copy, 32);
    }
    session_doc(which, m, arg);
}

static void purpose_mismatch(void **state)
{
    fx *f = *state;
    hs h;
    handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), capture_then_session, f);
    expect_refused(&h, AT_E_PURPOSE_MISMATCH);
    hs_cleanup(&h);
}

/* Transcript binding: flip one byte at `pos` of message `which`. */
typedef struct {
    int which;
    size_t pos;
} flip_at;

static void flip(int which, at_buf *m, void *arg)
{
    flip_at *fa = arg;
    if (which == fa->which && fa->pos < m->len)
        m->p[fa->pos] ^= 0x01;
}

static void transcript_binding(void **state)
{
    fx *f = *state;
    /* Every byte of HELLO, of RESPONSE's fixed part and of CONFIRM; the
     * documents at a stride (each is a few KiB, every handshake signs twice). */
    size_t lens[5] = {0, 66, 0, 0, 34};
    hs probe;
    handshake(&probe, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
              new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), NULL, NULL);
    lens[2] = probe.m[2].len;
    lens[3] = probe.m[3].len;
    hs_cleanup(&probe);
    for (int which = 1; which <= 4; which++) {
        for (size_t pos = 0; pos < lens[which]; pos += (which == 2 && pos >= 66) || which == 3 ? 53 : 1) {
            flip_at fa = {which, pos};
            hs h;
            handshake(&h, new_peer(AT_PEER_INITIATOR, f->good_a, f->trust, f->policy, 0),
                      new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0), flip, &fa);
            if (h.a_rc == AT_OK || h.b_rc == AT_OK)
                fail_msg("message %d byte %zu changed: accepted (a %s, b %s)", which, pos, at_err_str(h.a_rc),
                         at_err_str(h.b_rc));
            assert_int_equal(h.a_rc, h.b_rc); /* both sides name the same code */
            assert_no_keys(h.a);
            assert_no_keys(h.b);
            /* The fixed fields: what each change is refused as. */
            if (which == 1 && pos >= 2 && pos < 34)
                assert_int_equal(h.a_rc, AT_E_NONCE_MISMATCH);
            if (which == 1 && pos >= 34)
                assert_int_equal(h.a_rc, AT_E_TRANSCRIPT_MISMATCH);
            if (which == 2 && pos >= 2 && pos < 66)
                assert_int_equal(h.a_rc, AT_E_TRANSCRIPT_MISMATCH);
            if (which == 4 && pos >= 2)
                assert_int_equal(h.a_rc, AT_E_TRANSCRIPT_MISMATCH);
            hs_cleanup(&h);
        }
    }
}

static void binding_peer_layout(void **state)
{
    (void)state;
    uint8_t th[32];
    memset(th, 0x5a, sizeof th);
    at_buf b;
    at_buf_init(&b);
    at_diag d = {{0}};
    assert_int_equal(at_binding_encode_peer(th, &b, &d), AT_OK);
    assert_int_equal(b.len, 38);
    assert_memory_equal(b.p, "ATB\x01\x03\x02", 6);
    assert_int_equal(at_binding_check_peer(at_buf_span(&b), th, &d), AT_OK);
    th[0] ^= 1;
    assert_int_equal(at_binding_check_peer(at_buf_span(&b), th, &d), AT_E_TRANSCRIPT_MISMATCH);
    /* a peer binding is no session binding, and the reverse */
    assert_int_equal(at_binding_check(at_buf_span(&b), AT_PURPOSE_SESSION, NULL, &d), AT_E_PURPOSE_MISMATCH);
    at_buf s;
    at_buf_init(&s);
    assert_int_equal(at_binding_encode(AT_PURPOSE_SESSION, NULL, &s, &d), AT_OK);
    assert_int_equal(at_binding_check_peer(at_buf_span(&s), th, &d), AT_E_PURPOSE_MISMATCH);
    assert_int_equal(at_binding_encode(AT_PURPOSE_PEER, NULL, &s, &d), AT_E_BAD_REQUEST);
    /* kind 2 only with purpose peer, purpose peer only with kind 2 */
    b.p[4] = AT_PURPOSE_SESSION;
    at_binding out;
    assert_int_equal(at_binding_decode(at_buf_span(&b), &out, &d), AT_E_BAD_FIELD);
    b.p[4] = AT_PURPOSE_PEER;
    b.p[5] = 1;
    assert_int_equal(at_binding_decode(at_buf_span(&b), &out, &d), AT_E_BAD_FIELD);
    assert_int_equal(at_binding_decode(AT_SPAN("ATB\x01\x03\x00", 6), &out, &d), AT_E_BAD_FIELD);
    at_buf_cleanup(&b);
    at_buf_cleanup(&s);
}

static void malformed_messages(void **state)
{
    fx *f = *state;
    at_peer *b = new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0);
    at_buf out;
    at_buf_init(&out);
    at_diag d = {{0}};
    assert_int_equal(at_peer_handle(b, AT_SPAN("\x01", 1), &out, &d), AT_E_TRUNCATED);
    at_peer_free(b);
    b = new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0);
    assert_int_equal(at_peer_handle(b, AT_SPAN("\x01\x02", 2), &out, &d), AT_E_BAD_FIELD); /* version */
    at_peer_free(b);
    b = new_peer(AT_PEER_RESPONDER, f->good_b, f->trust, f->policy, 0);
    assert_int_equal(at_peer_handle(b, AT_SPAN("\x01\x01short", 7), &out, &d), AT_E_BAD_FIELD);
    /* refused for good */
    assert_int_equal(at_peer_handle(b, AT_SPAN("\x01\x01short", 7), &out, &d), AT_E_BAD_FIELD);
    at_peer_free(b);
    at_buf_cleanup(&out);
    /* a peer needs an attester, roots and a policy */
    at_peer_opts o = {.role = AT_PEER_INITIATOR};
    at_peer *p = NULL;
    assert_int_equal(at_peer_new(&o, &p, &d), AT_E_BAD_REQUEST);
    assert_null(p);
}

/* A CLOSE record whose (authentic) plaintext is not empty is refused and
 * leaves nothing in the caller's buffer. */
static void close_with_bytes(void **state)
{
    (void)state;
    at_peer_keys k;
    memset(&k, 0x5a, sizeof k);
    at_peer *b = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_peer_new_established(AT_PEER_RESPONDER, &k, &b, &d), AT_OK);
    uint8_t rec[1 + 3 + 16], aad[9] = {AT_PEER_MSG_CLOSE}; /* seq 0 */
    int n = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    rec[0] = AT_PEER_MSG_CLOSE;
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, k.key_ab, k.iv_ab), 1);
    assert_int_equal(EVP_EncryptUpdate(c, NULL, &n, aad, sizeof aad), 1);
    assert_int_equal(EVP_EncryptUpdate(c, rec + 1, &n, (const uint8_t *)"abc", 3), 1);
    assert_int_equal(EVP_EncryptFinal_ex(c, rec + 1 + n, &n), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, rec + 4), 1);
    EVP_CIPHER_CTX_free(c);
    at_buf pt;
    at_buf_init(&pt);
    assert_int_equal(at_buf_append(&pt, "x", 1), AT_OK);
    bool closed = false;
    assert_int_equal(at_peer_open(b, AT_SPAN(rec, sizeof rec), &pt, &closed, &d), AT_E_BAD_FIELD);
    assert_false(closed);
    assert_int_equal(pt.len, 1);
    assert_int_equal(pt.p[1], 0); /* the opened bytes were wiped */
    assert_false(at_peer_established(b));
    at_buf_cleanup(&pt);
    at_peer_free(b);
}

/* The verifier variant's hook (at_peer_prover), with a stand-in prover:
 * proofs replace documents, the responder proves first without knowing
 * the peer, the initiator proves knowing it, the responder records its
 * acceptance once; a refused check leaves no key on either side. */
typedef struct {
    const char *name;
    int proved_without_peer, proved_with_peer, accepted;
    at_err refuse_with;
} fake_prover;

static at_err fake_prove(void *ctx, const uint8_t th[32], const json_t *peer, at_buf *out, at_diag *d)
{
    fake_prover *f = ctx;
    (void)d;
    if (peer)
        f->proved_with_peer++;
    else
        f->proved_without_peer++;
    at_err rc = at_buf_append(out, f->name, strlen(f->name) + 1);
    return rc == AT_OK ? at_buf_append(out, th, 32) : rc;
}

static at_err fake_check(void *ctx, at_span proof, const uint8_t th[32], json_t **info, at_diag *d)
{
    fake_prover *f = ctx;
    if (f->refuse_with)
        return at_fail(d, f->refuse_with, "fake: refused");
    const uint8_t *z = memchr(proof.p, 0, proof.len);
    if (!z || proof.len - (size_t)(z + 1 - proof.p) != 32 || memcmp(z + 1, th, 32) != 0)
        return at_fail(d, AT_E_TRANSCRIPT_MISMATCH, "fake: other transcript");
    *info = json_pack("{s:s}", "session_id", (const char *)proof.p);
    return AT_OK;
}

static at_err fake_accepted(void *ctx, const uint8_t th[32], const json_t *peer, at_diag *d)
{
    fake_prover *f = ctx;
    (void)th;
    (void)d;
    assert_non_null(json_object_get(peer, "session_id"));
    f->accepted++;
    return AT_OK;
}

static void prover_hook(void **state)
{
    (void)state;
    for (int refuse = 0; refuse < 2; refuse++) {
        fake_prover fa = {.name = "A"},
                    fb = {.name = "B", .refuse_with = refuse ? AT_E_POLICY_MISMATCH : AT_OK};
        at_peer_prover pa = {&fa, fake_prove, fake_check, fake_accepted};
        at_peer_prover pb = {&fb, fake_prove, fake_check, fake_accepted};
        at_peer_opts oa = {.role = AT_PEER_INITIATOR, .prover = &pa};
        at_peer_opts ob = {.role = AT_PEER_RESPONDER, .prover = &pb};
        at_peer *a = NULL, *b = NULL;
        at_diag d = {{0}};
        at_buf m1, m2, m3, m4, m5;
        at_buf_init(&m1);
        at_buf_init(&m2);
        at_buf_init(&m3);
        at_buf_init(&m4);
        at_buf_init(&m5);
        assert_int_equal(at_peer_new(&oa, &a, &d), AT_OK);
        assert_int_equal(at_peer_new(&ob, &b, &d), AT_OK);
        assert_int_equal(at_peer_start(a, &m1, &d), AT_OK);
        assert_int_equal(at_peer_handle(b, at_buf_span(&m1), &m2, &d), AT_OK);
        assert_int_equal(at_peer_handle(a, at_buf_span(&m2), &m3, &d), AT_OK);
        if (refuse) {
            assert_int_equal(at_peer_handle(b, at_buf_span(&m3), &m4, &d), AT_E_POLICY_MISMATCH);
            assert_false(at_peer_established(b));
            assert_null(at_peer_info_json(b));
            assert_int_equal(fb.accepted, 0);
        } else {
            assert_int_equal(at_peer_handle(b, at_buf_span(&m3), &m4, &d), AT_OK);
            assert_int_equal(at_peer_handle(a, at_buf_span(&m4), &m5, &d), AT_OK);
            assert_true(at_peer_established(a) && at_peer_established(b));
            uint8_t ca[AT_PEER_KEY_LEN], cb[AT_PEER_KEY_LEN];
            assert_int_equal(at_peer_channel_binding(a, ca), AT_OK);
            assert_int_equal(at_peer_channel_binding(b, cb), AT_OK);
            assert_memory_equal(ca, cb, sizeof ca);
            json_t *ia = at_peer_info_json(a), *ib = at_peer_info_json(b);
            assert_string_equal(json_string_value(json_object_get(ia, "session_id")), "B");
            assert_string_equal(json_string_value(json_object_get(ib, "session_id")), "A");
            json_decref(ia);
            json_decref(ib);
            assert_int_equal(fb.proved_without_peer, 1);
            assert_int_equal(fa.proved_with_peer, 1);
            assert_int_equal(fb.accepted, 1);
            assert_int_equal(fa.accepted, 0);
        }
        at_peer_free(a);
        at_peer_free(b);
        at_buf_cleanup(&m1);
        at_buf_cleanup(&m2);
        at_buf_cleanup(&m3);
        at_buf_cleanup(&m4);
        at_buf_cleanup(&m5);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_schedule_known_answer),
        cmocka_unit_test(binding_peer_layout),
        cmocka_unit_test(success_and_records),
        cmocka_unit_test(peer_with_other_pcrs),
        cmocka_unit_test(foreign_and_expired_chain),
        cmocka_unit_test(replay),
        cmocka_unit_test(reflection),
        cmocka_unit_test(swapped_message),
        cmocka_unit_test(purpose_mismatch),
        cmocka_unit_test(transcript_binding),
        cmocka_unit_test(malformed_messages),
        cmocka_unit_test(close_with_bytes),
        cmocka_unit_test(prover_hook),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
