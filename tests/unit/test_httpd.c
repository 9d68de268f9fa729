/* Unit tests for lib/httpd.c's stop: a request in flight when the stop
 * begins is answered; a connection arriving while it drains is closed
 * without an answer; afterwards nothing listens on the port; and stopping
 * while clients keep connecting never aborts the process (MHD's quiesce
 * raced its own epoll loop and panicked: CI saw SIGABRT on SIGTERM); the
 * workers' nice value and inline routes. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "httpd.h"

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;

/* /slow waits for the test to open the gate; /nice answers its thread's
 * nice value; everything else answers "done". */
static void handler(void *app, at_http_req *req, at_http_resp *resp)
{
    (void)app;
    if (strcmp(req->url, "/nice") == 0 || strcmp(req->url, "/inline/nice") == 0) {
        char n[16];
        errno = 0;
        snprintf(n, sizeof n, "nice=%d", getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)));
        at_http_text(resp, 200, "text/plain", n);
        return;
    }
    if (strcmp(req->url, "/slow") == 0) {
        pthread_mutex_lock(&gate_lock);
        while (!gate_open)
            pthread_cond_wait(&gate_cond, &gate_lock);
        pthread_mutex_unlock(&gate_lock);
    }
    at_http_text(resp, 200, "text/plain", "done");
}

static int connect_port(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request on a new connection; returns bytes of answer read (0: the
 * server closed without answering, -1: no connection, -2: neither an
 * answer nor a close within 5 s). */
static ssize_t one_request(uint16_t port, const char *path, char *out, size_t cap)
{
    int fd = connect_port(port);
    if (fd < 0)
        return -1;
    char req[128];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    struct timeval tv = {.tv_sec = 5};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    size_t got = 0;
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
        for (;;) {
            ssize_t r = recv(fd, out + got, cap - 1 - got, 0);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && got == 0) {
                close(fd);
                return -2;
            }
            if (r <= 0 || got + (size_t)r >= cap - 1) {
                if (r > 0)
                    got += (size_t)r;
                break;
            }
            got += (size_t)r;
        }
    }
    out[got] = '\0';
    close(fd);
    return (ssize_t)got;
}

struct slow_client {
    uint16_t port;
    char answer[512];
    ssize_t len;
};

static void *slow_main(void *arg)
{
    struct slow_client *c = arg;
    c->len = one_request(c->port, "/slow", c->answer, sizeof c->answer);
    return NULL;
}

static void *stop_main(void *arg)
{
    at_httpd_stop(arg, 10000);
    return NULL;
}

static void drains_then_closes(void **state)
{
    (void)state;
    at_httpd *s = NULL;
    at_diag d = {{0}};
    gate_open = false;
    assert_int_equal(at_httpd_start("127.0.0.1:0", NULL, handler, NULL, &s, &d), AT_OK);
    uint16_t port = at_httpd_port(s);
    struct slow_client c = {.port = port};
    pthread_t slow, stopper;
    assert_int_equal(pthread_create(&slow, NULL, slow_main, &c), 0);
    for (int i = 0; i < 10000 && at_httpd_in_flight(s) == 0; i++)
        usleep(1000);
    assert_int_equal(at_httpd_in_flight(s), 1);
    assert_int_equal(pthread_create(&stopper, NULL, stop_main, s), 0);

    /* Until the stop begins, new connections are answered; once it has,
     * they are closed unanswered while /slow is still in flight. */
    char buf[512];
    ssize_t n = 1;
    for (int i = 0; i < 5000 && n > 0; i++) {
        n = one_request(port, "/fast", buf, sizeof buf);
        if (n > 0)
            assert_non_null(strstr(buf, "HTTP/1.1 200"));
    }
    assert_int_equal(n, 0);

    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    pthread_join(slow, NULL);
    pthread_join(stopper, NULL);
    assert_true(c.len > 0);
    assert_non_null(strstr(c.answer, "HTTP/1.1 200"));
    assert_non_null(strstr(c.answer, "done"));
    /* Stopped: the listening socket is closed. */
    assert_int_equal(connect_port(port), -1);
}

