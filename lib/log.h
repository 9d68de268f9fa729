/* log: structured log lines on stderr, one JSON object per line
 * ({"ts","level","event","msg"}), shared by the verifier, the agent and the
 * gateway. Messages are built by the binaries; request content and secrets
 * never go into them. */
#ifndef AT_LOG_H
#define AT_LOG_H

#include <stdbool.h>

/* Lines below this level ("debug", "info", "warn", "error", "fatal";
 * default "info") are dropped. Call before threads start. false (level
 * unchanged) for any other name: the binaries refuse it (--log-level). */
bool at_log_set_level(const char *level);
#define AT_LOG_LEVELS "debug, info, warn, error or fatal"
/* Bytes of a message in a line, at most (longer ones are cut at a
 * character boundary and end in " [truncated]"). Bytes that are not UTF-8
 * are written as \xHH: a line is never dropped. */
#define AT_LOG_MAX_MSG 1024
void at_log(const char *level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
