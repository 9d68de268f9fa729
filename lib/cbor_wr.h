/* cbor_wr: a minimal deterministic CBOR writer into an at_buf (RFC 8949
 * preferred serialisation: shortest argument). Used to build Sig_structure,
 * simulator documents and test mutations byte for byte. Errors are sticky
 * in the at_buf. */
#ifndef AT_CBOR_WR_H
#define AT_CBOR_WR_H

#include <stdint.h>

#include "buf.h"

enum {
    AT_CBOR_UINT = 0,
    AT_CBOR_NEGINT = 1,
    AT_CBOR_BYTES = 2,
    AT_CBOR_TEXT = 3,
    AT_CBOR_ARRAY = 4,
    AT_CBOR_MAP = 5,
    AT_CBOR_TAG = 6,
    AT_CBOR_SIMPLE = 7,
};

/* Head of an item: major type and argument, shortest form. */
void at_cbor_put_head(at_buf *b, int major, uint64_t arg);
void at_cbor_put_uint(at_buf *b, uint64_t v);
void at_cbor_put_int(at_buf *b, int64_t v);
void at_cbor_put_bytes(at_buf *b, at_span s);
void at_cbor_put_text(at_buf *b, const char *s);
void at_cbor_put_null(at_buf *b);
void at_cbor_put_bool(at_buf *b, int v);
/* Indefinite-length map/array start (0xbf / 0x9f) and break (0xff). */
void at_cbor_put_indef_map(at_buf *b);
void at_cbor_put_indef_array(at_buf *b);
void at_cbor_put_break(at_buf *b);

/* Length of the head at_cbor_put_head would write for this argument. */
size_t at_cbor_head_len(uint64_t arg);

#endif
