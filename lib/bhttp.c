/* bhttp: Binary HTTP (RFC 9292). Decodes attacker-supplied messages (after
 * OHTTP decryption, but from an unauthenticated sender) through the bounded
 * reader, incrementally, never sizing an allocation from a declared length;
 * encodes what the gateway, attestctl and the agent send. */
#include "config.h"

#include "bhttp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- field and control-data rules ----------------------------------------- */

static bool is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_vchar(uint8_t c) { return c >= 0x21 && c <= 0x7e; }

/* Fields that RFC 9113 §8.2.2 makes a message malformed with. */
static const char *const connection_fields[] = {"connection", "proxy-connection", "keep-alive",
                                                "transfer-encoding", "upgrade"};
/* Pseudo-fields that control data replaces (RFC 9292 §5). */
static const char *const control_pseudo[] = {":method", ":scheme", ":authority", ":path", ":status"};

static bool span_is(at_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

typedef struct {
    const char *what; /* "header", "trailer", "informational[1]" */
    bool trailer;
    bool regular_seen; /* pseudo-fields must precede regular ones */
} section_ctx;

static at_err check_field(section_ctx *sc, size_t idx, at_span name, at_span value, at_diag *d)
{
    if (name.len == 0)
        return at_fail(d, AT_E_BAD_FIELD, "%s[%zu] name: empty", sc->what, idx);
    bool pseudo = name.p[0] == ':';
    for (size_t i = pseudo ? 1 : 0; i < name.len; i++) {
        uint8_t c = name.p[i];
        if (c >= 'A' && c <= 'Z')
            return at_fail(d, AT_E_BAD_FIELD, "%s[%zu] name: uppercase 0x%02x at %zu", sc->what, idx, c, i);
        if (!is_tchar(c))
            return at_fail(d, AT_E_BAD_FIELD,
                           "%s[%zu] name: byte 0x%02x at %zu is not a token "
                           "character",
                           sc->what, idx, c, i);
    }
    if (pseudo) {
        if (name.len == 1)
            return at_fail(d, AT_E_BAD_FIELD, "%s[%zu] name: bare ':'", sc->what, idx);
        for (size_t i = 0; i < sizeof control_pseudo / sizeof *control_pseudo; i++)
            if (span_is(name, control_pseudo[i]))
                return at_fail(d, AT_E_BAD_FIELD, "%s[%zu] name: %s belongs in control data", sc->what, idx,
                               control_pseudo[i]);
        if (sc->trailer)
            return at_fail(d, AT_E_BAD_FIELD, "%s[%zu] name: pseudo-field in a trailer", sc->what, idx);
        if (sc->regular_seen)
            return at_fail(d, AT_E_BAD_FIELD, "%s[%zu] name: pseudo-field after a regular field", sc->what,
                           idx);
    } else {
        sc->regular_seen = true;
        for (size_t i = 0; i < sizeof connection_fields / sizeof *connection_fields; i++)
            if (span_is(name, connection_fields[i]))
                return at_fail(d, AT_E_BAD_FIELD, "%s[%zu] name: connection-specific field %s", sc->what, idx,
                               connection_fields[i]);
        if (span_is(name, "te") && !span_is(value, "trailers"))
            return at_fail(d, AT_E_BAD_FIELD, "%s[%zu] te: expected \"trailers\"", sc->what, idx);
    }
    for (size_t i = 0; i < value.len; i++) {
        uint8_t c = value.p[i];
        if (c == 0 || c == '\r' || c == '\n')
            return at_fail(d, AT_E_BAD_FIELD, "%s[%zu] value: byte 0x%02x at %zu", sc->what, idx, c, i);
    }
    if (value.len && (value.p[0] == ' ' || value.p[0] == '\t' || value.p[value.len - 1] == ' ' ||
                      value.p[value.len - 1] == '\t'))
        return at_fail(d, AT_E_BAD_FIELD, "%s[%zu] value: leading or trailing whitespace", sc->what, idx);
    return AT_OK;
}

static char *dup_span(at_span s)
{
    char *p = malloc(s.len + 1);
    if (!p)
        return NULL;
    if (s.len)
        memcpy(p, s.p, s.len);
    p[s.len] = 0;
    return p;
}

/* Append a checked field line. */
static at_err fields_add(at_bhttp_fields *f, section_ctx *sc, at_span name, at_span value, at_diag *d)
{
    at_err rc = check_field(sc, f->n, name, value, d);
    if (rc != AT_OK)
        return rc;
    if (f->n >= AT_MAX_BHTTP_FIELDS)
        return at_fail(d, AT_E_TOO_LARGE, "%s: more than %d field lines", sc->what, AT_MAX_BHTTP_FIELDS);
    if (name.len + value.len > AT_MAX_BHTTP_SECTION_BYTES - f->bytes)
        return at_fail(d, AT_E_TOO_LARGE, "%s: field section over %d bytes", sc->what,
                       AT_MAX_BHTTP_SECTION_BYTES);
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        at_bhttp_field *v = realloc(f->v, cap * sizeof *v);
        if (!v)
            return at_fail(d, AT_E_INTERNAL, "out of memory");
        f->v = v;
        f->cap = cap;
    }
    at_bhttp_field *fl = &f->v[f->n];
    fl->name = dup_span(name);
    fl->value = dup_span(value);
    if (!fl->name || !fl->value) {
        free(fl->name);
        free(fl->value);
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    }
    fl->name_len = name.len;
    fl->value_len = value.len;
    f->n++;
    f->bytes += name.len + value.len;
    return AT_OK;
}

