/* cbor_rd: validates attacker-supplied CBOR before libcbor sees it, and
 * offers borrowed, typed accessors over the tree. */
#include "cbor_rd.h"

#include <string.h>

struct scan {
    at_reader r;
    const at_cbor_limits *lim;
    size_t items;
    at_diag *d;
};

/* The argument of a head; ai 31 (indefinite) is returned as *indef. */
static at_err read_head(struct scan *s, int *major, uint64_t *arg, bool *indef)
{
    size_t at = s->r.off;
    uint8_t ib;
    if (!at_reader_u8(&s->r, &ib))
        return at_fail(s->d, AT_E_MALFORMED_CBOR, "cbor: truncated at byte %zu", at);
    *major = ib >> 5;
    uint8_t ai = ib & 31;
    *indef = false;
    if (ai < 24) {
        *arg = ai;
        return AT_OK;
    }
    bool ok = true;
    switch (ai) {
    case 24: {
        uint8_t v;
        ok = at_reader_u8(&s->r, &v);
        *arg = v;
        break;
    }
    case 25: {
        uint16_t v;
        ok = at_reader_u16(&s->r, &v);
        *arg = v;
        break;
    }
    case 26: {
        uint32_t v;
        ok = at_reader_u32(&s->r, &v);
        *arg = v;
        break;
    }
    case 27:
        ok = at_reader_u64(&s->r, arg);
        break;
    case 31:
        *indef = true;
        *arg = 0;
        return AT_OK;
    default:
        return at_fail(s->d, AT_E_MALFORMED_CBOR, "cbor: reserved additional info %u at byte %zu", ai, at);
    }
    if (!ok)
        return at_fail(s->d, AT_E_MALFORMED_CBOR, "cbor: truncated argument at byte %zu", at);
    return AT_OK;
}

static bool at_break(const struct scan *s) { return s->r.off < s->r.len && s->r.p[s->r.off] == 0xff; }

static at_err scan_item(struct scan *s, unsigned depth)
{
    at_err rc;
    if (depth > s->lim->max_depth)
        return at_fail(s->d, AT_E_TOO_LARGE, "cbor: nesting deeper than %u at byte %zu", s->lim->max_depth,
                       s->r.off);
    if (++s->items > s->lim->max_items)
        return at_fail(s->d, AT_E_TOO_LARGE, "cbor: more than %zu items", s->lim->max_items);
    size_t at = s->r.off;
    int major = 0;
    uint64_t arg;
    bool indef;
    if ((rc = read_head(s, &major, &arg, &indef)) != AT_OK)
        return rc;
    switch (major) {
    case 0:
    case 1:
        if (indef)
            return at_fail(s->d, AT_E_MALFORMED_CBOR, "cbor: indefinite integer at byte %zu", at);
        return AT_OK;
    case 2:
    case 3:
        /* Indefinite-length strings never occur in Nitro documents, and
         * signatures must cover exact bytes: refuse them. */
        if (indef)
            return at_fail(s->d, AT_E_MALFORMED_CBOR,
                           "cbor: indefinite-length string at byte %zu (not accepted)", at);
        if (arg > at_reader_left(&s->r))
            return at_fail(s->d, AT_E_MALFORMED_CBOR,
                           "cbor: string at byte %zu declares %llu bytes, %zu left", at,
                           (unsigned long long)arg, at_reader_left(&s->r));
        if (!at_reader_skip(&s->r, (size_t)arg))
            return AT_E_MALFORMED_CBOR;
        return AT_OK;
    case 4:
    case 5: {
        bool is_map = major == 5;
        if (indef) {
            for (;;) {
                if (at_break(s)) {
                    if (!at_reader_skip(&s->r, 1))
                        return AT_E_MALFORMED_CBOR;
                    return AT_OK;
                }
                if (at_reader_at_end(&s->r))
                    return at_fail(s->d, AT_E_MALFORMED_CBOR, "cbor: indefinite %s at byte %zu has no break",
                                   is_map ? "map" : "array", at);
                if ((rc = scan_item(s, depth + 1)) != AT_OK)
                    return rc;
                if (is_map) {
                    if (at_break(s))
                        return at_fail(s->d, AT_E_MALFORMED_CBOR,
                                       "cbor: map at byte %zu ends between key and value", at);
                    if ((rc = scan_item(s, depth + 1)) != AT_OK)
                        return rc;
                }
            }
        }
        /* Each item takes at least one byte: a count above the bytes left
         * is a lie, and libcbor would allocate from it. */
        uint64_t per = is_map ? 2 : 1;
        if (arg > at_reader_left(&s->r) / per)
            return at_fail(s->d, AT_E_MALFORMED_CBOR,
                           "cbor: %s at byte %zu declares %llu entries, %zu bytes left",
                           is_map ? "map" : "array", at, (unsigned long long)arg, at_reader_left(&s->r));
        for (uint64_t i = 0; i < arg * per; i++)
            if ((rc = scan_item(s, depth + 1)) != AT_OK)
                return rc;
        return AT_OK;
    }
    case 6:
        /* No tag occurs inside Nitro documents, and libcbor 0.8 refuses
         * inline tags 6..20 as "unassigned" (so tag 18, COSE_Sign1): the
         * caller strips the one tag it expects before decoding. */
        return at_fail(s->d, AT_E_MALFORMED_CBOR, "cbor: tag %llu at byte %zu not accepted here",
                       (unsigned long long)arg, at);
    default: /* 7: simple values and floats */
        if (indef)
            return at_fail(s->d, AT_E_MALFORMED_CBOR, "cbor: unexpected break at byte %zu", at);
        if ((s->r.p[at] & 31) == 24 && arg < 32)
            return at_fail(s->d, AT_E_MALFORMED_CBOR, "cbor: two-byte simple value %llu at byte %zu",
                           (unsigned long long)arg, at);
        return AT_OK;
    }
}

