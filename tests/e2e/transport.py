"""End-to-end transports (issues 9 and 11).
1. Connection reuse: N consumer requests through gateway -> agent -> LLM
   stand-in open one connection per hop, not N (counted by the stand-in and
   in /proc/net/tcp for the agent's port).
2. Every server on a UNIX socket (verifier, agent, gateway, the stand-in),
   the agent reaching the verifier through socat as a Nitro parent would
   bridge vsock, and a consumer's chat completion across all of it.
3. A vsock listener, where the kernel allows binding one."""
import http.client as httpclient
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, BUILD, STANDIN, VERIFIER, Pki, Process, Verifier, Workdir, check, ctl, finish, http,
                     log_tail)

GATEWAY = os.path.join(BUILD, "gateway", "attest-gateway")
N = 20
wd = Workdir("transport")
pki = Pki(wd)
procs = []


def start(p):
    procs.append(p)
    return p.start()


def tcp_peers(port):
    """Local sockets (any state, TIME-WAIT included) whose remote port is port."""
    n = 0
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            rem = line.split()[2]
            if int(rem.rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


class UnixHTTP(httpclient.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def ucall(path, method, url, body=None, token=None):
    c = UnixHTTP(path)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    c.request(method, url, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data.decode(errors="replace")


def wait_socket(path, proc):
    for _ in range(1000):
        if os.path.exists(path):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def instances_ready(get, n=1):
    end = time.time() + 20
    inst = {}
    while time.time() < end:
        st, inst = get()
        if isinstance(inst, dict) and len(inst.get("instances", [])) >= n:
            return inst
        time.sleep(0.2)
    return inst


try:
    # ---- 1. connection reuse over TCP ------------------------------------
    v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()
    procs.append(v)
    llm = start(Process(wd, "llm", ["python3", STANDIN], sanitizer_check=False))
    owner = v.token("owner")
    gw_token = wd("gateway.token")
    open(gw_token, "w").write(v.token("gateway") + "\n")
    agent_args = [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm", "--verifier", v.url,
                  "--listen", "127.0.0.1:0", "--upstream", llm.url]
    pol = json.loads(subprocess.run(agent_args + ["--print-pcrs"], capture_output=True).stdout)
    st, _ = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201, "policy from the agent's --print-pcrs")
    agent = start(Process(wd, "agent", agent_args))
    gw = start(Process(wd, "gateway", [GATEWAY, "--verifier", v.url, "--policy", "llm", "--listen",
                                       "127.0.0.1:0", "--token-file", gw_token, "--refresh", "1"]))
    inst = instances_ready(lambda: http("GET", gw.url + "/v1/gateway/instances"))
    check(len(inst.get("instances", [])) == 1, "the gateway sees the agent")
    st, ans = http("POST", gw.url + "/v1/chat/completions", body={"messages": [{"role": "user", "content": "warm"}]})
    check(st == 200, "a first completion (connections opened)")
    _, before = http("GET", llm.url + "/_standin/stats")
    agent_before = tcp_peers(agent.port)
    ok = 0
    for i in range(N):
        body = {"messages": [{"role": "user", "content": f"q{i}"}], "stream": i % 4 == 3}
        st, ans = http("POST", gw.url + "/v1/chat/completions", body=body)
        ok += st == 200
    _, after = http("GET", llm.url + "/_standin/stats")
    check(ok == N, f"{N} completions (whole and streamed) through gateway -> agent -> LLM")
    opened = after["connections"] - before["connections"] - 1  # less the stats call itself
    check(after["requests"] - before["requests"] - 1 == N, f"the stand-in answered all {N}")
    # Pooled connections: at most one more per request overlapping another
    # use of the pool (the gateway's refresh, the agent's session loop).
    check(opened <= 2, f"agent -> upstream: {N} requests on reused connections (opened {opened})")
    agent_after = tcp_peers(agent.port)
    check(agent_after <= agent_before + 2,
          f"gateway -> agent: {N} requests on reused connections ({agent_before} -> {agent_after} sockets)")
    for p in (gw, agent, llm):
        p.stop()
    v.stop()
    procs.clear()

    # ---- 2. everything on UNIX sockets, socat bridging one hop --------------
    vs, bs, ls_, as_, gs = (wd(n) for n in ("v.sock", "bridge.sock", "llm.sock", "agent.sock", "gw.sock"))
    v2 = Verifier(wd, roots=[pki.root], extra=["--rate", "0", "--listen", "unix:" + vs], db=wd("unix.db"))
    v2.start()
    procs.append(v2)
    check(v2.port == 0 and os.path.exists(vs), "verifier --listen unix:PATH serves on the socket")
    open(gw_token, "w").write(v2.token("gateway") + "\n")
    # the parent's bridge (vsock in an enclave): socat relays the agent's hop
    bridge = subprocess.Popen(["socat", f"UNIX-LISTEN:{bs},fork", f"UNIX-CONNECT:{vs}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check(wait_socket(bs, bridge), "socat bridges a UNIX socket to the verifier's")
    try:
        llm2 = subprocess.Popen(["python3", STANDIN, "--unix", ls_], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        check(wait_socket(ls_, llm2), "the stand-in serves on a UNIX socket")
        a2_args = [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm",
                   "--verifier", f"unix:{bs},http://verifier.internal", "--listen", "unix:" + as_,
                   "--upstream", "unix:" + ls_]
        pol2 = json.loads(subprocess.run(a2_args + ["--print-pcrs"], capture_output=True).stdout)
        open(wd("pol2.json"), "w").write(json.dumps(pol2))
        p = ctl("policy", "put", "llm", wd("pol2.json"), "--verifier", f"unix:{vs},http://verifier.internal",
                "--token-file", v2.db + ".admin-token")
        check(p.returncode == 0, f"attestctl policy put --verifier unix:PATH,URL through the verifier's socket "
                                 f"({(p.stdout + p.stderr)[-200:]})")
        agent2 = start(Process(wd, "agent-unix", a2_args))
        gw2 = start(Process(wd, "gateway-unix", [GATEWAY, "--verifier", f"unix:{vs},http://verifier.internal",
                                                 "--route", f"unix:{as_},http://localhost", "--policy", "llm",
                                                 "--listen", "unix:" + gs, "--token-file", gw_token,
                                                 "--refresh", "1"]))
        inst = instances_ready(lambda: ucall(gs, "GET", "/v1/gateway/instances"))
        if not check(len(inst.get("instances", [])) == 1 and inst["instances"][0]["endpoint"] == "http://localhost",
                     "agent attested through socat; the gateway (on UNIX) sees it at its advertised http://localhost"):
            print(inst)
            log_tail(agent2.log)
            log_tail(gw2.log)
        st, ans = ucall(gs, "POST", "/v1/chat/completions",
                        body={"messages": [{"role": "user", "content": "over unix"}]})
        check(st == 200 and ans["choices"][0]["message"]["content"] == "You said: over unix",
              "consumer -> gateway -> agent -> LLM, every hop a UNIX socket, and back")
        st, ans = ucall(gs, "POST", "/v1/chat/completions",
                        body={"messages": [{"role": "user", "content": "s t"}], "stream": True})
        check(st == 200 and "You" in str(ans) and "[DONE]" in str(ans), "streamed, over UNIX sockets")
        # a live socket path is not taken over by a second server
        p = subprocess.run([VERIFIER, "--listen", "unix:" + vs, "--db", wd("other.db")], capture_output=True,
                           timeout=30)
        check(p.returncode != 0 and b"address in use" in p.stderr,
              "a second server on a live UNIX socket path is refused (address in use)")
        check(not os.path.exists(wd("other.db")), "... before it created a database")
        # a bad connect address is refused up front, naming the option
        p = subprocess.run(a2_args[:-2] + ["--upstream", "vsock:5000"], capture_output=True, timeout=30)
        check(p.returncode == 2 and b"--upstream" in p.stderr and b"CID" in p.stderr,
              "--upstream vsock:PORT without a CID is refused naming the option")
        llm2.terminate()
        llm2.wait()
        for p_ in (gw2, agent2):
            p_.stop()
        check(not os.path.exists(as_) and not os.path.exists(gs), "servers remove their UNIX sockets at exit")
    finally:
        bridge.terminate()
        bridge.wait()
    v2.stop()
    procs.clear()

    # ---- 3. a vsock listener ------------------------------------------------
    port = 20000 + os.getpid() % 20000
    try:
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.bind((socket.VMADDR_CID_ANY, port))
        s.close()
        can_vsock = True
    except (AttributeError, OSError) as e:
        can_vsock = False
        print(f"skip vsock listener check: this kernel cannot bind AF_VSOCK ({e})")
    if can_vsock:
        v3 = Verifier(wd, roots=[pki.root], extra=["--listen", f"vsock:{port}"], db=wd("vsock.db")).start()
        procs.append(v3)
        log = open(v3.log, errors="replace").read()
        check(v3.port == 0 and f"vsock:{port}" in log, f"verifier --listen vsock:{port} serves")
        v3.stop()
        procs.clear()
finally:
    for p in reversed(procs):
        try:
            p.stop()
        except Exception as e:  # noqa: BLE001
            print(f"stop: {e}")
    wd.cleanup()

finish()