struct hammer {
    uint16_t port;
    atomic_bool stop;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    char buf[256];
    while (!atomic_load(&h->stop))
        if (one_request(h->port, "/fast", buf, sizeof buf) < 0)
            usleep(100);
    return NULL;
}

static void stop_under_connects(void **state)
{
    (void)state;
    gate_open = true;
    for (int round = 0; round < 60; round++) {
        at_httpd *s = NULL;
        at_diag d = {{0}};
        assert_int_equal(at_httpd_start("127.0.0.1:0", NULL, handler, NULL, &s, &d), AT_OK);
        struct hammer h = {.port = at_httpd_port(s)};
        pthread_t t[3];
        for (int i = 0; i < 3; i++)
            assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h), 0);
        usleep(2000 + (unsigned)round * 100);
        at_httpd_stop(s, 1000);
        atomic_store(&h.stop, true);
        for (int i = 0; i < 3; i++)
            pthread_join(t[i], NULL);
    }
}

/* A server stops removing its UNIX socket path only while the path is
 * still its own socket: a newer server bound there keeps its socket. */
static void unix_path_of_another_kept(void **state)
{
    (void)state;
    char dir[] = "/tmp/attest-httpd-XXXXXX", path[128], listen[160];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.sock", dir);
    snprintf(listen, sizeof listen, "unix:%s", path);
    at_httpd *a = NULL, *b = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_httpd_start(listen, NULL, handler, NULL, &a, &d), AT_OK);
    assert_int_equal(unlink(path), 0); /* an operator removes it; another server takes the path */
    assert_int_equal(at_httpd_start(listen, NULL, handler, NULL, &b, &d), AT_OK);
    at_httpd_stop(a, 100);
    assert_int_equal(access(path, F_OK), 0);
    at_httpd_stop(b, 100);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(rmdir(dir), 0);
}

static int classify_inline(void *app, const char *method, const char *path)
{
    (void)app;
    (void)method;
    return strncmp(path, "/inline/", 8) == 0 ? AT_HTTP_RUN_INLINE : AT_HTTP_RUN_POOL;
}

/* worker_nice applies to the workers only: an inline route runs on an I/O
 * thread, which keeps the process's priority (the verifier's /healthz once
 * reniced the I/O thread that served it). And an inline route is answered
 * while every worker is held. */
static void nice_on_workers_inline_never_waits(void **state)
{
    (void)state;
    int base = getpriority(PRIO_PROCESS, 0);
    if (base > 12)
        skip(); /* too nice already to see a +5 */
    at_httpd_opts o = {.workers = 2, .worker_nice = 5, .classify = classify_inline};
    at_httpd *s = NULL;
    at_diag d = {{0}};
    assert_int_equal(at_httpd_start("127.0.0.1:0", &o, handler, NULL, &s, &d), AT_OK);
    uint16_t port = at_httpd_port(s);
    char buf[512], want[32];
    assert_true(one_request(port, "/inline/nice", buf, sizeof buf) > 0);
    snprintf(want, sizeof want, "nice=%d", base);
    assert_non_null(strstr(buf, want));
    assert_true(one_request(port, "/nice", buf, sizeof buf) > 0);
    snprintf(want, sizeof want, "nice=%d", base + 5);
    assert_non_null(strstr(buf, want));
    /* Both workers held by /slow: the inline route still answers. */
    pthread_mutex_lock(&gate_lock);
    gate_open = false;
    pthread_mutex_unlock(&gate_lock);
    struct slow_client c[2] = {{.port = port}, {.port = port}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, slow_main, &c[i]), 0);
    usleep(200000);
    assert_true(one_request(port, "/inline/nice", buf, sizeof buf) > 0);
    snprintf(want, sizeof want, "nice=%d", base);
    assert_non_null(strstr(buf, want));
    pthread_mutex_lock(&gate_lock);
    gate_open = true;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_non_null(strstr(c[i].answer, "done"));
    }
    at_httpd_stop(s, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(drains_then_closes),
        cmocka_unit_test(stop_under_connects),
        cmocka_unit_test(unix_path_of_another_kept),
        cmocka_unit_test(nice_on_workers_inline_never_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
