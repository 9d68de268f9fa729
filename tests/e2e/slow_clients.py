"""End-to-end: slow clients cannot starve the servers. Many connections
from two loopback addresses (127.0.0.1 and 127.0.0.2) each send a request
line and then one header line a second, never finishing their request,
against the verifier, the agent and the gateway at once. While they are
open a normal client still gets GET /healthz and a real request answered
on each server (an attestation, an OHTTP key config, a chat completion
through gateway -> agent -> LLM); and the servers close every trickling
connection by the whole-request deadline (--request-timeout), although
each of them keeps sending (an idle timeout never fires for them)."""
import base64
import errno
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, BUILD, STANDIN, KeyPair, Pki, Process, Verifier, Workdir, check, finish,
                     http)

GATEWAY = os.path.join(BUILD, "gateway", "attest-gateway")
PER_ADDRESS = int(os.environ.get("AT_SLOW_CLIENTS", "2000"))
DEADLINE_S = 15
SOURCES = ("127.0.0.1", "127.0.0.2")

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
need = 3 * len(SOURCES) * PER_ADDRESS + 512
if hard < need:  # not enough descriptors on this machine: fewer connections
    PER_ADDRESS = max(100, (hard - 512) // (3 * len(SOURCES)))

wd = Workdir("slow")
pki = Pki(wd)
limits = ["--request-timeout", str(DEADLINE_S)]
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"] + limits).start()
llm = Process(wd, "llm", ["python3", STANDIN], sanitizer_check=False).start()
procs = []
tricklers = []


def start(p):
    procs.append(p)
    return p.start()


def open_tricklers(port, source, n):
    """n connections from source, each with a request line and one header."""
    out = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((source, 0))
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        except OSError as e:
            s.close()
            raise RuntimeError(f"trickler {i} from {source}: {e}")
        s.setblocking(False)
        out.append(s)
    return out


def trickle(socks, k):
    """One more header line on each still-open connection; returns how many
    the server has closed (EOF, reset or refused write)."""
    closed = 0
    for s in socks:
        if s.fileno() < 0:
            closed += 1
            continue
        try:
            data = s.recv(4096)
            if data == b"":
                raise ConnectionResetError()
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            closed += 1
            continue
        try:
            s.send(b"X-Trickle-%d: x\r\n" % k)
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            closed += 1
    return closed


try:
    owner = v.token("owner")
    gw_token = wd("gateway.token")
    open(gw_token, "w").write(v.token("gateway") + "\n")
    agent_args = [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm", "--verifier", v.url,
                  "--listen", "127.0.0.1:0", "--upstream", llm.url] + limits
    pol = json.loads(subprocess.run(agent_args + ["--print-pcrs"], capture_output=True).stdout)
    st, body = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201, "policy from the agent's --print-pcrs")
    st, body = v.call("PUT", "/v1/policies/plain", body=pki.policy(), token=owner)
    check(st == 201, "policy plain for the simulator's documents")
    agent = start(Process(wd, "agent", agent_args))
    gw = start(Process(wd, "gateway", [GATEWAY, "--verifier", v.url, "--policy", "llm", "--listen",
                                       "127.0.0.1:0", "--token-file", gw_token, "--refresh", "1"] + limits))
    end = time.time() + 30
    inst = {}
    while time.time() < end:
        st, inst = http("GET", gw.url + "/v1/gateway/instances")
        if inst.get("instances"):
            break
        time.sleep(0.2)
    check(len(inst.get("instances", [])) == 1, "the gateway sees the attested agent")

    servers = {"verifier": v.port, "agent": agent.port, "gateway": gw.port}
    for name, port in servers.items():
        for src in SOURCES:
            tricklers += open_tricklers(port, src, PER_ADDRESS)
    print(f"# {len(tricklers)} trickling connections open ({PER_ADDRESS} per address per server)")
    closed_early = trickle(tricklers, 0)

    # A normal client, while they are open.
    for name in servers:
        url = {"verifier": v.url, "agent": agent.url, "gateway": gw.url}[name]
        st, body = http("GET", url + "/healthz")
        check(st == 200, f"{name}: GET /healthz answers 200 with slow clients open (got {st})")
    st, body = http("GET", agent.url + "/v1/key-config")
    check(st == 200, f"agent: GET /v1/key-config answers 200 with slow clients open (got {st})")
    st, ans = http("POST", gw.url + "/v1/chat/completions",
                   body={"messages": [{"role": "user", "content": "still there"}]})
    check(st == 200 and ans["choices"][0]["message"]["content"] == "You said: still there",
          f"gateway: a chat completion (gateway -> agent -> LLM) answers 200 with slow clients open (got {st})")
    # Another instance than the agent's: a document for the agent's instance
    # without its endpoint may not replace its live session (endpoint_conflict).
    nonce = v.challenge()
    doc = pki.doc(nonce=nonce, public_key=KeyPair(wd).config, extra=["--module-id", "i-slowclients0001"])
    st, body = v.call("POST", "/v1/attestations",
                      body={"evidence": base64.b64encode(doc).decode(), "policy": "plain"})
    check(st == 201, f"verifier: an attestation answers 201 with slow clients open (got {st})")

    # The deadline closes every trickler although each keeps sending.
    k, closed = 1, 0
    end = time.time() + DEADLINE_S + 60
    while time.time() < end:
        closed = trickle(tricklers, k)
        k += 1
        if closed == len(tricklers):
            break
        time.sleep(1)
    check(closed == len(tricklers),
          f"every trickling connection was closed by the {DEADLINE_S} s request deadline "
          f"({closed} of {len(tricklers)}; {closed_early} already at the start)")
    for p, name in ((v, "verifier"), (agent, "agent"), (gw, "gateway")):
        check('"request_deadline"' in open(p.log, errors="replace").read(),
              f"{name}: its log says it closed connections past the request deadline")
    for name in servers:
        url = {"verifier": v.url, "agent": agent.url, "gateway": gw.url}[name]
        st, body = http("GET", url + "/healthz")
        check(st == 200, f"{name}: still answers afterwards")
finally:
    for s in tricklers:
        s.close()
    for p in reversed(procs):
        p.stop()
    llm.stop()
    v.stop()
finish()
