/* pcrimport: the measurement files build tools print (nitro-cli
 * build-enclave / describe-eif, nitro-tpm-pcr-compute, KIWI-NG
 * pcr_measurements.json, Nix tpm_pcr.json, or a policy document) merged
 * into one policy document. Shared by `attestctl policy import` and the
 * verifier's import preview (POST /v1/policies/{name}/import). The files
 * are the caller's input, parsed strictly: unknown keys, missing
 * registers, mixed formats are refused naming the file. */
#ifndef AT_PCRIMPORT_H
#define AT_PCRIMPORT_H

#include <jansson.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define AT_PCRIMPORT_MAX_FILE (1024 * 1024) /* a measurements file is a few hundred bytes */
#define AT_PCRIMPORT_MAX_FILES 16

typedef struct {
    const char *format;      /* "nitro-enclave" | "nitro-tpm" | NULL (from the files) */
    long session_ttl_s;      /* 0: absent */
    long max_document_age_s; /* 0: absent */
    uint32_t allow_missing;  /* bit N: PCR N may be absent from a tool's file */
} at_pcrimport_opts;

/* Merge files[0..n) (JSON text; names[i] names file i in messages and in
 * provenance.files): each file's Measurements become allowed values (several
 * files = several values, for rolling upgrades). *out (new reference) is a
 * policy document that at_policy_from_json accepted; linting is the
 * caller's. Errors: AT_E_BAD_REQUEST naming the file and what was expected;
 * AT_E_TOO_LARGE over the limits above. */
at_err at_pcrimport(const at_span *files, const char *const *names, size_t n, const at_pcrimport_opts *o,
                    json_t **out, at_diag *d) AT_MUST_USE;

#endif
