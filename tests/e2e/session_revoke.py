"""End-to-end: owners and sessions (issue 13). An owner token lists the
sessions of the policies its scope covers (never another's), per version;
DELETE /v1/sessions/{id} ends one session at once (owner within its scope,
admin): state "revoked", one session.revoke audit row, gone from the
gateway's list, its release proofs refused, idempotent; a running
attest-agent notices on its next check and re-attests (the policy still
admits it). Every refusal with its exact code."""
import json
import os
import secrets
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, STANDIN, KeyPair, Pki, Process, Verifier, Workdir, check, ctl, finish, http)

wd = Workdir("session-revoke")
pki = Pki(wd)
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()
llm = Process(wd, "llm", ["python3", STANDIN], sanitizer_check=False).start()
agent = None


def mk(*args):
    p = ctl("token", "create", "--db", v.db, *args, check_rc=0)
    return p.stdout.decode().strip()


def ids(st, body):
    return sorted(s["id"] for s in body.get("sessions", [])) if st == 200 else None


def refused(st, body, status, code, what, action):
    err = body.get("error", {}) if isinstance(body, dict) else {}
    check(st == status and err.get("code") == code, f"{what}: HTTP {status} {code} (got {st} {err})")
    row = (v.audit_row(err["audit_id"]) if err.get("audit_id") else None) or {}
    check(row.get("code") == code and row.get("outcome") == "refused" and row.get("action") == action,
          f"{what}: audit row {action} records {code} ({row.get('action')} {row.get('code')})")
    return row


def wait_status(a, cond, what, timeout=30):
    end = time.time() + timeout
    st = None
    while time.time() < end:
        _, st = http("GET", a.url + "/v1/status")
        if isinstance(st, dict) and cond(st):
            check(True, what)
            return st
        time.sleep(0.1)
    check(False, f"{what} (last status {st})")
    return st


