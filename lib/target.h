/* target: which request targets attest forwards to a model server. Only
 * the OpenAI API's own paths (/v1/...) may cross a gateway or an agent:
 * nothing a dot segment, an escaped dot or an escaped '?' could turn into
 * another path of the upstream (its /metrics, admin routes) after a
 * client library normalises it. RFC 3986 section 3.3 (path), 3.4 (query),
 * 5.2.4 (dot segments). */
#ifndef AT_TARGET_H
#define AT_TARGET_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* The path may carry a query (target = path ["?" query]) when
 * with_query; else a '?' anywhere is refused (a decoded path in which
 * '?' can only have come from %3F). The path must start with "/v1/"
 * (or be "/v1"), and have no "." or ".." segment, literal or
 * percent-encoded (%2e, any case), no backslash, '#', space, control
 * byte or byte >= 0x7f. Returns AT_OK, or AT_E_BAD_REQUEST naming the
 * problem and quoting at most 64 bytes of the target. */
at_err at_target_check(const char *target, bool with_query, at_diag *d) AT_MUST_USE;
/* The same checks for any path of a local API (lib/peer_http's
 * forwarding: the peer may call every route, but only as written): the
 * target must start with '/', may carry a query, and has no dot segment
 * or byte the checks above refuse. */
at_err at_target_check_any(const char *target, at_diag *d) AT_MUST_USE;
/* A header field never forwarded to an upstream (RFC 9110 section 7.6.1:
 * connection management and framing belong to each hop; also host,
 * content-length, expect and proxy credentials). name: any case. */
bool at_target_hop_by_hop(const char *name);

#endif
