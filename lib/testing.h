/* testing: hooks for tests and fuzz targets only, never for real traffic:
 * fixed ephemeral keys and nonces reproduce published vectors, and a jumped
 * sequence number reaches overflow. Not installed; the binaries do not
 * include it (lib/ohttp_client.c uses the ephemeral-key setup internally,
 * only for at_ohttp_client_new_det). */
#ifndef AT_TESTING_H
#define AT_TESTING_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "hpke.h"
#include "ohttp_client.h"
#include "ohttp_server.h"

/* ---- hpke ---- */
/* TESTS ONLY: SetupS with the ephemeral key DeriveKeyPair(ikmE) instead of a
 * random one, to reproduce published vectors. Never use it for real
 * traffic: a repeated ikmE repeats every key and nonce. */
at_err at_hpke_setup_sender_det(at_hpke_suite suite, const at_hpke_params *params, const at_hpke_key *pkR,
                                at_span ikmE, uint8_t enc[AT_HPKE_NENC], at_hpke_ctx **out,
                                at_diag *d) AT_MUST_USE;
/* TESTS ONLY: SetupS with a given ephemeral key pair skE (RFC 9458's example
 * publishes skE, not ikmE). Always runs the built-in implementation. */
at_err at_hpke_setup_sender_eph(at_hpke_suite suite, const at_hpke_params *params, const at_hpke_key *pkR,
                                const at_hpke_key *skE, uint8_t enc[AT_HPKE_NENC], at_hpke_ctx **out,
                                at_diag *d) AT_MUST_USE;
/* TESTS ONLY: jump the sequence number (to test overflow refusal). */
void at_hpke_ctx_set_seq_for_tests(at_hpke_ctx *c, uint64_t seq);

/* ---- ohttp ---- */
/* TESTS ONLY: a fixed ephemeral private key skE (RFC 9458 Appendix A and
 * the chunked draft's example publish it). Never for real traffic. */
at_err at_ohttp_client_new_det(const at_ohttp_key_config *kc, const at_hpke_suite *suite, bool chunked,
                               at_span skE, at_ohttp_client **out, at_diag *d) AT_MUST_USE;
/* TESTS ONLY: use this response nonce (max(Nn, Nk) bytes) instead of a
 * random one; before the response's first byte. */
at_err at_ohttp_server_set_nonce_for_tests(at_ohttp_server *s, at_span nonce, at_diag *d) AT_MUST_USE;

#endif
