"""End-to-end: attest-agent with the simulator, the verifier and the LLM
stand-in, all real processes on loopback. The agent's PCRs go into a policy
(--print-pcrs), it attests and keeps its session, serves its key config and
OHTTP (whole and chunked/streamed) to the LLM; a sealed model is released
and opened only when the policy admits it; a changed binary or config is
refused with the failing PCR named."""
import base64
import json
import os
import secrets
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, STANDIN, Pki, Process, Verifier, Workdir, check, ctl, finish, http)

wd = Workdir("agent")
pki = Pki(wd)
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()
llm = Process(wd, "llm", ["python3", STANDIN], sanitizer_check=False).start()
agents = []


def agent(*extra, policy="llm", name="agent", listen="127.0.0.1:0"):
    a = Process(wd, name, [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", policy,
                           "--verifier", v.url, "--listen", listen, "--upstream", llm.url, *extra])
    agents.append(a)
    return a.start()


def wait_status(a, cond, what, timeout=15):
    end = time.time() + timeout
    st = None
    while time.time() < end:
        _, st = http("GET", a.url + "/v1/status")
        if cond(st):
            check(True, what)
            return st
        time.sleep(0.1)
    check(False, f"{what} (last status {st})")
    return st


try:
    owner = v.token("owner")
    gateway = v.token("gateway")
    out = subprocess.run([AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm",
                          "--verifier", v.url, "--listen", "127.0.0.1:0", "--upstream", llm.url,
                          "--print-pcrs"], capture_output=True)
    pol = json.loads(out.stdout)
    check(out.returncode == 0 and sorted(pol["pcrs"]) == ["0", "1", "2"]
          and all(v_[0] != "00" * 48 for v_ in pol["pcrs"].values()),
          "--print-pcrs: PCR0-2 from the agent binary, version and configuration, never zero")
    st, body = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201, "the owner registers what the agent will attest")

    a1 = agent()
    st = wait_status(a1, lambda s: s.get("attested"), "the agent attests at start")
    st2, sessions = v.call("GET", "/v1/sessions?policy=llm", token=gateway)
    mine = [s for s in sessions.get("sessions", []) if s["id"] == st.get("session")]
    check(len(mine) == 1 and mine[0]["endpoint"] == a1.url, "the verifier lists the session with the agent's endpoint")
    status, keys = http("GET", a1.url + "/v1/key-config")
    check(status == 200, "GET /v1/key-config")

    # OHTTP through the agent to the LLM, and back
    prompt = wd("prompt.json")
    open(prompt, "w").write(json.dumps({"messages": [{"role": "user", "content": "secret prompt 42"}]}))
    p = ctl("ohttp", "request", "--key-config", a1.url + "/v1/key-config", "--url", a1.url + "/v1/ohttp",
            "--path", "/v1/chat/completions", "--data", "@" + prompt)
    ans = json.loads(p.stdout) if p.returncode == 0 else {}
    check(p.returncode == 0 and ans["choices"][0]["message"]["content"] == "You said: secret prompt 42",
          f"a sealed chat completion round trip ({p.stderr.decode()[:200]})")
    # the key config in the verifier's session is the one the agent serves
    kc = mine[0]["key_config"] if mine else ""
    open(wd("kc.bin"), "wb").write(base64.b64decode(kc))
    p = ctl("ohttp", "request", "--key-config", wd("kc.bin"), "--url", a1.url + "/v1/ohttp",
            "--path", "/v1/chat/completions", "--data", "@" + prompt)
    check(p.returncode == 0, "sealing to the attested key config from GET /v1/sessions works")
    stream = wd("stream.json")
    open(stream, "w").write(json.dumps({"stream": True, "messages": [{"role": "user", "content": "one two three"}]}))
    p = ctl("ohttp", "request", "--chunked", "--key-config", a1.url + "/v1/key-config", "--url",
            a1.url + "/v1/ohttp", "--path", "/v1/chat/completions", "--data", "@" + stream)
    events = [l[6:] for l in p.stdout.decode().splitlines() if l.startswith("data: ")]
    words = "".join(json.loads(e)["choices"][0]["delta"]["content"] for e in events if e != "[DONE]")
    check(p.returncode == 0 and events and events[-1] == "[DONE]" and words == "You said: one two three",
          "a streamed (chunked OHTTP) completion arrives event by event")
    p = ctl("ohttp", "request", "--key-config", a1.url + "/v1/key-config", "--url", a1.url + "/v1/ohttp",
            "--path", "/v1/nope", "--data", "{}")
    check(p.returncode == 1 and b"404" in p.stderr, "an inner 404 comes back sealed (exit 1)")
    status, body = http("POST", a1.url + "/v1/ohttp", raw=b"\x07\x00\x20\x00\x01\x00\x01" + b"x" * 60,
                        headers={"Content-Type": "message/ohttp-req"})
    check(status == 400 and body["code"] == "unknown_key_id" and body["type"].endswith("#ohttp-key"),
          "a request for another key id: unknown_key_id, as the RFC 9458 ohttp-key problem")
    status, body = http("POST", a1.url + "/v1/ohttp", raw=b"{}")
    check(status == 415, "a request that is not OHTTP: 415")

    # the model: sealed by the owner, released only into the attested agent
    weights = wd("weights.bin")
    open(weights, "wb").write(secrets.token_bytes(1 << 21 | 12345))
    p = ctl("model", "seal", "--in", weights, "--out", wd("weights.sealed"), "--key-out", wd("weights.key"))
    check(p.returncode == 0, "attestctl model seal")
    p = ctl("secret", "put", "model-key", "--policy", "llm", "--value-file", wd("weights.key"),
            "--verifier", v.url, env=dict(os.environ, ATTEST_TOKEN=owner))
    check(p.returncode == 0, "the data key is stored on the verifier, bound to policy llm")
    a1.stop()
    # restarted at the same endpoint: its new document binds the endpoint of
    # the live session, so it replaces it (another endpoint could not)
    a2 = agent("--model-sealed", wd("weights.sealed"), "--model-secret", "model-key",
               "--model-out", wd("weights.out"), name="agent-model", listen=a1.url.split("//")[1])
    wait_status(a2, lambda s: s.get("model_ready"), "the agent opens the sealed model", timeout=30)
    check(os.path.exists(wd("weights.out")) and open(wd("weights.out"), "rb").read() == open(weights, "rb").read(),
          "the opened model is the owner's, byte for byte")
    a2.stop()

    # a different configuration is different code: refused, PCR named
    a4 = Process(wd, "agent-changed", [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm",
                                       "--verifier", v.url, "--listen", "127.0.0.1:0",
                                       "--upstream", llm.url + "/other", "--model-sealed", wd("weights.sealed"),
                                       "--model-secret", "model-key", "--model-out", wd("weights.leak")])
    agents.append(a4)
    a4.start()
    st = wait_status(a4, lambda s: "pcr_mismatch" in s.get("last_error", ""), "a changed configuration is refused")
    check("PCR2" in st.get("last_error", ""), "the refusal names PCR2 (the configuration)")
    time.sleep(1.5)
    check(not os.path.exists(wd("weights.leak")), "and no model is released to it")
    a4.stop()
finally:
    for a in agents:
        if a.proc:
            a.stop()
    llm.stop()
    v.stop()
    wd.cleanup()
finish()
