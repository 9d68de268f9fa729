"""End-to-end, issue 8: two services attest each other (attestctl peer
listen / connect, lib/peer) over a real socket with simulator attesters.
Success: both sides print the same channel_binding (fresh every run) and
each other's message. Each refusal is reported with its exact code on both
sides (the refusing side "self", the other "peer"), exit 1, and no channel
binding or plaintext: a peer with other PCRs, a foreign root, an expired
chain (--at), a replayed RESPONSE, a reflected document, a tampered
handshake message and a tampered record. The last four go through a
man-in-the-middle relay written here that changes frames on the wire.
Through the verifier (--verifier --peer-policy-name --state-file): each
side attests to a real attest-verifier first (attestctl attest), the
handshake carries EAR tokens and verifier-signed bindings, and the verifier
audits one peer.attest row per side naming both instances; a peer under
another policy (policy_mismatch), a token of another session swapped in on
the wire (binding_mismatch) and an expired token (session_expired) are
refused on both sides without a key."""
import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ATTESTCTL, KeyPair, Pki, Verifier, Workdir, check, ctl, finish

wd = Workdir("mutual")
pki = Pki(wd)
foreign = Pki(wd, "foreign")
# Each side keeps its own copy of the PKI (renewed certificates are saved
# in the directory): same root, as two instances in the same partition.
for side in ("a", "b"):
    shutil.copytree(pki.dir, wd(f"pki-{side}"))

GOOD = {0: "a" * 96, 1: "b" * 96, 2: "c" * 96}
policy = wd("peer-policy.json")
with open(policy, "w") as f:
    json.dump({"format": "nitro-enclave", "pcrs": {str(k): [v] for k, v in GOOD.items()}}, f)

serial = [0]


def side_args(side, pcrs=GOOD, root=None, extra=()):
    args = ["--attester", "sim", "--pki", wd(f"pki-{side}"), "--peer-policy", policy,
            "--root", root or pki.root]
    for k, v in pcrs.items():
        args += ["--sim-pcr", f"{k}={v}"]
    return args + list(extra)


def parse(out):
    try:
        return json.loads(out)
    except ValueError:
        return {}


def wait_for(path):
    for _ in range(200):
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise RuntimeError(f"listener socket {path} never appeared")


