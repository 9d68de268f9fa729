"""End-to-end: three attest-verifier replicas on one real PostgreSQL
(tests/e2e/pg.py; this test starts, stops and starts again its own server)
when things fail under load (issue 12):

1. kill -9 of a replica mid-burst: every attestation answered 201 by any
   replica is in the sessions table with its audit row, the audit chain
   verifies (`attestctl audit verify --full`), the survivors keep serving.
2. the database stopped (pg_ctl stop -m fast) and started again on the same
   port under load: while it is down the replicas answer 503 `unavailable`
   with Retry-After (never 500, never a 201 that is not durable) and
   /readyz says not ready while /healthz stays up; a verifier started while
   it is down exits non-zero naming host:port without the password; once it
   is back the same replica processes answer 201 again by themselves, and
   the audit chain still verifies.
No timed assertions: every wait polls with a generous deadline."""
import base64
import json
import subprocess
import os
import sys
import threading
import time
import urllib.error
import urllib.request

os.environ["AT_DB_BACKEND"] = "pg"
os.environ.pop("AT_PG_URL", None)  # a server of our own: it is stopped and started here
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pg  # noqa: E402
from harness import VERIFIER, KeyPair, Pki, Verifier, Workdir, b64, check, ctl, finish  # noqa: E402

srv = pg.shared()
wds = [Workdir(f"pgres-{i}") for i in range(4)]
pki = Pki(wds[0])
reps = [Verifier(wds[0], roots=[pki.root], extra=["--rate", "0"]).start()]
reps += [Verifier(wds[i], roots=[pki.root], extra=["--rate", "0"], db=reps[0].db).start() for i in (1, 2)]
A, B, C = reps
lock = threading.Lock()
mint_lock = threading.Lock()
loads = []  # stopped in the finally clause whatever failed


def req(v, method, path, body=None, token=None):
    """(status, JSON or text, headers); status None when the connection failed."""
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(v.url + path, data=data, method=method)
    if data is not None:
        r.add_header("Content-Type", "application/json")
    if token:
        r.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            status, text, headers = resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        status, text, headers = e.code, e.read(), dict(e.headers)
    except (OSError, urllib.error.URLError) as e:
        return None, str(e), {}
    try:
        return status, json.loads(text), headers
    except ValueError:
        return status, text.decode(errors="replace"), headers


def code(body):
    err = body.get("error") if isinstance(body, dict) else None
    return err.get("code") if isinstance(err, dict) else None


def wait_for(pred, seconds=120):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


class Load:
    """Threads attesting through the given replicas (challenged at one,
    posted to the next), recording every answer as (replica, status, code,
    Retry-After, body, phase)."""

    def __init__(self, targets, kp, threads=4):
        self.targets, self.kp, self.phase = list(targets), kp, "before"
        self.answers, self.stop = [], threading.Event()
        self.ts = [threading.Thread(target=self.loop, args=(i,), daemon=True) for i in range(threads)]
        loads.append(self)
        for t in self.ts:
            t.start()

    def loop(self, i):
        k = i
        while not self.stop.is_set():
            with lock:
                live = list(self.targets)
            k += 1
            at, to = live[k % len(live)], live[(k + 1) % len(live)]
            st, body, _ = req(at, "POST", "/v1/challenge", body={})
            if st != 201:
                time.sleep(0.05)
                continue
            # one `attestctl sim doc` at a time: a renewing sim rewrites
            # leaf.pem then leaf.key, and a concurrent one may read a new
            # certificate with the old key (bad_signature)
            with mint_lock:
                doc = pki.doc(nonce=base64.b64decode(body["nonce"]), public_key=self.kp.config)
            phase = self.phase
            st, body, h = req(to, "POST", "/v1/attestations", body={"evidence": b64(doc), "policy": "res"})
            with lock:
                self.answers.append((to, st, code(body), h.get("Retry-After"), body, phase))

    def count(self, pred):
        with lock:
            return sum(1 for a in self.answers if pred(a))

    def finish(self):
        self.stop.set()
        for t in self.ts:
            t.join()
        return self.answers


def durable(answers, label):
    """Every 201 has its session row and its own audit row (attestation.create ok)."""
    ok = [a for a in answers if a[1] == 201]
    missing = []
    for a in ok:
        sid, aid = a[4]["session"]["id"], a[4]["audit_id"]
        s = A.sql("SELECT id FROM sessions WHERE id = ?", (sid,))
        r = A.sql("SELECT action, outcome, session_id FROM audit WHERE id = ?", (aid,))
        if not s or r != [("attestation.create", "ok", sid)]:
            missing.append((sid, aid, s, r))
    check(ok and not missing, f"{label}: all {len(ok)} acknowledged attestations are in sessions with their "
          f"audit row (missing: {missing[:3]})")


def chain_verifies(label, via):
    env = dict(os.environ, ATTEST_TOKEN=auditor)
    for v in via:
        # the full check is rate limited per replica (429 rate_limited): poll
        end = time.time() + 120
        while True:
            p = ctl("audit", "verify", "--full", "--verifier", v.url, env=env)
            if p.returncode == 0 or b"rate_limited" not in p.stderr or time.time() > end:
                break
            time.sleep(1)
        check(p.returncode == 0, f"{label}: attestctl audit verify --full through {v.url} "
              f"({p.stdout.decode()[-300:]} {p.stderr.decode()[-300:]})")
    ids = [r[0] for r in A.sql("SELECT id FROM audit ORDER BY id")]
    check(ids == list(range(1, len(ids) + 1)), f"{label}: audit ids 1..{len(ids)} without a gap")


