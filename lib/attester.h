/* attester: where attestation documents come from. The NSM (/dev/nsm inside
 * a Nitro Enclave), NitroTPM (AWS's nitro-tpm-attest tool on an EC2 instance
 * booted from an attestable AMI), or the simulator. Each takes the caller's
 * nonce, user data and public key and returns the signed document bytes.
 * Trust boundary: the NSM's response is parsed as untrusted CBOR (its
 * signature is what the verifier checks, not this code). */
#ifndef AT_ATTESTER_H
#define AT_ATTESTER_H

#include "buf.h"
#include "err.h"
#include "nitro.h"

typedef enum { AT_ATTESTER_SIM, AT_ATTESTER_NSM, AT_ATTESTER_NITRO_TPM } at_attester_kind;

/* "sim", "nsm", "nitro-tpm". */
bool at_attester_parse(const char *name, at_attester_kind *out);

typedef struct at_attester at_attester;

typedef struct {
    const char *sim_pki;     /* sim: the PKI directory */
    at_format sim_format;    /* sim: nitro-enclave (default) or nitro-tpm */
    const bool *sim_pcr_set; /* sim: explicit PCRs (AT_MAX_PCRS entries) or NULL */
    const uint8_t (*sim_pcr)[AT_SHA384_LEN];
    const char *sim_module_id; /* sim: NULL = derived */
    const char *nsm_device;    /* nsm: default /dev/nsm */
    const char *tpm_tool;      /* nitro-tpm: default "nitro-tpm-attest" on PATH,
                                   or $NITRO_TPM_ATTEST */
} at_attester_opts;

/* Caller frees with at_attester_close. */
at_err at_attester_open(at_attester_kind kind, const at_attester_opts *o, at_attester **out,
                        at_diag *d) AT_MUST_USE;
void at_attester_close(at_attester *a);

/* A fresh document carrying the given fields (empty span = absent/null);
 * appended to out. */
at_err at_attester_document(at_attester *a, at_span nonce, at_span user_data, at_span public_key, at_buf *out,
                            at_diag *d) AT_MUST_USE;

/* Extend PCR `index` with `data` (NSM: the ExtendPCR request; sim: in the
 * attester's own PCR set; nitro-tpm: AT_E_UNAVAILABLE, extend with the TPM
 * tools before starting). */
at_err at_attester_extend_pcr(at_attester *a, unsigned index, at_span data, at_diag *d) AT_MUST_USE;

/* The NSM wire format, exposed for tests: the CBOR request for an
 * Attestation, and the document out of the NSM's response. */
at_err at_nsm_attestation_request(at_span nonce, at_span user_data, at_span public_key,
                                  at_buf *out) AT_MUST_USE;
at_err at_nsm_parse_attestation_response(at_span resp, at_span *document, at_diag *d) AT_MUST_USE;

#endif