static void fields_cleanup(at_bhttp_fields *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].name);
        free(f->v[i].value);
    }
    free(f->v);
    memset(f, 0, sizeof *f);
}

/* Does f already satisfy section ordering for a new field? Rebuild the
 * section context of an existing list (for the builder API). */
static section_ctx ctx_for(const at_bhttp_fields *f, const char *what, bool trailer)
{
    section_ctx sc = {what, trailer, false};
    for (size_t i = 0; i < f->n; i++)
        if (f->v[i].name[0] != ':')
            sc.regular_seen = true;
    return sc;
}

const char *at_bhttp_fields_get(const at_bhttp_fields *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcasecmp(f->v[i].name, name) == 0)
            return f->v[i].value;
    return NULL;
}

/* Control data (RFC 9292 §3.4 via RFC 9113 §8.3.1). */
static at_err check_control(const char *what, at_span s, bool may_be_empty, bool token, at_diag *d)
{
    if (s.len == 0 && !may_be_empty)
        return at_fail(d, AT_E_BAD_FIELD, "%s: empty", what);
    if (s.len > AT_MAX_BHTTP_CONTROL_BYTES)
        return at_fail(d, AT_E_TOO_LARGE, "%s: %zu bytes, limit %d", what, s.len, AT_MAX_BHTTP_CONTROL_BYTES);
    for (size_t i = 0; i < s.len; i++)
        if (token ? !is_tchar(s.p[i]) : !is_vchar(s.p[i]))
            return at_fail(d, AT_E_BAD_FIELD, "%s: byte 0x%02x at %zu", what, s.p[i], i);
    return AT_OK;
}

static at_err check_request_control(at_span method, at_span scheme, at_span authority, at_span path,
                                    at_diag *d)
{
    bool connect = span_is(method, "CONNECT");
    at_err rc = check_control("method", method, false, true, d);
    if (rc == AT_OK)
        rc = check_control("scheme", scheme, connect, false, d);
    if (rc == AT_OK)
        rc = check_control("authority", authority, true, false, d);
    if (rc == AT_OK)
        rc = check_control("path", path, connect, false, d);
    return rc;
}

/* ---- messages --------------------------------------------------------------- */

static at_bhttp_msg *msg_new(void)
{
    at_bhttp_msg *m = calloc(1, sizeof *m);
    if (m)
        at_buf_set_max(&m->content, AT_MAX_BHTTP_CONTENT);
    return m;
}

void at_bhttp_msg_free(at_bhttp_msg *m)
{
    if (!m)
        return;
    free(m->method);
    free(m->scheme);
    free(m->authority);
    free(m->path);
    for (size_t i = 0; i < m->ninfo; i++)
        fields_cleanup(&m->info[i].fields);
    fields_cleanup(&m->headers);
    fields_cleanup(&m->trailers);
    /* Plaintext of an end-to-end encrypted exchange: wipe it. */
    at_wipe(m->content.p, m->content.cap);
    at_buf_cleanup(&m->content);
    free(m);
}

