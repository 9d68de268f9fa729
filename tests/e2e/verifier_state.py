"""End-to-end: state in attest-verifier that must not silently go wrong
(issue 7 section 4): signing-key reloads never run out, single use of
nonces and release proofs survives a clock set back after a prune, a
missing or wrong storage key stops the start, the proof key is not in the
database in clear, and API tokens are listed, expire, are revoked and
scoped to policies."""
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (VERIFIER, KeyPair, Pki, Verifier, Workdir, b64, check, ctl, finish, run)

wd = Workdir("state")
pki = Pki(wd)
kp = KeyPair(wd)
clock = wd("clock-offset")


def set_clock(offset_s):
    with open(clock + ".tmp", "w") as f:
        f.write(str(offset_s))
    os.replace(clock + ".tmp", clock)


def log_count(v, needle):
    with open(v.log, errors="replace") as f:
        return f.read().count(needle)


def wait_log(v, needle, count):
    """Until the verifier logged `needle` `count` times (no timed assertion:
    a generous bound only so a hang fails instead of blocking)."""
    for _ in range(3000):
        if log_count(v, needle) >= count:
            return True
        time.sleep(0.01)
    return False


def jws_kid(token):
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]


def release_proof(session_key_hex, name, sid, ts_ms):
    pk = hmac.new(bytes.fromhex(session_key_hex), b"attest session proof v1", hashlib.sha256).digest()
    mac = hmac.new(pk, f"attest release v1\n{name}\n{sid}\n{ts_ms}".encode(), hashlib.sha256).digest()
    return f"{ts_ms}." + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def prune(v):
    n = log_count(v, "pruned on SIGUSR1")
    v.proc.send_signal(signal.SIGUSR1)
    return wait_log(v, "pruned on SIGUSR1", n + 1)


set_clock(0)
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0", "--test-clock-file", clock]).start()
try:
    owner = v.token("owner")
    st, body = v.call("PUT", "/v1/policies/llm", body=pki.policy(session_ttl_s=86400), token=owner)
    check(st == 201, "policy llm (sessions live a day, so a clock jump does not end them)")

    def attest(doc, policy="llm"):
        return v.call("POST", "/v1/attestations", body={"evidence": b64(doc), "policy": policy})

    # ---- SIGHUP: any number of reloads, rotation still takes effect --------
    needle = '"event":"reload","msg":"signing key '
    for i in range(66):
        v.proc.send_signal(signal.SIGHUP)
        if not wait_log(v, needle, i + 1):
            break
    check(log_count(v, needle) == 66, "66 SIGHUPs processed, each reloading the signing key")
    p = run(VERIFIER, "--db", v.db, "--rotate-signing-key")
    check(p.returncode == 0, "attest-verifier --rotate-signing-key on the live database")
    newest = v.sql("SELECT kid FROM verifier_keys WHERE kind = 'signing' AND state = 'current'")[0][0]
    for i in range(6):
        v.proc.send_signal(signal.SIGHUP)
        wait_log(v, needle, 67 + i)
    check(log_count(v, needle) == 72, "72 SIGHUPs in all")
    st, body = attest(pki.doc(nonce=v.challenge(), public_key=kp.config))
    check(st == 201 and jws_kid(body["token"]) == newest,
          f"after 72 reloads a fresh EAR token is signed by the newest key {newest} "
          f"(got {jws_kid(body['token']) if st == 201 else st})")
    st, jwks = v.call("GET", "/.well-known/jwks.json")
    check(st == 200 and jwks["keys"][0]["kid"] == newest and len(jwks["keys"]) == 2,
          "JWKS publishes the newest key first, and the previous one")

    # ---- clock jumps: nonces ------------------------------------------------
    n = v.challenge()
    doc = pki.doc(nonce=n, public_key=kp.config)
    st, body = attest(doc)
    check(st == 201, "nonce used once")
    check(len(v.sql("SELECT 1 FROM nonces_used WHERE nonce = ?", (n,))) == 1, "its use is recorded")
    set_clock(3600)
    check(prune(v), "clock +1 h, prune (SIGUSR1)")
    check(len(v.sql("SELECT 1 FROM nonces_used WHERE nonce = ?", (n,))) == 0,
          "the pruner dropped the use record of the expired nonce")
    set_clock(0)
    st, body = attest(doc)
    err = body.get("error", {}) if isinstance(body, dict) else {}
    check(st == 422 and err.get("code") == "nonce_expired" and "high-water mark" in err.get("message", ""),
          f"clock back: the used nonce is refused (nonce_expired, high-water mark) (got {st} {err})")
    check(prune(v) and len(v.sql("SELECT 1 FROM clock_watermark WHERE pruned_before_ms > ?",
                                 (int(time.time() * 1000) + 3000 * 1000,))) == 1,
          "a prune with the clock back keeps the high-water mark")
    st, body = attest(pki.doc(nonce=v.challenge(), public_key=kp.config))
    check(st == 422 and body["error"]["code"] == "nonce_expired",
          "while the clock is behind the mark, fresh nonces expire too (fail closed)")

    finish_early = False
