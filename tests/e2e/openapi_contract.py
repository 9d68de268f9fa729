"""Contract test of docs/openapi.yaml against the real servers (issue 11).

1. Routes: each server's `--print-routes` (the list handle() answers) and the
   document's operations tagged for that server are the same set, both ways.
   The printed list cannot drift silently from the dispatcher: every printed
   route is probed on a live server and must not fall through to the
   dispatcher's "no such route" answer, and every path literal the dispatch
   code compares the URL with must belong to a printed route.
2. Error codes: the document's ErrorCode enum and its HTTP statuses are the
   table in lib/err.h, exactly.
3. Responses: real answers of a verifier, an agent and a gateway (main routes
   and many refusals) are validated against the document's schemas by an
   independent validator (ajv 8, JSON Schema 2020-12, tests/interop), and
   every error's code must be listed for its status on that operation. The
   document itself is checked against the OpenAPI 3.1 schemas
   (@seriousme/openapi-schema-validator)."""
import base64
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, BUILD, SRCDIR, STANDIN, KeyPair, Pki, Process, Verifier, Workdir, b64, check, ctl,
                     finish)

import yaml  # python3-yaml

VERIFIER = os.path.join(BUILD, "verifier", "attest-verifier")
GATEWAY = os.path.join(BUILD, "gateway", "attest-gateway")
DOC = os.path.join(SRCDIR, "docs", "openapi.yaml")
VALIDATOR = os.path.join(SRCDIR, "tests", "interop", "validate_openapi.mjs")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
SERVERS = {"verifier": VERIFIER, "agent": AGENT, "gateway": GATEWAY}
# The C files whose string compares decide which URL goes where.
DISPATCH = {
    "verifier": ["verifier/main.c", "verifier/route_policies.c", "verifier/route_secrets.c",
                 "verifier/route_tokens.c", "verifier/route_peer.c", "verifier/route_audit.c"],
    "agent": ["agent/main.c"],
    "gateway": ["gateway/main.c"],
}
FALLTHROUGH = re.compile(r"^route: no |no such resource")

with open(DOC) as f:
    doc = yaml.safe_load(f)

# ---- 1. the route sets, both ways -------------------------------------------
printed = {}
for name, binary in SERVERS.items():
    p = subprocess.run([binary, "--print-routes"], capture_output=True, text=True)
    check(p.returncode == 0, f"{name} --print-routes exits 0")
    printed[name] = set(p.stdout.split("\n")) - {""}
    documented = {f"{m.upper()} {path}" for path, item in doc["paths"].items() for m, op in item.items()
                  if m in METHODS and name in op.get("x-attest-servers", [])}
    missing = sorted(printed[name] - documented)
    extra = sorted(documented - printed[name])
    check(not missing, f"{name}: every route it serves is in docs/openapi.yaml (missing: {missing})")
    check(not extra, f"{name}: every route docs/openapi.yaml gives it is served (not served: {extra})")


def template_re(path):
    out = ""
    for part in re.split(r"(\{[a-z_]+\})", path):
        if part in ("{openai_path}", "{file}"):
            out += ".+"
        elif part.startswith("{"):
            out += "[^/]+"
        else:
            out += re.escape(part)
    return re.compile(out)


for name, files in DISPATCH.items():
    paths = [r.split(" ", 1)[1] for r in printed[name]]
    unaccounted = []
    found = 0
    for fn in files:
        with open(os.path.join(SRCDIR, fn)) as f:
            src = f.read()
        lits = re.findall(r'strn?cmp\((?:u|req->url|rest|slash|path)(?: \+ \d+)?, "([^"]*)"', src)
        found += len(lits)
        for lit in lits:
            if not any(lit in p or template_re(p).fullmatch(lit) for p in paths):
                unaccounted.append(f"{fn}: \"{lit}\"")
    check(found >= 5, f"{name}: the dispatch scan finds the URL compares ({found})")
    check(not unaccounted, f"{name}: every path its dispatcher compares with is a printed route ({unaccounted})")