def run_pair(a_extra=None, b_extra=None, relay=None, tcp=False, a_args=None, b_args=None):
    """Start B listening, A connecting (through relay when given); return
    (a_rc, a_json, b_rc, b_json)."""
    serial[0] += 1
    n = serial[0]
    a_args = a_args if a_args is not None else side_args("a", **(a_extra or {}))
    b_args = b_args if b_args is not None else side_args("b", **(b_extra or {}))
    if tcp:
        b = subprocess.Popen([ATTESTCTL, "peer", "listen", "--listen", "127.0.0.1:0"] + b_args,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = b.stderr.readline().decode()
        target = line.rsplit(" ", 1)[-1].strip()
    else:
        sock = wd(f"b{n}.sock")
        b = subprocess.Popen([ATTESTCTL, "peer", "listen", "--listen", f"unix:{sock}"] + b_args,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(sock)
        target = f"unix:{sock}"
    if relay:
        target = relay.start(target, wd(f"relay{n}.sock"))
    a = subprocess.run([ATTESTCTL, "peer", "connect", "--connect", target,
                        "--message", f"request {n} from A"] + a_args, capture_output=True, timeout=120)
    b_out, b_err = b.communicate(timeout=120)
    if relay:
        relay.join()
    return a.returncode, parse(a.stdout), b.returncode, parse(b_out)


class Relay:
    """A man in the middle: relays length-prefixed frames between A and B
    and lets `change(direction, index, frame, seen)` rewrite them; seen
    holds every frame relayed so far per direction ("ab", "ba")."""

    def __init__(self, change):
        self.change = change
        self.seen = {"ab": [], "ba": []}
        self.threads = []

    def start(self, target, path):
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        self.threads = [threading.Thread(target=self._serve, args=(srv, target[len("unix:"):]))]
        self.threads[0].start()
        return f"unix:{path}"

    @staticmethod
    def _read_frame(s):
        hdr = b""
        while len(hdr) < 4:
            c = s.recv(4 - len(hdr))
            if not c:
                return None
            hdr += c
        n = int.from_bytes(hdr, "big")
        body = b""
        while len(body) < n:
            c = s.recv(n - len(body))
            if not c:
                return None
            body += c
        return body

    def _pump(self, src, dst, direction):
        i = 0
        while True:
            try:
                frame = self._read_frame(src)
            except OSError:
                frame = None
            if frame is None:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            frame = self.change(direction, i, frame, self.seen)
            self.seen[direction].append(frame)
            i += 1
            try:
                dst.sendall(len(frame).to_bytes(4, "big") + frame)
            except OSError:
                return

    def _serve(self, srv, b_path):
        a, _ = srv.accept()
        srv.close()
        b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        b.connect(b_path)
        t1 = threading.Thread(target=self._pump, args=(a, b, "ab"))
        t2 = threading.Thread(target=self._pump, args=(b, a, "ba"))
        t1.start()
        t2.start()
        t1.join()
        t2.join()
        a.close()
        b.close()

    def join(self):
        for t in self.threads:
            t.join()


def expect_refused(name, result, code, refuser):
    a_rc, a, b_rc, b = result
    other = "b" if refuser == "a" else "a"
    by = {"a": a, "b": b}
    check(a_rc == 1 and b_rc == 1, f"{name}: both sides exit 1 (a {a_rc}, b {b_rc})")
    check(a.get("error") == code and b.get("error") == code,
          f"{name}: both sides report {code} (a {a.get('error')}, b {b.get('error')})")
    check(by[refuser].get("refused_by") == "self" and by[other].get("refused_by") == "peer",
          f"{name}: {refuser} refused, {other} was told ({a.get('refused_by')}, {b.get('refused_by')})")
    check(not any(k in a or k in b for k in ("channel_binding", "received", "peer")),
          f"{name}: no channel binding, peer or plaintext on either side")


# ---- success, twice: the same binding on both sides, fresh every run ----
a_rc, a, b_rc, b = run_pair()
check(a_rc == 0 and b_rc == 0 and a.get("ok") and b.get("ok"), f"handshake: both sides ok ({a_rc}, {b_rc})")
cb1 = a.get("channel_binding")
check(cb1 and len(cb1) == 64 and cb1 == b.get("channel_binding"), "handshake: the same channel_binding on both sides")
check(b.get("received", "").startswith("request ") and a.get("received") == "hello from the responder",
      "records: each side got the other's message")
check(a.get("peer", {}).get("pcrs", {}).get("0") == GOOD[0] and b.get("peer", {}).get("module_id"),
      "peer: module id and PCRs of the other side")
a_rc, a, b_rc, b = run_pair(tcp=True)
check(a_rc == 0 and b_rc == 0 and a.get("channel_binding") == b.get("channel_binding"),
      "handshake over TCP: both sides ok, same binding")
check(a.get("channel_binding") != cb1, "channel_binding differs from run to run")

# ---- refusals ----
expect_refused("peer with other PCRs", run_pair(b_extra={"pcrs": {**GOOD, 0: "d" * 96}}),
               "pcr_mismatch", "a")
expect_refused("initiator with other PCRs", run_pair(a_extra={"pcrs": {**GOOD, 2: "e" * 96}}),
               "pcr_mismatch", "b")
expect_refused("foreign root", run_pair(a_extra={"root": foreign.root}), "untrusted_root", "a")
later = int(time.time()) + 2 * 24 * 3600
expect_refused("expired chain", run_pair(b_extra={"extra": ["--at", str(later)]}), "cert_expired", "b")

# Replay: a RESPONSE recorded from an earlier handshake.
recorder = Relay(lambda d, i, f, seen: f)
rc = run_pair(relay=recorder)
check(rc[0] == 0 and rc[2] == 0, "through the relay unchanged: both sides ok")
old_response = recorder.seen["ba"][0]
expect_refused("replayed response",
               run_pair(relay=Relay(lambda d, i, f, seen: old_response if (d, i) == ("ba", 0) else f)),
               "nonce_mismatch", "a")


def reflect(d, i, f, seen):
    # FINISH carrying B's own document (from RESPONSE) back to B.
    if (d, i) == ("ab", 1) and f[0] == 3:
        return f[:2] + seen["ba"][0][66:]
    return f


expect_refused("reflected document", run_pair(relay=Relay(reflect)), "reflection", "b")


def flip_response_nonce(d, i, f, seen):
    if (d, i) == ("ba", 0):
        return f[:10] + bytes([f[10] ^ 1]) + f[11:]
    return f


expect_refused("tampered response", run_pair(relay=Relay(flip_response_nonce)), "transcript_mismatch", "a")


def flip_record(d, i, f, seen):
    if (d, i) == ("ab", 2):  # A's first record
        return f[:-1] + bytes([f[-1] ^ 1])
    return f


expect_refused("tampered record", run_pair(relay=Relay(flip_record)), "decrypt_failed", "b")


# ---- through the verifier: EAR tokens and verifier-signed bindings ----
v = Verifier(wd, roots=[pki.root]).start()
try:
    for name in ("svc-a", "svc-b"):
        st, body = v.call("PUT", f"/v1/policies/{name}", body=pki.policy(), token=v.admin)
        check(st == 201, f"policy {name} registered ({st} {body})")

    def attest(side, policy, module):
        kp = KeyPair(wd)
        state = wd(f"state-{side}.json")
        p = ctl("attest", "--verifier", v.url, "--policy", policy, "--pki", pki.dir, "--key-file", kp.file,
                "--module-id", module, "--state-file", state)
        check(p.returncode == 0, f"attest {side} under {policy} ({p.stderr.decode()[:200]})")
        res = json.loads(p.stdout)
        return state, res

    state_a, res_a = attest("a", "svc-a", "i-0aaaaaaaaaaaaaaaa-enc0aaaaaaaaaaaaaa")
    state_b, res_b = attest("b", "svc-b", "i-0bbbbbbbbbbbbbbbb-enc0bbbbbbbbbbbbbb")
    state_c, res_c = attest("c", "svc-b", "i-0cccccccccccccccc-enc0cccccccccccccc")
    inst = {k: list(r["claims"]["submods"])[0] for k, r in (("a", res_a), ("b", res_b), ("c", res_c))}
    sess = {k: r["session"]["id"] for k, r in (("a", res_a), ("b", res_b), ("c", res_c))}

    def vargs(state, peer_policy, extra=()):
        return ["--verifier", v.url, "--state-file", state, "--peer-policy-name", peer_policy] + list(extra)

    def peer_rows():
        st, body = v.call("GET", "/v1/audit?action=peer.attest&limit=100", token=v.admin)
        return body.get("entries", []) if st == 200 else None

    a_rc, a, b_rc, b = run_pair(a_args=vargs(state_a, "svc-b"), b_args=vargs(state_b, "svc-a"), tcp=True)
    check(a_rc == 0 and b_rc == 0 and a.get("ok") and b.get("ok"),
          f"verifier variant: both sides ok ({a_rc} {a.get('error')}, {b_rc} {b.get('error')})")
    check(a.get("channel_binding") and a.get("channel_binding") == b.get("channel_binding"),
          "verifier variant: the same channel_binding on both sides")
    check(b.get("received", "").startswith("request ") and a.get("received") == "hello from the responder",
          "verifier variant: each side got the other's message")
    check(a.get("peer", {}).get("via") == "verifier" and a["peer"].get("instance_id") == inst["b"]
          and a["peer"].get("session_id") == sess["b"] and a["peer"].get("policy", "").startswith("svc-b@")
          and b.get("peer", {}).get("instance_id") == inst["a"] and b["peer"].get("policy", "").startswith("svc-a@"),
          "verifier variant: each side names the other's instance, session and policy")
    rows = peer_rows()
    check(rows is not None and len(rows) == 2 and all(r["outcome"] == "ok" for r in rows),
          f"verifier audit: one peer.attest row per side ({len(rows or [])} rows)")
    by_inst = {r["instance_id"]: r for r in rows or []}
    check(set(by_inst) == {inst["a"], inst["b"]}
          and inst["b"] in by_inst.get(inst["a"], {}).get("message", "")
          and inst["a"] in by_inst.get(inst["b"], {}).get("message", "")
          and by_inst.get(inst["a"], {}).get("session_id") == sess["a"],
          "verifier audit: each row names its side's instance and session and the peer's instance")

    # A expects another policy than B's token names.
    expect_refused("verifier variant, wrong policy",
                   run_pair(a_args=vargs(state_a, "svc-c"), b_args=vargs(state_b, "svc-a")),
                   "policy_mismatch", "a")

    # C's (valid, same policy) token swapped in for B's in RESPONSE: the
    # binding B obtained names B's session, not C's.
    token_c = res_c["token"].encode()

    def swap_token(d, i, f, seen):
        if (d, i) == ("ba", 0) and f[0] == 2:
            n = int.from_bytes(f[66:68], "big")
            return f[:66] + len(token_c).to_bytes(2, "big") + token_c + f[68 + n:]
        return f

    expect_refused("verifier variant, token of another session",
                   run_pair(a_args=vargs(state_a, "svc-b"), b_args=vargs(state_b, "svc-a"),
                            relay=Relay(swap_token)),
                   "binding_mismatch", "a")
    # B's token checked two days on: expired.
    expect_refused("verifier variant, expired token",
                   run_pair(a_args=vargs(state_a, "svc-b", ["--at", str(later)]), b_args=vargs(state_b, "svc-a")),
                   "session_expired", "a")
    rows = peer_rows()
    check(rows is not None and len(rows) == 2, "verifier audit: no peer.attest row for a refused handshake")

    # The example service pair (examples/peer_service): two requests and
    # their answers over the channel, peer to peer and through the verifier.
    svc = os.path.join(os.environ["AT_BUILD"], "examples", "peer_service")

    def service_pair(server_args, client_args, requests):
        srv = subprocess.Popen([svc, "server", "--listen", "127.0.0.1:0"] + server_args,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        port = srv.stderr.readline().decode().rsplit(":", 1)[-1].strip()
        cl = subprocess.run([svc, "client", "--connect", f"127.0.0.1:{port}"] + client_args + requests,
                            capture_output=True, timeout=120)
        srv_out, srv_err = srv.communicate(timeout=120)
        answers = [parse(line) for line in cl.stdout.decode().splitlines()]
        return cl.returncode, answers, srv.returncode, (cl.stderr.decode() + srv_err.decode()).strip().replace("\n", " | ")

    docs_args = ["--pki", pki.dir, "--root", pki.root, "--peer-policy", wd("sim-policy.json")]
    with open(wd("sim-policy.json"), "w") as f:
        json.dump(pki.policy(), f)
    c_rc, answers, s_rc, err = service_pair(docs_args, docs_args, ["what is 2+2?", "and 3+3?"])
    check(c_rc == 0 and s_rc == 0 and [x.get("answer") for x in answers] == ["what is 2+2?", "and 3+3?"]
          and all(x.get("caller") for x in answers),
          f"example services, peer to peer: two requests answered over the channel ({c_rc} {s_rc} {err[-300:]})")
    c_rc, answers, s_rc, err = service_pair(["--state-file", state_b, "--peer-policy-name", "svc-a"],
                                            ["--state-file", state_a, "--peer-policy-name", "svc-b"], ["hello B"])
    check(c_rc == 0 and s_rc == 0 and len(answers) == 1 and answers[0].get("answer") == "hello B"
          and answers[0].get("caller") == inst["a"],
          f"example services, through the verifier: answered, the server names the client's instance ({c_rc} {s_rc} {err[-300:]})")
    c_rc, answers, s_rc, err = service_pair(["--state-file", state_b, "--peer-policy-name", "svc-c"],
                                            ["--state-file", state_a, "--peer-policy-name", "svc-b"], ["hello B"])
    check(c_rc == 1 and s_rc == 1 and answers == [] and "policy_mismatch" in err,
          f"example services: a client under another policy is refused, no answer ({c_rc} {s_rc})")

    # The route itself: the proof is made with the session key, covers the
    # transcript and the peer's session, and is accepted once.
    skey_b = bytes.fromhex(json.load(open(state_b))["session_key"])

    def bind_req(th, peer=None, key=skey_b, sid=None):
        sid = sid or sess["b"]
        ts = int(time.time() * 1000)
        pk = hmac.new(key, b"attest session proof v1", hashlib.sha256).digest()
        name = f"peer:{th}:{peer or ''}"
        mac = hmac.new(pk, f"attest release v1\n{name}\n{sid}\n{ts}".encode(), hashlib.sha256).digest()
        body = {"session": sid, "proof": f"{ts}." + base64.urlsafe_b64encode(mac).decode().rstrip("="),
                "transcript_sha256": th}
        if peer:
            body["peer_session"] = peer
        return body

    body = bind_req("ab" * 32)
    st, ans = v.call("POST", "/v1/peer/bindings", body=body)
    check(st == 200 and ans.get("binding") and ans.get("audit_id") is None,
          f"bindings route: a binding without a peer, no audit row ({st})")
    st, ans = v.call("POST", "/v1/peer/bindings", body=body)
    check(st == 401 and ans["error"]["code"] == "unauthorized", f"bindings route: a replayed proof -> 401 unauthorized ({st})")
    st, ans = v.call("POST", "/v1/peer/bindings", body={**bind_req("ab" * 32), "transcript_sha256": "cd" * 32})
    check(st == 401 and ans["error"]["code"] == "unauthorized",
          f"bindings route: a proof for another transcript -> 401 unauthorized ({st})")
    st, ans = v.call("POST", "/v1/peer/bindings", body=bind_req("ab" * 32, key=b"\0" * 32))
    check(st == 401 and ans["error"]["code"] == "unauthorized",
          f"bindings route: a proof without the session key -> 401 unauthorized ({st})")
    st, ans = v.call("POST", "/v1/peer/bindings", body=bind_req("ab" * 32, peer="f" * 32))
    check(st == 401 and ans["error"]["code"] == "session_expired",
          f"bindings route: an unknown peer session -> 401 session_expired ({st})")
    st, ans = v.call("POST", "/v1/peer/bindings", body=bind_req("ab" * 32, peer=sess["b"]))
    check(st == 403 and ans["error"]["code"] == "reflection",
          f"bindings route: its own session as the peer -> 403 reflection ({st})")
finally:
    v.stop()

wd.cleanup()
finish()
