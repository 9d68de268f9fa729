"""End-to-end, issue 7 section 1: an unauthenticated caller cannot take over
an agent's session. A document only vouches for what it signs: the agent's
documents bind (user_data, lib/binding) their purpose and endpoint. The
attack (challenge -> the agent's POST /v1/evidence with that nonce -> POST
/v1/attestations for http://attacker) is refused with purpose_mismatch, the
agent's session stays active, and a consumer is still served through the
gateway. Every new refusal code (purpose_mismatch, endpoint_mismatch, a
malformed binding) with its audit row; the agent notices at once when its
session ended at the verifier and attests again; gateway and agent answers
never carry other hosts' URLs or transport errors."""
import base64
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, BUILD, STANDIN, KeyPair, Pki, Process, Verifier, Workdir, b64, check, ctl,
                     finish, http)

GATEWAY = os.path.join(BUILD, "gateway", "attest-gateway")
wd = Workdir("takeover")
pki = Pki(wd)
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()
llm = Process(wd, "llm", ["python3", STANDIN], sanitizer_check=False).start()
procs = []


def start(p):
    procs.append(p)
    return p.start()


def wait(cond, what, timeout=30):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = cond()
        if last:
            check(True, what)
            return last
        time.sleep(0.1)
    check(False, what)
    return None


def refused(st, body, status, code, what, needle=None):
    err = body.get("error", {}) if isinstance(body, dict) else {}
    check(st == status and err.get("code") == code and (needle is None or needle in err.get("message", "")),
          f"{what}: HTTP {status} {code} (got {st} {err})")
    row = (v.audit_row(err["audit_id"]) if err.get("audit_id") else None) or {}
    check(row.get("code") == code and row.get("outcome") == "refused" and row.get("action") == "attestation.create",
          f"{what}: audit row records {code}")


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def chat(gw, content):
    return http("POST", gw.url + "/v1/chat/completions", body={"messages": [{"role": "user", "content": content}]})


