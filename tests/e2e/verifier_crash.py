"""End-to-end: crash safety. kill -9 the verifier during a burst of
attestations, restart it on the same database: the audit chain verifies and
every attestation that was acknowledged (201) has its session row and its
audit row, with the same audit id.

What this proves: nothing is acknowledged before its transaction committed,
and a process crash at any point leaves a consistent database. What kill -9
cannot prove: that a commit survives a power cut, since the kernel's page
cache outlives the process. That rests on SQLite's WAL with synchronous=FULL
(an fsync of the WAL at every commit, before the writer acknowledges it); the
verifier reads both settings back from its write connection at start, refuses
to run with anything else, and logs them, and this test checks that log."""
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import KeyPair, Pki, Verifier, Workdir, b64, check, finish

wd = Workdir("crash")
pki = Pki(wd)
kp = KeyPair(wd)
# A long nonce TTL: minting 160 documents on a loaded machine (sanitizers)
# can take longer than the default 60 s.
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0", "--nonce-ttl", "3600"]).start()
try:
    owner = v.token("owner")
    st, body = v.call("PUT", "/v1/policies/p", body=pki.policy(), token=owner)
    check(st == 201, "policy")
    docs = [pki.doc(nonce=v.challenge(), public_key=kp.config, extra=[f"--module-id=i-{i:017x}-enc{i:016x}"])
            for i in range(160)]
    acked = []
    lock = threading.Lock()

    def worker(part):
        for d in part:
            try:
                st, body = v.call("POST", "/v1/attestations", body={"evidence": b64(d), "policy": "p"})
            except Exception:
                return  # the verifier died under us: expected
            if st == 201:
                with lock:
                    acked.append((body["session"]["id"], body["audit_id"]))

    log = open(v.log, errors="replace").read()
    check('journal_mode=wal synchronous=2' in log,
          "the verifier's write connection runs WAL with synchronous=FULL (read back, logged)")

    threads = [threading.Thread(target=worker, args=(docs[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    deadline = time.time() + 120
    while len(acked) < 40 and time.time() < deadline and any(t.is_alive() for t in threads):
        time.sleep(0.005)
    check(len(acked) >= 40, f"40 attestations acknowledged before the kill (got {len(acked)})")
    v.stop(signal.SIGKILL)
    for t in threads:
        t.join()
    check(0 < len(acked) < len(docs), f"killed mid-burst: {len(acked)} of {len(docs)} acknowledged")
    v.start()
    st, body = v.call("GET", "/v1/audit/verify", token=v.admin)
    check(st == 200 and body["ok"], f"audit chain verifies after kill -9 ({body})")
    sessions = {r[0] for r in v.sql("SELECT id FROM sessions")}
    audited = {r[0]: r[1] for r in v.sql("SELECT session_id, id FROM audit WHERE action = 'attestation.create' AND outcome = 'ok'")}
    missing = [s for s, _ in acked if s not in sessions]
    check(not missing, f"every acknowledged attestation has its session row ({len(missing)} missing)")
    missing = [s for s, aid in acked if audited.get(s) != aid]
    check(not missing, f"every acknowledged attestation has its audit row, same id ({len(missing)} missing)")
    # and the restarted verifier keeps working on the same database
    st, body = v.call("POST", "/v1/attestations",
                      body={"evidence": b64(pki.doc(nonce=v.challenge(), public_key=kp.config)), "policy": "p"})
    check(st == 201, "the restarted verifier admits new attestations")
    st, body = v.call("GET", "/v1/audit/verify", token=v.admin)
    check(body["ok"], "chain still verifies")
finally:
    v.stop()
    wd.cleanup()
finish()
