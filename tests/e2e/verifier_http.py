"""End-to-end: attest-verifier's HTTP layer with hand-made requests:
percent-encoded NUL bytes in paths and query values, oversized bodies
with and without Content-Length (one refusal each, counted); and
out-of-range values in its configuration file."""
import json
import os
import socket
import ssl
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Pki, Verifier, Workdir, check, ctl, finish, http

wd = Workdir("http")
pki = Pki(wd)
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()


def talk(port, request, timeout=30, source=None):
    """Send raw bytes; read until the server closes or a whole answer (by
    its Content-Length) came. Returns ("closed" | "timeout", bytes): a
    timeout is never taken for a refusal."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    data, outcome = b"", "closed"
    try:
        s.sendall(request)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            if b"content-length:" in head.lower():
                n = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1])
                if len(body) >= n:
                    break
    except socket.timeout:
        outcome = "timeout"
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return outcome, data


def raw(request):
    """Send raw bytes, return (status, body bytes)."""
    outcome, data = talk(v.port, request)
    if outcome != "closed" or not data.startswith(b"HTTP/"):
        return None, data  # no answer: never a status a check accepts
    return int(data.split(b" ")[1]), data.partition(b"\r\n\r\n")[2]


try:
    owner = v.token("owner")
    auditor = v.token("auditor")
    pol = pki.policy()
    st, body = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201 and body["version"] == 1, "policy llm v1")

    # ---- percent-encoded NUL: never truncates a name -------------------------
    st, body = v.call("PUT", "/v1/policies/llm%00other", body=pol, token=owner)
    check(st == 400 and body["error"]["code"] == "bad_request",
          f"PUT /v1/policies/llm%00other: 400 bad_request (got {st} {body})")
    st, body = v.call("GET", "/v1/policies/llm", token=owner)
    check(st == 200 and len(body["history"]) == 1, "policy llm has still one version")
    st, body = v.call("GET", "/v1/policies/llm%00x", token=owner)
    check(st == 400 and body["error"]["code"] == "bad_request",
          f"GET /v1/policies/llm%00x: 400 bad_request (got {st} {body})")
    st, body = v.call("GET", "/v1/sessions?policy=llm%00x", token=auditor)
    check(st == 400 and body["error"]["code"] == "bad_request",
          f"a query value with %00: 400 bad_request (got {st})")
    st, body = v.call("GET", "/v1/policies/ll%6d", token=owner)
    check(st == 200 and body["name"] == "llm", "other percent-encodings still decode (ll%6d = llm)")

    # ---- oversized bodies ----------------------------------------------------------
    big = b'{"evidence":"' + b"A" * 70000 + b'"}'
    def too_large_count():
        st, text = v.call("GET", "/metrics")
        for line in text.splitlines():
            if line.startswith('attest_refusals_total{action="http.body",code="too_large"}'):
                return int(float(line.split()[-1]))
        return 0
    m0 = too_large_count()
    n0 = v.sql("SELECT count(*) FROM audit WHERE action = 'http.body'")[0][0]
    st, body = raw(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
    check(st == 413, f"announced oversized body: 413 (got {st})")
    chunks = b"".join(b"%x\r\n" % 8000 + b"A" * 8000 + b"\r\n" for _ in range(10)) + b"0\r\n\r\n"
    st, body = raw(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    check(st == 413, f"chunked oversized body: 413 (got {st})")
    n1 = v.sql("SELECT count(*) FROM audit WHERE action = 'http.body'")[0][0]
    # Anonymous: counted into the client's per-minute aggregate, not a row each.
    check(n1 - n0 == 0 and too_large_count() - m0 == 2,
          f"oversized requests: counted in /metrics, no row each (got {n1 - n0} rows)")
    # ---- audit rows are valid UTF-8, every field covered by the hash -------------
    # "session:%.50s" cuts this session id inside a two-byte character.
    sid = "a" + "\u00e9" * 31
    st, body = v.call("POST", "/v1/secrets/x/release", raw=json.dumps(
        {"session": sid, "proof": "1." + "A" * 43}, ensure_ascii=False).encode())
    aid = body["error"]["audit_id"] if isinstance(body, dict) else None
    row = v.audit_row(aid) if aid else None
    # The session id is only a claim until the proof's MAC verifies: the
    # refusal is the anonymous caller's (never charged to that session).
    check(st == 401 and row is not None and isinstance(row.get("session_id"), str)
          and row["session_id"].startswith("a\u00e9") and not str(row.get("actor")).startswith("session:"),
          f"a refusal naming a non-ASCII session id: its audit entry keeps it as valid UTF-8, "
          f"the actor is the caller's ({row})")
    st, body = v.call("GET", "/v1/audit/verify", token=auditor)
    check(st == 200 and body["ok"], "the chain verifies")
    v.sql("UPDATE audit SET actor = CAST(X'73657373696f6e3a62ff' AS TEXT) WHERE id = ?", (aid,))
    st, body = v.call("GET", "/v1/audit/verify", token=auditor)
    check(st == 200 and not body["ok"] and body["first_bad"] == aid,
          f"an edited actor is detected (got {body})")
    v.sql("DELETE FROM audit WHERE id >= ?", (aid,))
    v.sql("UPDATE audit_head SET last_id = (SELECT max(id) FROM audit),"
          " hash = (SELECT hash FROM audit ORDER BY id DESC LIMIT 1)")

    # ---- request parsing: route on the raw path, refuse ambiguity --------------
    def refused400(st, body, header, what):
        try:
            j = json.loads(body)
        except ValueError:
            j = {}
        code = j.get("error", {}).get("code")
        msg = j.get("error", {}).get("message", "")
        check(st == 400 and code == "bad_request" and header in msg,
              f"{what}: 400 bad_request naming {header} (got {st} {code} {msg!r})")
        st2, _ = v.call("GET", "/healthz")
        check(st2 == 200, f"after {what}: the verifier still answers")

    # POST /v1/challenge runs on the I/O thread: a body longer than "{}" needs
    # is refused without being parsed (a large JSON body cost ~4 ms there).
    big = json.dumps({f"k{i}": [i] for i in range(3000)}).encode()
    st, body = v.call("POST", "/v1/challenge", raw=big)
    check(st == 400 and body["error"]["code"] == "bad_request" and "expected {} or nothing" in
          body["error"]["message"] and "k0" not in body["error"]["message"],
          f"a {len(big)}-byte challenge body: 400 bad_request unparsed (got {st} {body})")
    st, body = v.call("POST", "/v1/challenge", raw=b'{ "x": 1 }')
    check(st == 400 and "x" in body["error"]["message"], f"a short one is parsed and its field named ({body})")
    st, body = v.call("POST", "/v1/challenge", raw=b" {  } ")
    check(st == 201 and body.get("nonce"), "{} with white space: a nonce")

    st, body = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201 and body["version"] == 2, "policy llm v2")
    st, body = v.call("DELETE", "/v1/policies/llm%2Fversions%2F1", token=owner)
    check(st == 400 and body["error"]["code"] == "bad_request",
          f"DELETE /v1/policies/llm%2Fversions%2F1: %2F does not split the path: 400 bad_request (got {st} {body})")
    st, body = v.call("GET", "/v1/policies/llm", token=owner)
    check(st == 200 and all(not h.get("revoked_at") and not h.get("revoked") for h in body["history"])
          and len(body["history"]) == 2, f"no version of llm was revoked ({body})")
    st, body = v.call("GET", "/v1/policies/llm%2f..%2fllm", token=owner)
    check(st == 400 and body["error"]["code"] == "bad_request", f"%2f..%2f in a name: 400 (got {st})")
    st, body = v.call("GET", "/v1/policies/%6c%6c%6D", token=owner)
    check(st == 200 and body["name"] == "llm", f"escapes of ordinary characters decode per segment (got {st})")
    admin = v.admin.encode()
    st, body = raw(b"GET /v1/audit?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin
                   + b"\x00junk\r\n\r\n")
    refused400(st, body, "Authorization", "a NUL byte after the bearer token")
    st, body = raw(b"GET /v1/audit?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin
                   + b"\r\nAuthorization: Bearer x" + b"\r\n\r\n")
    refused400(st, body, "Authorization", "two Authorization headers")
    st, body = raw(b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3"
                   b"\r\n\r\n{}")
    refused400(st, body, "Content-Length", "two different Content-Length headers")
    st, body = raw(b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2"
                   b"\r\n\r\n{}")
    refused400(st, body, "Content-Length", "Content-Length given twice")
    st, body = raw(b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked"
                   b"\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    refused400(st, body, "Transfer-Encoding", "Transfer-Encoding with Content-Length")
    st, body = raw(b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}")
    # refused by libmicrohttpd's parser itself, before any route: no JSON body
    check(st == 400, f"a Content-Length that is not digits: 400 (got {st})")
    st2, _ = v.call("GET", "/healthz")
    check(st2 == 200, "after a Content-Length that is not digits: the verifier still answers")
    # Whitespace before ':' (RFC 9112 §5.1): refused, and it hides no duplicate.
    st, body = raw(b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length : 40"
                   b"\r\nConnection: close\r\n\r\n{}")
    refused400(st, body, "Content-Length", "a second Content-Length with a space before ':'")
    st, body = raw(b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding : chunked"
                   b"\r\nConnection: close\r\n\r\n{}")
    refused400(st, body, "Transfer-Encoding", "Transfer-Encoding with a space before ':'")
    st, body = raw(b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost : b\r\nConnection: close\r\n\r\n")
    refused400(st, body, "Host", "a second Host with a space before ':'")
    st, body = raw(b"GET /v1/audit?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin
                   + b"\r\nAuthorization\t: Bearer x\r\nConnection: close\r\n\r\n")
    refused400(st, body, "Authorization", "a second Authorization with a tab before ':'")
    st, body = raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad : y\r\nConnection: close\r\n\r\n")
    refused400(st, body, "X-Pad", "any header with a space before ':'")
    # More headers than the NUL scan covers: refused, naming the limit.
    pad = b"".join(b"X-P%d: a\r\n" % i for i in range(130))
    st, body = raw(b"GET /v1/audit?limit=1 HTTP/1.1\r\nHost: x\r\n" + pad + b"Authorization: Bearer "
                   + admin + b"\x00junk\r\nConnection: close\r\n\r\n")
    refused400(st, body, "at most 128", "a NUL byte after 130 headers")
    st, body = raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-P%d: a\r\n" % i for i in range(126))
                   + b"Connection: close\r\n\r\n")
    check(st == 200, f"128 headers are still served (got {st})")
    # NUL in the request line: refused, never cut.
    st, body = raw(b"GET /v1/audit/verify\x00junk HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin
                   + b"\r\nConnection: close\r\n\r\n")
    refused400(st, body, "request line: contains a NUL", "a NUL byte in the target")
    st, body = raw(b"GET\x00X /v1/audit/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin
                   + b"\r\nConnection: close\r\n\r\n")
    refused400(st, body, "request line: contains a NUL", "a NUL byte in the method")
    st, body = raw(b"GET /v1/audit/verify?a=%41b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin
                   + b"\r\nConnection: close\r\n\r\n")
    check(st == 200, f"a target with a query and an escape is still served (got {st})")
    # RFC 9112 §3.2: HTTP/1.1 without Host is refused; HTTP/1.0 needs none.
    st, body = raw(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    refused400(st, body, "Host", "an HTTP/1.1 request without Host")
    st, body = raw(b"GET /healthz HTTP/1.0\r\n\r\n")
    check(st == 200, f"an HTTP/1.0 request without Host is served (got {st})")
    # ---- log lines: bytes that are not UTF-8 are escaped, never dropped ----------
    st, body = raw(b"G\xffT /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    code = json.loads(body).get("error", {}).get("code") if body.startswith(b"{") else None
    check(st == 404 and code == "not_found", f"method G\\xffT: 404 not_found (got {st} {code})")
    st2, _ = v.call("GET", "/healthz")
    check(st2 == 200, "after method G\\xffT: the verifier still answers")
    # The access line is written after the answer: wait for it, bounded.
    deadline = time.monotonic() + 10
    while b"G\\\\xffT" not in open(v.log, "rb").read() and time.monotonic() < deadline:
        time.sleep(0.05)
    check(b"G\\\\xffT" in open(v.log, "rb").read(),
          "method G\\xffT: its request still has a log line, the byte escaped")

    # ---- configuration file: the same bounds as the flags ----------------------
    import subprocess
    from harness import VERIFIER
    for key, value in (("nonce_ttl_s", 0), ("nonce_ttl_s", 10 ** 10), ("clock_skew_s", -5),
                       ("max_body_bytes", -1), ("connection_limit", 0), ("rate_per_s", -1),
                       ("rate_burst", 0)):
        cfg = wd(f"bad-{key}.json")
        with open(cfg, "w") as f:
            f.write('{"%s": %d}' % (key, value))
        p = subprocess.Popen([VERIFIER, "--config", cfg, "--db", wd(f"bad-{key}.db"),
                              "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=5)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            p.terminate()
            out, err = p.communicate()
            rc = None
        check(rc == 2 and key.encode() in err,
              f"config {key} = {value}: refused at start-up like the flag (exit {rc})")
    # HTTPS: --tls-cert/--tls-key; clients trust a private CA via ATTEST_CA_FILE
    cert, key = wd("tls-cert.pem"), wd("tls-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    vt = Verifier(wd, roots=[pki.root], extra=["--rate", "0", "--tls-cert", cert, "--tls-key", key],
                  db=wd("tls.db"))
    vt.start()
    https = f"https://127.0.0.1:{vt.port}"
    owner_t = vt.token("owner")
    tls_env = dict(os.environ, ATTEST_CA_FILE=cert, ATTEST_TOKEN=owner_t)
    open(wd("tls-policy.json"), "w").write(json.dumps(pki.policy()))
    p = ctl("policy", "put", "p", wd("tls-policy.json"), "--verifier", https, env=tls_env)
    check(p.returncode == 0, f"attestctl over HTTPS with ATTEST_CA_FILE ({p.stderr.decode()[:150]})")
    p = ctl("policy", "get", "p", "--verifier", https, env=dict(os.environ, ATTEST_TOKEN=owner_t))
    check(p.returncode != 0 and b"certificate" in p.stderr.lower(), "without the CA the certificate is refused")
    # Plain HTTP on the TLS port: the connection ends without an HTTP answer
    # (promptly: a timeout is a failure), and the server still serves TLS.
    outcome, got = talk(vt.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    check(outcome == "closed" and not got.startswith(b"HTTP/"),
          f"plain HTTP is not served on the TLS port: closed without an HTTP answer ({outcome}, {got[:16]!r})")
    with urllib.request.urlopen(f"{https}/healthz", timeout=10,
                                context=ssl.create_default_context(cafile=cert)) as r:
        check(r.status == 200, f"after the plain request, HTTPS still answers (got {r.status})")
    vt.stop()

    # --per-ip-limit: a client holding N connections gets no N+1st
    import socket
    v2 = Verifier(wd, roots=[pki.root], extra=["--rate", "0", "--per-ip-limit", "2"], db=wd("perip.db")).start()
    held = [socket.create_connection(("127.0.0.1", v2.port)) for _ in range(2)]
    # Both held connections are accepted (each answers a request) before the
    # third one is tried: no sleep decides the order.
    for sck in held:
        sck.settimeout(10)
        sck.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        check(sck.recv(100).startswith(b"HTTP/1.1 200"), "--per-ip-limit 2: a held connection is served")
    outcome, answer = talk(v2.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    check(outcome == "closed" and answer == b"",
          f"--per-ip-limit 2: a third connection is closed unanswered ({outcome}, {answer[:16]!r})")
    # Another client (source 127.0.0.2) is served while those two are held.
    _, answer = talk(v2.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10,
                     source="127.0.0.2")
    check(answer.startswith(b"HTTP/1.1 200"), "--per-ip-limit 2: another address is still served")
    for sck in held:
        sck.close()
    deadline = time.monotonic() + 10
    st = None
    while st != 200 and time.monotonic() < deadline:
        try:  # until the server has seen the closes
            st, _ = v2.call("GET", "/healthz")
        except OSError:
            time.sleep(0.05)
    check(st == 200, "after the client let go, it is served again")
    v2.stop()
finally:
    v.stop()
    wd.cleanup()
finish()
