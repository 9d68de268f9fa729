/* evidence: one attestation document checked end to end: size, COSE_Sign1,
 * payload, certificate chain at the chosen time, ES384 signature, clock
 * skew, expected nonce, policy. Produces the JSON summary that
 * `attestctl verify` prints and `POST /v1/verify` returns (API.md). */
#ifndef AT_EVIDENCE_H
#define AT_EVIDENCE_H

#include <jansson.h>
#include <stdbool.h>

#include "cose.h"
#include "nitro.h"
#include "policy.h"
#include "x509v.h"

typedef enum {
    AT_TIME_NOW = 0,  /* the wall clock (at_now_ms) */
    AT_TIME_GIVEN,    /* opts.at_ms, checked like "now" (skew included) */
    AT_TIME_DOCUMENT, /* the document's own timestamp (audits) */
} at_time_mode;

typedef struct {
    at_format format; /* AT_FORMAT_AUTO detects */
    at_time_mode time_mode;
    int64_t at_ms;    /* for AT_TIME_GIVEN only */
    bool check_nonce; /* compare the document's nonce with `nonce` */
    at_span nonce;
    const at_policy *policy; /* NULL: no policy */
    int64_t clock_skew_ms;   /* 0: AT_CLOCK_SKEW_MS */
} at_verify_opts;

/* A report filled as far as checking got: decoded fields are present even
 * when a later check failed, so refusals can show what was seen. */
typedef struct {
    at_err result; /* AT_OK when every check passed */
    at_diag diag;
    bool decoded; /* payload fields below are valid */
    bool chain_checked;
    at_cose_sign1 cose;
    at_nitro_payload payload;
    at_chain_result chain;
    int64_t checked_at_ms;
    at_pcr_report pcr_report;
    const at_policy *policy;
} at_evidence;

/* Check doc with opts against trust. Always fills *ev (release with
 * at_evidence_cleanup) and returns ev->result. */
at_err at_evidence_verify(at_trust *trust, at_span doc, const at_verify_opts *opts,
                          at_evidence *ev) AT_MUST_USE;
void at_evidence_cleanup(at_evidence *ev);

/* The summary object (new reference): {"valid", "error", "format",
 * "module_id", "timestamp_ms", "digest", "pcrs", "nonce", "user_data",
 * "public_key", "certificate", "chain_length", ...}. */
json_t *at_evidence_json(const at_evidence *ev);

/* The document's certificates as it carries them, root (cabundle[0])
 * first, leaf last: [{"position": "root"|"intermediate"|"leaf", "bytes",
 * "sha256", "parsed", "subject", "issuer", "not_before", "not_after",
 * "not_before_s", "not_after_s"}] (new reference; empty when the payload
 * was not decoded). For display: what verified is the verdict's business. */
json_t *at_evidence_chain_json(const at_evidence *ev);

/* A payload's PCRs as {"index": "hex", ...} (new reference). */
json_t *at_nitro_pcrs_json(const at_nitro_payload *p);

#endif