static at_err set_request_control(at_bhttp_msg *m, at_span method, at_span scheme, at_span authority,
                                  at_span path, at_diag *d)
{
    at_err rc = check_request_control(method, scheme, authority, path, d);
    if (rc != AT_OK)
        return rc;
    m->method = dup_span(method);
    m->scheme = dup_span(scheme);
    m->authority = dup_span(authority);
    m->path = dup_span(path);
    if (!m->method || !m->scheme || !m->authority || !m->path)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    m->is_request = true;
    return AT_OK;
}

static at_span cspan(const char *s) { return AT_SPAN(s, s ? strlen(s) : 0); }

at_err at_bhttp_request_new(const char *method, const char *scheme, const char *authority, const char *path,
                            at_bhttp_msg **out, at_diag *d)
{
    at_bhttp_msg *m = msg_new();
    if (!m)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    at_err rc = set_request_control(m, cspan(method), cspan(scheme), cspan(authority), cspan(path), d);
    if (rc != AT_OK) {
        at_bhttp_msg_free(m);
        return rc;
    }
    *out = m;
    return AT_OK;
}

at_err at_bhttp_response_new(int status, at_bhttp_msg **out, at_diag *d)
{
    if (status < 200 || status > 599)
        return at_fail(d, AT_E_BAD_FIELD, "status: expected 200..599, got %d", status);
    at_bhttp_msg *m = msg_new();
    if (!m)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    m->status = status;
    *out = m;
    return AT_OK;
}

/* Lowercase the name, then add with the section's rules. */
static at_err add_named(at_bhttp_fields *f, const char *what, bool trailer, const char *name, at_span value,
                        at_diag *d)
{
    size_t n = strlen(name);
    if (n > AT_MAX_BHTTP_SECTION_BYTES)
        return at_fail(d, AT_E_TOO_LARGE, "%s name: %zu bytes", what, n);
    char *lower = dup_span(AT_SPAN(name, n));
    if (!lower)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (lower[i] >= 'A' && lower[i] <= 'Z')
            lower[i] = (char)(lower[i] - 'A' + 'a');
    section_ctx sc = ctx_for(f, what, trailer);
    at_err rc = fields_add(f, &sc, AT_SPAN(lower, n), value, d);
    free(lower);
    return rc;
}

at_err at_bhttp_add_header(at_bhttp_msg *m, const char *name, at_span value, at_diag *d)
{
    return add_named(&m->headers, "header", false, name, value, d);
}

at_err at_bhttp_add_trailer(at_bhttp_msg *m, const char *name, at_span value, at_diag *d)
{
    return add_named(&m->trailers, "trailer", true, name, value, d);
}

at_err at_bhttp_add_informational(at_bhttp_msg *m, int status, size_t *idx, at_diag *d)
{
    if (m->is_request)
        return at_fail(d, AT_E_BAD_FIELD, "informational response on a request");
    if (status < 100 || status > 199)
        return at_fail(d, AT_E_BAD_FIELD, "informational status: expected 100..199, got %d", status);
    if (m->ninfo >= AT_MAX_BHTTP_INFORMATIONAL)
        return at_fail(d, AT_E_TOO_LARGE, "more than %d informational responses", AT_MAX_BHTTP_INFORMATIONAL);
    memset(&m->info[m->ninfo], 0, sizeof m->info[m->ninfo]);
    m->info[m->ninfo].status = status;
    if (idx)
        *idx = m->ninfo;
    m->ninfo++;
    return AT_OK;
}

at_err at_bhttp_add_info_field(at_bhttp_msg *m, size_t idx, const char *name, at_span value, at_diag *d)
{
    if (idx >= m->ninfo)
        return at_fail(d, AT_E_BAD_FIELD, "informational[%zu]: no such response", idx);
    return add_named(&m->info[idx].fields, "informational", false, name, value, d);
}

at_err at_bhttp_append_content(at_bhttp_msg *m, at_span s, at_diag *d)
{
    if (s.len > AT_MAX_BHTTP_CONTENT - m->content.len)
        return at_fail(d, AT_E_TOO_LARGE, "content: over %d bytes", AT_MAX_BHTTP_CONTENT);
    at_err rc = at_buf_append_span(&m->content, s);
    if (rc != AT_OK)
        return at_fail(d, rc, "content: append failed");
    return AT_OK;
}

