"""End-to-end: attest-verifier through its HTTP API on loopback with a real
SQLite file: the full challenge -> document -> attestation -> session ->
token cycle, every refusal path with its code and audit row, policy
versioning and revocation, secret release, audit chain tampering."""
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import VERIFIER as VERIFIER_BIN
from harness import (ATTESTCTL, SRCDIR, KeyPair, Pki, Verifier, Workdir, b64, check, ctl,
                     finish, http)

wd = Workdir("verifier")
pki = Pki(wd)
other = Pki(wd, "other-pki")
# --audit-verify-interval 0: the tamper checks below run full chain checks back to back.
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0", "--audit-verify-interval", "0"]).start()
try:
    admin = v.admin
    owner = v.token("owner")
    gateway = v.token("gateway")
    auditor = v.token("auditor")
    agent_tok = v.token("agent")

    def refused(st, body, status, code, what):
        ok = check(st == status and isinstance(body, dict) and body.get("error", {}).get("code") == code,
                   f"{what}: HTTP {status} {code} (got {st} {body if not isinstance(body, dict) else body.get('error')})")
        aid = body.get("error", {}).get("audit_id") if isinstance(body, dict) else None
        row = v.audit_row(aid) if aid else None
        check(row is not None and row["code"] == code and row["outcome"] in ("refused", "error"),
              f"{what}: audit row {aid} records {code}")
        return row

    def counted(st, body, status, code, what):
        """An unauthenticated refusal: no row of its own (audit_id null), it is
        counted into its client's per-minute aggregate row instead."""
        check(st == status and isinstance(body, dict) and body.get("error", {}).get("code") == code
              and body["error"].get("audit_id", 0) is None,
              f"{what}: HTTP {status} {code}, counted (audit_id null) (got {st} {body})")

    # ---- policies ---------------------------------------------------------
    pol = pki.policy(session_ttl_s=600)
    st, body = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201 and body["version"] == 1, "PUT policy v1 -> 201 version 1")
    st, body = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201 and body["version"] == 2, "PUT again makes version 2, never edits")
    st, body = v.call("GET", "/v1/policies/llm", token=auditor)
    check(st == 200 and body["version"] == 2 and len(body["history"]) == 2, "GET policy: current + history")

    # lint: a nitro-tpm policy pinning PCR4 alone
    tpm = {"format": "nitro-tpm", "pcrs": {"4": ["ab" * 48]}}
    st, body = v.call("PUT", "/v1/policies/tpm", body=tpm, token=owner)
    row = refused(st, body, 422, "policy_lint", "PCR4 without PCR12/PCR7")
    check("GHSA-xrv8-2pf5-f3q7" in body["error"]["message"], "lint message names the advisory")
    st, body = v.call("PUT", "/v1/policies/tpm?allow_lint=1", body=tpm, token=owner)
    check(st == 201 and "lint_overridden" in body, "explicit override admits a linted policy")
    dbg = {"format": "nitro-enclave", "pcrs": {"0": ["00" * 48]}}
    st, body = v.call("PUT", "/v1/policies/debug", body=dbg, token=owner)
    refused(st, body, 422, "policy_lint", "all-zero PCR0 (debug enclave)")
    st, body = v.call("PUT", "/v1/policies/bad", body={"format": "nitro-enclave", "pcrs": {"0": ["ab"]}}, token=owner)
    refused(st, body, 400, "bad_field", "PCR value of the wrong length")
    check("96" in body["error"]["message"], "bad_field names expected length")
    st, body = v.call("PUT", "/v1/policies/bad", body={"format": "nitro-enclave", "pcrs": {}, "extra": 1}, token=owner)
    refused(st, body, 400, "bad_field", "unknown policy key")

    # roles
    st, body = v.call("PUT", "/v1/policies/llm", body=pol)
    counted(st, body, 401, "unauthorized", "no token")
    st, body = v.call("PUT", "/v1/policies/llm", body=pol, token="at_not-a-real-token")
    counted(st, body, 401, "unauthorized", "unknown token")
    st, body = v.call("PUT", "/v1/policies/llm", body=pol, token=gateway)
    refused(st, body, 403, "forbidden", "gateway token cannot put policies")
    st, body = v.call("GET", "/v1/audit", token=owner)
    refused(st, body, 403, "forbidden", "owner token cannot read the audit log")

    # ---- the full cycle -----------------------------------------------------
    kp = KeyPair(wd)
    state = wd("state.json")
    p = ctl("attest", "--verifier", v.url, "--policy", "llm", "--pki", pki.dir, "--key-file", kp.file,
            "--state-file", state, "--endpoint", "http://127.0.0.1:9/agent")
    check(p.returncode == 0, f"attestctl attest (challenge, document, attestation) -> 0 ({p.stderr.decode()[:200]})")
    res = json.loads(p.stdout)
    st_json = json.load(open(state))
    check(res["status"] == "affirming" and res["session"]["id"] == st_json["session"], "session created")
    check(len(bytes.fromhex(st_json["session_key"])) == 32, "the sealed session key opens with the agent's key")
    check(oct(os.stat(state).st_mode & 0o777) == "0o600", "state file is 0600")
    token = res["token"]
    claims = res["claims"]
    sub = list(claims["submods"].values())[0]
    check(claims["eat_profile"] == "tag:github.com,2023:veraison/ear" and sub["ear.status"] == "affirming"
          and sub["ear.appraisal-policy-id"] == "policy:llm@2", "EAR claims: profile, status, policy id")
    ae = sub["ear.veraison.annotated-evidence"]
    check(ae["session_id"] == st_json["session"] and base64.b64decode(ae["key_config"]) == kp.config
          and ae["format"] == "nitro-enclave" and len(ae["pcrs"]) == 16 and len(ae["policy_sha256"]) == 64,
          "annotated evidence: session, key config, format, PCRs, policy digest")
    p = ctl("ear", "verify", "--jwks", v.url + "/.well-known/jwks.json", token)
    check(p.returncode == 0 and json.loads(p.stdout)["valid"], "token verifies against the JWKS (cjose)")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    p = ctl("ear", "verify", "--jwks", v.url + "/.well-known/jwks.json", tampered)
    check(p.returncode == 1, "a tampered token does not verify")
    # The independent check is part of this test, never skipped: quickstart
    # test installs node, npm and the test-only peers (tests/interop).
    node_modules = os.path.join(SRCDIR, "tests", "interop", "node_modules", "jose")
    have_jose = shutil.which("node") is not None and os.path.isdir(node_modules)
    check(have_jose, "node and tests/interop/node_modules/jose are installed (npm install in tests/interop)")
    if have_jose:
        p = subprocess.run(["node", os.path.join(SRCDIR, "tests", "interop", "verify_ear.mjs"),
                            v.url + "/.well-known/jwks.json", token], capture_output=True)
        check(p.returncode == 0 and json.loads(p.stdout)["jti"] == claims["jti"],
              f"token verifies with the npm package jose ({p.stderr.decode()[:200]})")
        p = subprocess.run(["node", os.path.join(SRCDIR, "tests", "interop", "verify_ear.mjs"),
                            v.url + "/.well-known/jwks.json", tampered], capture_output=True)
        check(p.returncode == 1 and b"ERR_JWS_SIGNATURE_VERIFICATION_FAILED" in p.stderr,
              f"jose rejects the tampered token for its signature ({p.stderr.decode()[:200]})")
        # The EAR profile (docs/ear-profile.md): the jose-verified claims of
        # the real token against its JSON Schema, with ajv (independent).
        jose_claims = json.loads(subprocess.run(
            ["node", os.path.join(SRCDIR, "tests", "interop", "verify_ear.mjs"), v.url + "/.well-known/jwks.json",
             token], capture_output=True).stdout)
        schema = os.path.join(SRCDIR, "docs", "ear-profile.schema.json")

        def ajv(obj):
            return subprocess.run(["node", os.path.join(SRCDIR, "tests", "interop", "validate_ear.mjs"), schema],
                                  input=json.dumps(obj).encode(), capture_output=True)
        p = ajv(jose_claims)
        check(p.returncode == 0, f"the token's claims follow docs/ear-profile.schema.json (ajv) ({p.stderr.decode()[:300]})")
        bad = json.loads(json.dumps(jose_claims))
        list(bad["submods"].values())[0]["ear.trustworthiness-vector"]["executables"] = 96
        p = ajv(bad)
        check(p.returncode == 1 and b"ear.trustworthiness-vector/executables" in p.stderr,
              "ajv refuses an affirming status over a contraindicated claim")
    tv = sub["ear.trustworthiness-vector"]
    check(tv == {"instance-identity": 2, "configuration": 2, "executables": 2, "hardware": 2},
          f"trustworthiness vector: every checked claim affirming (2) ({tv})")
    check(claims["iss"] == v.url, f"iss is the verifier's URL ({claims['iss']})")
    check(len(base64.urlsafe_b64decode(claims["eat_nonce"] + "=")) == 32 and "=" not in claims["eat_nonce"],
          "eat_nonce: the verifier's 32-byte challenge, base64url")
    spki = bytes.fromhex("302a300506032b656e032100") + kp.config[3:35]
    check(base64.urlsafe_b64decode(sub["ear.veraison.key-attestation"]["akpub"] + "==") == spki,
          "ear.veraison.key-attestation akpub: the attested X25519 key as SubjectPublicKeyInfo")

    st, body = v.call("GET", "/v1/sessions?policy=llm&state=active", token=gateway)
    ss = [s for s in body.get("sessions", []) if s["id"] == st_json["session"]]
    check(st == 200 and len(ss) == 1 and ss[0]["endpoint"] == "http://127.0.0.1:9/agent"
          and base64.b64decode(ss[0]["key_config"]) == kp.config and ss[0]["token"] == token,
          "GET /v1/sessions lists the session with endpoint, key config, token")
    st, body = v.call("GET", "/v1/sessions?policy=llm", token=owner)
    check(st == 200 and [s["id"] for s in body["sessions"]] == [st_json["session"]],
          "an owner lists its policy's sessions (issue 13; scopes: session_revoke.py)")
    st, body = v.call("GET", "/v1/sessions?policy=llm", token=agent_tok)
    refused(st, body, 403, "forbidden", "an agent token cannot list sessions")

    # a live session is replaced only by a document binding the same endpoint
    for elsewhere in (["--endpoint", "http://127.0.0.1:9/elsewhere"], []):
        p = ctl("attest", "--verifier", v.url, "--policy", "llm", "--pki", pki.dir, "--key-file", kp.file,
                "--state-file", wd("state-x.json"), *elsewhere)
        err = json.loads(p.stdout).get("error", {}) if p.stdout else {}
        check(p.returncode == 1 and err.get("code") == "endpoint_conflict"
              and "http://127.0.0.1:9/agent" in err.get("message", ""),
              f"re-attestation for {elsewhere[1] if elsewhere else 'no endpoint'}: endpoint_conflict ({err})")
        row = (v.audit_row(err["audit_id"]) if err.get("audit_id") else None) or {}
        check(row.get("code") == "endpoint_conflict" and row.get("outcome") == "refused",
              "endpoint_conflict: audit row")
    st, body = v.call("GET", "/v1/sessions?policy=llm", token=gateway)
    check(st_json["session"] in [s["id"] for s in body["sessions"]], "the live session was not replaced")
    # re-attestation by the same instance for the same endpoint replaces its session
    p = ctl("attest", "--verifier", v.url, "--policy", "llm", "--pki", pki.dir, "--key-file", kp.file,
            "--state-file", wd("state2.json"), "--endpoint", "http://127.0.0.1:9/agent")
    s2 = json.load(open(wd("state2.json")))["session"]
    st, body = v.call("GET", "/v1/sessions?policy=llm", token=gateway)
    ids = [s["id"] for s in body["sessions"]]
    check(s2 in ids and st_json["session"] not in ids, "re-attestation replaced the instance's session")
    st, body = v.call("GET", "/v1/sessions?policy=llm&state=all", token=auditor)
    old = [s for s in body["sessions"] if s["id"] == st_json["session"]]
    check(old and old[0]["state"] == "replaced", "the old session shows state 'replaced'")
    state = wd("state2.json")

    # the NitroTPM attester path (AWS's tool replaced by a simulator stand-in)
    st, body = v.call("PUT", "/v1/policies/tpm-llm", body=pki.policy(fmt="nitro-tpm"), token=owner)
    check(st == 201, "nitro-tpm policy (PCR4, PCR7, PCR12 pinned: lint passes)")
    env = dict(os.environ, NITRO_TPM_ATTEST=os.path.join(SRCDIR, "tests", "e2e", "fake-nitro-tpm-attest"),
               FAKE_TPM_PKI=pki.dir)
    p = ctl("attest", "--attester", "nitro-tpm", "--verifier", v.url, "--policy", "tpm-llm",
            "--key-file", kp.file, "--state-file", wd("state-tpm.json"), env=env)
    res = json.loads(p.stdout) if p.returncode == 0 else {}
    ae = list(res.get("claims", {}).get("submods", {"x": {}}).values())[0].get("ear.veraison.annotated-evidence", {})
    check(p.returncode == 0 and ae.get("format") == "nitro-tpm" and len(ae.get("pcrs", {})) == 24,
          f"attestctl attest --attester nitro-tpm: a nitro-tpm session ({p.stderr.decode()[:200]})")

    # ---- refusals on /v1/attestations ---------------------------------------
    def attest(doc, policy="llm", **extra):
        body = {"evidence": b64(doc), "policy": policy}
        body.update(extra)
        return v.call("POST", "/v1/attestations", body=body)

    n = v.challenge()
    bad_pcrs = {"0": "11" * 48}
    st, body = attest(pki.doc(nonce=n, public_key=kp.config, pcrs=bad_pcrs))
    refused(st, body, 403, "pcr_mismatch", "wrong PCR0")
    msg = body["error"]["message"]
    check("PCR0" in msg and "11" * 48 in msg and pol["pcrs"]["0"][0] in msg,
          "pcr_mismatch names the index, the value seen and the value allowed")
    st, body = v.call("PUT", "/v1/policies/llm", body=dict(pol, pcrs=dict(pol["pcrs"], **{"0": ["22" * 48]})), token=owner)
    check(st == 201 and body["version"] == 3, "policy v3 with a different PCR0")
    n = v.challenge()
    st, body = attest(pki.doc(nonce=n, public_key=kp.config))
    refused(st, body, 403, "pcr_mismatch", "document admitted by v2, refused by v3")
    check("version 2" in body["error"]["message"], "refusal says which version would admit it")
    st, body = v.call("DELETE", "/v1/policies/llm/versions/3", token=owner)
    check(st == 200 and body["revoked"], "revoke v3 -> current is v2 again")

    st, body = attest(pki.doc(nonce=v.challenge(), public_key=kp.config), policy="nope")
    refused(st, body, 404, "policy_not_found", "unknown policy")
    st, body = attest(pki.doc(nonce=secrets.token_bytes(32), public_key=kp.config))
    refused(st, body, 422, "nonce_unknown", "nonce this verifier never issued")
    st, body = attest(pki.doc(nonce=secrets.token_bytes(16), public_key=kp.config))
    refused(st, body, 422, "nonce_unknown", "nonce of the wrong length")
    st, body = attest(pki.doc(public_key=kp.config))
    refused(st, body, 422, "nonce_mismatch", "no nonce while the policy requires one")
    n = v.challenge()
    # (the instance's live session is for http://127.0.0.1:9/agent: same endpoint)
    doc = pki.doc(nonce=n, public_key=kp.config, endpoint="http://127.0.0.1:9/agent")
    st, body = attest(doc, endpoint="http://127.0.0.1:9/agent")
    check(st == 201, "fresh nonce admitted")
    st, body = attest(doc, endpoint="http://127.0.0.1:9/agent")
    refused(st, body, 409, "nonce_reused", "the same nonce a second time")
    st, body = attest(other.doc(nonce=v.challenge(), public_key=kp.config))
    refused(st, body, 422, "untrusted_root", "document from an unpinned root")
    now_ms = int(time.time() * 1000)
    st, body = attest(pki.doc(nonce=v.challenge(), public_key=kp.config,
                              extra=["--timestamp-ms", str(now_ms - 4 * 3600 * 1000), "--new-leaf"]))
    refused(st, body, 422, "cert_expired", "expired leaf")
    st, body = attest(pki.doc(nonce=v.challenge(), public_key=kp.config,
                              extra=["--timestamp-ms", str(now_ms - 10 * 60 * 1000), "--new-leaf"]))
    refused(st, body, 422, "document_too_old", "document older than max_document_age_s")
    st, body = attest(pki.doc(nonce=v.challenge(), public_key=kp.config,
                              extra=["--timestamp-ms", str(now_ms + 10 * 60 * 1000)]))
    refused(st, body, 422, "clock_skew", "document from the future")
    st, body = attest(pki.doc(nonce=v.challenge()))
    refused(st, body, 422, "key_required", "no public key while the policy requires one")
    st, body = v.call("POST", "/v1/attestations", body={"evidence": "%%%not base64", "policy": "llm"})
    refused(st, body, 400, "bad_request", "evidence that is not base64")
    st, body = v.call("POST", "/v1/attestations", body={"evidence": b64(b"\x84\x40"), "policy": "llm"})
    refused(st, body, 400, "malformed_cbor", "truncated CBOR")
    st, body = v.call("POST", "/v1/attestations", body={"evidence": b64(doc), "policy": "llm", "surprise": 1})
    refused(st, body, 400, "bad_request", "unknown request field")
    check("surprise" in body["error"]["message"], "unknown field is named")
    st, body = v.call("POST", "/v1/attestations", raw=b"{\"evidence\": ")
    refused(st, body, 400, "bad_request", "malformed JSON")
    st, body = v.call("POST", "/v1/attestations", raw=b"{\"evidence\": \"" + b"A" * 70000 + b"\"}")
    counted(st, body, 413, "too_large", "body over the 64 KiB cap")
    st, body = v.call("POST", "/v1/attestations", body={"evidence": b64(doc), "policy": 12})
    refused(st, body, 400, "bad_request", "policy of the wrong type")
    flipped = bytearray(pki.doc(nonce=v.challenge(), public_key=kp.config))
    flipped[-5] ^= 1
    st, body = attest(bytes(flipped))
    refused(st, body, 422, "bad_signature", "flipped signature byte")

    # a nonce that is present is always compared, even when not required
    st, body = v.call("PUT", "/v1/policies/nonceless", body=pki.policy(require_nonce=False), token=owner)
    check(st == 201, "policy with require_nonce false")
    st, body = attest(pki.doc(nonce=secrets.token_bytes(32), public_key=kp.config), policy="nonceless")
    refused(st, body, 422, "nonce_unknown", "foreign nonce under a policy that does not require one")
    st, body = attest(pki.doc(public_key=kp.config, endpoint="http://127.0.0.1:9/agent"), policy="nonceless",
                      endpoint="http://127.0.0.1:9/agent")
    check(st == 201, "no nonce under a policy that does not require one: admitted")

    # expired nonce: a verifier with a 1 s nonce TTL on the same database
    v.stop()
    v.extra = ["--rate", "0", "--audit-verify-interval", "0", "--nonce-ttl", "1"]
    v.start()
    n = v.challenge()
    time.sleep(2.2)
    st, body = attest(pki.doc(nonce=n, public_key=kp.config))
    refused(st, body, 422, "nonce_expired", "nonce past its TTL")
    v.stop()
    v.extra = ["--rate", "0", "--audit-verify-interval", "0"]
    v.start()

    # ---- stateless verification ------------------------------------------
    st, body = v.call("POST", "/v1/verify", body={"evidence": b64(doc)})
    check(st == 200 and body["valid"] and body["format"] == "nitro-enclave" and body["audit_id"] is None,
          "POST /v1/verify (anonymous): valid, with the summary; counted, no row of its own")
    st, body = v.call("POST", "/v1/verify", body={"evidence": b64(doc)}, token=auditor)
    row = v.audit_row(body["audit_id"]) if st == 200 and body.get("audit_id") else None
    check(row is not None and row["action"] == "verify" and row["actor"].endswith("/auditor"),
          "POST /v1/verify with a token: its own audit row")
    genuine = open(os.path.join(SRCDIR, "tests", "data", "nitro", "vaportpm_tpm_20260201.cbor"), "rb").read()
    st, body = v.call("POST", "/v1/verify", body={"evidence": b64(genuine)})
    check(st == 200 and not body["valid"] and body["error"]["code"] == "cert_expired",
          "genuine AWS document at now: cert_expired")
    st, body = v.call("POST", "/v1/verify", body={"evidence": b64(genuine), "at": 1769923183})
    check(st == 200 and body["valid"] and body["format"] == "nitro-tpm", "genuine AWS document at its own time: valid")
    st, body = v.call("POST", "/v1/verify", body={"evidence": b64(doc), "policy": {"format": "nitro-enclave", "pcrs": {"0": ["33" * 48]}}})
    check(st == 200 and not body["valid"] and body["error"]["code"] == "pcr_mismatch"
          and body["error"]["pcrs"][0]["index"] == 0, "inline policy: pcr_mismatch with the failing index")
    st, body = v.call("POST", "/v1/verify", body={"evidence": b64(doc), "nonce": b64(b"x" * 32)})
    check(st == 200 and body["error"]["code"] == "nonce_mismatch", "expected nonce differs: nonce_mismatch")

    # documents AWS's rules forbid (tests/data/conformance), at their own time,
    # on a verifier that trusts their test root
    conf = os.path.join(SRCDIR, "tests", "data", "conformance")
    cv = Verifier(wd, roots=[os.path.join(conf, "test_root.pem")], extra=["--rate", "0"],
                  db=wd("conformance.db")).start()
    try:
        for name, code in [("control_valid", None), ("leaf_ku_no_digsig", "chain_invalid"),
                           ("leaf_is_ca", "chain_invalid"), ("pubkey_empty", "bad_field")]:
            with open(os.path.join(conf, name + ".cbor"), "rb") as f:
                cdoc = f.read()
            st, body = cv.call("POST", "/v1/verify", body={"evidence": b64(cdoc), "at": 1795964840})
            if code is None:
                check(st == 200 and body["valid"], f"POST /v1/verify {name}: valid")
            else:
                check(st == 200 and not body["valid"] and body["error"]["code"] == code,
                      f"POST /v1/verify {name}: {code}")
    finally:
        cv.stop()

    # ---- EAR issuer ----------------------------------------------------------
    # --issuer names the public URL in "iss" (a replica on the same database)
    iv = Verifier(wd, roots=[pki.root], extra=["--rate", "0", "--issuer", "https://verifier.example/attest"],
                  db=v.db).start()
    try:
        p = ctl("attest", "--verifier", iv.url, "--policy", "llm", "--pki", pki.dir, "--key-file", kp.file,
                "--state-file", wd("state_iss.json"), "--endpoint", "http://127.0.0.1:9/agent")
        check(p.returncode == 0 and json.loads(p.stdout)["claims"]["iss"] == "https://verifier.example/attest",
              f"--issuer URL is the token's iss ({p.stderr.decode()[:200]})")
    finally:
        iv.stop()
    p = subprocess.run([VERIFIER_BIN, "--db", wd("never.db"), "--issuer", "attest-verifier"], capture_output=True)
    check(p.returncode == 2 and b"--issuer: expected an http:// or https:// URL" in p.stderr,
          "--issuer that is not an http(s) URL: refused at startup")
    json.dump({"issuer": "verifier.example"}, open(wd("issuer.json"), "w"))
    p = subprocess.run([VERIFIER_BIN, "--db", wd("never.db"), "--config", wd("issuer.json")], capture_output=True)
    check(p.returncode == 2 and b"--issuer: expected an http:// or https:// URL" in p.stderr,
          "config key issuer that is not an http(s) URL: refused at startup")

    # ---- secrets -------------------------------------------------------------
    # a fresh session (the refusal tests above re-attested the same instance)
    state = wd("state3.json")
    p = ctl("attest", "--verifier", v.url, "--policy", "llm", "--pki", pki.dir, "--key-file", kp.file,
            "--state-file", state, "--endpoint", "http://127.0.0.1:9/agent")
    check(p.returncode == 0, "fresh session for the secret tests")
    secret = secrets.token_bytes(32)
    open(wd("model.key"), "wb").write(secret)
    p = ctl("secret", "put", "model-key", "--policy", "llm", "--value-file", wd("model.key"),
            "--verifier", v.url, env=dict(os.environ, ATTEST_TOKEN=owner))
    check(p.returncode == 0, "owner stores a secret bound to policy llm")
    stored = v.sql("SELECT value FROM secrets WHERE name = 'model-key'")[0][0]
    check(secret not in stored and len(stored) == 1 + 12 + len(secret) + 16,
          "the database holds the secret encrypted (AES-256-GCM under the storage key file)")
    p = ctl("secret", "release", "model-key", "--state-file", state, "-o", wd("got.key"))
    check(p.returncode == 0 and open(wd("got.key"), "rb").read() == secret,
          "release to a live session under the policy, sealed to the attested key")
    ts = str(int(time.time() * 1000))
    p1 = ctl("secret", "release", "model-key", "--state-file", state, "--timestamp-ms", ts, "-o", "/dev/null")
    p2 = ctl("secret", "release", "model-key", "--state-file", state, "--timestamp-ms", ts, "-o", "/dev/null")
    check(p1.returncode == 0 and p2.returncode == 1 and b"replayed" in p2.stderr, "a replayed proof is refused")
    p = ctl("secret", "release", "model-key", "--state-file", state,
            "--timestamp-ms", str(int(time.time() * 1000) - 5 * 60 * 1000), "-o", "/dev/null")
    check(p.returncode == 1 and b"stale" in p.stderr, "a stale proof is refused")
    sid = json.load(open(state))["session"]
    st, body = v.call("POST", "/v1/secrets/model-key/release",
                      body={"session": sid, "proof": f"{int(time.time() * 1000)}.{base64.urlsafe_b64encode(b'x' * 32).decode().rstrip('=')}"})
    refused(st, body, 401, "unauthorized", "proof made without the session key")
    # a session under another policy may not get it
    st, body = v.call("PUT", "/v1/policies/other", body=pki.policy(), token=owner)
    kp2 = KeyPair(wd)
    p = ctl("attest", "--verifier", v.url, "--policy", "other", "--pki", pki.dir, "--key-file", kp2.file,
            "--state-file", wd("state-other.json"), "--module-id", "i-0123456789abcdef0-enc0123456789abcdef")
    check(p.returncode == 0, "session under policy 'other'")
    p = ctl("secret", "release", "model-key", "--state-file", wd("state-other.json"), "-o", "/dev/null")
    check(p.returncode == 1 and b"forbidden" in p.stderr, "secret bound to llm is not released under 'other'")
    # revoking the version ends the session; release then fails
    st, body = v.call("DELETE", "/v1/policies/llm/versions/2", token=owner)
    check(st == 200 and body["sessions_ended"] >= 1, "revoking v2 ends its live sessions")
    st, body = v.call("GET", "/v1/sessions?policy=llm&state=active", token=gateway)
    check(st == 200 and all(s["id"] != sid for s in body["sessions"]), "revoked session no longer listed as active")
    p = ctl("secret", "release", "model-key", "--state-file", state, "-o", "/dev/null")
    check(p.returncode == 1 and b"session_expired" in p.stderr, "release after revocation: session_expired")

    # ---- audit -----------------------------------------------------------------
    st, body = v.call("GET", "/v1/audit?outcome=refused&limit=5", token=auditor)
    check(st == 200 and len(body["entries"]) == 5 and body["next"], "audit query: filters and a cursor")
    first = body["entries"]
    st, body2 = v.call("GET", f"/v1/audit?outcome=refused&limit=5&cursor={body['next']}", token=auditor)
    check(st == 200 and body2["entries"][0]["id"] > first[-1]["id"], "the cursor continues after the last row")
    p = ctl("audit", "export", "--verifier", v.url, "--action", "attestation.create",
            env=dict(os.environ, ATTEST_TOKEN=auditor))
    lines = [json.loads(l) for l in p.stdout.decode().splitlines()]
    check(p.returncode == 0 and len(lines) > 10 and all(l["action"] == "attestation.create" for l in lines),
          "attestctl audit export: JSON lines across pages")
    st, body = v.call("GET", "/v1/audit/verify?full=1", token=auditor)
    check(st == 200 and body["ok"] and body["first_bad"] is None and body["mode"] == "full",
          "audit chain verifies")
    last = v.sql("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")[0]
    check(body["head"] == {"id": last[0], "hash": last[1]}, "verify reports the head to anchor outside (id, hash)")
    total = body["entries"]
    v.sql("UPDATE audit SET message = 'nothing to see' WHERE id = 7")
    st, body = v.call("GET", "/v1/audit/verify?full=1", token=auditor)
    check(st == 200 and not body["ok"] and body["first_bad"] == 7, "an edited row is named (7)")
    p = ctl("audit", "verify", "--full", "--verifier", v.url, env=dict(os.environ, ATTEST_TOKEN=auditor))
    check(p.returncode == 1, "attestctl audit verify --full exits 1 on a broken chain")
    row = v.sql("SELECT message FROM audit WHERE id = 7")
    v.sql("UPDATE audit SET message = NULL WHERE id = 7")  # not the original: still broken
    v.sql("DELETE FROM audit WHERE id = 7")
    st, body = v.call("GET", "/v1/audit/verify?full=1", token=auditor)
    check(not body["ok"] and body["first_bad"] == 8, "a deleted row is detected at the next one (8)")
    last = v.sql("SELECT max(id) FROM audit")[0][0]
    v.sql("DELETE FROM audit WHERE id >= 7")
    st, body = v.call("GET", "/v1/audit/verify?full=1", token=auditor)
    check(not body["ok"] and "removed" in body.get("reason", ""), f"a truncated tail is detected ({body.get('reason')})")

    # SIGHUP reloads the roots: pin a new root by rewriting the root file
    reload_pki = Pki(wd, "reload-pki")
    kp3 = KeyPair(wd)
    st, body = v.call("POST", "/v1/verify", body={"evidence": b64(reload_pki.doc(public_key=kp3.config))})
    check(body.get("error", {}).get("code") == "untrusted_root", "a root not yet pinned: untrusted_root")
    original_root = open(pki.root, "rb").read()
    old_doc = pki.doc(public_key=kp3.config)
    shutil.copy(reload_pki.root, pki.root)
    v.proc.send_signal(1)  # SIGHUP
    time.sleep(0.5)
    st, body = v.call("POST", "/v1/verify", body={"evidence": b64(reload_pki.doc(public_key=kp3.config))})
    check(st == 200 and body.get("valid"), "after SIGHUP the rewritten root file is trusted")
    st, body = v.call("POST", "/v1/verify", body={"evidence": b64(old_doc)})
    check(body.get("error", {}).get("code") == "untrusted_root", "and the replaced root no longer is")
    open(pki.root, "wb").write(original_root)
    v.proc.send_signal(1)
    time.sleep(0.5)

    # ---- operations --------------------------------------------------------------
    st, text = v.call("GET", "/metrics")
    check(st == 200 and 'attest_http_requests_total{route="attestations"' in text
          and 'attest_verifications_total{outcome="invalid",code="pcr_mismatch"}' in text
          and "attest_sessions_live" in text and "attest_http_request_duration_seconds_bucket" in text,
          "metrics: requests, verifications by code, live sessions, latency histogram")
    st, text = v.call("GET", "/healthz")
    check(st == 200, "healthz")
    st, body = v.call("GET", "/.well-known/jwks.json")
    check(st == 200 and body["keys"][0]["alg"] == "ES256", "JWKS")
    # signing key rotation: old tokens still verify, new ones use the new key
    old_kid = body["keys"][0]["kid"]
    p = subprocess.run([v.proc.args[0], "--db", v.db, "--rotate-signing-key"], capture_output=True)
    check(p.returncode == 0, "attest-verifier --rotate-signing-key")
    v.proc.send_signal(1)  # SIGHUP
    time.sleep(0.5)
    st, body = v.call("GET", "/.well-known/jwks.json")
    kids = [k["kid"] for k in body["keys"]]
    check(len(kids) == 2 and kids[1] == old_kid and kids[0] != old_kid, "after rotation the JWKS lists current and previous keys")
    p = ctl("ear", "verify", "--jwks", v.url + "/.well-known/jwks.json", token)
    check(p.returncode == 0, "a token signed before the rotation still verifies")
finally:
    v.stop()
    wd.cleanup()
finish()
