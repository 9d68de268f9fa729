/* Unit tests for the transport addresses: at_parse_listen (lib/httpd.c:
 * host:port, unix:PATH, vsock:PORT, vsock:CID:PORT) and at_httpc_target
 * (lib/httpc.c: a URL, or unix:PATH / vsock:CID:PORT with an optional
 * ",URL"), exact error codes for every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "httpc.h"
#include "httpd.h"

static at_err parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    at_diag d = {{0}};
    return at_parse_listen(s, ss, len, &d);
}

static void listen_inet(void **st)
{
    (void)st;
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(parse("127.0.0.1:8440", &ss, &len), AT_OK);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8440);
    assert_int_equal(parse("[::1]:0", &ss, &len), AT_OK);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(parse("127.0.0.1", &ss, &len), AT_E_BAD_REQUEST);
    assert_int_equal(parse("127.0.0.1:65536", &ss, &len), AT_E_BAD_REQUEST);
}

static void listen_unix(void **st)
{
    (void)st;
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(parse("unix:/run/attest/agent.sock", &ss, &len), AT_OK);
    assert_int_equal(ss.ss_family, AF_UNIX);
    assert_string_equal(((struct sockaddr_un *)&ss)->sun_path, "/run/attest/agent.sock");
    assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/attest/agent.sock") + 1);
    /* a colon in the path is the path's */
    assert_int_equal(parse("unix:/tmp/a:b", &ss, &len), AT_OK);
    assert_string_equal(((struct sockaddr_un *)&ss)->sun_path, "/tmp/a:b");
    assert_int_equal(parse("unix:", &ss, &len), AT_E_BAD_REQUEST);
    char big[200] = "unix:/";
    memset(big + 6, 'x', 120);
    big[126] = '\0';
    assert_int_equal(parse(big, &ss, &len), AT_E_BAD_REQUEST);
}

static void listen_vsock(void **st)
{
    (void)st;
    struct sockaddr_storage ss;
    socklen_t len;
    struct sockaddr_vm *vm = (struct sockaddr_vm *)&ss;
    assert_int_equal(parse("vsock:5000", &ss, &len), AT_OK);
    assert_int_equal(ss.ss_family, AF_VSOCK);
    assert_int_equal(vm->svm_cid, VMADDR_CID_ANY);
    assert_int_equal(vm->svm_port, 5000);
    assert_int_equal(len, sizeof *vm);
    assert_int_equal(parse("vsock:3:8000", &ss, &len), AT_OK);
    assert_int_equal(vm->svm_cid, 3);
    assert_int_equal(vm->svm_port, 8000);
    assert_int_equal(parse("vsock:", &ss, &len), AT_E_BAD_REQUEST);
    assert_int_equal(parse("vsock:x", &ss, &len), AT_E_BAD_REQUEST);
    assert_int_equal(parse("vsock:-1", &ss, &len), AT_E_BAD_REQUEST);
    assert_int_equal(parse("vsock::80", &ss, &len), AT_E_BAD_REQUEST);
    assert_int_equal(parse("vsock:3:", &ss, &len), AT_E_BAD_REQUEST);
    assert_int_equal(parse("vsock:3:80:1", &ss, &len), AT_E_BAD_REQUEST);
    assert_int_equal(parse("vsock:4294967296:80", &ss, &len), AT_E_BAD_REQUEST);
    assert_int_equal(parse("vsock:3:4294967296", &ss, &len), AT_E_BAD_REQUEST);
}

static at_err target(const char *spec, char *url, size_t n)
{
    at_diag d = {{0}};
    return at_httpc_target("--upstream", spec, url, n, &d);
}

static void connect_targets(void **st)
{
    (void)st;
    char url[1024];
    at_diag d = {{0}};
    /* a plain URL is taken as it is */
    assert_int_equal(target("https://verifier.example:8443/base", url, sizeof url), AT_OK);
    assert_string_equal(url, "https://verifier.example:8443/base");
    /* an address alone: HTTP to localhost over it */
    assert_int_equal(target("unix:/run/llm.sock", url, sizeof url), AT_OK);
    assert_string_equal(url, "http://localhost");
    /* an address and the URL to speak over it (TLS end to end) */
    assert_int_equal(target("vsock:3:8443,https://verifier.example", url, sizeof url), AT_OK);
    assert_string_equal(url, "https://verifier.example");
    assert_int_equal(target("unix:/tmp/x,y.sock,http://llm.internal:8000", url, sizeof url), AT_OK);
    assert_string_equal(url, "http://llm.internal:8000");
    /* one origin, one route */
    assert_int_equal(
        at_httpc_target("--verifier", "unix:/other.sock,https://verifier.example/x", url, sizeof url, &d),
        AT_E_BAD_REQUEST);
    assert_non_null(strstr(d.msg, "already routed"));
    /* refusals */
    assert_int_equal(at_httpc_target("--upstream", "ftp://x", url, sizeof url, &d), AT_E_BAD_REQUEST);
    assert_non_null(strstr(d.msg, "--upstream"));
    assert_int_equal(target("vsock:8000", url, sizeof url), AT_E_BAD_REQUEST); /* no CID */
    assert_int_equal(target("vsock:3:x,http://a", url, sizeof url), AT_E_BAD_REQUEST);
    assert_int_equal(target("unix:,http://a", url, sizeof url), AT_E_BAD_REQUEST);
    assert_int_equal(target("unix:/a.sock,http://", url, sizeof url), AT_E_BAD_REQUEST); /* no host */
    assert_int_equal(target("unix:/a.sock,http://b:99999", url, sizeof url), AT_E_BAD_REQUEST);
    assert_int_equal(target("http://a.example/long", url, 10), AT_E_BAD_REQUEST);
    assert_int_equal(target("127.0.0.1:80", url, sizeof url), AT_E_BAD_REQUEST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(listen_inet),
        cmocka_unit_test(listen_unix),
        cmocka_unit_test(listen_vsock),
        cmocka_unit_test(connect_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
