/* peer_fd: lib/peer's messages over a connected stream socket, for
 * programs that run the handshake on a file descriptor (attestctl peer,
 * examples/peer_service): opening the socket by address, and one
 * length-prefixed message (at_peer_frame: 4-byte big-endian length, then
 * the bytes) written or read whole. */
#ifndef AT_PEER_FD_H
#define AT_PEER_FD_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

/* "unix:PATH" or "HOST:PORT" (HOST may be [v6]): a connected socket, or
 * with listening a bound, listening one (a stale UNIX socket file is
 * replaced). Returns the descriptor (the caller closes it), or -1 with d
 * naming the address and the reason (AT_E_BAD_REQUEST or AT_E_IO). */
int at_peer_fd_open(const char *addr, bool listening, at_diag *d);

/* One message, framed, written whole (EINTR retried, no SIGPIPE).
 * AT_E_IO when the peer is gone. */
at_err at_peer_fd_send(int fd, at_span msg, at_diag *d) AT_MUST_USE;

/* One framed message of at most max bytes into out (reset first).
 * AT_E_TRUNCATED when the peer closed (or a receive timeout struck) before
 * the whole message, AT_E_TOO_LARGE when it announces more than max. */
at_err at_peer_fd_recv(int fd, size_t max, at_buf *out, at_diag *d) AT_MUST_USE;

#endif