finally:
    v.stop()

# A fresh database for the release-proof jump (the mark above is an hour ahead).
wd2 = Workdir("state2")
set_clock(0)
v = Verifier(wd2, roots=[pki.root], extra=["--rate", "0", "--test-clock-file", clock]).start()
try:
    owner = v.token("owner")
    st, body = v.call("PUT", "/v1/policies/llm", body=pki.policy(session_ttl_s=86400), token=owner)
    state = wd2("state.json")
    p = ctl("attest", "--verifier", v.url, "--policy", "llm", "--pki", pki.dir, "--key-file", kp.file,
            "--state-file", state)
    check(p.returncode == 0, f"a session for the release tests ({p.stderr.decode()[:200]})")
    sess = json.load(open(state))
    sid, skey = sess["session"], sess["session_key"]
    secret = os.urandom(32)
    st, body = v.call("PUT", "/v1/secrets/model-key", body={"policy": "llm", "value": b64(secret)}, token=owner)
    check(st == 201, "owner stores a secret")

    # ---- the proof key is not in the database in clear ----------------------
    pk = hmac.new(bytes.fromhex(skey), b"attest session proof v1", hashlib.sha256).digest()
    col = v.sql("SELECT proof_key FROM sessions WHERE id = ?", (sid,))[0][0]
    check(pk not in col and len(col) == 1 + 12 + 32 + 16,
          "sessions.proof_key holds the proof key sealed under the storage key, not in clear")

    # ---- clock jumps: release proofs ----------------------------------------
    proof = release_proof(skey, "model-key", sid, int(time.time() * 1000))
    st, body = v.call("POST", "/v1/secrets/model-key/release", body={"session": sid, "proof": proof})
    check(st == 200 and "sealed" in body, f"release with a fresh proof (got {st} {body})")
    st, body = v.call("POST", "/v1/secrets/model-key/release", body={"session": sid, "proof": proof})
    check(st == 401 and "already used" in body["error"]["message"], "the same proof again: refused")
    set_clock(3600)
    check(prune(v), "clock +1 h, prune (SIGUSR1)")
    check(len(v.sql("SELECT 1 FROM proofs_used")) == 0, "the pruner dropped the proof's use record")
    set_clock(0)
    st, body = v.call("POST", "/v1/secrets/model-key/release", body={"session": sid, "proof": proof})
    err = body.get("error", {}) if isinstance(body, dict) else {}
    check(st == 401 and err.get("code") == "unauthorized" and "high-water mark" in err.get("message", ""),
          f"clock back: the used proof is refused (unauthorized, high-water mark) (got {st} {err})")
    aid = err.get("audit_id")
    row = v.audit_row(aid) if aid else None
    check(row is not None and row["action"] == "secret.release" and row["outcome"] == "refused",
          "the refusal has its audit row")

    # ---- storage key: missing or wrong while secrets exist -> no start -------
    v.stop()
    keyfile = v.path + ".storage-key"
    os.rename(keyfile, keyfile + ".saved")

    def start_fails(what):
        p = subprocess.Popen([VERIFIER, "--listen", "127.0.0.1:0", "--db", v.db, "--root", pki.root,
                              "--storage-key-file", keyfile, "--admin-token-file", v.path + ".admin-token"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        out = out.decode(errors="replace")
        check(p.returncode == 1 and keyfile in out,
              f"{what}: the verifier exits non-zero naming {os.path.basename(keyfile)} "
              f"(status {p.returncode}: {out.strip()[-300:]})")
        return out

    out = start_fails("storage key file deleted")
    check("missing" in out and not os.path.exists(keyfile), "it says the file is missing and makes no new one")
    with open(keyfile, "wb") as f:
        f.write(os.urandom(32))
    out = start_fails("storage key file replaced by another key")
    check("does not open" in out, "it says the key does not open the secrets")
    os.replace(keyfile + ".saved", keyfile)

    # ---- a session stored in clear by an older version is sealed at start ----
    v.sql("UPDATE sessions SET proof_key = ? WHERE id = ?", (pk, sid))
    v.start()
    col = v.sql("SELECT proof_key FROM sessions WHERE id = ?", (sid,))[0][0]
    check(pk not in col and len(col) == 61, "the right key file: starts, and seals a proof key left in clear")
    # (the clock runs 2 h ahead from here: the high-water mark above is 1 h ahead)
    set_clock(7200)
    proof = release_proof(skey, "model-key", sid, int(time.time() * 1000) + 7200 * 1000)
    st, body = v.call("POST", "/v1/secrets/model-key/release", body={"session": sid, "proof": proof})
    check(st == 200 and "sealed" in body, f"release still works (got {st})")
finally:
    v.stop()

# ---- API tokens: list, revoke, expiry, scope -------------------------------
wd3 = Workdir("state3")
set_clock(0)
v = Verifier(wd3, roots=[pki.root], extra=["--rate", "0", "--test-clock-file", clock]).start()
wd4 = Workdir("state4")
v2 = Verifier(wd4, roots=[pki.root], extra=["--rate", "0"], db=v.db).start()
try:
    admin = v.admin
    owner = v.token("owner")
    for name in ("llm", "other"):
        st, body = v.call("PUT", f"/v1/policies/{name}", body=pki.policy(), token=owner)
        check(st == 201, f"policy {name}")
    for name, mid in (("llm", "i-0aaaaaaaaaaaaaaaa-enc0aaaaaaaaaaaaaaa"), ("other", "i-0bbbbbbbbbbbbbbbb-enc0bbbbbbbbbbbbbbb")):
        doc = pki.doc(nonce=v.challenge(), public_key=kp.config, extra=["--module-id", mid])
        st, body = v.call("POST", "/v1/attestations", body={"evidence": b64(doc), "policy": name})
        check(st == 201, f"a session under {name}")

    def mk(*args):
        p = ctl("token", "create", "--db", v.db, *args)
        return p.returncode, p.stdout.decode().strip(), p.stderr.decode()

    rc, gw_llm, _ = mk("--role", "gateway", "--policies", "llm", "--label", "gw-llm")
    check(rc == 0 and gw_llm.startswith("at_"), "token create --role gateway --policies llm")
    rc, own_llm, _ = mk("--role", "owner", "--policies", "llm")
    check(rc == 0, "token create --role owner --policies llm")
    rc, short, _ = mk("--role", "auditor", "--expires", "1h")
    check(rc == 0, "token create --role auditor --expires 1h")
    rc, _, err = mk("--role", "auditor", "--policies", "llm")
    check(rc == 2 and "only owner and gateway" in err, f"a scoped auditor token is refused ({err.strip()})")
    rc, _, err = mk("--role", "owner", "--expires", "12x")
    check(rc == 2 and "expires" in err, "a malformed --expires is refused")
    rc, _, err = mk("--role", "owner", "--policies", "a,,b")
    check(rc == 2 and "policies" in err, "a malformed --policies is refused")

    # list (admin only), never a secret or a hash
    st, body = v.call("GET", "/v1/tokens", token=admin)
    toks = {t["label"]: t for t in body.get("tokens", [])} if st == 200 else {}
    check(st == 200 and toks.get("gw-llm", {}).get("policies") == ["llm"]
          and toks["gw-llm"]["role"] == "gateway" and toks["gw-llm"]["state"] == "active",
          "GET /v1/tokens lists tokens with role, policies and state")
    text = json.dumps(body)
    check(gw_llm not in text and admin not in text and "sha256" not in text
          and hashlib.sha256(gw_llm.encode()).hexdigest() not in text,
          "the list holds no token and no token hash")
    exp = [t for t in body["tokens"] if t["role"] == "auditor"]
    check(len(exp) == 1 and exp[0]["expires_at"] is not None, "the expiring token shows expires_at")
    st, body = v.call("GET", "/v1/tokens", token=owner)
    check(st == 403 and body["error"]["code"] == "forbidden", "an owner cannot list tokens (403)")
    p = ctl("token", "list", "--verifier", v.url, env=dict(os.environ, ATTEST_TOKEN=admin))
    check(p.returncode == 0 and '"gw-llm"' in p.stdout.decode(), "attestctl token list")

    # scope: a gateway token sees only its policies' sessions
    st, body = v.call("GET", "/v1/sessions?state=active", token=gw_llm)
    pols = sorted({s["policy"].split("@")[0] for s in body.get("sessions", [])}) if st == 200 else None
    check(pols == ["llm"], f"scoped gateway lists only llm sessions (got {pols})")
    st, body = v.call("GET", "/v1/sessions?policy=llm&state=active", token=gw_llm)
    check(st == 200 and len(body["sessions"]) == 1, "scoped gateway: ?policy=llm")
    st, body = v.call("GET", "/v1/sessions?policy=other&state=active", token=gw_llm)
    err = body.get("error", {}) if isinstance(body, dict) else {}
    check(st == 403 and err.get("code") == "forbidden" and "limited to policies llm" in err.get("message", ""),
          f"scoped gateway: ?policy=other -> 403 forbidden naming its scope ({err.get('message')})")
    st, body = v.call("GET", "/v1/sessions?state=active", token=v.token("gateway"))
    check(st == 200 and len(body["sessions"]) == 2, "an unscoped gateway still sees both")

    # scope: an owner token manages only its policies and their secrets
    st, body = v.call("PUT", "/v1/policies/llm", body=pki.policy(), token=own_llm)
    check(st == 201, "scoped owner: PUT its policy")
    st, body = v.call("PUT", "/v1/policies/other", body=pki.policy(), token=own_llm)
    check(st == 403 and body["error"]["code"] == "forbidden" and "other" in body["error"]["message"],
          "scoped owner: PUT another policy -> 403 forbidden")
    st, body = v.call("DELETE", "/v1/policies/other/versions/1", token=own_llm)
    check(st == 403 and body["error"]["code"] == "forbidden", "scoped owner: revoke another policy -> 403")
    st, body = v.call("GET", "/v1/policies/other", token=own_llm)
    check(st == 403, "scoped owner: GET another policy -> 403")
    val = b64(os.urandom(16))
    st, body = v.call("PUT", "/v1/secrets/k1", body={"policy": "llm", "value": val}, token=own_llm)
    check(st == 201, "scoped owner: a secret bound to its policy")
    st, body = v.call("PUT", "/v1/secrets/k2", body={"policy": "other", "value": val}, token=own_llm)
    check(st == 403 and body["error"]["code"] == "forbidden", "scoped owner: a secret bound to another policy -> 403")
    st, body = v.call("PUT", "/v1/secrets/k3", body={"policy": "other", "value": val}, token=owner)
    check(st == 201, "unscoped owner: a secret bound to other")
    st, body = v.call("PUT", "/v1/secrets/k3", body={"policy": "llm", "value": val}, token=own_llm)
    err = body.get("error", {}) if isinstance(body, dict) else {}
    check(st == 403 and err.get("code") == "forbidden" and "bound to policy other" in err.get("message", ""),
          f"scoped owner cannot take over another policy's secret ({err.get('message')})")
    check(v.sql("SELECT policy FROM secrets WHERE name = 'k3'")[0][0] == "other", "k3 still bound to other")

    # revocation: at once, on both verifiers sharing the database
    gid = toks["gw-llm"]["id"]
    for srv in (v, v2):
        st, _ = srv.call("GET", "/v1/sessions?policy=llm", token=gw_llm)
        check(st == 200, f"before revocation the token works on verifier :{srv.port}")
    st, body = v.call("DELETE", f"/v1/tokens/{gid}", token=owner)
    check(st == 403, "an owner cannot revoke tokens (403)")
    st, body = v.call("DELETE", f"/v1/tokens/{gid}", token=admin)
    check(st == 200 and body.get("revoked") is True, "DELETE /v1/tokens/{id} -> 200")
    for srv in (v, v2):
        st, body = srv.call("GET", "/v1/sessions?policy=llm", token=gw_llm)
        check(st == 401 and body["error"]["code"] == "unauthorized",
              f"revoked: 401 at once on verifier :{srv.port}")
    st, body = v.call("DELETE", "/v1/tokens/999999", token=admin)
    check(st == 404 and body["error"]["code"] == "not_found", "revoking an unknown id -> 404")
    st, body = v.call("DELETE", "/v1/tokens/abc", token=admin)
    check(st == 400, "a non-numeric id -> 400")
    # the last live admin token cannot be revoked (nobody could administer)
    admins = [t["id"] for t in v.call("GET", "/v1/tokens", token=admin)[1]["tokens"]
              if t["role"] == "admin" and t["state"] == "active"]
    check(len(admins) == 1, f"one live admin token ({admins})")
    st, body = v.call("DELETE", f"/v1/tokens/{admins[0]}", token=admin)
    check(st == 409 and body["error"]["code"] == "conflict" and "last live admin" in body["error"]["message"]
          and body["error"].get("audit_id"), f"revoking the last admin token -> 409 conflict, audited ({body})")
    st, body = v.call("GET", "/v1/tokens", token=admin)
    check(st == 200, "and it still works")
    rc, admin2, _ = mk("--role", "admin")
    st, body = v.call("DELETE", f"/v1/tokens/{admins[0]}", token=admin2)
    check(st == 200 and body.get("revoked") is True, "with a second admin token, the first can be revoked")
    admin = admin2
    admin2_id = [t["id"] for t in v.call("GET", "/v1/tokens", token=admin)[1]["tokens"]
                 if t["role"] == "admin" and t["state"] == "active"][0]
    oid = [t for t in v.call("GET", "/v1/tokens", token=admin)[1]["tokens"]
           if t["role"] == "owner" and t["policies"] == ["llm"]][0]["id"]
    p = ctl("token", "revoke", str(oid), "--verifier", v2.url, env=dict(os.environ, ATTEST_TOKEN=admin))
    check(p.returncode == 0, "attestctl token revoke ID (through the other verifier)")
    st, body = v.call("PUT", "/v1/policies/llm", body=pki.policy(), token=own_llm)
    check(st == 401, "the owner token revoked through one verifier is refused by the other")
    st, body = v.call("GET", "/v1/tokens", token=admin)
    states = {t["id"]: t["state"] for t in body["tokens"]}
    check(states.get(gid) == "revoked" and states.get(oid) == "revoked", "the list shows both revoked")

    # expiry, against the verifier's clock (moved, not waited for)
    st, body = v.call("GET", "/v1/audit?limit=1", token=short)
    check(st == 200, "the 1 h auditor token works now")
    set_clock(2 * 3600)
    st, body = v.call("GET", "/v1/audit?limit=1", token=short)
    err = body.get("error", {}) if isinstance(body, dict) else {}
    check(st == 401 and err.get("code") == "unauthorized" and "expired" in err.get("message", ""),
          f"two hours later it is refused: 401, expired ({err.get('message')})")
    st, body = v.call("GET", "/v1/tokens", token=admin)
    check(st == 200 and [t["state"] for t in body["tokens"] if t["role"] == "auditor"] == ["expired"],
          "the list shows it expired")
    set_clock(0)

    # audit rows for create and revoke
    st, body = v.call("GET", "/v1/audit?action=token.revoke", token=admin)
    rows = [r for r in body.get("entries", []) if r["outcome"] == "ok"] if st == 200 else []
    check(len(rows) == 3 and all(r["actor"] in ("token:1/admin", f"token:{admin2_id}/admin") for r in rows)
          and f"token {gid} role gateway revoked" in [r.get("message") for r in rows]
          and "token 1 role admin revoked" in [r.get("message") for r in rows],
          f"each revocation has its audit row (actor = the admin token) ({rows})")
    check(len(body.get("entries", [])) == 7, "refused revocations (403, 404, 400, 409) have their rows too")
    st, body = v.call("GET", "/v1/audit?action=token.create", token=admin)
    msgs = [r.get("message") or "" for r in body.get("entries", [])]
    check(any("role gateway" in m and "policies llm" in m for m in msgs)
          and any("role auditor" in m and "expires 20" in m for m in msgs),
          "token creation is audited with its scope and expiry")
finally:
    v2.stop()
    v.stop()

for w in (wd, wd2, wd3, wd4):
    w.cleanup()
finish()
