/* sealfile: model weights encrypted at rest, streamed. The owner seals a
 * model file with a fresh 32-byte data key (`attestctl model seal`), stores
 * the key on the verifier bound to a policy (`attestctl secret put`), ships
 * the sealed file anywhere; only an environment the policy admits gets the
 * key released and can open the file (attest-agent --model-sealed).
 *
 * Format: header "ATSEAL01" || chunk_size (u32 BE) || nonce_prefix (8);
 * then chunks of chunk_size plaintext bytes (the last may be shorter, even
 * empty), each AES-256-GCM under the data key with nonce = nonce_prefix ||
 * index (u32 BE) and AAD = header || index (u32 BE) || final (u8), tag
 * appended. A missing, reordered, truncated or extended chunk fails to
 * open (AT_E_DECRYPT_FAILED / AT_E_TRUNCATED). The sealed file is
 * attacker-reachable input: every length is bounded. */
#ifndef AT_SEALFILE_H
#define AT_SEALFILE_H

#include <stdint.h>

#include "buf.h"
#include "err.h"

#define AT_SEALFILE_KEY_LEN 32
#define AT_SEALFILE_CHUNK (1u << 20)

/* Seal in_path to out_path (created 0600) under key. */
at_err at_sealfile_seal(const char *in_path, const char *out_path,
                        const uint8_t key[AT_SEALFILE_KEY_LEN], at_diag *d) AT_MUST_USE;
/* Open in_path into out_path (created 0600, removed again on any failure:
 * never a partial plaintext). */
at_err at_sealfile_open(const char *in_path, const char *out_path,
                        const uint8_t key[AT_SEALFILE_KEY_LEN], at_diag *d) AT_MUST_USE;

#endif
