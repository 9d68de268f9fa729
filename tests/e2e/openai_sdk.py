"""End-to-end: the official `openai` npm client (tests/interop, test-only)
pointed at attest-gateway, as a consumer would: chat (plain and streamed),
completions, embeddings, models.list/retrieve, responses through gateway ->
OHTTP -> agent -> LLM stand-in; the Attest-* headers and GET
/v1/attestation; a stream cut mid-answer raises an APIError; and every
gateway error reaches the client as an APIError with the right status and
attest code (token_invalid, no_verified_instance, instance_unreachable,
policy_revoked). Also the agent's side of RFC 9458: a request sealed to an
unknown key is answered with the ohttp-key problem type."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, BUILD, SRCDIR, STANDIN, Pki, Process, Verifier, Workdir, check, ctl, finish, http)

GATEWAY = os.path.join(BUILD, "gateway", "attest-gateway")
CLIENT = os.path.join(SRCDIR, "tests", "interop", "openai_client.mjs")
AI_SDK = os.path.join(SRCDIR, "tests", "interop", "ai_sdk_client.mjs")
have_sdk = shutil.which("node") is not None and os.path.isdir(
    os.path.join(SRCDIR, "tests", "interop", "node_modules", "openai"))
check(have_sdk, "node and tests/interop/node_modules/openai are installed (npm ci in tests/interop)")
if not have_sdk:
    finish()

wd = Workdir("openai-sdk")
pki = Pki(wd)
clock = wd("clock")
open(clock, "w").write("0\n")
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0", "--test-clock-file", clock]).start()
llm = Process(wd, "llm", ["python3", STANDIN], sanitizer_check=False).start()
procs = []


def start(p):
    procs.append(p)
    return p.start()


def sdk(*args, client=CLIENT):
    p = subprocess.run(["node", client, *args], capture_output=True, text=True, timeout=120)
    out = (p.stdout + p.stderr).strip()
    print(out)
    return p.returncode == 0, out


def gateway(name, *extra, policy="llm"):
    return start(Process(wd, name, [GATEWAY, "--verifier", v.url, "--policy", policy, "--listen", "127.0.0.1:0",
                                    "--token-file", gw_token, "--refresh", "1", *extra]))


try:
    owner = v.token("owner")
    gw_token = wd("gateway.token")
    open(gw_token, "w").write(v.token("gateway") + "\n")
    agent_token = wd("agent.token")
    open(agent_token, "w").write(v.token("agent") + "\n")
    agent_args = [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm", "--verifier", v.url,
                  "--listen", "127.0.0.1:0", "--upstream", llm.url, "--token-file", agent_token,
                  "--session-check", "1"]
    pol = json.loads(subprocess.run(agent_args + ["--print-pcrs"], capture_output=True).stdout)
    st, _ = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201, "policy from the agent's --print-pcrs")
    agent = start(Process(wd, "agent", agent_args))
    gw = gateway("gateway", "--instance-idle", "2")
    end = time.time() + 15
    inst = {}
    while time.time() < end:
        st, inst = http("GET", gw.url + "/v1/gateway/instances")
        if inst.get("instances"):
            break
        time.sleep(0.2)
    check(len(inst.get("instances", [])) == 1, "the gateway sees the attested agent")

    ok, out = sdk("ok", gw.url)
    check(ok, "the openai SDK: chat, stream, completions, embeddings, models, responses, cut stream, headers")
    ok, out = sdk("ok", gw.url, client=AI_SDK)
    check(ok, "the Vercel AI SDK: generateText (chat, responses), streamText, embed, cut stream, headers")
    check("confidential" not in open(agent.log, errors="replace").read(), "the agent does not log prompts")

    # a multipart body (an audio upload's shape) is forwarded as it came: the
    # stand-in has no such route and its own 404 comes back, with the headers
    boundary = "attestboundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\nRIFF\x00\x00\r\n--{boundary}--\r\n").encode()
    req = urllib.request.Request(gw.url + "/v1/audio/transcriptions?x=1", data=form, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        r = urllib.request.urlopen(req, timeout=30)
        st, hdrs, body = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        st, hdrs, body = e.code, e.headers, e.read()
    check(st == 404 and b"no route /v1/audio/transcriptions?x=1" in body and hdrs.get("Attest-Instance"),
          f"any /v1 path, query and multipart body reach the upstream sealed ({st} {body[:80]})")

    # the agent: a request sealed to a key it does not have -> RFC 9458's
    # problem type, so a client refetches the key configuration
    bogus = bytes([0x7e, 0x00, 0x20, 0x00, 0x01, 0x00, 0x01]) + b"\x00" * 48
    for media in ("message/ohttp-req", "message/ohttp-chunked-req"):
        req = urllib.request.Request(agent.url + "/v1/ohttp", data=bogus, method="POST",
                                     headers={"Content-Type": media})
        try:
            urllib.request.urlopen(req, timeout=30)
            st, ctype, prob = 200, "", {}
        except urllib.error.HTTPError as e:
            st, ctype, prob = e.code, e.headers.get("Content-Type", ""), json.loads(e.read())
        check(st == 400 and ctype.startswith("application/problem+json")
              and prob.get("type") == "https://iana.org/assignments/http-problem-types#ohttp-key"
              and prob.get("code") == "unknown_key_id",
              f"{media}: an unknown key id answers the ohttp-key problem type ({st} {ctype} {prob})")

    # RFC 9458 section 6.5: an inner Date outside the agent's window is
    # refused, sealed, with the agent's Date (a replay later does not run)
    from email.utils import formatdate
    for extra in ([], ["--chunked"]):
        for when, ok_expected in ((time.time(), True), (time.time() - 3600, False), (time.time() + 3600, False)):
            p = ctl("ohttp", "request", "--key-config", agent.url + "/v1/key-config", "--url", agent.url + "/v1/ohttp",
                    "--path", "/v1/completions", "--data", '{"prompt": "dated"}', "-v",
                    "--header", "date: " + formatdate(when, usegmt=True), *extra)
            out = p.stdout + p.stderr
            if ok_expected:
                check(p.returncode == 0 and b"You said: dated" in out, f"a current inner Date is accepted {extra}")
            else:
                check(p.returncode == 1 and b"422" in out and b"clock_skew" in out and b"You said" not in out,
                      f"an inner Date an hour off is refused, sealed 422 clock_skew {extra} ({out[-300:]})")

    # an undated inner request is refused too (it would escape the window)
    p = ctl("ohttp", "request", "--key-config", agent.url + "/v1/key-config", "--url", agent.url + "/v1/ohttp",
            "--path", "/v1/completions", "--data", '{"prompt": "undated"}', "--no-date")
    out = p.stdout + p.stderr
    check(p.returncode == 1 and b"clock_skew" in out and b"date: missing" in out and b"You said" not in out,
          f"an inner request without Date is refused, sealed 422 clock_skew ({out[-200:]})")
    # RFC 9458 section 6.5: the same encapsulated request sent again within
    # the window is refused and the model does not run a second time
    for extra, media in (([], "message/ohttp-req"), (["--chunked"], "message/ohttp-chunked-req")):
        saved = wd("replay.req")
        p = ctl("ohttp", "request", "--key-config", agent.url + "/v1/key-config", "--url", agent.url + "/v1/ohttp",
                "--path", "/v1/completions", "--data", '{"prompt": "once"}', "--save-request", saved, *extra)
        check(p.returncode == 0 and b"You said: once" in p.stdout and os.stat(saved).st_mode & 0o777 == 0o600,
              f"a dated request runs, saved as sent {extra}")
        before = http("GET", llm.url + "/_standin/stats")[1]["requests"]
        metric = f'attest_ohttp_refused_total{{code="replayed"}}'
        def replayed():
            text = http("GET", agent.url + "/metrics")[1]
            return next((float(l.split()[-1]) for l in text.splitlines() if l.startswith(metric)), 0.0)
        was = replayed()
        req = urllib.request.Request(agent.url + "/v1/ohttp", data=open(saved, "rb").read(), method="POST",
                                     headers={"Content-Type": media})
        r = urllib.request.urlopen(req, timeout=30)
        body = r.read()
        check(r.status == 200 and len(body) > 0 and b"You said" not in body,
              f"the replay gets a sealed answer (its refusal), not the model's {extra}")
        now_r, after = replayed(), http("GET", llm.url + "/_standin/stats")[1]["requests"]
        check(now_r == was + 1 and after == before + 1,  # + 1: the stats request itself
              f"the replay is refused (replayed {was} -> {now_r}) and the model did not run again ({before} -> {after}) {extra}")

    # only /v1/... reaches the model server: not through the gateway (dot
    # segments, %2e, an escaped '?'), and not by sealing to the agent directly
    import http.client as hc
    from urllib.parse import urlparse
    served = http("GET", llm.url + "/_standin/stats")[1]["requests"]
    for path in ("/v1/../_standin/stats", "/v1/%2e%2e/_standin/stats", "/v1/%2E%2e/_standin/stats",
                 "/v1/./models", "/v1/models%3Fx=1"):
        u = urlparse(gw.url)
        conn = hc.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.request("GET", path)  # sent as written, never normalised
        r = conn.getresponse()
        body = json.loads(r.read() or b"{}")
        conn.close()
        check(r.status == 400 and body.get("error", {}).get("code") == "bad_request"
              and "path" in body["error"].get("message", ""),
              f"gateway: {path} refused 400 bad_request before sealing ({r.status} {body})")
    for path in ("/_standin/stats", "/v1/../_standin/stats", "/v1/%2e%2e/_standin/stats"):
        p = ctl("ohttp", "request", "--key-config", agent.url + "/v1/key-config", "--url", agent.url + "/v1/ohttp",
                "--method", "GET", "--path", path, "-v")
        out = p.stdout + p.stderr
        check(p.returncode == 1 and b"400" in out and b"bad_request" in out and b"connections" not in out,
              f"agent: a sealed request for {path} is refused, sealed 400 bad_request ({out[-200:]})")
    check(http("GET", llm.url + "/_standin/stats")[1]["requests"] == served + 1,
          "the model server saw none of them (only this count)")

    # event streams pass by whole events: what arrived before a cut goes
    # out, a stalled half event is waited for (not spun on), and an event
    # longer than the gateway's limit ends the stream with an error event
    def sse(prompt):
        u = urlparse(gw.url)
        conn = hc.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.request("POST", "/v1/chat/completions", body=json.dumps(
            {"model": "m", "stream": True, "messages": [{"role": "user", "content": prompt}]}),
            headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = b""
        try:
            while True:
                piece = r.read1(65536)
                if not piece:
                    break
                data += piece
        except (hc.IncompleteRead, ConnectionError):
            pass
        conn.close()
        return r.status, data.decode(errors="replace")

    st, text = sse("[halfcut]")
    check(st == 200 and '"content":"whole"' in text and '"code":"instance_unreachable"' in text
          and '"choi' not in text.replace('"choices"', ""),
          f"a cut after one whole event and half the next: the whole event, then the error event ({text[:300]!r})")

    def cpu_s(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = cpu_s(gw.proc.pid)
    st, text = sse("[slowhalf]")
    used = cpu_s(gw.proc.pid) - before
    check(st == 200 and '"content":"slow"' in text and "[DONE]" in text,
          f"a half event stalled 3 s, then completed: passed whole ({text[:200]!r})")
    check(used < 1.0, f"the gateway waited for the rest of the event, not spun ({used:.2f} s of CPU in 3 s)")
    st, text = sse("[bigevent]")
    check(st == 200 and '"code":"instance_unreachable"' in text and "too_large" in text and "xxxx" not in text,
          f"an event longer than the gateway's limit: an error event, nothing of it passed ({text[:200]!r})")

    # every gateway error, as the SDK sees it
    other_jwks = wd("other.jwks")
    open(other_jwks, "w").write(json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "kid": "someone-else",
                                                      "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                                                      "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}))
    gw2 = gateway("gateway-pinned", "--verifier-jwks", other_jwks)
    ok, _ = sdk("error", gw2.url, "502", "token_invalid")
    check(ok, "tokens that do not verify against the pinned JWKS: APIError 502 token_invalid")
    ok, _ = sdk("error", gw2.url, "502", "token_invalid", client=AI_SDK)
    check(ok, "the same through the Vercel AI SDK: APICallError 502 token_invalid")
    gw2.stop()
    gw3 = gateway("gateway-nobody", policy="nobody")
    ok, _ = sdk("error", gw3.url, "503", "no_verified_instance")
    check(ok, "a policy without sessions: APIError 503 no_verified_instance")
    ok, _ = sdk("error", gw3.url, "503", "no_verified_instance", client=AI_SDK)
    check(ok, "the same through the Vercel AI SDK: APICallError 503 no_verified_instance")
    gw3.stop()
    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        ok, _ = sdk("error", gw.url, "502", "instance_unreachable")
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
    check(ok, "a hung instance: APIError 502 instance_unreachable")

    st, pv = v.call("GET", "/v1/policies/llm", token=owner)
    st, body = v.call("DELETE", f"/v1/policies/llm/versions/{pv['version']}", token=owner)
    check(st == 200 and body["sessions_ended"] >= 1, "revoke the policy version")
    time.sleep(1.5)  # past the gateway's --refresh 1
    ok, _ = sdk("error", gw.url, "503", "policy_revoked")
    check(ok, "after revocation: APIError 503 policy_revoked")
    st, att = http("GET", gw.url + "/v1/attestation")
    check(st == 200 and att["attestations"] == [] and att["error"]["code"] == "policy_revoked",
          f"GET /v1/attestation: no token, and why ({att.get('error')})")

    # a new policy version: the agent attests again; then its session
    # expires (the verifier's clock two hours on, the agent stopped so it
    # cannot renew) -> attestation_expired
    st, _ = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201, "a new policy version")
    end = time.time() + 40
    while time.time() < end:
        st, inst = http("GET", gw.url + "/v1/gateway/instances")
        if inst.get("instances"):
            break
        time.sleep(0.3)
    check(len(inst.get("instances", [])) == 1, "the agent attests again under the new version")
    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        open(clock, "w").write("7200\n")
        time.sleep(1.5)  # past the gateway's --refresh 1
        ok, _ = sdk("error", gw.url, "503", "attestation_expired")
    finally:
        open(clock, "w").write("0\n")
        os.kill(agent.proc.pid, signal.SIGCONT)
    check(ok, "an expired attestation: APIError 503 attestation_expired")
finally:
    for p in procs:
        if p.proc:
            p.stop()
    llm.stop()
    v.stop()
    if not os.environ.get("AT_KEEP"):
        wd.cleanup()
finish()
