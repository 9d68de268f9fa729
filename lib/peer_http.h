/* peer_http: HTTP over an established lib/peer channel, so that service A
 * can call service B's API. One exchange per message: a Binary HTTP
 * (RFC 9292, known-length) request, then its response, any number of
 * exchanges one after the other until a side closes the channel.
 * A message is a 4-byte big-endian length followed by that many bytes,
 * cut into DATA records of at most AT_PEER_MAX_RECORD_PLAINTEXT bytes; the
 * first record holds the length, every record is non-empty, and a record
 * never holds bytes of two messages (docs/mutual-attestation.md "HTTP over
 * the channel").
 * Trust boundary: record plaintext is authenticated (lib/peer) but its
 * content is the peer's choice: the announced length is checked against
 * the receiver's maximum before anything is buffered (too_large), a
 * record past the announced end is refused (bad_field), and a CLOSE or the
 * end of the stream inside a message is a truncation (truncated). */
#ifndef AT_PEER_HTTP_H
#define AT_PEER_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "at_limits.h"
#include "buf.h"
#include "err.h"
#include "peer.h"

/* The largest message either side sends or accepts: the bound of a whole
 * OHTTP message (8 MiB), so a request that fits attest's other HTTP paths
 * fits this one. */
#define AT_PEER_HTTP_MAX_MESSAGE AT_MAX_OHTTP_MESSAGE
#define AT_PEER_HTTP_LEN_BYTES 4

/* Seal msg (1..AT_PEER_HTTP_MAX_MESSAGE bytes) as DATA records, each
 * stream-framed (at_peer_frame) and appended to out. AT_E_TOO_LARGE (or
 * AT_E_BAD_FIELD for an empty msg) before anything is sealed. */
at_err at_peer_http_seal(at_peer *p, at_span msg, at_buf *out, at_diag *d) AT_MUST_USE;

/* Reassembly of received messages from record plaintexts. */
typedef struct {
    size_t max;  /* largest message accepted */
    size_t want; /* announced length of the message being received */
    bool inside; /* a message has begun and is not whole yet */
    bool failed; /* sticky: a refused record ends the channel */
    at_buf msg;  /* the message so far; whole when feed said done */
} at_peer_http_rx;

/* max: at most AT_PEER_HTTP_MAX_MESSAGE (larger is clamped). */
void at_peer_http_rx_init(at_peer_http_rx *rx, size_t max);
void at_peer_http_rx_cleanup(at_peer_http_rx *rx); /* wipes */
/* One DATA record's plaintext. *done: rx->msg holds a whole message (the
 * next feed starts the next one). Errors are sticky. */
at_err at_peer_http_rx_feed(at_peer_http_rx *rx, at_span pt, bool *done, at_diag *d) AT_MUST_USE;
/* The channel ended (the peer's CLOSE): AT_OK between messages, else
 * AT_E_TRUNCATED. */
at_err at_peer_http_rx_end(const at_peer_http_rx *rx, at_diag *d) AT_MUST_USE;

/* Over a stream socket (lib/peer_fd): seal msg and write its records. */
at_err at_peer_http_send(int fd, at_peer *p, at_span msg, at_diag *d) AT_MUST_USE;
/* Read records until rx->msg holds a whole message (*closed false) or the
 * peer closed the channel between messages (*closed true). A refused
 * record returns its code (the caller tells the peer with an alert); the
 * end of the stream or a CLOSE inside a message: AT_E_TRUNCATED. */
at_err at_peer_http_recv(int fd, at_peer *p, at_peer_http_rx *rx, bool *closed, at_diag *d) AT_MUST_USE;

#endif
