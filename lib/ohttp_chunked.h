/* ohttp_chunked: chunk framing of Chunked Oblivious HTTP
 * (draft-ietf-ohai-chunked-ohttp-08 §4), shared by both directions and
 * both ends: a bounded receive buffer that cuts attacker-supplied bytes
 * into chunks, and the sender's splitting. Not part of the public API. */
#ifndef AT_OHTTP_CHUNKED_H
#define AT_OHTTP_CHUNKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/* Receive state; at_ohttp_rx_init before use, at_ohttp_rx_cleanup after. */
typedef struct {
    at_buf in;
    size_t off;
    int state;
    uint64_t body_len;
    uint64_t chunks;
} at_ohttp_chunk_rx;

/* Opens one chunk's ciphertext into out. */
typedef at_err (*at_ohttp_open_fn)(void *self, bool final, at_span ct, at_buf *out, at_diag *d);
/* Seals one chunk's plaintext into out. */
typedef at_err (*at_ohttp_seal_fn)(void *self, bool final, at_span pt, at_buf *out, at_diag *d);

void at_ohttp_rx_init(at_ohttp_chunk_rx *rx);
/* Feed stream bytes; every completed non-final chunk is opened by fn. */
at_err at_ohttp_rx_feed(at_ohttp_chunk_rx *rx, at_span in, at_ohttp_open_fn fn, void *self, at_buf *out,
                        at_diag *d) AT_MUST_USE;
/* End of stream: opens the final chunk; AT_E_TRUNCATED when it never came. */
at_err at_ohttp_rx_finish(at_ohttp_chunk_rx *rx, at_ohttp_open_fn fn, void *self, at_buf *out,
                          at_diag *d) AT_MUST_USE;
void at_ohttp_rx_cleanup(at_ohttp_chunk_rx *rx);
/* Seal a piece as one or more chunks; the last one final when asked. */
at_err at_ohttp_tx_chunks(bool *ended, at_span piece, bool final, at_ohttp_seal_fn fn, void *self,
                          at_buf *out, at_diag *d) AT_MUST_USE;
/* Chunk misuse, checked before anything is written. */
at_err at_ohttp_tx_usage(bool chunked, bool ended, at_span piece, bool final, at_diag *d) AT_MUST_USE;
at_err at_ohttp_rx_usage(bool chunked, bool started, at_diag *d) AT_MUST_USE;

#endif