at_err at_cbor_scan(at_span in, const at_cbor_limits *lim, size_t *item_len, at_diag *d)
{
    struct scan s = {.lim = lim, .d = d};
    at_reader_init(&s.r, in.p, in.len);
    if (in.len == 0)
        return at_fail(d, AT_E_MALFORMED_CBOR, "cbor: empty input");
    at_err rc = scan_item(&s, 1);
    if (rc != AT_OK)
        return rc;
    *item_len = s.r.off;
    return AT_OK;
}

static bool keys_equal(const cbor_item_t *a, const cbor_item_t *b)
{
    if (cbor_typeof(a) != cbor_typeof(b))
        return false;
    switch (cbor_typeof(a)) {
    case CBOR_TYPE_UINT:
    case CBOR_TYPE_NEGINT:
        return cbor_get_int(a) == cbor_get_int(b);
    case CBOR_TYPE_BYTESTRING:
    case CBOR_TYPE_STRING: {
        at_span x, y;
        bool okx = cbor_isa_string(a) ? at_cbor_get_text(a, &x) : at_cbor_get_bytes(a, &x);
        bool oky = cbor_isa_string(b) ? at_cbor_get_text(b, &y) : at_cbor_get_bytes(b, &y);
        return okx && oky && at_span_eq(x, y);
    }
    default:
        /* Any other key type is refused before comparison. */
        return false;
    }
}

static at_err check_maps(const cbor_item_t *it, at_diag *d)
{
    at_err rc;
    if (cbor_isa_array(it)) {
        cbor_item_t **h = cbor_array_handle(it);
        for (size_t i = 0; i < cbor_array_size(it); i++)
            if ((rc = check_maps(h[i], d)) != AT_OK)
                return rc;
    } else if (cbor_isa_tag(it)) {
        cbor_item_t *inner = cbor_tag_item(it);
        rc = check_maps(inner, d);
        cbor_decref(&inner);
        return rc;
    } else if (cbor_isa_map(it)) {
        struct cbor_pair *h = cbor_map_handle(it);
        size_t n = cbor_map_size(it);
        for (size_t i = 0; i < n; i++) {
            cbor_type t = cbor_typeof(h[i].key);
            if (t != CBOR_TYPE_UINT && t != CBOR_TYPE_NEGINT && t != CBOR_TYPE_STRING &&
                t != CBOR_TYPE_BYTESTRING)
                return at_fail(d, AT_E_MALFORMED_CBOR, "cbor: map key of type %s not accepted",
                               at_cbor_type_name(h[i].key));
            for (size_t j = 0; j < i; j++)
                if (keys_equal(h[i].key, h[j].key))
                    return at_fail(d, AT_E_MALFORMED_CBOR, "cbor: duplicate map key (entry %zu)", i);
            if ((rc = check_maps(h[i].value, d)) != AT_OK)
                return rc;
        }
    }
    return AT_OK;
}

