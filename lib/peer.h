/* peer: mutual attestation between two services, no verifier on the path.
 * A transport-agnostic state machine (whole messages in, whole messages
 * out, no sockets): a three-message handshake in which each side proves
 * what it runs with a fresh attestation document bound to the other's
 * nonce, its own ephemeral X25519 key and the transcript so far, then a key
 * confirmation and AES-256-GCM records with sequence numbers in the nonce.
 * The protocol is written down in docs/mutual-attestation.md.
 * Trust boundary: every received byte is attacker-supplied until the
 * peer's document has passed lib/evidence (chain to the pinned roots,
 * signature, nonce, freshness, the peer policy) and lib/binding. On any
 * refusal the state holds no key (wiped) and stays refused. */
#ifndef AT_PEER_H
#define AT_PEER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "at_limits.h"
#include "attester.h"
#include "buf.h"
#include "err.h"
#include "policy.h"
#include "x509v.h"

#define AT_PEER_VERSION 1
#define AT_PEER_NONCE_LEN 32
#define AT_PEER_KEY_LEN 32 /* X25519 public key, AES-256 key, exporter */
#define AT_PEER_IV_LEN 12
#define AT_PEER_TAG_LEN 16
/* Largest handshake message: a document plus the fixed fields. */
#define AT_PEER_MAX_MESSAGE (AT_MAX_DOCUMENT_BYTES + 256)
/* Largest record plaintext (16 KiB, as TLS). */
#define AT_PEER_MAX_RECORD_PLAINTEXT 16384
#define AT_PEER_MAX_RECORD (1 + AT_PEER_MAX_RECORD_PLAINTEXT + AT_PEER_TAG_LEN)

/* Message types (first byte of every message). */
enum {
    AT_PEER_MSG_HELLO = 1,    /* A -> B: version, nonce_a, pk_a */
    AT_PEER_MSG_RESPONSE = 2, /* B -> A: version, nonce_b, pk_b, document_b */
    AT_PEER_MSG_FINISH = 3,   /* A -> B: version, document_a */
    AT_PEER_MSG_CONFIRM = 4,  /* B -> A: version, confirm */
    AT_PEER_MSG_ALERT = 0x15, /* either: version, code length, code string */
    AT_PEER_MSG_DATA = 0x17,  /* record: sealed application bytes */
    AT_PEER_MSG_CLOSE = 0x18, /* record: sealed empty plaintext, last one */
};

typedef enum { AT_PEER_INITIATOR, AT_PEER_RESPONDER } at_peer_role;

/* Through the verifier (lib/peer_ear, docs/mutual-attestation.md "Through
 * the verifier"): a prover replaces this side's document with its proof
 * (EAR token and verifier-signed binding of the transcript) and checks the
 * peer's. Every callback returns a stable code; a refusal ends the
 * handshake like any other. */
typedef struct {
    void *ctx;
    /* This side's proof for transcript hash th, appended to out. peer is
     * NULL before the peer proved anything (the responder's RESPONSE),
     * else what it proved (from check). */
    at_err (*prove)(void *ctx, const uint8_t th[32], const json_t *peer, at_buf *out, at_diag *d) AT_MUST_USE;
    /* The peer's proof, checked against th; *info: what it proved (new
     * reference, an object with at least "session_id"). */
    at_err (*check)(void *ctx, at_span proof, const uint8_t th[32], json_t **info, at_diag *d) AT_MUST_USE;
    /* Responder, FINISH accepted: record it (the verifier audits it). A
     * failure refuses the handshake. May be NULL. */
    at_err (*accepted)(void *ctx, const uint8_t th[32], const json_t *peer, at_diag *d) AT_MUST_USE;
} at_peer_prover;

typedef struct {
    at_peer_role role;
    const at_peer_prover *prover; /* borrowed; set: the verifier variant, the
                                    * three fields below are then unused */
    at_attester *attester;        /* borrowed: makes this side's documents */
    at_trust *trust;              /* borrowed: roots the peer's chain must reach */
    const at_policy *peer_policy; /* borrowed, required: what the peer must run */
    int64_t at_ms;                /* 0: wall clock; else check the peer's document at this time */
} at_peer_opts;

