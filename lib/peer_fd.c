/* peer_fd: lib/peer's messages over a stream socket (see peer_fd.h). */
#include "peer_fd.h"

#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "peer.h"

static int open_unix(const char *addr, bool listening, at_diag *d)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    const char *path = addr + 5;
    if (strlen(path) >= sizeof sun.sun_path) {
        at_fail(d, AT_E_BAD_REQUEST, "%s: path longer than %zu bytes", addr, sizeof sun.sun_path - 1);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (listening) {
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(path);
        if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 || listen(fd, 8) != 0)
            goto fail;
    } else if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        goto fail;
    }
    return fd;
fail:
    at_fail(d, AT_E_IO, "%s: %s", addr, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

int at_peer_fd_open(const char *addr, bool listening, at_diag *d)
{
    if (strncmp(addr, "unix:", 5) == 0)
        return open_unix(addr, listening, d);
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host) {
        at_fail(d, AT_E_BAD_REQUEST, "%s: expected unix:PATH or HOST:PORT", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *h = host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = listening ? AI_PASSIVE : 0}, *res;
    int e = getaddrinfo(h, colon + 1, &hints, &res);
    if (e != 0) {
        at_fail(d, AT_E_IO, "%s: %s", addr, gai_strerror(e));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0)) < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        if (listening) {
            if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
                bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 8) == 0)
                break;
        } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            break;
        }
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        at_fail(d, AT_E_IO, "%s: %s", addr, strerror(err ? err : EADDRNOTAVAIL));
    return fd;
}

static int io_all(int fd, uint8_t *p, size_t n, bool out)
{
    while (n > 0) {
        ssize_t r = out ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

at_err at_peer_fd_send(int fd, at_span msg, at_diag *d)
{
    at_buf f;
    at_buf_init(&f);
    at_err rc = at_peer_frame(msg, &f);
    if (rc == AT_OK && io_all(fd, f.p, f.len, true) != 0)
        rc = at_fail(d, AT_E_IO, "socket: write failed: %s", strerror(errno));
    at_buf_cleanup(&f);
    return rc;
}

at_err at_peer_fd_recv(int fd, size_t max, at_buf *out, at_diag *d)
{
    uint8_t l[4];
    at_buf_reset(out);
    if (io_all(fd, l, 4, false) != 0)
        return at_fail(d, AT_E_TRUNCATED,
                       "socket: the peer closed the connection (or timed out) mid-protocol");
    size_t n = (size_t)l[0] << 24 | (size_t)l[1] << 16 | (size_t)l[2] << 8 | l[3];
    if (n > max)
        return at_fail(d, AT_E_TOO_LARGE, "socket: message of %zu bytes, at most %zu", n, max);
    at_err rc = at_buf_reserve(out, n);
    if (rc != AT_OK)
        return at_fail(d, rc, "socket: message of %zu bytes: out of memory", n);
    if (io_all(fd, out->p, n, false) != 0)
        return at_fail(d, AT_E_TRUNCATED, "socket: message cut short (%zu bytes announced)", n);
    out->len = n;
    return AT_OK;
}