try:
    owner = v.token("owner")
    gateway_token, auditor = v.token("gateway"), v.token("auditor")
    gw_token, agent_token = wd("gateway.token"), wd("agent.token")
    open(gw_token, "w").write(gateway_token + "\n")
    open(agent_token, "w").write(v.token("agent") + "\n")
    agent_args = [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm", "--verifier", v.url,
                  "--listen", "127.0.0.1:0", "--upstream", llm.url, "--token-file", agent_token,
                  "--session-check", "1"]
    pol = json.loads(subprocess.run(agent_args + ["--print-pcrs"], capture_output=True).stdout)
    st, _ = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201, "policy from the agent's --print-pcrs")
    agent = start(Process(wd, "agent", agent_args))
    status = wait(lambda: (lambda s: s if s.get("attested") else None)(http("GET", agent.url + "/v1/status")[1]),
                  "the agent attests")
    s1 = status["session"] if status else ""
    gw = start(Process(wd, "gateway", [GATEWAY, "--verifier", v.url, "--policy", "llm", "--listen",
                                       "127.0.0.1:0", "--token-file", gw_token, "--refresh", "1"]))
    st, ans = chat(gw, "before")
    check(st == 200 and ans["choices"][0]["message"]["content"] == "You said: before", "a consumer is served")

    # ---- the attack, as an unauthenticated caller ---------------------------
    nonce = v.challenge()
    st, ev = http("POST", agent.url + "/v1/evidence", body={"nonce": b64(nonce)})
    check(st == 200 and ev.get("evidence"), "the agent hands out evidence for the verifier's nonce")
    p = ctl("verify", "--root", pki.root, "-", input=ev["evidence"].encode())
    ud = base64.b64decode(json.loads(p.stdout)["user_data"] or "")
    check(ud[:6] == b"ATB\x01\x02\x01" and len(ud) == 38,
          "its user_data binds purpose evidence (2) and the agent's endpoint (binding v1)")
    for endpoint in ("http://attacker", agent.url, None):
        body = {"evidence": ev["evidence"], "policy": "llm"}
        if endpoint:
            body["endpoint"] = endpoint
        st, out = v.call("POST", "/v1/attestations", body=body)
        refused(st, out, 403, "purpose_mismatch", f"evidence document presented as a session for {endpoint}",
                "bound to purpose evidence, expected session")
    st, body = v.call("GET", "/v1/sessions?policy=llm&state=all", token=auditor)
    mine = [s for s in body.get("sessions", []) if s["id"] == s1]
    check(len(body.get("sessions", [])) == 1 and mine and mine[0]["state"] == "active"
          and mine[0]["endpoint"] == agent.url,
          "the agent's session is intact: still active, not replaced, at the attested endpoint")
    _, status = http("GET", agent.url + "/v1/status")
    check(status.get("attested") and status.get("session") == s1, "the agent still reports that same session")
    st, ans = chat(gw, "after")
    check(st == 200 and ans["choices"][0]["message"]["content"] == "You said: after",
          "a consumer is still served through the gateway")

    # ---- every new refusal code --------------------------------------------
    st, _ = v.call("PUT", "/v1/policies/plain", body=pki.policy(), token=owner)
    check(st == 201, "a policy for simulator documents")

    kp = KeyPair(wd)

    def attest(doc, endpoint=None):
        body = {"evidence": b64(doc), "policy": "plain"}
        if endpoint:
            body["endpoint"] = endpoint
        return v.call("POST", "/v1/attestations", body=body)

    doc = pki.doc(nonce=v.challenge(), public_key=kp.config, purpose="session", endpoint="http://a.example")
    st, out = attest(doc, "http://b.example")
    refused(st, out, 403, "endpoint_mismatch", "a session document for another endpoint",
            "the request names http://b.example")
    doc = pki.doc(nonce=v.challenge(), public_key=kp.config, purpose="session", endpoint="http://a.example")
    st, out = attest(doc)
    refused(st, out, 403, "endpoint_mismatch", "a document binding an endpoint, none requested")
    doc = pki.doc(nonce=v.challenge(), public_key=kp.config, purpose="session")
    st, out = attest(doc, "http://attacker")
    refused(st, out, 403, "endpoint_mismatch", "a document binding no endpoint, one requested", "binds no endpoint")
    doc = pki.doc(nonce=v.challenge(), public_key=kp.config, purpose=None)
    st, out = attest(doc, "http://attacker")
    refused(st, out, 403, "purpose_mismatch", "a document without a binding", "binds no purpose")
    doc = pki.doc(nonce=v.challenge(), public_key=kp.config, purpose=None, extra=["--user-data", b64(b"ATB\x02\x01\x00")])
    st, out = attest(doc)
    refused(st, out, 400, "bad_field", "a binding of an unknown version", "binding version 2")
    doc = pki.doc(nonce=v.challenge(), public_key=kp.config, purpose="evidence", endpoint="http://a.example")
    st, out = attest(doc, "http://a.example")
    refused(st, out, 403, "purpose_mismatch", "a simulator evidence document")
    st, body = v.call("GET", "/v1/sessions?policy=llm&state=all", token=auditor)
    check([s["id"] for s in body.get("sessions", [])] == [s1], "none of them touched the agent's session")

    # ---- the agent notices at once when its session ends --------------------
    st, _ = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    st2, _ = v.call("DELETE", "/v1/policies/llm/versions/1", token=owner)
    check(st == 201 and st2 == 200, "policy llm v2 put, v1 revoked (its sessions end)")
    st, body = v.call("GET", f"/v1/sessions?id={s1}&state=all", token=auditor)
    check(body["sessions"][0]["state"] != "active", "the agent's session ended at the verifier")
    status = wait(lambda: (lambda s: s if s.get("attested") and s.get("session") not in ("", s1) else None)(
        http("GET", agent.url + "/v1/status")[1]), "the agent notices (session check by id) and attests again")
    s2 = status["session"] if status else ""
    st, body = v.call("GET", f"/v1/sessions?id={s2}", token=auditor)
    check(st == 200 and body["sessions"] and body["sessions"][0]["policy"] == "llm@2"
          and body["sessions"][0]["endpoint"] == agent.url, "its new session is active under llm@2")
    # an agent token reads one session by id, nothing else
    agent_tok = open(agent_token).read().strip()
    st, body = v.call("GET", f"/v1/sessions?id={s2}", token=agent_tok)
    check(st == 200 and [s["id"] for s in body["sessions"]] == [s2], "an agent token reads its session by id")
    st, body = v.call("GET", "/v1/sessions?policy=llm", token=agent_tok)
    check(st == 403 and body["error"]["code"] == "forbidden", "an agent token cannot list sessions")
    st, ans = chat(gw, "renewed")
    check(st == 200, "the consumer is served by the new session")

    # ---- no reflection of other hosts' URLs or transport errors -------------
    dead = f"http://127.0.0.1:{closed_port()}/hidden-path"
    p = ctl("attest", "--verifier", v.url, "--policy", "plain", "--pki", pki.dir, "--key-file", kp.file,
            "--state-file", wd("probe.json"), "--endpoint", dead, "--module-id", "i-0probe0000000000-enc0probe")
    check(p.returncode == 0, f"attestctl attest binds purpose session and its --endpoint ({p.stderr[:200]})")
    gwp = start(Process(wd, "gateway-probe", [GATEWAY, "--verifier", v.url, "--policy", "plain", "--listen",
                                              "127.0.0.1:0", "--token-file", gw_token]))
    st, ans = chat(gwp, "x")
    msg = ans.get("error", {}).get("message", "")
    check(st in (502, 503) and "i-0probe0000000000-enc0probe" in msg and "forwarding" in msg
          and "127.0.0.1" not in msg and "hidden-path" not in msg and "onnect" not in msg,
          f"the gateway names the instance and the check, not the URL or connect result ({msg})")
    bad_up = start(Process(wd, "agent-badupstream",
                           [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm",
                            "--verifier", v.url, "--listen", "127.0.0.1:0",
                            "--upstream", f"http://127.0.0.1:{closed_port()}/secret-upstream"]))
    prompt = wd("prompt.json")
    open(prompt, "w").write(json.dumps({"messages": [{"role": "user", "content": "x"}]}))
    p = ctl("ohttp", "request", "--key-config", bad_up.url + "/v1/key-config", "--url", bad_up.url + "/v1/ohttp",
            "--path", "/v1/chat/completions", "--data", "@" + prompt)
    out = (p.stdout + p.stderr).decode()
    check(p.returncode == 1 and "502" in out and "secret-upstream" not in out and "onnect" not in out,
          f"the agent's sealed 502 does not name its upstream or the connect result ({out[:200]})")
    # a second agent of the same instance is refused (endpoint_conflict);
    # its public /v1/status says so without the other agent's URL
    twin = start(Process(wd, "agent-twin", agent_args[:-2]))
    tw = wait(lambda: (lambda s: s if "endpoint_conflict" in s.get("last_error", "") else None)(
        http("GET", twin.url + "/v1/status")[1]), "a twin of the instance is refused: endpoint_conflict")
    err = (tw or {}).get("last_error", "")
    check(tw and agent.url not in err and "127.0.0.1" not in err and "<url>" in err,
          f"the twin's public status names no URL ({err[:200]})")
finally:
    for p in procs:
        if p.proc:
            p.stop()
    llm.stop()
    v.stop()
finish()
