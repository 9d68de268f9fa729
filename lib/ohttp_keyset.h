/* ohttp_keyset: the server's Oblivious HTTP private keys by key id, and
 * their key file. The file is read strictly (attacker-influenced text) and
 * written mode 0600; private keys stay in at_hpke_key and are wiped. */
#ifndef AT_OHTTP_KEYSET_H
#define AT_OHTTP_KEYSET_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "hpke.h"
#include "ohttp_config.h"

/* Several X25519 keys by key id. Key file (text, secret, written mode 0600):
 *
 *   # comment lines and blank lines are ignored
 *   attest-ohttp-keys v1
 *   key <key_id 0..255> x25519 <private key, 64 hex> <kdf>:<aead>[,<kdf>:<aead>]...
 *
 * kdf and aead are 4 hex digits each, e.g. 0001:0001,0001:0002,0001:0003. */
typedef struct at_ohttp_keyset at_ohttp_keyset;

/* An empty set. Caller frees with at_ohttp_keyset_free. */
at_err at_ohttp_keyset_new(at_ohttp_keyset **out, at_diag *d) AT_MUST_USE;
/* A fresh key under key_id offering HKDF-SHA256 with AES-128-GCM,
 * AES-256-GCM and ChaCha20-Poly1305. AT_E_CONFLICT when the id is taken. */
at_err at_ohttp_keyset_generate(at_ohttp_keyset *ks, uint8_t key_id, at_diag *d) AT_MUST_USE;
/* A key from its serialized private key, offering syms (NULL/0 = the
 * default three). The secret is copied into the key. */
at_err at_ohttp_keyset_add_private(at_ohttp_keyset *ks, uint8_t key_id, at_span sk, const at_ohttp_sym *syms,
                                   size_t nsym, at_diag *d) AT_MUST_USE;
size_t at_ohttp_keyset_count(const at_ohttp_keyset *ks);
/* Key id of the i-th key (insertion order). */
uint8_t at_ohttp_keyset_id(const at_ohttp_keyset *ks, size_t i);
/* The configuration of one key (AT_E_UNKNOWN_KEY_ID when absent). */
at_err at_ohttp_keyset_config(const at_ohttp_keyset *ks, uint8_t key_id, at_ohttp_key_config *out,
                              at_diag *d) AT_MUST_USE;
/* Every key's configuration in application/ohttp-keys form, appended. */
at_err at_ohttp_keyset_keys(const at_ohttp_keyset *ks, at_buf *out, at_diag *d) AT_MUST_USE;
/* Key file text. parse reads attacker-influenced text strictly; serialize
 * appends to out, which should be a secret buffer. */
at_err at_ohttp_keyset_parse(at_span text, at_ohttp_keyset **out, at_diag *d) AT_MUST_USE;
at_err at_ohttp_keyset_serialize(const at_ohttp_keyset *ks, at_buf *out, at_diag *d) AT_MUST_USE;
/* Files: load refuses files over AT_MAX_OHTTP_KEYFILE; save creates or
 * replaces path with mode 0600 (never following a symlink). */
at_err at_ohttp_keyset_load(const char *path, at_ohttp_keyset **out, at_diag *d) AT_MUST_USE;
at_err at_ohttp_keyset_save(const at_ohttp_keyset *ks, const char *path, at_diag *d) AT_MUST_USE;
void at_ohttp_keyset_free(at_ohttp_keyset *ks); /* wipes; accepts NULL */
/* The HPKE key pair under key_id (borrowed from the set), NULL when absent.
 * For values sealed to the attested key outside OHTTP (session keys,
 * released secrets: lib/seal.h). */
const at_hpke_key *at_ohttp_keyset_key(const at_ohttp_keyset *ks, uint8_t key_id);
/* True when key_id is in the set and offers suite (its KEM and one of its
 * (KDF, AEAD) pairs). */
bool at_ohttp_keyset_offers(const at_ohttp_keyset *ks, uint8_t key_id, at_hpke_suite suite);

#endif
