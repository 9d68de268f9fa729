/* progress: terminal progress line (see progress.h). */
#include "progress.h"

#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void at_progress_init(at_progress *p, FILE *f, bool enabled, const char *label)
{
    p->f = f;
    p->enabled = enabled;
    p->drawn = false;
    p->label = label;
    p->start = now();
    p->last = 0;
}

double at_progress_elapsed(const at_progress *p) { return now() - p->start; }

void at_progress_bytes(uint64_t n, char *out, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%llu B", (unsigned long long)n);
    else
        snprintf(out, cap, "%.2f %s", v, units[u]);
}

void at_progress_update(void *arg, uint64_t done, uint64_t total)
{
    at_progress *p = arg;
    if (!p->enabled)
        return;
    double t = now();
    if (p->drawn && t - p->last < 0.1 && done != total)
        return;
    p->last = t;
    double el = t - p->start, rate = el > 0 ? (double)done / el : 0;
    char d[32], tt[32], r[32], eta[32] = "--:--";
    at_progress_bytes(done, d, sizeof d);
    at_progress_bytes(total, tt, sizeof tt);
    at_progress_bytes((uint64_t)rate, r, sizeof r);
    if (rate > 0 && total >= done) {
        unsigned long s = (unsigned long)((double)(total - done) / rate + 0.5);
        snprintf(eta, sizeof eta, "%lu:%02lu", s / 60, s % 60);
    }
    unsigned pct = total ? (unsigned)(done * 100 / total) : 0;
    if (pct > 100)
        pct = 100;
    char bar[21];
    for (unsigned i = 0; i < 20; i++)
        bar[i] = i < pct / 5 ? '#' : '.';
    bar[20] = '\0';
    fprintf(p->f, "\r\033[K%s [%s] %3u%%  %s / %s  %s/s  ETA %s", p->label, bar, pct, d, tt, r, eta);
    fflush(p->f);
    p->drawn = true;
}

void at_progress_finish(at_progress *p)
{
    if (p->drawn) {
        fputs("\r\033[K", p->f);
        fflush(p->f);
        p->drawn = false;
    }
}
