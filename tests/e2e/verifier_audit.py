"""End-to-end: the audit log under a flood, and its incremental check.
A flood of bad tokens, rate-limited challenges and anonymous verifications
from one address adds one row per (actor, action, code, minute), with the
exact count, written at the end of each minute and at shutdown; /metrics
counts every refusal. Anonymous evidence refusals keep a row each within the
per-client budget; token holders' refusals always do. GET /v1/audit/verify
checks from its checkpoint by default and the whole chain on request, at
most once per interval."""
import http.client
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Pki, Verifier, Workdir, b64, check, ctl, finish


class Conn:
    """One keep-alive connection (a flood is thousands of requests)."""

    def __init__(self, v):
        self.c = http.client.HTTPConnection("127.0.0.1", v.port, timeout=30)

    def call(self, method, path, body=None, token=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        self.c.request(method, path, body=data, headers=headers)
        r = self.c.getresponse()
        text = r.read()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text.decode(errors="replace")

    def close(self):
        self.c.close()


def metric(v, name, labels):
    st, text = v.call("GET", "/metrics")
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return int(float(line.split()[-1]))
    return 0


def aggregates(v, after_id, action="refusal.aggregate"):
    """{(actor, original action, outcome, code): [count, rows]} for aggregate rows after after_id."""
    out = {}
    for actor, outcome, code, msg, client in v.sql(
            "SELECT actor, outcome, code, message, client FROM audit WHERE id > ? AND action = ?",
            (after_id, action)):
        m = json.loads(msg)
        check(client == "127.0.0.1" and m["count"] > 0 and m["first_ms"] <= m["last_ms"],
              f"aggregate row names the client, a count and first/last times ({m})")
        k = (actor, m["action"], outcome, code)
        e = out.setdefault(k, [0, 0])
        e[0] += m["count"]
        e[1] += 1
    return out


def minute():
    return int(time.time() * 1000) // 60000


wd = Workdir("verifier-audit")
pki = Pki(wd)
doc = pki.doc()
v = Verifier(wd, roots=[pki.root], extra=["--rate", "1", "--burst", "5"]).start()
try:
    owner = v.token("owner")
    auditor = v.token("auditor")

    # ---- a flood from one address ------------------------------------------------
    N = 1500
    before = v.sql("SELECT max(id) FROM audit")[0][0]
    m_start = minute()
    c = Conn(v)
    statuses = {"tokens": {}, "challenge": {}, "verify": {}}
    audit_ids = []
    for i in range(N):
        st, body = c.call("GET", "/v1/sessions?policy=llm", token="at_bogus-token-%d" % (i % 7))
        statuses["tokens"][st] = statuses["tokens"].get(st, 0) + 1
        audit_ids.append(body["error"]["audit_id"])
        st, body = c.call("POST", "/v1/challenge", body={})
        statuses["challenge"][st] = statuses["challenge"].get(st, 0) + 1
        if st == 429:
            audit_ids.append(body["error"]["audit_id"])
    for i in range(N):
        st, body = c.call("POST", "/v1/verify", body={"evidence": b64(doc)})
        statuses["verify"][st] = statuses["verify"].get(st, 0) + 1
        audit_ids.append(body["error"]["audit_id"] if st == 429 else body["audit_id"])
    # peer bindings naming sessions that do not exist (another one each
    # time): rate-limited, and charged to the anonymous caller, never to
    # the session named, so they aggregate too
    statuses["peer"] = {}
    for i in range(N):
        st, body = c.call("POST", "/v1/peer/bindings", body={
            "session": "s%032x" % i, "proof": "%d.%s" % (int(time.time() * 1000), "A" * 43),
            "transcript_sha256": "0" * 64})
        statuses["peer"][st] = statuses["peer"].get(st, 0) + 1
        audit_ids.append(body["error"]["audit_id"])
    c.close()
    m_end = minute()
    print(f"flood: {statuses} over minute(s) {m_start}..{m_end}")
    ch429, ve429, ve200 = statuses["challenge"].get(429, 0), statuses["verify"].get(429, 0), statuses["verify"].get(200, 0)
    check(statuses["tokens"] == {401: N}, f"{N} bad tokens: 401 each")
    check(ch429 >= N - 100 and ch429 + statuses["challenge"].get(201, 0) == N,
          f"challenges beyond --rate 1 --burst 5: 429 ({ch429} of {N})")
    check(ve429 >= N - 100 and ve429 + ve200 == N,
          f"POST /v1/verify is rate-limited per client like the other anonymous routes ({ve429} of {N})")
    pe429 = statuses["peer"].get(429, 0)
    check(pe429 >= N - 100 and pe429 + statuses["peer"].get(401, 0) + statuses["peer"].get(403, 0) == N,
          f"POST /v1/peer/bindings is rate-limited per client like the other anonymous routes ({statuses['peer']})")
    check(all(a is None for a in audit_ids), "no refusal in the flood got a row of its own (audit_id null)")
    # /metrics counts every one of them
    check(metric(v, "attest_refusals_total", 'action="session.list",code="unauthorized"') == N,
          f"/metrics: all {N} bad-token refusals counted")
    check(metric(v, "attest_refusals_total", 'action="challenge",code="rate_limited"') == ch429,
          f"/metrics: all {ch429} rate-limited challenges counted")
    check(metric(v, "attest_refusals_total", 'action="verify",code="rate_limited"') == ve429,
          f"/metrics: all {ve429} rate-limited verifications counted")
    check(metric(v, "attest_verifications_total", 'outcome="valid",code="ok"') == ve200,
          f"/metrics: all {ve200} anonymous verifications counted")
    v.stop()  # SIGTERM: the counts of the minute in progress are written too
    v.start()
    rows = v.sql("SELECT action FROM audit WHERE id > ?", (before,))
    # One row per key and minute: 3 refusal keys + the valid verifications,
    # for each minute the flood touched (a minute that ended during the
    # flood was written by the flusher, the rest at shutdown).
    minutes = m_end - m_start + 1
    bound = 6 * minutes
    check(len(rows) <= bound and all(a in ("refusal.aggregate", "verify.aggregate") for (a,) in rows),
          f"{4 * N} requests added {len(rows)} aggregate rows (at most {bound}: 6 keys x {minutes} minute(s))")
    agg = aggregates(v, before)
    check(agg.get(("invalid-token", "session.list", "refused", "unauthorized"), [0])[0] == N,
          f"refusal.aggregate: bad tokens counted exactly ({agg})")
    check(agg.get(("anonymous", "challenge", "refused", "rate_limited"), [0])[0] == ch429,
          "refusal.aggregate: rate-limited challenges counted exactly")
    check(agg.get(("anonymous", "verify", "refused", "rate_limited"), [0])[0] == ve429,
          "refusal.aggregate: rate-limited verifications counted exactly")
    check(agg.get(("anonymous", "peer.attest", "refused", "rate_limited"), [0])[0] == pe429,
          "refusal.aggregate: rate-limited peer bindings counted exactly, as the anonymous caller's")
    vagg = aggregates(v, before, "verify.aggregate")
    check(vagg.get(("anonymous", "verify", "ok", None), [0])[0] == ve200,
          f"verify.aggregate: the anonymous verifications that ran, counted exactly ({vagg})")
    v.stop()

    # ---- anonymous verifications, anonymous evidence refusals, token holders -----
    v.extra = ["--rate", "0", "--audit-rate", "30"]
    v.start()
    before = v.sql("SELECT max(id) FROM audit")[0][0]
    c = Conn(v)
    M = 500
    ok = 0
    for i in range(M):
        st, body = c.call("POST", "/v1/verify", body={"evidence": b64(doc)})
        ok += st == 200 and body["valid"] and body["audit_id"] is None
    check(ok == M, f"{M} anonymous verifications: valid, no row each ({ok})")
    strict = pki.policy(require_nonce=False)
    strict["pcrs"] = {"0": ["33" * 48]}
    st, body = c.call("PUT", "/v1/policies/strict", body=strict, token=owner)
    check(st == 201, "policy whose PCR0 no document has")
    K = 200
    t0 = time.monotonic()
    own = []
    refused = 0
    for i in range(K):
        st, body = c.call("POST", "/v1/attestations", body={"evidence": b64(doc), "policy": "strict"})
        refused += st == 403 and body["error"]["code"] == "pcr_mismatch"
        if body["error"]["audit_id"]:
            own.append(body["error"]["audit_id"])
    elapsed = time.monotonic() - t0
    check(refused == K, f"{K} anonymous attestations with the wrong PCRs: 403 pcr_mismatch")
    budget = 30 + int(elapsed * 30 / 60) + 1
    check(30 <= len(own) <= budget,
          f"anonymous evidence refusals: a row each within the budget (--audit-rate 30: "
          f"{len(own)} rows, at most {budget})")
    first = v.audit_row(own[0]) if own else None
    check(first is not None and first["code"] == "pcr_mismatch" and first["pcr_sha256"]
          and first["evidence_sha256"] and first["policy"] == "strict@1",
          "the refused attestation's own row: code, PCR digest, evidence digest, policy")
    L = 40
    lint = {"format": "nitro-enclave", "pcrs": {"0": ["00" * 48]}}
    lint_ids = []
    for i in range(L):
        st, body = c.call("PUT", "/v1/policies/debug", body=lint, token=owner)
        lint_ids.append(body["error"]["audit_id"] if st == 422 else None)
    check(all(lint_ids) and len(set(lint_ids)) == L,
          f"a token holder's refusals ({L} lint refusals) keep a row each, beyond any budget")
    c.close()
    v.stop()
    v.start()
    check(agg.get(("anonymous", "peer.attest", "refused", "rate_limited"), [0])[0] == pe429,
          "refusal.aggregate: rate-limited peer bindings counted exactly, as the anonymous caller's")
    vagg = aggregates(v, before, "verify.aggregate")
    check(vagg.get(("anonymous", "verify", "ok", None), [0])[0] == M,
          f"verify.aggregate: {M} anonymous verifications in one row per minute ({vagg})")
    agg = aggregates(v, before)
    key = ("anonymous", "attestation.create", "refused", "pcr_mismatch")
    check(agg.get(key, [0])[0] == K - len(own),
          f"evidence refusals beyond the budget: counted ({agg.get(key)}, expected {K - len(own)})")

    # ---- GET /v1/audit/verify: incremental from a checkpoint ----------------------
    def verify(full=False):
        return v.call("GET", "/v1/audit/verify" + ("?full=1" if full else ""), token=auditor)

    def lint_refusals(n):
        for _ in range(n):
            v.call("PUT", "/v1/policies/debug", body=lint, token=owner)

    st, body = verify()
    check(st == 200 and body["ok"] and body["mode"] == "full",
          f"the first check (no checkpoint yet) runs over the whole chain ({body.get('mode')})")
    head = body["head"]["id"]
    st, body = verify(full=True)
    check(st == 429 and body["error"]["code"] == "rate_limited",
          f"a second whole-chain check within --audit-verify-interval (10 s): 429 rate_limited (got {st})")
    lint_refusals(3)
    st, body = verify()
    check(st == 200 and body["ok"] and body["mode"] == "incremental" and body["checked"] == 3
          and body["checkpoint"]["id"] == head and body["entries"] == head + 3
          and body["head"]["id"] == head + 3,
          f"incremental: only the 3 rows since the checkpoint are recomputed ({body})")
    checkpoint = head + 3
    check(v.sql("SELECT id FROM audit_checkpoint")[0][0] == checkpoint, "the checkpoint moved to the head")
    # before the checkpoint: only the whole-chain check sees it
    original = v.sql("SELECT message FROM audit WHERE id = 3")[0][0]
    v.sql("UPDATE audit SET message = 'nothing to see' WHERE id = 3")
    st, body = verify()
    check(st == 200 and body["ok"] and body["checked"] == 0,
          "an edit before the checkpoint: the incremental check does not see it (by design)")
    v.stop()
    v.start()  # a new process: the whole-chain limit starts afresh
    p = ctl("audit", "verify", "--full", "--verifier", v.url, env=dict(os.environ, ATTEST_TOKEN=auditor))
    out = json.loads(p.stdout) if p.stdout else {}
    check(p.returncode == 1 and out.get("first_bad") == 3 and out.get("mode") == "full",
          f"attestctl audit verify --full finds it (row 3, exit 1) ({out})")
    v.sql("UPDATE audit SET message = ? WHERE id = 3", (original,))
    # after the checkpoint: the incremental check sees it
    lint_refusals(3)
    bad = checkpoint + 2
    v.sql("UPDATE audit SET message = 'nothing to see' WHERE id = ?", (bad,))
    st, body = verify()
    check(st == 200 and not body["ok"] and body["first_bad"] == bad and body["mode"] == "incremental",
          f"an edit after the checkpoint: the incremental check names it ({bad}) ({body})")
    p = ctl("audit", "verify", "--verifier", v.url, env=dict(os.environ, ATTEST_TOKEN=auditor))
    check(p.returncode == 1, "attestctl audit verify (incremental) exits 1")
    check(v.sql("SELECT id FROM audit_checkpoint")[0][0] == checkpoint, "a broken chain does not move the checkpoint")
    # the checkpoint row itself: its contents must still hash to the checkpoint
    v.sql("DELETE FROM audit WHERE id > ?", (checkpoint,))
    v.sql("UPDATE audit_head SET last_id = ?, hash = (SELECT hash FROM audit WHERE id = ?)",
          (checkpoint, checkpoint))
    st, body = verify()
    check(st == 200 and body["ok"] and body["checked"] == 0, "rows after the checkpoint removed with the head rewritten: consistent")
    v.sql("UPDATE audit SET actor = 'someone-else' WHERE id = ?", (checkpoint,))
    st, body = verify()
    check(st == 200 and not body["ok"] and body["first_bad"] == checkpoint,
          f"an edit of the checkpoint row itself is detected ({body.get('reason')})")
    v.sql("DELETE FROM audit WHERE id >= ?", (checkpoint,))
    v.sql("UPDATE audit_head SET last_id = ?, hash = (SELECT hash FROM audit WHERE id = ?)",
          (checkpoint - 1, checkpoint - 1))
    st, body = verify()
    check(st == 200 and not body["ok"] and "removed" in body.get("reason", ""),
          f"a checkpoint row that was removed (tail truncated, head rewritten) is detected ({body.get('reason')})")
    st, body = v.call("GET", "/v1/audit/verify?full=2", token=auditor)
    check(st == 400 and body["error"]["code"] == "bad_request", "full: only 0 or 1")
    # ---- two addresses that shared a slot of the old unkeyed table (FNV-1a
    # mod 4096, review F1) alternate: each keeps its own bucket, none refills.
    pair = ("127.0.27.11", "127.0.67.95")
    vc = Verifier(wd, roots=[pki.root], extra=["--rate", "1", "--burst", "5"], db=wd("collide.db")).start()
    conns = [http.client.HTTPConnection("127.0.0.1", vc.port, source_address=(a, 0), timeout=30) for a in pair]
    t0, ok, limited = time.monotonic(), 0, 0
    for i in range(200):
        conns[i % 2].request("POST", "/v1/challenge", body=b"{}", headers={"Content-Type": "application/json"})
        r = conns[i % 2].getresponse()
        d = r.read()
        ok += r.status == 201
        limited += r.status == 429 and json.loads(d)["error"]["code"] == "rate_limited"
    elapsed = time.monotonic() - t0
    for cn in conns:
        cn.close()
    st, _ = vc.call("GET", "/healthz")
    check(st == 200, "after the flood the verifier still answers")
    vc.stop()
    # at most a burst each plus one token a second each (a bound, not a timing)
    check(ok + limited == 200 and ok <= 2 * 5 + 2 * (elapsed + 1),
          f"two colliding addresses alternating: {ok} of 200 allowed in {elapsed:.1f} s, "
          f"at most 2 x (burst 5 + 1/s), the rest 429 rate_limited")
finally:
    v.stop()
    wd.cleanup()
finish()
