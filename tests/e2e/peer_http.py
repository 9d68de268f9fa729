"""End-to-end, issue 8: HTTP over the mutually attested channel
(lib/peer_http). B runs `attestctl peer serve --upstream` in front of a
real local HTTP API (a small server in this script, and
scripts/llm-standin.py over a UNIX socket); A runs `attestctl peer connect
--request`. Proven: GET and a 100 KiB POST round trip byte-exact (the
request and the answer each span several records), headers reach the API,
several requests share one channel, a dot-segment path is refused by B
with 400 bad_request before the API sees it, a dead upstream answers 502
with attest's error JSON naming neither its address nor its URL, a request
over the message maximum is refused with too_large before anything is
sent, an upstream answer over it is answered 502 too_large, and B serves
connection after connection and stops cleanly on SIGTERM."""
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ATTESTCTL, STANDIN, Pki, Workdir, check, finish

wd = Workdir("peer-http")
pki = Pki(wd)
for side in ("a", "b"):
    shutil.copytree(pki.dir, wd(f"pki-{side}"))
GOOD = {0: "a" * 96, 1: "b" * 96, 2: "c" * 96}
policy = wd("peer-policy.json")
with open(policy, "w") as f:
    json.dump({"format": "nitro-enclave", "pcrs": {str(k): [v] for k, v in GOOD.items()}}, f)
MAX = 8 * 1024 * 1024  # AT_PEER_HTTP_MAX_MESSAGE


def side_args(side):
    args = ["--attester", "sim", "--pki", wd(f"pki-{side}"), "--peer-policy", policy, "--root", pki.root]
    for k, v in GOOD.items():
        args += ["--sim-pcr", f"{k}={v}"]
    return args


# ---- the local API behind B ----
seen = []