try:
    owner = A.token("owner")
    auditor = A.token("auditor")
    kp = KeyPair(wds[0])
    st, body, _ = req(A, "PUT", "/v1/policies/res", body=pki.policy(), token=owner)
    check(st == 201, f"policy 'res' written ({st} {code(body)})")

    # ---- 1. kill -9 of a replica mid-burst -----------------------------------
    load = Load(reps, kp, threads=6)
    check(wait_for(lambda: load.count(lambda a: a[0] is C and a[1] == 201) >= 5 and
                   load.count(lambda a: a[1] == 201) >= 20),
          "the burst runs over three replicas (201s from C among them)")
    C.proc.kill()  # SIGKILL: no drain, transactions in flight die with it
    C.proc.wait()
    C.logf.close()
    C.proc = None
    with lock:
        load.targets = [A, B]
        load.phase = "after-kill"
    check(wait_for(lambda: load.count(lambda a: a[5] == "after-kill" and a[0] is A and a[1] == 201) >= 5 and
                   load.count(lambda a: a[5] == "after-kill" and a[0] is B and a[1] == 201) >= 5),
          "the surviving replicas keep admitting after the kill")
    answers = load.finish()
    other = [(a[1], a[2]) for a in answers if a[0] is not C and a[1] != 201]
    check(not other, f"the survivors answered every attestation 201 (other: {other[:5]})")
    odd = [(a[1], a[2]) for a in answers if a[0] is C and a[1] not in (201, None)]
    check(not odd, f"the killed replica answered 201 or dropped the connection, nothing else ({odd[:5]})")
    durable(answers, "after kill -9")
    chain_verifies("after kill -9", (A, B))

    # ---- 2. the database restarted under load --------------------------------
    load = Load((A, B), kp, threads=4)
    check(wait_for(lambda: load.count(lambda a: a[1] == 201) >= 10), "load on A and B before the restart")
    srv.halt()
    with lock:
        load.phase = "down"
    check(wait_for(lambda: load.count(lambda a: a[5] == "down" and a[0] is A and a[1] == 503) >= 3 and
                   load.count(lambda a: a[5] == "down" and a[0] is B and a[1] == 503) >= 3),
          "with the database down both replicas refuse attestations with 503")
    for name, v in (("A", A), ("B", B)):
        st, body, h = req(v, "GET", "/readyz")
        check(st == 503 and code(body) == "unavailable" and h.get("Retry-After"),
              f"replica {name}: /readyz 503 unavailable with Retry-After while the database is down "
              f"({st} {code(body)} {h.get('Retry-After')})")
        st, _, _ = req(v, "GET", "/healthz")
        check(st == 200, f"replica {name}: /healthz (liveness) still 200 ({st})")
    # a verifier started while the database is down: exits, names host:port, never the password
    p = subprocess.run([VERIFIER, "--db", A.db, "--storage-key-file", A.path + ".storage-key",
                        "--admin-token-file", A.path + ".admin-token", "--listen", "127.0.0.1:0"],
                       capture_output=True, timeout=120)
    out = (p.stdout + p.stderr).decode(errors="replace")
    check(p.returncode != 0 and f"127.0.0.1:{srv.port}" in out and srv.password not in out,
          f"a verifier started with the database down exits non-zero naming 127.0.0.1:{srv.port}, "
          f"no password (rc {p.returncode}: {out[-300:]})")
    srv.resume()
    with lock:
        load.phase = "back"
    for name, v in (("A", A), ("B", B)):
        check(wait_for(lambda: req(v, "GET", "/readyz")[0] == 200), f"replica {name}: /readyz 200 again")
    check(wait_for(lambda: load.count(lambda a: a[5] == "back" and a[0] is A and a[1] == 201) >= 5 and
                   load.count(lambda a: a[5] == "back" and a[0] is B and a[1] == 201) >= 5),
          "both replicas admit again by themselves once the database is back")
    answers = load.finish()
    bad = [(a[1], a[2]) for a in answers if a[1] not in (201, 503)]
    check(not bad, f"under the restart every attestation was answered 201 or 503, never a 500 ({bad[:5]})")
    n503 = [a for a in answers if a[1] == 503]
    check(n503 and all(a[2] == "unavailable" and a[3] for a in n503),
          f"all {len(n503)} refusals are 503 unavailable with Retry-After "
          f"({[(a[2], a[3]) for a in n503 if a[2] != 'unavailable' or not a[3]][:5]})")
    check(A.proc.poll() is None and B.proc.poll() is None, "the replicas were never restarted")
    durable(answers, "after the database restart")
    chain_verifies("after the database restart", (A, B))
    for v in reps:
        check(srv.password not in open(v.log, errors="replace").read(), f"{v.log}: no database password")
finally:
    for ld in loads:
        ld.stop.set()
    for v in (B, A):
        v.stop()
    for w in wds:
        w.cleanup()
finish()
