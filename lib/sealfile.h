/* sealfile: model weights encrypted at rest, streamed. The owner seals a
 * model file with a fresh 32-byte data key (`attestctl model seal`), stores
 * the key on the verifier bound to a policy, ships the sealed file
 * anywhere; only an environment the policy admits gets the key released and
 * can open the file (attest-agent --model-sealed).
 *
 * Format 2 (written): header = "ATSEAL02" || chunk_size (u32 BE) ||
 * nonce_prefix (8) || key_id (16) || secret_len (u8) || secret ||
 * policy_len (u8) || policy. Format 1 (still read): "ATSEAL01" ||
 * chunk_size || nonce_prefix. Then chunks of chunk_size plaintext bytes
 * (the last may be shorter, even empty), each AES-256-GCM under the data
 * key with nonce = nonce_prefix || index (u32 BE) and AAD = the whole
 * header || index (u32 BE) || final (u8), tag appended: the header is
 * authenticated by every chunk, and a missing, reordered, truncated,
 * extended or spliced chunk fails to open (AT_E_DECRYPT_FAILED /
 * AT_E_TRUNCATED). key_id = HMAC-SHA256(key, "attest sealfile key id")[0..16]
 * names the key without revealing it. The sealed file is attacker-reachable
 * input: every length is bounded. Chunks are sealed and opened on
 * several threads; reading, writing, the plaintext's SHA-256 and progress
 * stay in chunk order on the caller's thread. */
#ifndef AT_SEALFILE_H
#define AT_SEALFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define AT_SEALFILE_KEY_LEN 32
#define AT_SEALFILE_KEY_ID_LEN 16
#define AT_SEALFILE_CHUNK (1u << 20)
#define AT_SEALFILE_VERSION 2
/* Secret and policy names as the verifier accepts them. */
#define AT_SEALFILE_NAME_MAX 128
/* Threads that seal or open chunks at once (the caller's included). */
#define AT_SEALFILE_THREADS_MAX 8

/* What a sealed file's header says. Authenticated only once the file
 * opened with the key; plaintext_bytes is derived from the file length. */
typedef struct {
    unsigned version;
    uint32_t chunk_size;
    bool has_key_id; /* version >= 2 */
    uint8_t key_id[AT_SEALFILE_KEY_ID_LEN];
    char secret[AT_SEALFILE_NAME_MAX + 1]; /* "" when not recorded */
    char policy[AT_SEALFILE_NAME_MAX + 1];
    uint64_t sealed_bytes, plaintext_bytes;
} at_sealfile_header;

/* Called after each chunk with the input bytes consumed so far and the
 * input's size (0 when unknown). */
typedef void (*at_sealfile_progress_fn)(void *arg, uint64_t done, uint64_t total);

typedef struct {
    const char *secret, *policy;      /* seal: recorded in the header; NULL = none */
    at_sealfile_progress_fn progress; /* called on the caller's thread, in order */
    void *progress_arg;
    /* Chunks are independent: they are sealed or opened on this many
     * threads (the caller's included; 0 = one per CPU this process may run
     * on, at most AT_SEALFILE_THREADS_MAX), with 2 * threads + 2 chunks in
     * memory. The output is the same for any count. */
    unsigned threads;
} at_sealfile_opts;

typedef struct {
    uint64_t plaintext_bytes;
    uint8_t sha256[32]; /* of the plaintext */
    at_sealfile_header header;
} at_sealfile_result;

/* The key id recorded for key. */
void at_sealfile_key_id(const uint8_t key[AT_SEALFILE_KEY_LEN], uint8_t id[AT_SEALFILE_KEY_ID_LEN]);

/* Stream in_fd into out_fd (both positioned at the start). o and res may be
 * NULL. out_fd holds garbage on failure: write it through at_outfile. */
at_err at_sealfile_seal_fd(int in_fd, int out_fd, const uint8_t key[AT_SEALFILE_KEY_LEN],
                           const at_sealfile_opts *o, at_sealfile_result *res, at_diag *d) AT_MUST_USE;
at_err at_sealfile_open_fd(int in_fd, int out_fd, const uint8_t key[AT_SEALFILE_KEY_LEN],
                           const at_sealfile_opts *o, at_sealfile_result *res, at_diag *d) AT_MUST_USE;
/* Parse the header of a sealed file (no key needed, nothing verified). */
at_err at_sealfile_inspect(const char *path, at_sealfile_header *h, at_diag *d) AT_MUST_USE;

/* The sealed file at path records secret name `secret` (or records none,
 * as ATSEAL01 files and offline seals without --secret): AT_OK. Another
 * name: AT_E_SECRET_NAME_MISMATCH naming both, so an agent never asks for
 * (or opens with) the key of another model. Unreadable header: its code. */
at_err at_sealfile_check_secret(const char *path, const char *secret, at_diag *d) AT_MUST_USE;

/* Seal in_path to out_path (0600) under key. The output appears whole or
 * not at all and replaces an existing file; an output that is the input
 * file (by device and inode) is refused with AT_E_CONFLICT. */
at_err at_sealfile_seal(const char *in_path, const char *out_path, const uint8_t key[AT_SEALFILE_KEY_LEN],
                        at_diag *d) AT_MUST_USE;
/* Open in_path into out_path, same rules: never a partial plaintext at
 * out_path, the previous file stays until the new one is complete. */
at_err at_sealfile_open(const char *in_path, const char *out_path, const uint8_t key[AT_SEALFILE_KEY_LEN],
                        at_diag *d) AT_MUST_USE;

#endif
