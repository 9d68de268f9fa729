/* cbor_rd: the gate between attacker-supplied CBOR and libcbor.
 * libcbor trusts its input in ways we cannot (read from its source, each
 * pinned by a test in tests/unit/test_cbor_rd.c): cbor_load stops after the
 * first item, so trailing bytes would pass; it preallocates arrays and maps
 * from the declared count; it keeps duplicate map keys; it recurses up to
 * 2048 levels; version 0.8 fails on inline tags 6..20 (tag 18 among them).
 * at_cbor_decode() first walks the bytes with a bounded reader
 * (well-formedness, depth, item count, declared counts vs bytes left, no
 * indefinite-length strings, no tags, exactly one item), then lets libcbor
 * build the tree, then refuses duplicate map keys. */
#ifndef AT_CBOR_RD_H
#define AT_CBOR_RD_H

#include <cbor.h>
#include <stdbool.h>

#include "buf.h"
#include "err.h"

typedef struct {
    unsigned max_depth; /* nesting of arrays/maps/tags; top level is depth 1 */
    size_t max_items;   /* data items in total */
} at_cbor_limits;

/* Walk one item at the start of `in` without building anything. On success
 * *item_len is its encoded length (trailing bytes are the caller's call).
 * AT_E_MALFORMED_CBOR or AT_E_TOO_LARGE with detail otherwise. */
at_err at_cbor_scan(at_span in, const at_cbor_limits *lim, size_t *item_len, at_diag *d) AT_MUST_USE;

/* Decode `in`, which must hold exactly one well-formed item within `lim`,
 * with no duplicate keys in any map. On success the caller owns *out and
 * releases it with cbor_decref(). */
at_err at_cbor_decode(at_span in, const at_cbor_limits *lim, cbor_item_t **out, at_diag *d) AT_MUST_USE;

/* Typed accessors over a decoded tree. All borrow; none allocate. */
/* Value for a text key in a map, NULL when absent. */
cbor_item_t *at_cbor_map_get_text(const cbor_item_t *map, const char *key);
/* Value for an integer key (negative allowed) in a map, NULL when absent. */
cbor_item_t *at_cbor_map_get_int(const cbor_item_t *map, int64_t key);
/* Integer value of a uint/negint item; false when not an integer or out of
 * int64 range. */
bool at_cbor_get_int64(const cbor_item_t *it, int64_t *v);
/* Contents of a definite byte string (empty span for length 0). */
bool at_cbor_get_bytes(const cbor_item_t *it, at_span *out);
/* Contents of a definite text string (not NUL-terminated). */
bool at_cbor_get_text(const cbor_item_t *it, at_span *out);
bool at_cbor_is_null(const cbor_item_t *it);
/* Name of an item's type for messages ("map", "byte string", ...). */
const char *at_cbor_type_name(const cbor_item_t *it);

#endif