/* ---- encoding ----------------------------------------------------------------- */

static void put_lp(at_buf *b, at_span s)
{
    (void)at_buf_varint(b, s.len);
    (void)at_buf_append_span(b, s);
}

static size_t varint_len(uint64_t v) { return v < 0x40 ? 1 : v < 0x4000 ? 2 : v < 0x40000000 ? 4 : 8; }

static void put_field_lines(at_buf *b, const at_bhttp_fields *f)
{
    for (size_t i = 0; i < f->n; i++) {
        put_lp(b, AT_SPAN(f->v[i].name, f->v[i].name_len));
        put_lp(b, AT_SPAN(f->v[i].value, f->v[i].value_len));
    }
}

static void put_known_section(at_buf *b, const at_bhttp_fields *f)
{
    size_t total = 0;
    for (size_t i = 0; i < f->n; i++)
        total += varint_len(f->v[i].name_len) + f->v[i].name_len + varint_len(f->v[i].value_len) +
                 f->v[i].value_len;
    (void)at_buf_varint(b, total);
    put_field_lines(b, f);
}

static at_err check_encodable(const at_bhttp_msg *m, at_diag *d)
{
    if (m->is_request) {
        if (!m->method || !m->scheme || !m->authority || !m->path)
            return at_fail(d, AT_E_BAD_FIELD, "request: control data missing");
    } else if (m->status < 200 || m->status > 599) {
        return at_fail(d, AT_E_BAD_FIELD, "status: expected 200..599, got %d", m->status);
    }
    return AT_OK;
}

/* Buffer errors are sticky (lib/buf.h): report the first one. */
static at_err finish_encode(at_buf *out, at_diag *d)
{
    at_err rc = at_buf_status(out);
    if (rc != AT_OK)
        return at_fail(d, rc, "bhttp encode: buffer %s",
                       rc == AT_E_TOO_LARGE ? "limit reached" : "allocation failed");
    return AT_OK;
}

static void put_control(at_buf *b, const at_bhttp_msg *m, bool indeterminate)
{
    (void)at_buf_varint(b, (m->is_request ? 0 : 1) + (indeterminate ? 2 : 0));
    if (m->is_request) {
        put_lp(b, cspan(m->method));
        put_lp(b, cspan(m->scheme));
        put_lp(b, cspan(m->authority));
        put_lp(b, cspan(m->path));
        return;
    }
    for (size_t i = 0; i < m->ninfo; i++) {
        (void)at_buf_varint(b, (uint64_t)m->info[i].status);
        if (indeterminate) {
            put_field_lines(b, &m->info[i].fields);
            (void)at_buf_varint(b, 0);
        } else {
            put_known_section(b, &m->info[i].fields);
        }
    }
    (void)at_buf_varint(b, (uint64_t)m->status);
}

at_err at_bhttp_encode(const at_bhttp_msg *m, at_buf *out, at_diag *d)
{
    at_err rc = check_encodable(m, d);
    if (rc != AT_OK)
        return rc;
    put_control(out, m, false);
    /* RFC 9292 §3.8: empty trailing sections may be truncated. */
    bool trailers = m->trailers.n > 0;
    bool content = trailers || m->content.len > 0;
    bool headers = content || m->headers.n > 0;
    if (headers)
        put_known_section(out, &m->headers);
    if (content)
        put_lp(out, at_buf_span(&m->content));
    if (trailers)
        put_known_section(out, &m->trailers);
    return finish_encode(out, d);
}

at_err at_bhttp_encode_head(const at_bhttp_msg *m, at_buf *out, at_diag *d)
{
    at_err rc = check_encodable(m, d);
    if (rc != AT_OK)
        return rc;
    put_control(out, m, true);
    put_field_lines(out, &m->headers);
    (void)at_buf_varint(out, 0);
    return finish_encode(out, d);
}

at_err at_bhttp_encode_chunk(at_span chunk, at_buf *out, at_diag *d)
{
    if (chunk.len == 0)
        return AT_OK; /* a zero length would end the content */
    put_lp(out, chunk);
    return finish_encode(out, d);
}

