/* sim: plays the Nitro hypervisor for tests and demos. A test PKI in AWS's
 * exact shape (P-384 root -> regional -> zonal -> instance CA -> leaf,
 * cabundle root first, AWS-like lifetimes so expiry paths are real) kept in
 * a directory, and signed attestation documents in either format. A
 * verifier trusts the simulator root only when told to explicitly. */
#ifndef AT_SIM_H
#define AT_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "nitro.h"

/* Levels of the chain, root first, as they appear in the cabundle. */
enum { AT_SIM_ROOT, AT_SIM_REGIONAL, AT_SIM_ZONAL, AT_SIM_INSTANCE_CA, AT_SIM_LEAF, AT_SIM_LEVELS };

/* Lifetimes (seconds), modelled on what genuine chains show. */
#define AT_SIM_LIFETIME_ROOT (30LL * 365 * 24 * 3600)
#define AT_SIM_LIFETIME_REGIONAL (30LL * 24 * 3600)
#define AT_SIM_LIFETIME_ZONAL (7LL * 24 * 3600)
#define AT_SIM_LIFETIME_INSTANCE_CA (24LL * 3600)
#define AT_SIM_LIFETIME_LEAF (3LL * 3600)

typedef struct at_sim_pki at_sim_pki;

/* Create a new PKI in dir (created if missing, mode 0700; keys 0600),
 * valid around `now_s`. Overwrites an existing one. */
at_err at_sim_pki_init(const char *dir, int64_t now_s, at_diag *d) AT_MUST_USE;
/* Load a PKI made by at_sim_pki_init. Caller frees with at_sim_pki_free. */
at_err at_sim_pki_load(const char *dir, at_sim_pki **out, at_diag *d) AT_MUST_USE;
void at_sim_pki_free(at_sim_pki *pki);
/* Instance id (i-<17 hex>) of the simulated host. */
const char *at_sim_instance_id(const at_sim_pki *pki);

typedef struct {
    at_format format;          /* AUTO means nitro-enclave */
    int64_t timestamp_ms;      /* 0 = now */
    bool pcr_set[AT_MAX_PCRS]; /* explicit PCR values */
    uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN];
    bool has_nonce, has_user_data, has_public_key;
    at_span nonce, user_data, public_key;
    bool new_leaf;         /* mint a fresh leaf starting at the timestamp */
    bool definite_map;     /* older documents: 0xa9 map; default 0xbf ... 0xff */
    bool tagged;           /* wrap in CBOR tag 18 */
    const char *module_id; /* NULL = derived from the instance id */
} at_sim_doc_opts;

/* The PCR values a simulated document carries by default: nitro-enclave
 * 0..15, nitro-tpm 0..23 (17..22 all 0xff). PCR0-2 (enclave) or 4/7 (tpm)
 * are derived from `seed` so they are never all zero. */
void at_sim_default_pcrs(at_format f, at_span seed, bool set[AT_MAX_PCRS],
                         uint8_t pcr[AT_MAX_PCRS][AT_SHA384_LEN]);

/* Mint a signed document into out (appended). Renews any certificate of
 * the chain that does not cover the timestamp (with 15 min to spare), as
 * the NSM does, and saves the renewed ones in the PKI directory. */
at_err at_sim_doc(at_sim_pki *pki, const at_sim_doc_opts *o, at_buf *out, at_diag *d) AT_MUST_USE;

/* Build a document from explicit parts, for tests that need malformed or
 * foreign documents: payload bytes signed with the leaf key of pki. */
at_err at_sim_sign_payload(at_sim_pki *pki, at_span payload, bool tagged, at_buf *out,
                           at_diag *d) AT_MUST_USE;
/* DER of a level's certificate (borrowed, valid until the next at_sim_doc). */
at_span at_sim_cert_der(const at_sim_pki *pki, int level);

#endif