/* The key schedule's output (docs/mutual-attestation.md "Key schedule"). */
typedef struct {
    uint8_t key_ab[AT_PEER_KEY_LEN], key_ba[AT_PEER_KEY_LEN];
    uint8_t iv_ab[AT_PEER_IV_LEN], iv_ba[AT_PEER_IV_LEN];
    uint8_t exporter[AT_PEER_KEY_LEN];
    uint8_t confirm[AT_PEER_KEY_LEN];
} at_peer_keys;

/* HKDF-SHA256: PRK = Extract(salt = transcript hash, IKM = X25519 secret),
 * then one Expand per output with its label. Exposed for the known-answer
 * test; *out written only on success (caller wipes it). */
at_err at_peer_key_schedule(at_span shared_secret, const uint8_t transcript_sha256[32], at_peer_keys *out,
                            at_diag *d) AT_MUST_USE;

typedef struct at_peer at_peer;

/* o is copied; what it points to must outlive the state. Caller frees. */
at_err at_peer_new(const at_peer_opts *o, at_peer **out, at_diag *d) AT_MUST_USE;
void at_peer_free(at_peer *p); /* wipes; accepts NULL */

/* Initiator only: the HELLO message, appended to out. */
at_err at_peer_start(at_peer *p, at_buf *out, at_diag *d) AT_MUST_USE;
/* Feed one whole received handshake message (without the stream's length
 * prefix). The reply, if any, is appended to out (RESPONSE, FINISH or
 * CONFIRM). On a refusal the code is returned, the state is wiped and
 * refused for good, and the caller should send at_peer_alert's message
 * unless at_peer_refused_by_peer says the peer refused first (an ALERT). */
at_err at_peer_handle(at_peer *p, at_span msg, at_buf *out, at_diag *d) AT_MUST_USE;
/* Keys are usable: the initiator got a matching CONFIRM, the responder
 * accepted FINISH and produced CONFIRM. */
bool at_peer_established(const at_peer *p);
bool at_peer_refused_by_peer(const at_peer *p);
/* The ALERT message for a refusal code, appended to out. */
at_err at_peer_alert(at_err code, at_buf *out) AT_MUST_USE;

/* What the peer proved (new reference, NULL before it was verified):
 * {"format", "module_id", "timestamp_ms", "pcrs", "policy_sha256"}. */
json_t *at_peer_info_json(const at_peer *p);
/* A value both sides agree on, unique to this channel (exporter). */
at_err at_peer_channel_binding(const at_peer *p, uint8_t out[AT_PEER_KEY_LEN]) AT_MUST_USE;

/* Records (established only). Seal pt (at most AT_PEER_MAX_RECORD_PLAINTEXT)
 * with the next send sequence number as a DATA record, or an empty CLOSE
 * record when close is set; appended to out. */
at_err at_peer_seal(at_peer *p, bool close, at_span pt, at_buf *out, at_diag *d) AT_MUST_USE;
/* Open one received record with the next receive sequence number;
 * plaintext appended to pt, *closed set on CLOSE (no record is accepted
 * after it). Tampering, reordering or replay: AT_E_DECRYPT_FAILED; an ALERT:
 * the peer's code. Any failure wipes the keys. */
at_err at_peer_open(at_peer *p, at_span rec, at_buf *pt, bool *closed, at_diag *d) AT_MUST_USE;

/* TESTS ONLY (fuzzing the record layer): a state established with the
 * given keys, without a handshake. Caller frees. */
at_err at_peer_new_established(at_peer_role role, const at_peer_keys *k, at_peer **out,
                               at_diag *d) AT_MUST_USE;

/* Stream framing: u32 big-endian length, then the message. */
at_err at_peer_frame(at_span msg, at_buf *out) AT_MUST_USE;

#endif