at_err at_bhttp_encode_tail(const at_bhttp_msg *m, at_buf *out, at_diag *d)
{
    (void)at_buf_varint(out, 0);
    put_field_lines(out, &m->trailers);
    (void)at_buf_varint(out, 0);
    return finish_encode(out, d);
}

at_err at_bhttp_encode_indeterminate(const at_bhttp_msg *m, at_buf *out, at_diag *d)
{
    at_err rc = at_bhttp_encode_head(m, out, d);
    if (rc == AT_OK)
        rc = at_bhttp_encode_chunk(at_buf_span(&m->content), out, d);
    if (rc == AT_OK)
        rc = at_bhttp_encode_tail(m, out, d);
    return rc;
}

/* ---- incremental decoder -------------------------------------------------------
 * Unconsumed input sits in `in`; each step parses one element from it. An
 * element that is not all there yet is left unconsumed ("more"), but every
 * length it declares is checked against the limits first, so the buffer
 * never holds more than one bounded element plus one feed slice. */

enum {
    ST_FRAMING,
    ST_REQ_CONTROL,
    ST_RES_CONTROL,
    ST_INFO_FIELDS,
    ST_HEADERS,
    ST_CONTENT_LEN,
    ST_CONTENT,
    ST_TRAILERS,
    ST_PADDING,
    ST_DONE,
};

#define FEED_SLICE (16 * 1024)
#define IN_MAX (AT_MAX_BHTTP_SECTION_BYTES + 4 * (AT_MAX_BHTTP_CONTROL_BYTES + 8) + FEED_SLICE)

struct at_bhttp_decoder {
    at_bhttp_kind expect;
    at_bhttp_msg *msg;
    at_buf in;
    size_t off;
    uint64_t base; /* absolute offset of in.p[0], for messages */
    int state;
    uint64_t remaining;   /* bytes left in the content / current chunk */
    bool chunks_seen;     /* indeterminate: a content chunk was read */
    bool section_started; /* indeterminate: a field line of this section was read */
    section_ctx sc;
    at_bhttp_fields *cur;
    bool head_done;
    at_err err;
};

at_bhttp_decoder *at_bhttp_decoder_new(at_bhttp_kind expect)
{
    at_bhttp_decoder *dec = calloc(1, sizeof *dec);
    if (!dec)
        return NULL;
    dec->msg = msg_new();
    if (!dec->msg) {
        free(dec);
        return NULL;
    }
    dec->expect = expect;
    at_buf_set_max(&dec->in, IN_MAX);
    dec->state = ST_FRAMING;
    return dec;
}

void at_bhttp_decoder_free(at_bhttp_decoder *dec)
{
    if (!dec)
        return;
    at_bhttp_msg_free(dec->msg);
    at_wipe(dec->in.p, dec->in.cap);
    at_buf_cleanup(&dec->in);
    free(dec);
}

static void begin_section(at_bhttp_decoder *dec, int state, at_bhttp_fields *f, const char *what,
                          bool trailer)
{
    dec->state = state;
    dec->cur = f;
    dec->sc = (section_ctx){what, trailer, false};
    dec->section_started = false;
}

static void end_section(at_bhttp_decoder *dec)
{
    switch (dec->state) {
    case ST_INFO_FIELDS:
        dec->state = ST_RES_CONTROL;
        break;
    case ST_HEADERS:
        dec->state = ST_CONTENT_LEN;
        dec->head_done = true;
        break;
    default: /* ST_TRAILERS */
        dec->state = ST_PADDING;
        break;
    }
}

/* One field line from r; *more when it is not all there. Declared lengths
 * are checked before waiting for their bytes. */
