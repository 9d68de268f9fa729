/* nitro: the payloads of Nitro attestation documents (nitro-enclave from the
 * NSM, nitro-tpm from NitroTPM), decoded from the untrusted COSE payload with
 * AWS's value rules; and the PCR extend operation both formats use. */
#ifndef AT_NITRO_H
#define AT_NITRO_H

#include <cbor.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "at_limits.h"

typedef enum {
    AT_FORMAT_AUTO = 0,
    AT_FORMAT_NITRO_ENCLAVE,
    AT_FORMAT_NITRO_TPM,
} at_format;

/* "nitro-enclave", "nitro-tpm", "auto". */
const char *at_format_name(at_format f);
/* Parse a name; false when unknown. */
bool at_format_parse(const char *name, at_format *out);

#define AT_SHA384_LEN 48

typedef struct {
    uint8_t index;
    uint8_t len;
    uint8_t value[AT_MAX_PCR_LEN];
} at_pcr;

typedef struct {
    at_format format;
    char module_id[AT_MAX_MODULE_ID + 1];
    uint64_t timestamp_ms;
    at_pcr pcrs[AT_MAX_PCRS]; /* sorted by index */
    size_t n_pcrs;
    at_span certificate;
    at_span cabundle[AT_MAX_CABUNDLE];
    size_t n_cabundle;
    /* Optional fields: has_x is false for CBOR null or absent; an empty
     * user_data or nonce is present with length 0 (an empty public_key is
     * refused: AWS's rules say 1..1024 bytes). */
    bool has_public_key, has_user_data, has_nonce;
    at_span public_key, user_data, nonce;
    bool map_indefinite; /* 0xbf ... 0xff payload map */
    cbor_item_t *root;   /* owns what the spans point into */
} at_nitro_payload;

/* Decode a payload. `expect` AT_FORMAT_AUTO detects the format from the PCR
 * field name (pcrs / nitrotpm_pcrs); otherwise a different format is
 * AT_E_FORMAT_MISMATCH. On success release *out with at_nitro_payload_cleanup. */
at_err at_nitro_payload_decode(at_span payload, at_format expect, at_nitro_payload *out,
                               at_diag *d) AT_MUST_USE;
void at_nitro_payload_cleanup(at_nitro_payload *p);

/* The PCR with this index, NULL when the document does not carry it. */
const at_pcr *at_nitro_pcr(const at_nitro_payload *p, unsigned index);

/* PCR extend, NSM and TPM alike: pcr = SHA-384(pcr || data). */
at_err at_pcr_extend(uint8_t pcr[AT_SHA384_LEN], at_span data) AT_MUST_USE;
/* SHA-384 of a file's contents, streamed. */
at_err at_sha384_file(const char *path, uint8_t out[AT_SHA384_LEN], at_diag *d) AT_MUST_USE;
/* Measure a file: pcr = SHA-384(pcr || SHA-384(file contents)). This is how
 * the simulator's --measure and the agent's --model-pcr record a file. */
at_err at_pcr_measure_file(uint8_t pcr[AT_SHA384_LEN], const char *path, at_diag *d) AT_MUST_USE;

#endif