at_err at_cbor_decode(at_span in, const at_cbor_limits *lim, cbor_item_t **out, at_diag *d)
{
    size_t n;
    at_err rc = at_cbor_scan(in, lim, &n, d);
    if (rc != AT_OK)
        return rc;
    if (n != in.len)
        return at_fail(d, AT_E_MALFORMED_CBOR, "cbor: %zu trailing bytes after the item", in.len - n);
    struct cbor_load_result res;
    cbor_item_t *it = cbor_load(in.p, in.len, &res);
    if (!it || res.error.code != CBOR_ERR_NONE || res.read != in.len) {
        if (it)
            cbor_decref(&it);
        if (res.error.code == CBOR_ERR_MEMERROR)
            return at_fail(d, AT_E_INTERNAL, "cbor: out of memory");
        return at_fail(d, AT_E_MALFORMED_CBOR, "cbor: decoder error %d at byte %zu", (int)res.error.code,
                       res.error.position);
    }
    if ((rc = check_maps(it, d)) != AT_OK) {
        cbor_decref(&it);
        return rc;
    }
    *out = it;
    return AT_OK;
}

cbor_item_t *at_cbor_map_get_text(const cbor_item_t *map, const char *key)
{
    if (!map || !cbor_isa_map(map))
        return NULL;
    size_t klen = strlen(key);
    struct cbor_pair *h = cbor_map_handle(map);
    for (size_t i = 0; i < cbor_map_size(map); i++) {
        at_span s;
        if (cbor_isa_string(h[i].key) && at_cbor_get_text(h[i].key, &s) && s.len == klen &&
            memcmp(s.p, key, klen) == 0)
            return h[i].value;
    }
    return NULL;
}

cbor_item_t *at_cbor_map_get_int(const cbor_item_t *map, int64_t key)
{
    if (!map || !cbor_isa_map(map))
        return NULL;
    struct cbor_pair *h = cbor_map_handle(map);
    for (size_t i = 0; i < cbor_map_size(map); i++) {
        int64_t v;
        if (at_cbor_get_int64(h[i].key, &v) && v == key)
            return h[i].value;
    }
    return NULL;
}

bool at_cbor_get_int64(const cbor_item_t *it, int64_t *v)
{
    if (!it)
        return false;
    if (cbor_isa_uint(it)) {
        uint64_t u = cbor_get_int(it);
        if (u > INT64_MAX)
            return false;
        *v = (int64_t)u;
        return true;
    }
    if (cbor_isa_negint(it)) {
        uint64_t u = cbor_get_int(it); /* value is -1 - u */
        if (u > INT64_MAX)
            return false;
        *v = -1 - (int64_t)u;
        return true;
    }
    return false;
}

bool at_cbor_get_bytes(const cbor_item_t *it, at_span *out)
{
    if (!it || !cbor_isa_bytestring(it) || !cbor_bytestring_is_definite(it))
        return false;
    out->len = cbor_bytestring_length(it);
    out->p = out->len ? cbor_bytestring_handle(it) : (const uint8_t *)"";
    return true;
}

bool at_cbor_get_text(const cbor_item_t *it, at_span *out)
{
    if (!it || !cbor_isa_string(it) || !cbor_string_is_definite(it))
        return false;
    out->len = cbor_string_length(it);
    out->p = out->len ? cbor_string_handle(it) : (const uint8_t *)"";
    return true;
}

/* libcbor's cbor_is_null() calls cbor_ctrl_value(), which asserts (aborts
 * the process) on a float: ask only width-0 items, simple values. */
static bool is_ctrl(const cbor_item_t *it)
{
    return cbor_isa_float_ctrl(it) && cbor_float_get_width(it) == CBOR_FLOAT_0;
}

bool at_cbor_is_null(const cbor_item_t *it) { return it && is_ctrl(it) && cbor_is_null(it); }

const char *at_cbor_type_name(const cbor_item_t *it)
{
    if (!it)
        return "nothing";
    switch (cbor_typeof(it)) {
    case CBOR_TYPE_UINT:
        return "unsigned integer";
    case CBOR_TYPE_NEGINT:
        return "negative integer";
    case CBOR_TYPE_BYTESTRING:
        return "byte string";
    case CBOR_TYPE_STRING:
        return "text string";
    case CBOR_TYPE_ARRAY:
        return "array";
    case CBOR_TYPE_MAP:
        return "map";
    case CBOR_TYPE_TAG:
        return "tag";
    default:
        if (!is_ctrl(it))
            return "float";
        return cbor_is_null(it) ? "null" : "simple value";
    }
}