static at_err read_field_line(at_bhttp_decoder *dec, at_reader *r, bool in_known, bool *more, at_diag *d)
{
    uint64_t nlen, vlen;
    at_span name, value;
    if (!at_reader_varint(r, &nlen))
        goto need;
    if (nlen == 0)
        return at_fail(d, AT_E_BAD_FIELD, "%s[%zu] name: zero length", dec->sc.what, dec->cur->n);
    if (nlen > AT_MAX_BHTTP_SECTION_BYTES - dec->cur->bytes)
        return at_fail(d, AT_E_TOO_LARGE, "%s[%zu] name length: %llu, over the %d-byte section", dec->sc.what,
                       dec->cur->n, (unsigned long long)nlen, AT_MAX_BHTTP_SECTION_BYTES);
    if (!at_reader_take(r, (size_t)nlen, &name))
        goto need;
    if (!at_reader_varint(r, &vlen))
        goto need;
    if (vlen > AT_MAX_BHTTP_SECTION_BYTES)
        return at_fail(d, AT_E_TOO_LARGE, "%s[%zu] value length: %llu, limit %d", dec->sc.what, dec->cur->n,
                       (unsigned long long)vlen, AT_MAX_BHTTP_SECTION_BYTES);
    /* The section's byte budget, before waiting for the bytes. */
    if (nlen + vlen > AT_MAX_BHTTP_SECTION_BYTES - dec->cur->bytes)
        return at_fail(d, AT_E_TOO_LARGE, "%s: field section over %d bytes", dec->sc.what,
                       AT_MAX_BHTTP_SECTION_BYTES);
    if (!at_reader_take(r, (size_t)vlen, &value))
        goto need;
    return fields_add(dec->cur, &dec->sc, name, value, d);
need:
    if (in_known)
        return at_fail(d, AT_E_BAD_FIELD, "%s[%zu]: field line overruns the section length", dec->sc.what,
                       dec->cur->n);
    *more = true;
    return AT_OK;
}

static at_err emit_content(at_bhttp_decoder *dec, at_span s, at_buf *content_out, at_diag *d)
{
    if (content_out) {
        at_err rc = at_buf_append_span(content_out, s);
        return rc == AT_OK ? AT_OK : at_fail(d, rc, "content: output buffer refused %zu bytes", s.len);
    }
    return at_bhttp_append_content(dec->msg, s, d);
}