class Api(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _answer(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        seen.append((self.command, self.path, dict(self.headers), body))
        if self.path == "/big":
            self._answer(200, b"x" * (MAX + 1), "application/octet-stream")
        elif self.path == "/echo":
            self._answer(200, body, self.headers.get("Content-Type") or "application/octet-stream")
        elif self.path.startswith("/items/"):
            self._answer(200, json.dumps({"method": self.command, "path": self.path,
                                          "trace": self.headers.get("X-Trace")}).encode())
        else:
            self._answer(404, b'{"error":"no such route"}')

    do_GET = do_POST = do_PUT = do_DELETE = _handle


api = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
api.handle_error = lambda *a: None  # B drops /big's connection half-way: expected
threading.Thread(target=api.serve_forever, daemon=True).start()
API_URL = f"http://127.0.0.1:{api.server_address[1]}"


def wait_for(path):
    for _ in range(400):
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{path} never appeared")


def serve(name, upstream):
    sock = wd(f"{name}.sock")
    p = subprocess.Popen([ATTESTCTL, "peer", "serve", "--listen", f"unix:{sock}", "--upstream", upstream]
                         + side_args("b"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(sock)
    return p, f"unix:{sock}"


def stop(p, name):
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    check(p.returncode == 0, f"{name}: serve stops cleanly on SIGTERM (status {p.returncode})")
    check(b"AddressSanitizer" not in err and b"runtime error:" not in err, f"{name}: no sanitizer report")
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()], err.decode()


def connect(target, *req_args):
    return subprocess.run([ATTESTCTL, "peer", "connect", "--connect", target] + list(req_args) + side_args("a"),
                          capture_output=True, timeout=120)


def error_code(body):
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


b, target = serve("b", API_URL)
try:
    # ---- GET, with a header ----
    r = connect(target, "--request", "GET /items/42?x=1", "--header", "X-Trace: abc")
    ans = json.loads(r.stdout or b"{}")
    check(r.returncode == 0 and b"HTTP 200" in r.stderr, f"GET: exit 0, HTTP 200 on stderr ({r.returncode})")
    check(ans == {"method": "GET", "path": "/items/42?x=1", "trace": "abc"},
          f"GET: the API saw the method, path and header ({ans})")

    # ---- POST of 100 KiB: several records each way, byte-exact ----
    big = os.urandom(100 * 1024)
    with open(wd("big.bin"), "wb") as f:
        f.write(big)
    n_before = len(seen)
    r = connect(target, "--request", "POST /echo", "--header", "Content-Type: application/octet-stream",
                "--data", "@" + wd("big.bin"))
    check(r.returncode == 0 and r.stdout == big, f"POST 100 KiB: the answer is the body, byte-exact ({r.returncode}, "
          f"{len(r.stdout)} bytes)")
    check(len(seen) == n_before + 1 and seen[-1][0] == "POST" and seen[-1][3] == big,
          "POST 100 KiB: the API received the body byte-exact")
    check("Host" in seen[-1][2] and seen[-1][2].get("Host", "").startswith("127.0.0.1"),
          "POST: the Host the API sees is its own, not one the peer chose")

    # ---- several requests on one channel ----
    r = connect(target, "--request", "GET /items/1", "--request", "PUT /items/2", "--data", "{}")
    check(r.returncode == 0 and r.stderr.decode().count("HTTP 200") == 2 and r.stdout.count(b'"path"') == 2,
          f"two requests on one channel: two answers ({r.returncode})")
    r = connect(target, "--request", "GET /items/1", "--request", "GET /nothing")
    check(r.returncode == 1 and b"HTTP 404" in r.stderr, f"a non-2xx answer among them: exit 1 ({r.returncode})")

    # ---- a dot-segment path: refused by B, the API never asked ----
    for path in ("/items/../admin", "/items/%2e%2E/admin", "/./items/1"):
        n_before = len(seen)
        r = connect(target, "--request", f"GET {path}")
        check(r.returncode == 1 and b"HTTP 400" in r.stderr and error_code(r.stdout) == "bad_request",
              f"{path}: 400 bad_request ({r.returncode}, {r.stdout[:120]})")
        check(len(seen) == n_before, f"{path}: the API was not called")

    # ---- over the maximum ----
    with open(wd("huge.bin"), "wb") as f:
        f.write(b"y" * (MAX + 1))
    r = connect(target, "--request", "POST /echo", "--data", "@" + wd("huge.bin"))
    check(r.returncode == 1 and b"too_large" in r.stderr and r.stdout == b"",
          f"a request over {MAX} bytes: refused with too_large before sending ({r.returncode}, {r.stderr[-200:]})")
    r = connect(target, "--request", "GET /big")
    check(r.returncode == 1 and b"HTTP 502" in r.stderr and error_code(r.stdout) == "too_large",
          f"an upstream answer over the maximum: 502 too_large ({r.returncode}, {r.stdout[:120]})")

    # ---- B still serves after all that ----
    r = connect(target, "--request", "GET /items/7")
    check(r.returncode == 0 and b"/items/7" in r.stdout, "B serves the next connection")
finally:
    lines, err = stop(b, "serve")
check(len(lines) == 9 and all(x.get("ok") for x in lines) and lines[0].get("requests") == 1
      and lines[2].get("requests") == 2 and lines[0].get("peer", {}).get("pcrs", {}).get("0") == GOOD[0],
      f"serve: one JSON line per connection, naming the peer and counting its requests ({len(lines)})")

# ---- upstream down: 502 with attest's error JSON, no URL ----
s = socket.socket()
s.bind(("127.0.0.1", 0))
dead_port = s.getsockname()[1]
s.close()
b, target = serve("dead", f"http://127.0.0.1:{dead_port}/base")
try:
    r = connect(target, "--request", "GET /items/1")
    body = r.stdout.decode(errors="replace")
    check(r.returncode == 1 and b"HTTP 502" in r.stderr and error_code(r.stdout) == "unavailable",
          f"upstream down: 502 unavailable ({r.returncode}, {body[:160]})")
    check(str(dead_port) not in body and "127.0.0.1" not in body and "/base" not in body and "http" not in body,
          "upstream down: the answer names neither the upstream's address nor its URL")
finally:
    stop(b, "serve (dead upstream)")

# ---- unix:PATH,URL upstream: the LLM stand-in on a UNIX socket ----
llm_sock = wd("standin.sock")
llm = subprocess.Popen(["python3", STANDIN, "--unix", llm_sock], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
try:
    wait_for(llm_sock)
    for _ in range(400):  # bound before it listens: wait until it accepts
        with socket.socket(socket.AF_UNIX) as probe:
            if probe.connect_ex(llm_sock) == 0:
                break
        time.sleep(0.05)
    b, target = serve("llm", f"unix:{llm_sock}")
    try:
        r = connect(target, "--request", "POST /v1/chat/completions", "--data",
                    '{"model":"m","messages":[{"role":"user","content":"hello over the channel"}]}')
        check(r.returncode == 0 and b"hello over the channel" in r.stdout,
              f"unix upstream: the stand-in LLM answers through the channel ({r.returncode}, {r.stdout[:200]}, "
              f"{r.stderr[-300:]})")
    finally:
        stop(b, "serve (unix upstream)")
finally:
    llm.terminate()
    llm.wait()

api.shutdown()
wd.cleanup()
finish()
