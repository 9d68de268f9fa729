/* log: JSON lines on stderr. Fields may carry request bytes (a method, a
 * path): whatever they hold, the line is written, bytes that are not UTF-8
 * escaped as \xHH, long messages cut at a character boundary and marked. */
#include "log.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "enc.h"

/* 0..4, or -1 for a name that is no level. */
static int rank_of(const char *l)
{
    static const char *order[] = {"debug", "info", "warn", "error", "fatal"};
    for (int i = 0; i < 5; i++)
        if (l && strcmp(l, order[i]) == 0)
            return i;
    return -1;
}

static int rank(const char *l)
{
    int r = rank_of(l);
    return r < 0 ? 1 : r;
}

static int min_level = 1;

bool at_log_set_level(const char *level)
{
    int r = rank_of(level);
    if (r < 0)
        return false;
    min_level = r;
    return true;
}

#define TRUNCATED " [truncated]"

/* src as valid UTF-8 into out (cap bytes with its NUL): each byte outside a
 * valid sequence becomes the four characters \xHH; when it does not fit, it
 * is cut before a whole character or escape and marked. */
static void escape_utf8(const char *src, bool cut_already, char *out, size_t cap)
{
    size_t w = 0, room = cap - 1 - (sizeof TRUNCATED - 1);
    bool cut = cut_already;
    for (size_t r = 0; src[r];) {
        size_t n = at_utf8_seq_len(src + r);
        char esc[5];
        const char *piece = src + r;
        if (n == 0) {
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)src[r]);
            piece = esc;
        }
        size_t plen = n ? n : 4;
        if (w + plen > room) {
            cut = true;
            break;
        }
        memcpy(out + w, piece, plen);
        w += plen;
        r += n ? n : 1;
    }
    if (cut) {
        memcpy(out + w, TRUNCATED, sizeof TRUNCATED - 1);
        w += sizeof TRUNCATED - 1;
    }
    out[w] = '\0';
}

void at_log(const char *level, const char *event, const char *fmt, ...)
{
    if (rank(level) < min_level)
        return;
    char raw[4096], msg[AT_LOG_MAX_MSG], ev[128], ts[40];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    escape_utf8(raw, n >= (int)sizeof raw, msg, sizeof msg);
    escape_utf8(event, false, ev, sizeof ev);
    at_time_rfc3339_ms(at_now_ms(), ts, sizeof ts);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level", level, "event", ev, "msg", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s)
        fprintf(stderr, "%s\n", s);
    free(s);
    json_decref(o);
}