static at_err step(at_bhttp_decoder *dec, at_buf *content_out, bool *more, at_diag *d)
{
    at_reader r;
    at_bhttp_msg *m = dec->msg;
    at_err rc = AT_OK;
    uint64_t v;

    at_reader_init(&r, dec->in.p + dec->off, dec->in.len - dec->off);
    *more = false;
    switch (dec->state) {
    case ST_FRAMING:
        if (!at_reader_varint(&r, &v))
            goto need;
        if (v > 3)
            return at_fail(d, AT_E_BAD_FIELD, "framing indicator: expected 0..3, got %llu",
                           (unsigned long long)v);
        m->is_request = v == 0 || v == 2;
        m->indeterminate = v >= 2;
        if (dec->expect == AT_BHTTP_REQUEST && !m->is_request)
            return at_fail(d, AT_E_BAD_FIELD, "framing indicator: expected a request, got %llu",
                           (unsigned long long)v);
        if (dec->expect == AT_BHTTP_RESPONSE && m->is_request)
            return at_fail(d, AT_E_BAD_FIELD, "framing indicator: expected a response, got %llu",
                           (unsigned long long)v);
        dec->state = m->is_request ? ST_REQ_CONTROL : ST_RES_CONTROL;
        break;

    case ST_REQ_CONTROL: {
        static const char *const names[4] = {"method", "scheme", "authority", "path"};
        at_span parts[4];
        for (int i = 0; i < 4; i++) {
            if (!at_reader_varint(&r, &v))
                goto need;
            if (v > AT_MAX_BHTTP_CONTROL_BYTES)
                return at_fail(d, AT_E_TOO_LARGE, "%s length: %llu, limit %d", names[i],
                               (unsigned long long)v, AT_MAX_BHTTP_CONTROL_BYTES);
            if (!at_reader_take(&r, (size_t)v, &parts[i]))
                goto need;
        }
        rc = set_request_control(m, parts[0], parts[1], parts[2], parts[3], d);
        if (rc != AT_OK)
            return rc;
        begin_section(dec, ST_HEADERS, &m->headers, "header", false);
        break;
    }

    case ST_RES_CONTROL:
        if (!at_reader_varint(&r, &v))
            goto need;
        if (v >= 100 && v <= 199) {
            if (m->ninfo >= AT_MAX_BHTTP_INFORMATIONAL)
                return at_fail(d, AT_E_TOO_LARGE, "more than %d informational responses",
                               AT_MAX_BHTTP_INFORMATIONAL);
            at_bhttp_info *inf = &m->info[m->ninfo++];
            memset(inf, 0, sizeof *inf);
            inf->status = (int)v;
            begin_section(dec, ST_INFO_FIELDS, &inf->fields, "informational", false);
        } else if (v >= 200 && v <= 599) {
            m->status = (int)v;
            begin_section(dec, ST_HEADERS, &m->headers, "header", false);
        } else {
            return at_fail(d, AT_E_BAD_FIELD, "status: expected 100..599, got %llu", (unsigned long long)v);
        }
        break;

    case ST_INFO_FIELDS:
    case ST_HEADERS:
    case ST_TRAILERS:
        if (!m->indeterminate) {
            at_span body;
            at_reader sec;
            if (!at_reader_varint(&r, &v))
                goto need;
            if (v > AT_MAX_BHTTP_SECTION_BYTES)
                return at_fail(d, AT_E_TOO_LARGE, "%s section length: %llu, limit %d", dec->sc.what,
                               (unsigned long long)v, AT_MAX_BHTTP_SECTION_BYTES);
            if (!at_reader_take(&r, (size_t)v, &body))
                goto need;
            at_reader_init(&sec, body.p, body.len);
            while (!at_reader_at_end(&sec)) {
                bool unused = false;
                rc = read_field_line(dec, &sec, true, &unused, d);
                if (rc != AT_OK)
                    return rc;
            }
            end_section(dec);
        } else {
            size_t save = r.off;
            if (!at_reader_varint(&r, &v))
                goto need;
            if (v == 0) {
                end_section(dec);
                break;
            }
            r.off = save;
            rc = read_field_line(dec, &r, false, more, d);
            if (rc != AT_OK || *more)
                return rc;
            dec->section_started = true;
        }
        break;

    case ST_CONTENT_LEN:
        if (!at_reader_varint(&r, &v))
            goto need;
        if (v > AT_MAX_BHTTP_CONTENT)
            return at_fail(d, AT_E_TOO_LARGE, "content%s length: %llu, limit %d",
                           m->indeterminate ? " chunk" : "", (unsigned long long)v, AT_MAX_BHTTP_CONTENT);
        if (!m->indeterminate && !content_out && v > AT_MAX_BHTTP_CONTENT - m->content.len)
            return at_fail(d, AT_E_TOO_LARGE, "content: over %d bytes", AT_MAX_BHTTP_CONTENT);
        if (v == 0) {
            begin_section(dec, ST_TRAILERS, &m->trailers, "trailer", true);
        } else {
            dec->remaining = v;
            dec->chunks_seen = m->indeterminate;
            dec->state = ST_CONTENT;
        }
        break;

    case ST_CONTENT: {
        size_t n = at_reader_left(&r);
        if (n == 0)
            goto need;
        if ((uint64_t)n > dec->remaining)
            n = (size_t)dec->remaining;
        at_span s;
        if (!at_reader_take(&r, n, &s))
            goto need;
        rc = emit_content(dec, s, content_out, d);
        if (rc != AT_OK)
            return rc;
        dec->remaining -= n;
        if (dec->remaining == 0) {
            if (m->indeterminate)
                dec->state = ST_CONTENT_LEN;
            else
                begin_section(dec, ST_TRAILERS, &m->trailers, "trailer", true);
        }
        break;
    }

    case ST_PADDING: {
        /* RFC 9292 §3.8: padding is zero bytes. */
        at_span s = at_reader_rest(&r);
        for (size_t i = 0; i < s.len; i++)
            if (s.p[i] != 0)
                return at_fail(d, AT_E_BAD_FIELD, "padding: byte 0x%02x at offset %llu", s.p[i],
                               (unsigned long long)(dec->base + dec->off + i));
        dec->off += s.len;
        *more = true;
        return AT_OK;
    }

    default:
        return at_fail(d, AT_E_BAD_FIELD, "bhttp: data after the end of the message");
    }
    dec->off += r.off;
    return AT_OK;
need:
    *more = true;
    return AT_OK;
}

static at_err run(at_bhttp_decoder *dec, at_buf *content_out, at_diag *d)
{
    for (;;) {
        bool more = false;
        at_err rc = step(dec, content_out, &more, d);
        if (rc != AT_OK)
            return rc;
        if (more)
            return AT_OK;
    }
}

