/* enc: hex and base64. Decoders parse untrusted text: explicit lengths,
 * no allocation sized from anything but the input length. */
#include "enc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char hexdig[] = "0123456789abcdef";

void at_hex_encode(const uint8_t *p, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hexdig[p[i] >> 4];
        out[2 * i + 1] = hexdig[p[i] & 15];
    }
    out[2 * len] = '\0';
}

char *at_hex_encode_new(at_span s)
{
    size_t n;
    if (!at_size_mul(s.len, 2, &n) || !at_size_add(n, 1, &n))
        return NULL;
    char *out = malloc(n);
    if (out)
        at_hex_encode(s.p, s.len, out);
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

at_err at_hex_decode(const char *hex, size_t hexlen, uint8_t *out, size_t cap, size_t *outlen)
{
    if (hexlen % 2)
        return AT_E_BAD_FIELD;
    if (hexlen / 2 > cap)
        return AT_E_TOO_LARGE;
    /* Check everything first: out is written only on success. */
    for (size_t i = 0; i < hexlen; i++)
        if (hexval(hex[i]) < 0)
            return AT_E_BAD_FIELD;
    for (size_t i = 0; i < hexlen / 2; i++)
        out[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    *outlen = hexlen / 2;
    return AT_OK;
}

at_err at_hex_decode_new(const char *hex, uint8_t **out, size_t *outlen)
{
    size_t n = strlen(hex);
    uint8_t *p = malloc(n / 2 + 1);
    if (!p)
        return AT_E_INTERNAL;
    at_err rc = at_hex_decode(hex, n, p, n / 2 + 1, outlen);
    if (rc != AT_OK) {
        free(p);
        return rc;
    }
    *out = p;
    return AT_OK;
}

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64_encode(at_span s, const char *alpha, int pad)
{
    size_t groups = s.len / 3 + (s.len % 3 != 0), n;
    if (!at_size_mul(groups, 4, &n) || !at_size_add(n, 1, &n))
        return NULL;
    char *out = malloc(n), *o = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 3 <= s.len; i += 3) {
        uint32_t v = (uint32_t)s.p[i] << 16 | (uint32_t)s.p[i + 1] << 8 | s.p[i + 2];
        *o++ = alpha[v >> 18];
        *o++ = alpha[(v >> 12) & 63];
        *o++ = alpha[(v >> 6) & 63];
        *o++ = alpha[v & 63];
    }
    size_t rest = s.len - i;
    if (rest) {
        uint32_t v = (uint32_t)s.p[i] << 16 | (rest == 2 ? (uint32_t)s.p[i + 1] << 8 : 0);
        *o++ = alpha[v >> 18];
        *o++ = alpha[(v >> 12) & 63];
        if (rest == 2)
            *o++ = alpha[(v >> 6) & 63];
        else if (pad)
            *o++ = '=';
        if (pad)
            *o++ = '=';
    }
    *o = '\0';
    return out;
}

char *at_b64_encode_new(at_span s) { return b64_encode(s, b64std, 1); }
char *at_b64url_encode_new(at_span s) { return b64_encode(s, b64url, 0); }

/* Decoding tables: 0..63, -1 for anything else. Built once, read-only
 * afterwards. */
static signed char b64std_table[256], b64url_table[256];
static pthread_once_t b64once = PTHREAD_ONCE_INIT;

static void b64_init(void)
{
    memset(b64std_table, -1, sizeof b64std_table);
    memset(b64url_table, -1, sizeof b64url_table);
    for (int i = 0; i < 64; i++) {
        b64std_table[(unsigned char)b64std[i]] = (signed char)i;
        b64url_table[(unsigned char)b64url[i]] = (signed char)i;
    }
}

at_err at_b64_decode_new(const char *txt, size_t len, uint8_t **out, size_t *outlen)
{
    /* RFC 4648 §4 (standard alphabet, padded) or §5 (URL-safe alphabet,
     * unpadded, as JOSE writes it), never a mix: padding and a partial last
     * group say which; a text of whole groups without padding may use either
     * alphabet, but only one. No whitespace, no non-zero trailing bits. */
    size_t pad = 0;
    while (pad < 2 && len > 0 && txt[len - 1] == '=') {
        len--;
        pad++;
    }
    if (pad && (len + pad) % 4 != 0)
        return AT_E_BAD_FIELD;
    if (len % 4 == 1)
        return AT_E_BAD_FIELD;
    pthread_once(&b64once, b64_init);
    int std_ok = pad > 0 || len % 4 == 0, url_ok = pad == 0;
    for (size_t i = 0; i < len && (std_ok || url_ok); i++) {
        unsigned char c = (unsigned char)txt[i];
        std_ok = std_ok && b64std_table[c] >= 0;
        url_ok = url_ok && b64url_table[c] >= 0;
    }
    if (!std_ok && !url_ok)
        return AT_E_BAD_FIELD;
    const signed char *table = std_ok ? b64std_table : b64url_table;
    size_t n = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    uint8_t *p = malloc(n + 1), *o = p;
    if (!p)
        return AT_E_INTERNAL;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 6) | (uint32_t)table[(unsigned char)txt[i]];
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (uint8_t)(acc >> bits);
        }
    }
    if (bits && (acc & ((1u << bits) - 1))) {
        at_wipe_free(p, n + 1); /* the value may be a secret */
        return AT_E_BAD_FIELD;
    }
    *out = p;
    *outlen = (size_t)(o - p);
    return AT_OK;
}

size_t at_utf8_seq_len(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char c = s[0];
    if (c < 0x80)
        return c ? 1 : 0;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

char *at_utf8_sanitize_new(const char *s)
{
    size_t len = strlen(s);
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t i = 0;
    while (i < len) {
        size_t n = at_utf8_seq_len(s + i);
        if (n == 0) {
            out[i++] = '?';
            continue;
        }
        memcpy(out + i, s + i, n);
        i += n;
    }
    out[len] = '\0';
    return out;
}
