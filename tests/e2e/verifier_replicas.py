"""End-to-end: two attest-verifier replicas sharing one PostgreSQL database
(tests/e2e/pg.py starts a real server; no mock). What one replica records
holds at once on the other: a nonce challenged at one is admitted at the
other and single use across both; concurrent attestations, policy writes
and audit appends through both form one audit chain that `attestctl audit
verify` accepts; a token revoked on one is refused by the other on the next
request; a signing-key rotation is picked up by both without a signal; no
log line carries the database password."""
import os
import subprocess
import sys
import threading
import time

os.environ["AT_DB_BACKEND"] = "pg"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg  # noqa: E402
from harness import VERIFIER, KeyPair, Pki, Verifier, Workdir, b64, check, ctl, finish  # noqa: E402

wd = Workdir("replicas")
wd_b = Workdir("replicas-b")
pki = Pki(wd)
a = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()
b = Verifier(wd_b, roots=[pki.root], extra=["--rate", "0"], db=a.db).start()


def code(body):
    err = body.get("error") if isinstance(body, dict) else None
    return err.get("code") if isinstance(err, dict) else None


def wait_for(pred, seconds=30):
    """Wait (bounded) until pred() holds; returns whether it did."""
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


try:
    check(a.db == b.db and a.db.startswith("postgresql://"), "both replicas on one PostgreSQL database")
    owner = a.token("owner")
    auditor = b.token("auditor")
    kp = KeyPair(wd)

    # ---- policies written on one are read by the other ----------------------
    st, body = a.call("PUT", "/v1/policies/rep", body=pki.policy(), token=owner)
    check(st == 201, f"policy 'rep' written through replica A ({st})")
    st, body = b.call("GET", "/v1/policies/rep", token=owner)
    check(st == 200, f"replica B reads the policy at once ({st})")

    # ---- a nonce from one, the attestation at the other, single use ---------
    doc = pki.doc(nonce=a.challenge(), public_key=kp.config)
    st, body = b.call("POST", "/v1/attestations", body={"evidence": b64(doc), "policy": "rep"})
    check(st == 201, f"challenged at A, admitted at B ({st} {code(body)})")
    st, body = a.call("POST", "/v1/attestations", body={"evidence": b64(doc), "policy": "rep"})
    check(st == 409 and code(body) == "nonce_reused", f"the same document replayed at A: 409 nonce_reused ({st} {code(body)})")
    # one document raced on both replicas at once: exactly one admission
    doc2 = pki.doc(nonce=b.challenge(), public_key=kp.config)
    go = threading.Event()
    results = []
    lock = threading.Lock()

    def race(v):
        go.wait()
        r = v.call("POST", "/v1/attestations", body={"evidence": b64(doc2), "policy": "rep"})
        with lock:
            results.append(r)

    ts = [threading.Thread(target=race, args=((a, b)[i % 2],)) for i in range(12)]
    for t in ts:
        t.start()
    go.set()
    for t in ts:
        t.join()
    created = sum(1 for s, _ in results if s == 201)
    reused = sum(1 for s, bd in results if s == 409 and code(bd) == "nonce_reused")
    check(created == 1 and reused == 11,
          f"12 parallel attestations of one nonce over both replicas: 1 admitted, 11 nonce_reused "
          f"(got {sorted(s for s, _ in results)})")

    # ---- concurrent attestations, policy writes, audit appends on both ------
    stop = threading.Event()
    answers = []

    def attest_loop(i):
        v, other = (a, b) if i % 2 else (b, a)
        while not stop.is_set():
            d = pki.doc(nonce=other.challenge(), public_key=kp.config)
            r = v.call("POST", "/v1/attestations", body={"evidence": b64(d), "policy": "rep"})
            with lock:
                answers.append(("attest", r[0]))

    def policy_loop(i):
        v = (a, b)[i % 2]
        for _ in range(8):
            r = v.call("PUT", "/v1/policies/busy", body=pki.policy(), token=owner)
            with lock:
                answers.append(("policy", r[0], r[1].get("version") if isinstance(r[1], dict) else None))

    ts = [threading.Thread(target=attest_loop, args=(i,)) for i in range(4)]
    ps = [threading.Thread(target=policy_loop, args=(i,)) for i in range(4)]
    for t in ts + ps:
        t.start()
    for t in ps:
        t.join()
    wait_for(lambda: sum(1 for x in list(answers) if x[0] == "attest") >= 20)
    stop.set()
    for t in ts:
        t.join()
    att = [x[1] for x in answers if x[0] == "attest"]
    pol = [x for x in answers if x[0] == "policy"]
    check(att and all(s == 201 for s in att), f"{len(att)} concurrent attestations through both: all 201 "
          f"(other: {[s for s in att if s != 201][:5]})")
    versions = sorted(x[2] for x in pol if x[1] == 201)
    check(len(pol) == 32 and versions == list(range(1, 33)),
          f"32 concurrent policy writes through both: versions 1..32, each once (got {[x[1] for x in pol if x[1] != 201][:5]}, {versions})")
    env = dict(os.environ, ATTEST_TOKEN=auditor)
    for v in (a, b):
        p = ctl("audit", "verify", "--full", "--verifier", v.url, env=env)
        check(p.returncode == 0, f"attestctl audit verify --full through {v.url}: the chain is intact "
              f"({p.stdout.decode()[-300:]} {p.stderr.decode()[-300:]})")
    ids = [r[0] for r in a.sql("SELECT id FROM audit ORDER BY id")]
    check(ids == list(range(1, len(ids) + 1)), f"audit ids 1..{len(ids)} without a gap or a duplicate")

    # ---- a token revoked on one is refused by the other at once -------------
    tok = a.token("owner")
    st, _ = b.call("GET", "/v1/policies/rep", token=tok)
    check(st == 200, f"a fresh owner token works on B ({st})")
    st, body = a.call("GET", "/v1/tokens", token=a.admin)
    tid = max(t["id"] for t in body["tokens"] if t["role"] == "owner" and t["state"] == "active")
    st, body = a.call("DELETE", f"/v1/tokens/{tid}", token=a.admin)
    check(st == 200, f"token {tid} revoked through A ({st})")
    st, body = b.call("GET", "/v1/policies/rep", token=tok)
    check(st == 401, f"the revoked token is refused by B on the next request ({st} {code(body)})")

    # ---- signing-key rotation picked up by both, no signal -------------------
    def kids(v):
        st, body = v.call("GET", "/.well-known/jwks.json")
        return [k["kid"] for k in body["keys"]] if st == 200 else []

    old = kids(a)[0]
    check(kids(b)[0] == old, "both replicas sign with one key")
    p = subprocess.run([VERIFIER, "--db", a.db, "--rotate-signing-key"], capture_output=True)
    check(p.returncode == 0, f"attest-verifier --rotate-signing-key on the shared database ({p.stderr[-300:]})")
    for name, v in (("A", a), ("B", b)):
        ok = wait_for(lambda: len(kids(v)) == 2 and kids(v)[0] != old and kids(v)[1] == old)
        check(ok, f"replica {name} signs with the new key and still lists the old one (got {kids(v)})")
    doc3 = pki.doc(nonce=b.challenge(), public_key=kp.config)
    st, body = a.call("POST", "/v1/attestations", body={"evidence": b64(doc3), "policy": "rep"})
    check(st == 201, "attested at A after the rotation")
    token = body.get("token") or body.get("ear") if isinstance(body, dict) else None
    if token:
        p = ctl("ear", "verify", "--jwks", b.url + "/.well-known/jwks.json", token)
        check(p.returncode == 0, "A's result, signed with the new key, verifies against B's JWKS")

    # ---- the database password never reaches a log line ----------------------
    srv = pg.shared()
    for v in (a, b):
        check(srv.password not in open(v.log, errors="replace").read(), f"{v.log}: no database password")
    bad = srv.base_url().replace(f":{srv.port}/", ":1/") + "nothing"
    p = subprocess.run([VERIFIER, "--db", bad, "--storage-key-file", wd("x.key"), "--admin-token-file",
                        wd("x.tok"), "--listen", "127.0.0.1:0"], capture_output=True)
    out = (p.stdout + p.stderr).decode(errors="replace")
    check(p.returncode != 0 and srv.password not in out and ":***@127.0.0.1:1/" in out,
          f"a failed open names the database with the password redacted ({out[-300:]})")
finally:
    b.stop()
    a.stop()
    wd.cleanup()
    wd_b.cleanup()
finish()