static void compact(at_bhttp_decoder *dec)
{
    if (dec->off == 0)
        return;
    size_t left = dec->in.len - dec->off;
    memmove(dec->in.p, dec->in.p + dec->off, left);
    at_wipe(dec->in.p + left, dec->off);
    dec->in.len = left;
    dec->base += dec->off;
    dec->off = 0;
}

at_err at_bhttp_decoder_feed(at_bhttp_decoder *dec, at_span in, at_buf *content_out, at_diag *d)
{
    if (dec->err != AT_OK)
        return at_fail(d, dec->err, "bhttp: decoder failed earlier");
    if (dec->state == ST_DONE)
        return dec->err = at_fail(d, AT_E_BAD_FIELD, "bhttp: data after finish");
    while (in.len) {
        size_t n = in.len < FEED_SLICE ? in.len : FEED_SLICE;
        compact(dec);
        at_err rc = at_buf_append(&dec->in, in.p, n);
        if (rc != AT_OK)
            return dec->err = at_fail(d, rc, "bhttp: input buffer refused %zu bytes", n);
        in.p += n;
        in.len -= n;
        rc = run(dec, content_out, d);
        if (rc != AT_OK)
            return dec->err = rc;
    }
    return AT_OK;
}

const at_bhttp_msg *at_bhttp_decoder_head(const at_bhttp_decoder *dec)
{
    return dec->err == AT_OK && dec->head_done ? dec->msg : NULL;
}

at_err at_bhttp_decoder_finish(at_bhttp_decoder *dec, at_diag *d)
{
    if (dec->err != AT_OK)
        return at_fail(d, dec->err, "bhttp: decoder failed earlier");
    size_t pending = dec->in.len - dec->off;
    bool clean = pending == 0 && !dec->section_started;
    const at_bhttp_msg *m = dec->msg;
    at_err rc = AT_OK;

    /* RFC 9292 §3.8: a message may end after its control data or after a
     * section boundary, never inside an element. */
    switch (dec->state) {
    case ST_FRAMING:
        rc = at_fail(d, AT_E_TRUNCATED, "bhttp: %s",
                     pending ? "framing indicator truncated" : "empty message");
        break;
    case ST_REQ_CONTROL:
        rc = at_fail(d, AT_E_TRUNCATED, "request control data: truncated");
        break;
    case ST_RES_CONTROL:
        rc = at_fail(d, AT_E_TRUNCATED, "response: no final status");
        break;
    case ST_INFO_FIELDS:
        rc = at_fail(d, AT_E_TRUNCATED, "response: ends in an informational response");
        break;
    case ST_HEADERS:
    case ST_TRAILERS:
        if (!clean)
            rc = at_fail(d, AT_E_TRUNCATED, "%s section: truncated", dec->sc.what);
        break;
    case ST_CONTENT_LEN:
        if (pending || (m->indeterminate && dec->chunks_seen))
            rc = at_fail(d, AT_E_TRUNCATED, "content: %s",
                         pending ? "length truncated" : "no content terminator");
        break;
    case ST_CONTENT:
        rc = at_fail(d, AT_E_TRUNCATED, "content: %llu bytes missing", (unsigned long long)dec->remaining);
        break;
    default:
        break;
    }
    if (rc != AT_OK)
        return dec->err = rc;
    dec->head_done = true;
    dec->state = ST_DONE;
    return AT_OK;
}

at_bhttp_msg *at_bhttp_decoder_take(at_bhttp_decoder *dec)
{
    if (dec->err != AT_OK || dec->state != ST_DONE || !dec->msg)
        return NULL;
    at_bhttp_msg *m = dec->msg;
    dec->msg = NULL;
    return m;
}

at_err at_bhttp_decode(at_span in, at_bhttp_kind expect, at_bhttp_msg **out, at_diag *d)
{
    at_bhttp_decoder *dec = at_bhttp_decoder_new(expect);
    if (!dec)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    at_err rc = at_bhttp_decoder_feed(dec, in, NULL, d);
    if (rc == AT_OK)
        rc = at_bhttp_decoder_finish(dec, d);
    if (rc == AT_OK)
        *out = at_bhttp_decoder_take(dec);
    at_bhttp_decoder_free(dec);
    return rc;
}
