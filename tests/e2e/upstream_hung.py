"""End-to-end: a hung upstream cannot take the agent down (review F2). The
agent's model server is a listener that accepts and never answers; the
agent runs 10 workers, so /v1/ohttp may hold 5 of them (with up to 16
workers half stay reserved; beyond, 8).
Twelve sealed requests (more than the workers): five wait on the
upstream, seven are refused at once with 503 unavailable and Retry-After; meanwhile /healthz and the key
config (answered on the I/O thread) and /v1/evidence (a reserved worker)
answer 200. Once the upstream lets go, everything is served again."""
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import AGENT, ATTESTCTL, Pki, Process, Verifier, Workdir, check, finish, http

WORKERS = 10
CAP = WORKERS // 2  # httpd: workers <= 16 keep half for the rest
N = WORKERS + 2  # more forwarding requests than workers

wd = Workdir("hung")
pki = Pki(wd)
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()

# The tarpit: accepts, reads, never answers.
tarpit = socket.socket()
tarpit.bind(("127.0.0.1", 0))
tarpit.listen(64)
held = []
stop_tarpit = threading.Event()


def tarpit_loop():
    tarpit.settimeout(0.2)
    while not stop_tarpit.is_set():
        try:
            c, _ = tarpit.accept()
            held.append(c)
        except OSError:
            pass


th = threading.Thread(target=tarpit_loop, daemon=True)
th.start()
agent = None
clients = []
try:
    owner = v.token("owner")
    agent_args = [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm", "--verifier", v.url,
                  "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:%d" % tarpit.getsockname()[1],
                  "--workers", str(WORKERS)]
    pol = json.loads(subprocess.run(agent_args + ["--print-pcrs"], capture_output=True).stdout)
    st, body = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201, "policy from the agent's --print-pcrs")
    agent = Process(wd, "agent", agent_args).start()
    open(wd("p.json"), "w").write('{"messages":[{"role":"user","content":"hi"}]}')
    for i in range(N):
        clients.append(subprocess.Popen(
            [ATTESTCTL, "ohttp", "request", "--key-config", agent.url + "/v1/key-config", "--url",
             agent.url + "/v1/ohttp", "--path", "/v1/chat/completions", "--data", "@" + wd("p.json")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    # The refused ones come back; the others wait on the tarpit.
    done = []
    end = time.time() + 60
    while time.time() < end and len(done) < N - CAP:
        done = [c for c in clients if c.poll() is not None]
        time.sleep(0.1)
    errs = [c.stderr.read().decode(errors="replace") for c in done]
    check(len(done) == N - CAP and all("HTTP 503" in e and '"code":"unavailable"' in e for e in errs),
          f"{N} forwarding requests, {CAP} allowed at once: {N - CAP} refused 503 unavailable ({errs})")
    end = time.time() + 30
    while time.time() < end and len(held) < CAP:
        time.sleep(0.1)
    time.sleep(0.5)  # an extra one would show now (none may)
    check(len(held) == CAP, f"{CAP} requests reached the hung upstream (got {len(held)})")
    raw = socket.create_connection(("127.0.0.1", agent.port), timeout=30)
    raw.sendall(b"POST /v1/ohttp HTTP/1.1\r\nHost: x\r\nContent-Type: message/ohttp-req\r\n"
                b"Content-Length: 4\r\nConnection: close\r\n\r\nAAAA")
    answer = b""
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            break
        answer += chunk
    raw.close()
    check(answer.startswith(b"HTTP/1.1 503") and b"\r\nRetry-After: 5\r\n" in answer,
          f"the refusal carries Retry-After ({answer[:200]!r})")
    # The rest of the agent is still there.
    st, _ = http("GET", agent.url + "/healthz", timeout=10)
    check(st == 200, f"GET /healthz: 200 while the upstream hangs (got {st})")
    st, _ = http("GET", agent.url + "/v1/key-config", timeout=10)
    check(st == 200, f"GET /v1/key-config: 200 while the upstream hangs (got {st})")
    nonce = base64.b64encode(b"\x00" * 32).decode()
    st, body = http("POST", agent.url + "/v1/evidence", body={"nonce": nonce}, timeout=10)
    check(st == 200, f"POST /v1/evidence: 200 while the upstream hangs (got {st})")
    # The upstream lets go: the waiting requests end, the share is free again.
    stop_tarpit.set()
    th.join()
    for c in held:
        c.close()
    tarpit.close()
    for c in clients:
        try:
            c.wait(timeout=60)
        except subprocess.TimeoutExpired:
            c.kill()
    check(all(c.returncode is not None for c in clients), "the waiting requests ended")
    st, _ = http("GET", agent.url + "/healthz", timeout=10)
    check(st == 200, f"the agent still answers afterwards (got {st})")
finally:
    for c in clients:
        if c.poll() is None:
            c.kill()
    if agent:
        agent.stop()
    v.stop()
    wd.cleanup()
finish()