# ---- 2. the error table ------------------------------------------------------
with open(os.path.join(SRCDIR, "lib", "err.h")) as f:
    table = {c: int(s) for c, s in re.findall(r'X\(AT_[A-Z_]+, "([a-z_]+)", (\d+)\)', f.read())}
table.pop("ok", None)
codes_schema = doc["components"]["schemas"]["ErrorCode"]
check(set(codes_schema["enum"]) == set(table),
      f"ErrorCode enum is lib/err.h's table (diff: {sorted(set(codes_schema['enum']) ^ set(table))})")
check(codes_schema.get("x-attest-http-status") == table, "each code's HTTP status in the document is lib/err.h's")

# ---- 3. real responses --------------------------------------------------------
captured = []


class KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kw):
        return None  # the 3xx itself is the answer under test


NO_REDIRECT = urllib.request.build_opener(KeepRedirects)


def call(server, url, method, template, body=None, token=None, raw=None, headers=None):
    """One request; the answer is kept for validation under its route."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None and raw is None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with NO_REDIRECT.open(req, timeout=30) as r:
            status, ctype, text = r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        status, ctype, text = e.code, e.headers.get("Content-Type", ""), e.read()
    try:
        parsed = json.loads(text) if "json" in ctype else text.decode(errors="replace")
    except ValueError:
        parsed = text.decode(errors="replace")
    captured.append({"server": server, "method": method.lower(), "path": template, "status": status,
                     "content_type": ctype.split(";")[0].strip(), "body": parsed})
    return status, parsed


have_node = shutil.which("node") is not None and os.path.isdir(
    os.path.join(SRCDIR, "tests", "interop", "node_modules", "@seriousme", "openapi-schema-validator"))
check(have_node, "node and tests/interop/node_modules are installed (npm ci in tests/interop)")
if not have_node:
    finish()

wd = Workdir("openapi-contract")
pki = Pki(wd)
pki_agent = Pki(wd, "pki-agent")  # its own instance: the direct attestation above holds pki's
v = Verifier(wd, roots=[pki.root, pki_agent.root], extra=["--rate", "0", "--web-root", os.path.join(SRCDIR, "web", "console")])
v.start()
llm = Process(wd, "llm", ["python3", STANDIN], sanitizer_check=False).start()
procs = []
try:
    V = lambda m, path, template=None, **kw: call("verifier", v.url + path, m, template or path, **kw)
    owner, auditor, agent_tok, gw_tok = (v.token(r) for r in ("owner", "auditor", "agent", "gateway"))

    # ---- the verifier: main routes
    V("GET", "/healthz")
    V("GET", "/metrics")
    V("GET", "/.well-known/jwks.json")
    V("GET", "/console")
    V("GET", "/console/app.js", "/console/{file}")
    V("GET", "/console/nope.js", "/console/{file}")
    st, ch = V("POST", "/v1/challenge", body={})
    check(st == 201, "challenge")
    pol = pki.policy()
    st, _ = V("PUT", "/v1/policies/llm", "/v1/policies/{name}", body=pol, token=owner)
    check(st == 201, "policy put")
    V("PUT", "/v1/policies/lax", "/v1/policies/{name}", body={**pol, "session_ttl_s": 86400 * 400}, token=owner)
    V("PUT", "/v1/policies/lax?allow_lint=1", "/v1/policies/{name}", body={**pol, "session_ttl_s": 86400 * 400},
      token=owner)
    V("GET", "/v1/policies", token=owner)
    V("GET", "/v1/policies/llm", "/v1/policies/{name}", token=auditor)
    V("GET", "/v1/policies/nope", "/v1/policies/{name}", token=owner)
    V("GET", "/v1/policies/b@d", "/v1/policies/{name}", token=owner)
    V("POST", "/v1/policies/llm/import", "/v1/policies/{name}/import", token=owner,
      body={"format": "nitro-enclave", "files": [{"name": "pcrs.json", "content": json.dumps(
          {"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": "00" * 48}})}]})
    V("POST", "/v1/policies/llm/import", "/v1/policies/{name}/import", token=owner, body={"files": 3})
    kp = KeyPair(wd)
    doc_ok = pki.doc(nonce=None, public_key=kp.config)
    st, ch = V("POST", "/v1/challenge", body={})
    nonce = base64.b64decode(ch["nonce"])
    st, att = V("POST", "/v1/attestations", body={"evidence": b64(pki.doc(nonce=nonce, public_key=kp.config)),
                                                   "policy": "llm"})
    check(st == 201, f"attestation ({att})")
    V("POST", "/v1/attestations", body={"evidence": b64(pki.doc(nonce=nonce, public_key=kp.config)),
                                        "policy": "llm"})  # nonce_reused
    V("POST", "/v1/attestations", body={"evidence": b64(pki.doc(nonce=secrets.token_bytes(32),
                                                                 public_key=kp.config)), "policy": "llm"})
    V("PUT", "/v1/policies/strict", "/v1/policies/{name}", body={**pol, "pcrs": {"0": ["33" * 48]}}, token=owner)
    ch = V("POST", "/v1/challenge", body={})[1]
    V("POST", "/v1/attestations", body={"evidence": b64(pki.doc(nonce=base64.b64decode(ch["nonce"]),
                                                                 public_key=kp.config)), "policy": "strict"})
    ch = V("POST", "/v1/challenge", body={})[1]
    V("POST", "/v1/attestations", body={"evidence": b64(pki.doc(nonce=base64.b64decode(ch["nonce"]))),
                                        "policy": "llm"})  # key_required
    scoped = ctl("token", "create", "--db", v.db, "--role", "owner", "--policies", "other",
                 check_rc=0).stdout.decode().strip()
    V("PUT", "/v1/policies/llm", "/v1/policies/{name}", body=pol, token=scoped)
    V("POST", "/v1/attestations", body={"evidence": "%%%", "policy": "llm"})
    V("POST", "/v1/attestations", body={"evidence": b64(b"\x84\x40"), "policy": "llm"})
    V("POST", "/v1/attestations", body={"evidence": b64(doc_ok), "policy": "nope"})
    V("POST", "/v1/attestations", raw=b"{\"evidence\": \"" + b"A" * 70000 + b"\"}")
    V("POST", "/v1/verify", body={"evidence": b64(doc_ok)})
    V("POST", "/v1/verify", body={"evidence": b64(doc_ok), "policy": {"format": "nitro-enclave",
                                                                      "pcrs": {"0": ["33" * 48]}}}, token=auditor)
    V("POST", "/v1/verify", body={"evidence": b64(doc_ok), "surprise": 1})
    V("GET", "/v1/sessions?policy=llm", "/v1/sessions", token=gw_tok)
    V("GET", "/v1/sessions?state=all", "/v1/sessions", token=auditor)
    V("GET", "/v1/sessions?state=bogus", "/v1/sessions", token=auditor)
    V("GET", "/v1/sessions", token=owner)
    V("PUT", "/v1/secrets/model-key", "/v1/secrets/{name}", token=owner,
      body={"policy": "llm", "value": b64(b"k" * 32)})
    V("PUT", "/v1/secrets/model-key", "/v1/secrets/{name}", token=owner,
      body={"policy": "llm", "value": b64(b"k" * 32)})
    V("PUT", "/v1/secrets/model-key", "/v1/secrets/{name}", token=auditor,
      body={"policy": "llm", "value": b64(b"k" * 32)})
    sid = att["session"]["id"]
    V("POST", "/v1/secrets/model-key/release", "/v1/secrets/{name}/release",
      body={"session": sid, "proof": f"{int(time.time() * 1000)}.{'A' * 43}"})
    V("POST", "/v1/secrets/model-key/release", "/v1/secrets/{name}/release", body={"session": sid})
    V("POST", "/v1/peer/bindings", body={"session": sid})
    V("GET", "/v1/tokens", token=v.admin)
    V("GET", "/v1/tokens", token=owner)
    V("GET", "/v1/tokens/self", token=owner)
    V("GET", "/v1/tokens/self")
    V("GET", "/v1/tokens/self", token="at_" + "0" * 40)
    st, toks = V("GET", "/v1/tokens", token=v.admin)
    V("DELETE", "/v1/tokens/999999", "/v1/tokens/{id}", token=v.admin)
    v.token("auditor")  # a spare, to revoke
    spare = max(t["id"] for t in V("GET", "/v1/tokens", token=v.admin)[1]["tokens"])
    st, _ = V("DELETE", f"/v1/tokens/{spare}", "/v1/tokens/{id}", token=v.admin)
    check(st == 200, "a token revoked")
    V("DELETE", f"/v1/tokens/{spare}", "/v1/tokens/{id}", token=v.admin)
    V("PUT", "/v1/policies/tmp", "/v1/policies/{name}", body=pol, token=owner)
    V("PUT", "/v1/policies/tmp", "/v1/policies/{name}", body=pol, token=owner)
    st, _ = V("DELETE", "/v1/policies/tmp/versions/1", "/v1/policies/{name}/versions/{version}", token=owner)
    check(st == 200, "a policy version revoked")
    V("GET", "/v1/audit?limit=2", "/v1/audit", token=auditor)
    V("GET", "/v1/audit?action=policy.put", "/v1/audit", token=auditor)
    V("GET", "/v1/audit?since=yesterday", "/v1/audit", token=auditor)
    V("GET", "/v1/audit/verify", token=auditor)
    V("GET", "/v1/audit/verify?full=1", "/v1/audit/verify", token=auditor)
    V("GET", "/v1/audit/verify", token=gw_tok)
    V("DELETE", "/v1/policies/lax/versions/1", "/v1/policies/{name}/versions/{version}", token=owner)
    V("DELETE", "/v1/policies/lax/versions/x", "/v1/policies/{name}/versions/{version}", token=owner)
    V("DELETE", "/v1/policies/lax/versions/99", "/v1/policies/{name}/versions/{version}", token=owner)

    # ---- the agent and the gateway
    agent_token = wd("agent.token")
    with open(agent_token, "w") as f:
        f.write(agent_tok + "\n")
    gw_token = wd("gateway.token")
    with open(gw_token, "w") as f:
        f.write(gw_tok + "\n")
    agent_args = [AGENT, "--attester", "sim", "--sim-pki", pki_agent.dir, "--policy", "llm2", "--verifier", v.url,
                  "--listen", "127.0.0.1:0", "--upstream", llm.url, "--token-file", agent_token]
    pol2 = json.loads(subprocess.run(agent_args + ["--print-pcrs"], capture_output=True).stdout)
    st, _ = V("PUT", "/v1/policies/llm2", "/v1/policies/{name}", body=pol2, token=owner)
    check(st == 201, "the agent's policy")
    agent = Process(wd, "agent", agent_args)
    procs.append(agent)
    agent.start()
    gw = Process(wd, "gateway", [GATEWAY, "--verifier", v.url, "--policy", "llm2", "--listen", "127.0.0.1:0",
                                 "--token-file", gw_token, "--refresh", "1", "--web-root",
                                 os.path.join(SRCDIR, "web", "chat")])
    procs.append(gw)
    gw.start()
    empty = Process(wd, "gateway-empty", [GATEWAY, "--verifier", v.url, "--policy", "nobody", "--listen",
                                          "127.0.0.1:0", "--token-file", gw_token, "--refresh", "1"])
    procs.append(empty)
    empty.start()
    A = lambda m, path, template=None, **kw: call("agent", agent.url + path, m, template or path, **kw)
    G = lambda m, path, template=None, **kw: call("gateway", gw.url + path, m, template or path, **kw)
    end = time.time() + 20
    while time.time() < end:
        st, inst = G("GET", "/v1/gateway/instances")
        if isinstance(inst, dict) and inst.get("instances"):
            break
        time.sleep(0.2)
    check(isinstance(inst, dict) and len(inst.get("instances", [])) == 1, "the gateway sees the attested agent")
    A("GET", "/healthz")
    A("GET", "/metrics")
    A("GET", "/v1/status")
    A("GET", "/v1/key-config")
    A("POST", "/v1/evidence", body={"nonce": b64(secrets.token_bytes(32))})
    A("POST", "/v1/evidence", body={"nonce": "short"})
    A("POST", "/v1/ohttp", raw=b"\x07\x00\x20\x00\x01\x00\x01" + b"\x00" * 64,
      headers={"Content-Type": "message/ohttp-req"})
    A("POST", "/v1/ohttp", raw=b"\x01", headers={"Content-Type": "message/ohttp-req"})
    G("GET", "/healthz")
    G("GET", "/metrics")
    G("GET", "/", "/")
    G("GET", "/app.js", "/{file}")
    G("GET", "/v1/attestation")
    G("GET", "/v1/models", "/v1/{openai_path}")
    G("POST", "/v1/chat/completions", "/v1/{openai_path}",
      body={"model": "standin", "messages": [{"role": "user", "content": "hi"}]})
    llm.stop()  # the agent's sealed 502 (code upstream_unavailable), relayed by the gateway
    st, body = G("GET", "/v1/models", "/v1/{openai_path}")
    check(st == 502, f"model server down: 502 through the gateway ({st} {body})")
    call("gateway", empty.url + "/v1/models", "GET", "/v1/{openai_path}")
    call("gateway", empty.url + "/v1/attestation", "GET", "/v1/attestation")
    call("gateway", empty.url + "/v1/gateway/instances", "GET", "/v1/gateway/instances")

    # ---- every printed route answers (not the dispatcher's fall-through)
    sample = {"{name}": "probe", "{version}": "1", "{id}": "999999", "{file}": "app.js",
              "{openai_path}": "models"}
    urls = {"verifier": v.url, "agent": agent.url, "gateway": gw.url}
    for name, routes in printed.items():
        for r in sorted(routes):
            m, path = r.split(" ", 1)
            url = path
            for k, val in sample.items():
                url = url.replace(k, val)
            if name == "verifier" and path == "/console/{file}":
                url = "/console/app.js"
            st, body = call(name, urls[name] + url, m, path, body={} if m in ("POST", "PUT") else None)
            err = body.get("error") if isinstance(body, dict) else None
            msg = err.get("message", "") if isinstance(err, dict) else ""
            check(not (st == 404 and FALLTHROUGH.search(msg or "")),
                  f"{name} {r}: dispatched ({st} {msg[:80]})")

    # ---- the answers against the schemas (ajv) and the codes per operation
    cap = wd("captured.json")
    with open(cap, "w") as f:
        json.dump(captured, f)
    p = subprocess.run(["node", VALIDATOR, DOC, cap], capture_output=True, text=True, timeout=120)
    print(p.stdout[-4000:], p.stderr[-4000:])
    check(p.returncode != 3, "docs/openapi.yaml is valid OpenAPI 3.1 (@seriousme/openapi-schema-validator)")
    check(p.returncode == 0, f"{len(captured)} real answers follow docs/openapi.yaml (ajv)")
    seen_codes = set()
    for c in captured:
        body = c["body"]
        op = doc["paths"].get(c["path"], {}).get(c["method"], {})
        if c["status"] < 400 or str(c["status"]) not in op.get("responses", {}):
            continue  # not a refusal of ours (reports, the upstream's own errors: `default`)
        err = body.get("error") if isinstance(body, dict) else None
        # the Error body, or the agent's ohttp-key problem details (RFC 9457)
        code = err.get("code") if isinstance(err, dict) else body.get("code") if isinstance(body, dict) else None
        seen_codes.add(str(code))
        listed = op.get("x-attest-codes", {}).get(str(c["status"]), [])
        check(code in listed, f"{c['server']} {c['method'].upper()} {c['path']} -> {c['status']} {code}: "
                              f"listed for that status (listed: {listed})")
    print(f"error codes seen: {sorted(seen_codes)}")
    check(len(seen_codes) >= 10, f"many error codes exercised ({len(seen_codes)})")
finally:
    for p in procs:
        p.stop()
    llm.stop()
    v.stop()
finish()
