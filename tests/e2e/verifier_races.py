"""End-to-end: attest-verifier under concurrency. Checks that a state change
acknowledged by one request holds against requests already in flight:
single use of a nonce with many parallel attestations of one document,
revocation of a policy version racing attestations and secret releases
(nothing is admitted or released under it once the revocation is
recorded), and the audit chain check while rows are being appended."""
import base64
import hashlib
import hmac
import itertools
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import KeyPair, Pki, Verifier, Workdir, b64, check, ctl, finish, http

wd = Workdir("races")
pki = Pki(wd)
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()


def hammer(n_threads, fn, seconds=None, stop=None):
    """Run fn(i) in n_threads loops until stop is set (or once each)."""
    results = []
    lock = threading.Lock()

    def loop(i):
        while True:
            r = fn(i)
            with lock:
                results.append(r)
            if stop is None or stop.is_set():
                return

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(n_threads)]
    for t in ts:
        t.start()
    return ts, results


def wait_for(pred, seconds=30):
    """Wait (bounded) until pred() holds; returns whether it did."""
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def code(body):
    """The stable error code of an answer, or None."""
    err = body.get("error") if isinstance(body, dict) else None
    return err.get("code") if isinstance(err, dict) else None


try:
    owner = v.token("owner")
    auditor = v.token("auditor")
    kp = KeyPair(wd)

    # ---- single use of a nonce under concurrency ---------------------------
    st, body = v.call("PUT", "/v1/policies/once", body=pki.policy(), token=owner)
    check(st == 201, "policy 'once'")
    doc = pki.doc(nonce=v.challenge(), public_key=kp.config)
    go = threading.Event()

    def attest_once(i):
        go.wait()
        return v.call("POST", "/v1/attestations", body={"evidence": b64(doc), "policy": "once"})

    ts, results = hammer(16, attest_once)
    go.set()
    for t in ts:
        t.join()
    created = [b for s, b in results if s == 201]
    reused = [b for s, b in results if s == 409 and b["error"]["code"] == "nonce_reused"]
    check(len(created) == 1 and len(reused) == 15,
          f"16 parallel attestations of one document: 1 admitted, 15 nonce_reused "
          f"(got {[s for s, _ in results]})")
    ids = [b["error"]["audit_id"] for b in reused]
    rows = [v.audit_row(i) for i in ids]
    check(all(r and r["code"] == "nonce_reused" and r["outcome"] == "refused" for r in rows)
          and len(set(ids)) == 15, "every nonce_reused refusal has its own audit row")
    ev_sha = hashlib.sha256(doc).hexdigest()
    ok_rows = v.sql("SELECT count(*) FROM audit WHERE evidence_sha256 = ? AND outcome = 'ok'", (ev_sha,))[0][0]
    check(ok_rows == 1, f"exactly one ok audit row for the document (got {ok_rows})")
    n_nonce = v.sql("SELECT count(*) FROM nonces_used")[0][0]
    check(n_nonce == 1, "the nonce is recorded once")

    # ---- revocation racing attestations ----------------------------------------
    # No nonce (require_nonce false), so one document can be submitted over
    # and over; each admission replaces the instance's previous session.
    race_doc = pki.doc(public_key=kp.config)
    late = []
    for rnd in range(3):
        st, body = v.call("PUT", "/v1/policies/race", body=pki.policy(require_nonce=False), token=owner)
        ver = body.get("version")
        check(st == 201, f"round {rnd}: policy race@{ver}")
        stop = threading.Event()

        def attest_loop(i):
            return v.call("POST", "/v1/attestations", body={"evidence": b64(race_doc), "policy": "race"})

        ts, results = hammer(6, attest_loop, stop=stop)
        wait_for(lambda: sum(1 for s, _ in list(results) if s == 201) >= 10)
        st, body = v.call("DELETE", f"/v1/policies/race/versions/{ver}", token=owner)
        revoked_at = body.get("audit_id", 0)
        check(st == 200, f"round {rnd}: revoke race@{ver} (audit {revoked_at})")
        wait_for(lambda: sum(1 for s, _ in list(results) if s == 404) >= 10)
        stop.set()
        for t in ts:
            t.join()
        admitted = sum(1 for s, _ in results if s == 201)
        refused = sum(1 for s, b in results if (s, code(b)) == (404, "policy_not_found"))
        other = [(s, code(b)) for s, b in results if s != 201 and (s, code(b)) != (404, "policy_not_found")]
        # The race only tests something when both sides of it happened: some
        # admitted before the revocation, refused with the exact code after.
        check(admitted > 0 and refused > 0 and not other,
              f"round {rnd}: {admitted} admitted before, {refused} refused policy_not_found after, "
              f"nothing else (other answers: {other[:5]})")
        after = v.sql("SELECT id FROM audit WHERE action = 'attestation.create' AND outcome = 'ok'"
                      " AND policy = ? AND id > ?", (f"race@{ver}", revoked_at))
        live = v.sql("SELECT count(*) FROM sessions WHERE policy = 'race' AND policy_version = ?"
                     " AND ended_ms IS NULL", (ver,))[0][0]
        print(f"     round {rnd}: {admitted} admitted, {len(after)} after the revocation, {live} live")
        late += after
        check(live == 0, f"round {rnd}: no live session under the revoked race@{ver} (got {live})")
    check(not late, f"no attestation admitted under a version after its revocation was recorded "
          f"(audit rows {[r[0] for r in late]})")

    # ---- revocation racing secret releases -------------------------------------
    st, body = v.call("PUT", "/v1/policies/rel", body=pki.policy(), token=owner)
    check(st == 201, "policy 'rel'")
    state = wd("rel-state.json")
    p = ctl("attest", "--verifier", v.url, "--policy", "rel", "--pki", pki.dir, "--key-file", kp.file,
            "--state-file", state, "--module-id", "i-0aaaaaaaaaaaaaaaa-enc0aaaaaaaaaaaaaaa")
    check(p.returncode == 0, f"session under 'rel' ({p.stderr.decode()[:200]})")
    sj = json.load(open(state))
    sid, skey = sj["session"], bytes.fromhex(sj["session_key"])
    secret_file = wd("rel.key")
    open(secret_file, "wb").write(os.urandom(32))
    p = ctl("secret", "put", "rel-key", "--policy", "rel", "--value-file", secret_file,
            "--verifier", v.url, env=dict(os.environ, ATTEST_TOKEN=owner))
    check(p.returncode == 0, "secret rel-key bound to 'rel'")
    proof_key = hmac.new(skey, b"attest session proof v1", hashlib.sha256).digest()
    counter = itertools.count()
    base_ms = int(time.time() * 1000)

    def proof(name):
        ts = base_ms + next(counter)
        mac = hmac.new(proof_key, f"attest release v1\n{name}\n{sid}\n{ts}".encode(), hashlib.sha256).digest()
        return f"{ts}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    st, body = v.call("POST", "/v1/secrets/rel-key/release", body={"session": sid, "proof": proof("rel-key")})
    check(st == 200 and body.get("sealed"), "a release with a proof computed here works")
    stop = threading.Event()

    def release_loop(i):
        return v.call("POST", "/v1/secrets/rel-key/release", body={"session": sid, "proof": proof("rel-key")})

    ts, results = hammer(6, release_loop, stop=stop)
    wait_for(lambda: sum(1 for s, _ in list(results) if s == 200) >= 10)
    st, body = v.call("DELETE", "/v1/policies/rel/versions/1", token=owner)
    revoked_at = body.get("audit_id", 0)
    check(st == 200 and body.get("sessions_ended") == 1, f"revoke rel@1 ends the session (audit {revoked_at})")
    wait_for(lambda: sum(1 for s, _ in list(results) if s == 401) >= 10)
    stop.set()
    for t in ts:
        t.join()
    released = sum(1 for s, _ in results if s == 200)
    ended = sum(1 for s, b in results if (s, code(b)) == (401, "session_expired"))
    other = [(s, code(b)) for s, b in results if s != 200 and (s, code(b)) != (401, "session_expired")]
    check(released > 0 and ended > 0 and not other,
          f"{released} released before the revocation, {ended} refused session_expired after, nothing "
          f"else (other answers: {other[:5]})")
    after = v.sql("SELECT id FROM audit WHERE action = 'secret.release' AND outcome = 'ok'"
                  " AND session_id = ? AND id > ?", (sid, revoked_at))
    print(f"     {released} released in the race, {len(after)} after the revocation")
    check(not after, f"no secret released to a session after its end was recorded "
          f"(audit rows {[r[0] for r in after]})")
    st, body = v.call("POST", "/v1/secrets/rel-key/release", body={"session": sid, "proof": proof("rel-key")})
    check(st == 401 and body["error"]["code"] == "session_expired", "afterwards: session_expired")

    # ---- the chain check while rows are appended ----------------------------------
    stop = threading.Event()

    def refusal_loop(i):
        return v.call("POST", "/v1/challenge", raw=b'{"x": 1}')

    ts, results = hammer(4, refusal_loop, stop=stop)
    answers = []
    t_end = time.time() + 8
    while time.time() < t_end:
        st, body = v.call("GET", "/v1/audit/verify", token=auditor)
        answers.append((st, body))
    stop.set()
    for t in ts:
        t.join()
    bad = [b for s, b in answers if s != 200 or not b.get("ok")]
    print(f"     {len(answers)} chain checks while {len(results)} rows were appended")
    check(len(results) > 100 and answers, "rows were appended during the checks")
    check(not bad, f"the chain check never reports an intact log as broken (first: {bad[:1]})")
    st, body = v.call("GET", "/v1/audit/verify", token=auditor)
    check(st == 200 and body["ok"], "and it verifies at rest")
finally:
    v.stop()
    wd.cleanup()
finish()
