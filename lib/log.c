/* log: JSON lines on stderr. */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence.h"
#include "x509v.h"

static int rank(const char *l)
{
    static const char *order[] = {"debug", "info", "warn", "error", "fatal"};
    for (int i = 0; i < 5; i++)
        if (strcmp(l, order[i]) == 0)
            return i;
    return 1;
}

static int min_level = 1;

void at_log_set_level(const char *level) { min_level = rank(level); }

void at_log(const char *level, const char *event, const char *fmt, ...)
{
    if (rank(level) < min_level)
        return;
    char msg[1024], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    at_time_rfc3339_ms(at_now_ms(), ts, sizeof ts);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level", level, "event", event, "msg", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (s)
        fprintf(stderr, "%s\n", s);
    free(s);
    json_decref(o);
}
