"""End-to-end: the whole path a consumer's prompt takes. attest-gateway
(OpenAI-compatible) -> sealed with OHTTP to the attested attest-agent ->
the LLM stand-in, and back; the gateway only uses sessions whose EAR token
verifies and binds the key and endpoint, and fails closed when none does
(agent gone, policy revoked, JWKS not the verifier's)."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, BUILD, STANDIN, Pki, Process, Verifier, Workdir, check, finish, http, log_tail)

GATEWAY = os.path.join(BUILD, "gateway", "attest-gateway")
wd = Workdir("gateway")
pki = Pki(wd)
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()
llm = Process(wd, "llm", ["python3", STANDIN], sanitizer_check=False).start()
procs = []


def start(p):
    procs.append(p)
    return p.start()


try:
    owner = v.token("owner")
    gw_token = wd("gateway.token")
    open(gw_token, "w").write(v.token("gateway") + "\n")
    agent_args = [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm", "--verifier", v.url,
                  "--listen", "127.0.0.1:0", "--upstream", llm.url]
    pol = json.loads(subprocess.run(agent_args + ["--print-pcrs"], capture_output=True).stdout)
    st, body = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201, "policy from the agent's --print-pcrs")
    agent = start(Process(wd, "agent", agent_args))
    gw = start(Process(wd, "gateway", [GATEWAY, "--verifier", v.url, "--policy", "llm", "--listen",
                                       "127.0.0.1:0", "--token-file", gw_token, "--refresh", "1"]))
    end = time.time() + 15
    while time.time() < end:
        st, inst = http("GET", gw.url + "/v1/gateway/instances")
        if inst.get("instances"):
            break
        time.sleep(0.2)
    check(len(inst.get("instances", [])) == 1 and inst["instances"][0]["endpoint"] == agent.url,
          "the gateway sees the attested agent (token verified, key and endpoint bound)")

    st, ans = http("POST", gw.url + "/v1/chat/completions",
                   body={"model": "x", "messages": [{"role": "user", "content": "confidential question"}]})
    check(st == 200 and ans["choices"][0]["message"]["content"] == "You said: confidential question",
          "chat completion through gateway -> OHTTP -> agent -> LLM and back")
    st, ans = http("POST", gw.url + "/v1/completions", body={"prompt": "plain completion"})
    check(st == 200 and ans["choices"][0]["text"] == "You said: plain completion", "/v1/completions")
    st, ans = http("GET", gw.url + "/v1/models")
    check(st == 200 and ans["data"][0]["id"], "/v1/models")
    # streamed: read the server-sent events as they come
    import urllib.request
    req = urllib.request.Request(gw.url + "/v1/chat/completions", method="POST",
                                 data=json.dumps({"stream": True, "messages": [{"role": "user", "content": "a b c d"}]}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        ctype = r.headers.get("Content-Type")
        events = [l[6:].decode().strip() for l in r.read().splitlines() if l.startswith(b"data: ")]
    words = "".join(json.loads(e)["choices"][0]["delta"]["content"] for e in events if e != "[DONE]")
    check(ctype.startswith("text/event-stream") and events[-1] == "[DONE]" and words == "You said: a b c d",
          "stream: true comes back as server-sent events, end to end")
    # /metrics on all three servers: the same HTTP families, and what
    # promtool (Prometheus's own checker) accepts
    import shutil
    promtool = shutil.which("promtool")
    for name, url in (("verifier", v.url), ("agent", agent.url), ("gateway", gw.url)):
        st, text = http("GET", url + "/metrics")
        check(st == 200 and 'attest_http_requests_total{route="' in text
              and "attest_http_request_duration_seconds_bucket" in text, f"{name} /metrics: requests and latency")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
            check(p.returncode == 0, f"promtool check metrics accepts the {name}'s /metrics "
                                     f"({(p.stdout + p.stderr).decode().strip()[:300]})")
        else:
            check(False, "promtool is installed (Debian package prometheus; scripts/quickstart installs it)")
    st, text = http("GET", agent.url + "/metrics")
    check("attest_agent_session_active 1" in text and 'attest_sealed_bytes_total{mode="' in text,
          "agent /metrics: a live session and sealed bytes counted")
    st, text = http("GET", gw.url + "/metrics")
    check("attest_gateway_instances 1" in text and 'route="completions",method="POST",status="200"' in text,
          "gateway /metrics: its instances and completions by status")
    # nothing readable crossed the network between gateway and agent: the
    # agent's log has no prompt text either (it never logs content)
    check("confidential" not in open(agent.log, errors="replace").read(), "the agent does not log prompts")

    # --verify-locally: the instance's own fresh document, checked here
    gw3 = start(Process(wd, "gateway-local", [GATEWAY, "--verifier", v.url, "--policy", "llm", "--listen",
                                              "127.0.0.1:0", "--token-file", gw_token, "--verify-locally",
                                              "--root", pki.root]))
    st, ans = http("POST", gw3.url + "/v1/chat/completions", body={"messages": [{"role": "user", "content": "local"}]})
    check(st == 200 and ans["choices"][0]["message"]["content"] == "You said: local",
          "--verify-locally: the agent's own document (our nonce, its key, the appraised PCRs) verifies here")
    gw3.stop()
    gw4 = start(Process(wd, "gateway-aws-only", [GATEWAY, "--verifier", v.url, "--policy", "llm", "--listen",
                                                 "127.0.0.1:0", "--token-file", gw_token, "--verify-locally"]))
    st, ans = http("POST", gw4.url + "/v1/chat/completions", body={"messages": [{"role": "user", "content": "x"}]})
    check(st == 503 and ans["error"]["code"] == "no_verified_instance"
          and "local evidence check failed (untrusted_root)" in ans["error"]["message"],
          f"--verify-locally with only the AWS root: a simulator instance is not used ({ans['error']['message'][:120]})")
    gw4.stop()
    status, body = http("POST", agent.url + "/v1/evidence", body={"nonce": "AAAA"})
    check(status == 400 and body["error"]["code"] == "bad_request", "POST /v1/evidence refuses a short nonce")

    # fail closed: a pinned JWKS that is not the verifier's
    other_jwks = wd("other.jwks")
    open(other_jwks, "w").write(json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "kid": "someone-else",
                                                      "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                                                      "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}))
    gw2 = start(Process(wd, "gateway-pinned", [GATEWAY, "--verifier", v.url, "--policy", "llm", "--listen",
                                               "127.0.0.1:0", "--token-file", gw_token, "--verifier-jwks", other_jwks]))
    st, ans = http("POST", gw2.url + "/v1/chat/completions", body={"messages": [{"role": "user", "content": "x"}]})
    check(st == 502 and ans["error"]["code"] == "token_invalid"
          and "token signature check failed" in ans["error"]["message"],
          f"tokens that do not verify against the pinned JWKS: nothing is sent (503) ({ans})")
    gw2.stop()

    # a hung instance (SIGSTOP): no byte for --instance-idle s -> given up on
    # (503 unavailable), not the 600 s total timeout (review F10)
    gw5 = start(Process(wd, "gateway-idle", [GATEWAY, "--verifier", v.url, "--policy", "llm", "--listen",
                                             "127.0.0.1:0", "--token-file", gw_token, "--instance-idle", "2"]))
    st, ans = http("POST", gw5.url + "/v1/chat/completions", body={"messages": [{"role": "user", "content": "x"}]})
    check(st == 200, f"--instance-idle 2: served while the instance answers (got {st})")
    os.kill(agent.proc.pid, signal.SIGSTOP)
    stopped = False
    for _ in range(500):  # SIGSTOP is asynchronous: wait until the kernel says stopped (T)
        with open(f"/proc/{agent.proc.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("T", "t"):
                stopped = True
                break
        time.sleep(0.01)
    check(stopped, "the agent is stopped (SIGSTOP)")
    try:
        st, ans = http("POST", gw5.url + "/v1/chat/completions",
                       body={"messages": [{"role": "user", "content": "x"}]}, timeout=25)
    except Exception as e:  # no answer within 25 s: the idle limit did not apply
        st, ans = None, {"error": {"code": str(e)}}
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
    check(st == 502 and ans["error"]["code"] == "instance_unreachable"
          and "127.0.0.1" not in ans["error"]["message"],
          f"a hung instance: 502 instance_unreachable after --instance-idle, not a 10-minute wait (got {st} {ans})")
    if st != 502:
        log_tail(gw5.log)
        log_tail(agent.log)
    st, _ = http("GET", gw5.url + "/healthz")
    check(st == 200, "the gateway still answers afterwards")
    gw5.stop()
    st, ans = http("POST", gw.url + "/v1/chat/completions", body={"messages": [{"role": "user", "content": "again"}]})
    check(st == 200, f"the resumed instance serves again (got {st})")

    # fail closed: the policy version revoked -> its sessions end -> 503
    st, pv = v.call("GET", "/v1/policies/llm", token=owner)
    st, body = v.call("DELETE", f"/v1/policies/llm/versions/{pv['version']}", token=owner)
    check(st == 200 and body["sessions_ended"] >= 1, "revoke the policy version")
    time.sleep(1.5)
    st, ans = http("POST", gw.url + "/v1/chat/completions", body={"messages": [{"role": "user", "content": "x"}]})
    check(st == 503 and ans["error"]["code"] == "policy_revoked" and ans["error"]["type"] == "attestation_error",
          f"after revocation the gateway refuses (503 policy_revoked) ({ans})")
    check("confidential" not in open(v.log, errors="replace").read(), "the verifier never saw a prompt")
finally:
    for p in procs:
        if p.proc:
            p.stop()
    llm.stop()
    v.stop()
    wd.cleanup()
finish()