try:
    admin = v.admin
    owner_all = mk("--role", "owner")
    owner_llm = mk("--role", "owner", "--policies", "llm")
    owner_other = mk("--role", "owner", "--policies", "other")
    gateway = v.token("gateway")
    auditor = v.token("auditor")
    agent_tok = wd("agent.token")
    ctl("token", "create", "--db", v.db, "--role", "agent", "--out", agent_tok, check_rc=0)

    # policy llm admits the agent (its own PCRs), policy other the simulator's documents
    out = subprocess.run([AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm", "--verifier", v.url,
                          "--listen", "127.0.0.1:0", "--upstream", llm.url, "--print-pcrs"], capture_output=True)
    st, _ = v.call("PUT", "/v1/policies/llm", body=json.loads(out.stdout), token=owner_llm)
    st2, _ = v.call("PUT", "/v1/policies/other", body=pki.policy(session_ttl_s=600), token=owner_other)
    check(st == 201 and st2 == 201, "policies llm (the agent's PCRs) and other (the simulator's)")

    agent = Process(wd, "agent", [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm",
                                  "--verifier", v.url, "--listen", "127.0.0.1:0", "--upstream", llm.url,
                                  "--token-file", agent_tok, "--session-check", "1"]).start()
    sid1 = wait_status(agent, lambda s: s.get("attested") and s.get("session"), "the agent attests under llm")["session"]
    kp = KeyPair(wd)
    state = wd("other.json")
    p = ctl("attest", "--verifier", v.url, "--policy", "other", "--pki", pki.dir, "--key-file", kp.file,
            "--state-file", state, "--module-id", "i-0123456789abcdef0-enc0123456789abcdef")
    check(p.returncode == 0, f"a session under policy other ({p.stderr.decode()[:200]})")
    sid2 = json.load(open(state))["session"]

    # ---- owners list sessions within their scope -------------------------------
    check(ids(*v.call("GET", "/v1/sessions", token=owner_llm)) == [sid1], "owner scoped to llm lists only llm's session")
    check(ids(*v.call("GET", "/v1/sessions", token=owner_other)) == [sid2],
          "owner scoped to other lists only other's session")
    check(ids(*v.call("GET", "/v1/sessions", token=owner_all)) == sorted([sid1, sid2]),
          "an owner without scope lists every session")
    st, body = v.call("GET", "/v1/sessions?policy=llm&version=1", token=owner_llm)
    check(ids(st, body) == [sid1] and body["sessions"][0]["policy"] == "llm@1",
          "policy=llm&version=1: the session version 1 admits")
    check(ids(*v.call("GET", "/v1/sessions?policy=llm&version=2", token=owner_llm)) == [],
          "policy=llm&version=2: none (no such version)")
    st, body = v.call("GET", "/v1/sessions?policy=other", token=owner_llm)
    refused(st, body, 403, "forbidden", "owner scoped to llm asks for other's sessions", "session.list")
    st, body = v.call("GET", "/v1/sessions?policy=other&version=1", token=owner_llm)
    refused(st, body, 403, "forbidden", "... and for one of its versions", "session.list")
    st, body = v.call("GET", "/v1/sessions?version=1", token=owner_llm)
    refused(st, body, 400, "bad_request", "version= without policy=", "session.list")
    st, body = v.call("GET", "/v1/sessions?policy=llm&version=x", token=owner_llm)
    refused(st, body, 400, "bad_request", "version=x", "session.list")
    st, body = v.call("GET", "/v1/sessions?policy=llm&version=99999999999999999999", token=owner_llm)
    refused(st, body, 400, "bad_request", "version= beyond 64 bits", "session.list")
    st, body = v.call("GET", "/v1/sessions?policy=llm&version=0", token=owner_llm)
    refused(st, body, 400, "bad_request", "version=0", "session.list")
    st, body = v.call("GET", f"/v1/sessions?id={sid1}&version=1", token=open(agent_tok).read().strip())
    refused(st, body, 403, "forbidden", "an agent token with version=", "session.list")

    # ---- revoke: refusals --------------------------------------------------------
    st, body = v.call("DELETE", f"/v1/sessions/{sid1}", token=owner_other)
    row = refused(st, body, 404, "session_not_found", "owner scoped to other revokes llm's session: as if unknown",
                  "session.revoke")
    check("llm" not in body["error"]["message"], f"... the answer does not name llm ({body['error']['message']})")
    check(row.get("session_id") == sid1 and row.get("policy") == "llm@1" and "outside" in row.get("message", ""),
          f"the refusal's row names the session, policy@version and why ({row})")
    for tok, who in [(gateway, "gateway"), (auditor, "auditor"), (open(agent_tok).read().strip(), "agent")]:
        st, body = v.call("DELETE", f"/v1/sessions/{sid1}", token=tok)
        refused(st, body, 403, "forbidden", f"a {who} token cannot revoke", "session.revoke")
    st, body = v.call("DELETE", f"/v1/sessions/{sid1}")
    check(st == 401 and body["error"]["code"] == "unauthorized", "no token: 401 unauthorized")
    st, body = v.call("DELETE", "/v1/sessions/" + "ab" * 16, token=owner_llm)
    refused(st, body, 404, "session_not_found", "an unknown session id", "session.revoke")
    st, body = v.call("DELETE", "/v1/sessions/" + "a" * 65, token=owner_llm)
    refused(st, body, 400, "bad_request", "an id longer than 64", "session.revoke")
    st, body = v.call("DELETE", f"/v1/sessions/{sid1}?reason=%01", token=owner_llm)
    refused(st, body, 400, "bad_request", "a reason with a control byte", "session.revoke")
    st, body = v.call("GET", f"/v1/sessions/{sid1}", token=owner_llm)
    check(st == 404 and body["error"]["code"] == "not_found", "GET /v1/sessions/{id}: 404 not_found (DELETE only)")
    st, body = v.call("GET", f"/v1/sessions?id={sid1}", token=owner_llm)
    check(st == 200 and body["sessions"][0]["state"] == "active", "after the refusals the session is still active")

    # ---- revoke: the owner within its scope ---------------------------------------
    st, body = v.call("DELETE", f"/v1/sessions/{sid1}?reason=suspected%20host", token=owner_llm)
    check(st == 200 and body["revoked"] is True and body["state"] == "revoked" and body["policy"] == "llm@1",
          f"owner scoped to llm revokes the agent's session ({st} {body})")
    row = v.audit_row(body.get("audit_id", 0)) or {}
    check(row.get("action") == "session.revoke" and row.get("outcome") == "ok" and row.get("session_id") == sid1
          and row.get("policy") == "llm@1" and row.get("actor", "").endswith("/owner")
          and "suspected host" in (row.get("message") or ""),
          f"audit row session.revoke: actor, session, policy@version, reason ({row})")
    st, body = v.call("GET", f"/v1/sessions?id={sid1}&state=all", token=auditor)
    check(st == 200 and body["sessions"][0]["state"] == "revoked", "its state is revoked")
    st, body = v.call("GET", "/v1/sessions?policy=llm", token=gateway)
    check(st == 200 and sid1 not in [s["id"] for s in body["sessions"]], "the gateway no longer lists it")
    st, body = v.call("DELETE", f"/v1/sessions/{sid1}", token=owner_llm)
    check(st == 200 and body["revoked"] is False and body["state"] == "revoked",
          "revoking it again: 200, revoked false (idempotent)")
    row = v.audit_row(body.get("audit_id", 0)) or {}
    check(row.get("outcome") == "ok" and "already ended" in (row.get("message") or ""),
          "... with its own audit row saying it had already ended")

    # the agent notices on its next check and re-attests: llm@1 still admits it
    st = wait_status(agent, lambda s: s.get("attested") and s.get("session") not in (None, sid1),
                     "the agent re-attests after the revocation")
    sid3 = st["session"]
    st, body = v.call("GET", "/v1/sessions?policy=llm&version=1", token=owner_llm)
    check(ids(st, body) == [sid3] and body["sessions"][0]["endpoint"] == agent.url,
          "its new session is listed under llm@1 with its endpoint")
    row = v.sql("SELECT count(*) FROM audit WHERE action = 'attestation.create' AND session_id = ?", (sid3,))
    check(row and row[0][0] == 1, "the re-attestation is in the audit log")

    # ---- a revoked session's proofs are no longer honoured ------------------------
    key = wd("k.bin")
    open(key, "wb").write(secrets.token_bytes(32))
    p = ctl("secret", "put", "other-key", "--policy", "other", "--value-file", key, "--verifier", v.url,
            env=dict(os.environ, ATTEST_TOKEN=owner_other))
    p2 = ctl("secret", "release", "other-key", "--state-file", state, "-o", "/dev/null")
    check(p.returncode == 0 and p2.returncode == 0, "a secret under other is released to the live session")
    p = ctl("session", "revoke", sid2, "--reason", "by the admin", "--verifier", v.url,
            env=dict(os.environ, ATTEST_TOKEN=admin))
    out = json.loads(p.stdout) if p.returncode == 0 else {}
    check(out.get("state") == "revoked" and out.get("revoked") is True,
          f"attestctl session revoke (admin token) ({p.stderr.decode()[:200]})")
    p = ctl("secret", "release", "other-key", "--state-file", state, "-o", "/dev/null")
    check(p.returncode == 1 and b"session_expired" in p.stderr,
          f"release with the revoked session's proof: session_expired ({p.stderr.decode()[:200]})")

    # attestctl session list: the owner's view, per version
    p = ctl("session", "list", "--policy", "llm", "--version", "1", "--verifier", v.url,
            env=dict(os.environ, ATTEST_TOKEN=owner_llm))
    check(p.returncode == 0 and [s["id"] for s in json.loads(p.stdout)["sessions"]] == [sid3],
          "attestctl session list --policy llm --version 1")
    p = ctl("session", "list", "--all", "--policy", "other", "--verifier", v.url,
            env=dict(os.environ, ATTEST_TOKEN=owner_llm))
    check(p.returncode == 1 and b"forbidden" in p.stderr, "attestctl session list outside the scope: exit 1, forbidden")
    p = ctl("session", "list", "--version", "1", "--verifier", v.url)
    check(p.returncode == 2, "attestctl session list --version without --policy: usage (exit 2)")
    p = ctl("session", "revoke", "not/an/id", "--verifier", v.url)
    check(p.returncode == 2, "attestctl session revoke with a malformed id: usage (exit 2)")

    # to bar the environment: revoke the policy version (its sessions end, none comes back)
    st, body = v.call("DELETE", "/v1/policies/llm/versions/1", token=owner_llm)
    check(st == 200 and body["sessions_ended"] == 1, "revoking llm@1 ends the agent's new session")
    wait_status(agent, lambda s: "policy_not_found" in s.get("last_error", ""),
                "the agent cannot come back under a revoked version")
    check(ids(*v.call("GET", "/v1/sessions?policy=llm", token=owner_llm)) == [], "no live session under llm")
finally:
    if agent and agent.proc:
        agent.stop()
    llm.stop()
    v.stop()
    wd.cleanup()
finish()
