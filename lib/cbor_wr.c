/* cbor_wr: shortest-form CBOR heads and items into at_buf. No untrusted
 * input: callers pass their own values. */
#include "cbor_wr.h"

#include <string.h>

size_t at_cbor_head_len(uint64_t arg)
{
    if (arg < 24)
        return 1;
    if (arg <= 0xff)
        return 2;
    if (arg <= 0xffff)
        return 3;
    if (arg <= 0xffffffffULL)
        return 5;
    return 9;
}

void at_cbor_put_head(at_buf *b, int major, uint64_t arg)
{
    uint8_t m = (uint8_t)(major << 5);
    switch (at_cbor_head_len(arg)) {
    case 1:
        at_buf_u8(b, m | (uint8_t)arg);
        break;
    case 2:
        at_buf_u8(b, m | 24);
        at_buf_u8(b, (uint8_t)arg);
        break;
    case 3:
        at_buf_u8(b, m | 25);
        at_buf_u16(b, (uint16_t)arg);
        break;
    case 5:
        at_buf_u8(b, m | 26);
        at_buf_u32(b, (uint32_t)arg);
        break;
    default:
        at_buf_u8(b, m | 27);
        at_buf_u64(b, arg);
        break;
    }
}

void at_cbor_put_uint(at_buf *b, uint64_t v) { at_cbor_put_head(b, AT_CBOR_UINT, v); }

void at_cbor_put_int(at_buf *b, int64_t v)
{
    if (v >= 0)
        at_cbor_put_head(b, AT_CBOR_UINT, (uint64_t)v);
    else
        at_cbor_put_head(b, AT_CBOR_NEGINT, (uint64_t)(-(v + 1)));
}

void at_cbor_put_bytes(at_buf *b, at_span s)
{
    at_cbor_put_head(b, AT_CBOR_BYTES, s.len);
    at_buf_append(b, s.p, s.len);
}

void at_cbor_put_text(at_buf *b, const char *s)
{
    size_t n = strlen(s);
    at_cbor_put_head(b, AT_CBOR_TEXT, n);
    at_buf_append(b, s, n);
}

void at_cbor_put_null(at_buf *b) { at_buf_u8(b, 0xf6); }
void at_cbor_put_bool(at_buf *b, int v) { at_buf_u8(b, v ? 0xf5 : 0xf4); }
void at_cbor_put_indef_map(at_buf *b) { at_buf_u8(b, 0xbf); }
void at_cbor_put_indef_array(at_buf *b) { at_buf_u8(b, 0x9f); }
void at_cbor_put_break(at_buf *b) { at_buf_u8(b, 0xff); }
