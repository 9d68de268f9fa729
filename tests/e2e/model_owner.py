"""End-to-end: the model owner's workflow through the real attestctl,
verifier and agent on loopback. Sealing and opening never destroy or leave
half-written files (same file by device and inode, existing outputs, failed
runs); one-step seal stores the data key on the verifier bound to a policy
and never writes it to disk; the header is inspectable and authenticated;
tampered files are refused before any plaintext appears; the agent with
matching PCRs opens the model byte for byte, another is refused; progress
on a terminal, --quiet and --json for scripts."""
import hashlib
import json
import os
import pty
import secrets
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, ATTESTCTL, STANDIN, Pki, Process, Verifier, Workdir, check, ctl, finish, http)

wd = Workdir("model")
CHUNK = 1 << 20


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def listing():
    return sorted(os.listdir(wd.path))


def err(p):
    return p.stderr.decode()


model = wd("model.bin")
open(model, "wb").write(secrets.token_bytes(2 * CHUNK + 54321))
model_sha = sha(model)

# ---- offline: the traps ------------------------------------------------------
before = listing()
p = ctl("model", "seal", "--in", model, "--out", model, "--key-out", wd("k0"))
check(p.returncode == 2 and "conflict" in err(p) and "same file as the input" in err(p),
      f"seal --in X --out X is refused as the same file ({err(p).strip()})")
check(sha(model) == model_sha and listing() == before, "the model is intact and no key file is left")
os.link(model, wd("hard.bin"))
os.symlink("model.bin", wd("sym.bin"))
before = listing()
for alias in ("hard.bin", "sym.bin"):
    p = ctl("model", "seal", "--in", model, "--out", wd(alias), "--key-out", wd("k0"), "--force")
    check(p.returncode == 2 and "same file as the input" in err(p),
          f"the same file through a {alias.split('.')[0]} link is refused even with --force")
check(sha(model) == model_sha and listing() == before, "nothing written through the links")

p = ctl("model", "seal", "--in", model, "--out", wd("m.sealed"), "--key-out", wd("m.key"))
check(p.returncode == 0 and "sha256 " + model_sha in err(p),
      "offline seal; the summary names the plaintext's SHA-256")
sealed_sha = sha(wd("m.sealed"))
check(os.stat(wd("m.key")).st_mode & 0o777 == 0o600 and os.path.getsize(wd("m.key")) == 32,
      "the key file is 32 bytes, mode 0600")
p = ctl("model", "seal", "--in", model, "--out", wd("m.sealed"), "--key-out", wd("m2.key"))
check(p.returncode == 2 and "exists already; not replacing it (--force replaces it)" in err(p) and sha(wd("m.sealed")) == sealed_sha
      and not os.path.exists(wd("m2.key")), "an existing output is not overwritten, and no key file is left")
open(wd("precious.key"), "wb").write(b"k" * 32)
p = ctl("model", "seal", "--in", model, "--out", wd("new.sealed"), "--key-out", wd("precious.key"))
check(p.returncode == 2 and open(wd("precious.key"), "rb").read() == b"k" * 32
      and not os.path.exists(wd("new.sealed")), "an existing key file is not overwritten, no output made")
p = ctl("model", "seal", "--in", model, "--out", wd("same"), "--key-out", wd("same"))
check(p.returncode == 2 and not os.path.exists(wd("same")), "--key-out and --out naming one file: refused")
before = listing()
os.mkdir(wd("adir"))
p = ctl("model", "seal", "--in", wd("adir"), "--out", wd("x.sealed"), "--key-out", wd("x.key"))
check(p.returncode != 0 and sorted(os.listdir(wd.path)) == sorted(before + ["adir"]),
      "a seal that fails while reading leaves nothing behind (no output, no key, no temporary file)")
p = ctl("model", "seal", "--in", wd("missing"), "--out", wd("x.sealed"), "--key-out", wd("x.key"))
check(p.returncode == 2 and not os.path.exists(wd("x.key")), "a missing input: no key file")
p = ctl("model", "seal", "--in", model, "--out", wd("m.sealed"), "--key-out", wd("m.key"), "--force", "--quiet")
check(p.returncode == 0 and p.stderr == b"" and p.stdout == b"" and sha(wd("m.sealed")) != sealed_sha,
      "--force replaces; --quiet prints nothing")
sealed_sha = sha(wd("m.sealed"))

# open: the same rules
p = ctl("model", "open", "--in", wd("m.sealed"), "--out", wd("m.sealed"), "--key", wd("m.key"), "--force")
check(p.returncode == 2 and "same file" in err(p) and sha(wd("m.sealed")) == sealed_sha,
      "open --in X --out X is refused")
p = ctl("model", "open", "--in", wd("m.sealed"), "--out", model, "--key", wd("m.key"))
check(p.returncode == 2 and "exists" in err(p) and sha(model) == model_sha, "open does not overwrite without --force")
p = ctl("model", "open", "--in", wd("m.sealed"), "--out", wd("m.out"), "--key", wd("m.key"), "--json")
j = json.loads(p.stdout) if p.returncode == 0 else {}
check(p.returncode == 0 and sha(wd("m.out")) == model_sha and j.get("sha256") == model_sha
      and j.get("plaintext_bytes") == 2 * CHUNK + 54321 and j["header"]["version"] == 2,
      "open: byte-exact; --json gives size, SHA-256 and header")

p = ctl("model", "inspect", wd("m.sealed"))
h = json.loads(p.stdout) if p.returncode == 0 else {}
check(p.returncode == 0 and h.get("format") == "ATSEAL02" and h.get("chunk_size") == CHUNK
      and len(h.get("key_id") or "") == 32 and h.get("secret") is None and h.get("policy") is None
      and h.get("plaintext_bytes") == 2 * CHUNK + 54321, f"inspect prints the header as JSON ({h})")
p = ctl("model", "inspect", model)
check(p.returncode == 1 and "bad_field" in err(p), "inspect of a file that is not sealed: bad_field")

# tampered files: refused, and nothing appears at the output
data = open(wd("m.sealed"), "rb").read()
hlen = len(data) - (2 * (CHUNK + 16) + 54321 + 16)
c0, c1, c2 = (data[hlen:hlen + CHUNK + 16], data[hlen + CHUNK + 16:hlen + 2 * (CHUNK + 16)],
              data[hlen + 2 * (CHUNK + 16):])
hdr = data[:hlen]
other = wd("other.sealed")
ctl("model", "seal", "--in", model, "--out", other, "--key-out", wd("other.key"), "--quiet")
odata = open(other, "rb").read()
cases = {
    "truncated mid-chunk": (data[:-100], "truncated"),
    "cut at a chunk boundary": (hdr + c0 + c1, "truncated"),
    "chunks reordered": (hdr + c1 + c0 + c2, "decrypt_failed"),
    "spliced with another file's chunk": (hdr + c0 + odata[hlen + CHUNK + 16:hlen + 2 * (CHUNK + 16)] + c2,
                                          "decrypt_failed"),
    # bytes after the last chunk make it fail to open as the last one
    "extended after the last chunk": (data + c2, "truncated"),
    "header altered (chunk size kept, nonce prefix flipped)": (hdr[:12] + bytes([hdr[12] ^ 1]) + hdr[13:] + c0 + c1 + c2,
                                                               "decrypt_failed"),
}
for what, (blob, code) in cases.items():
    open(wd("bad.sealed"), "wb").write(blob)
    before = listing()
    p = ctl("model", "open", "--in", wd("bad.sealed"), "--out", wd("bad.out"), "--key", wd("m.key"))
    check(p.returncode == 1 and f": {code}:" in err(p) and listing() == before,
          f"{what}: {code}, no output and no temporary file ({err(p).strip()[:120]})")
p = ctl("model", "open", "--in", wd("m.sealed"), "--out", wd("wrong.out"), "--key", wd("other.key"))
check(p.returncode == 1 and "decrypt_failed" in err(p) and "key_id" in err(p) and not os.path.exists(wd("wrong.out")),
      "the wrong key: decrypt_failed naming both key ids, nothing written")

# progress on a terminal: bar, rate, ETA, then the summary
master, slave = pty.openpty()
proc = subprocess.Popen([ATTESTCTL, "model", "seal", "--in", model, "--out", wd("tty.sealed"),
                         "--key-out", wd("tty.key")], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=slave)
os.close(slave)
out = b""
while True:
    r, _, _ = select.select([master], [], [], 30)
    if not r:
        break
    try:
        chunk = os.read(master, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
proc.wait()
os.close(master)
text = out.decode(errors="replace")
check(proc.returncode == 0 and "sealing [" in text and "ETA" in text and "/s" in text and "\r" in text
      and "sha256 " + model_sha in text, f"progress on a pseudo-terminal, then the summary ({text[-160:]!r})")
p = ctl("model", "seal", "--in", model, "--out", wd("pipe.sealed"), "--key-out", wd("pipe.key"))
check(p.returncode == 0 and "ETA" not in err(p) and err(p).startswith("sealed "),
      "not a terminal: no progress bar, the summary line only")

# ---- one step with the verifier, and the agent -------------------------------
pki = Pki(wd)
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()
llm = Process(wd, "llm", ["python3", STANDIN], sanitizer_check=False).start()
agents = []
try:
    owner = v.token("owner")
    open(wd("owner.token"), "w").write(owner)
    out = subprocess.run([AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm",
                          "--verifier", v.url, "--listen", "127.0.0.1:0", "--upstream", llm.url,
                          "--print-pcrs"], capture_output=True)
    st, _ = v.call("PUT", "/v1/policies/llm", body=json.loads(out.stdout), token=owner)
    check(st == 201, "the owner registers the agent's PCRs as policy llm")
    # pinning the model itself: the value attestctl computes is the agent's
    out = subprocess.run([AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm",
                          "--verifier", v.url, "--listen", "127.0.0.1:0", "--upstream", llm.url,
                          "--model", model, "--print-pcrs"], capture_output=True)
    p = ctl("policy", "pcr", "--extend", model)
    ext = json.loads(p.stdout) if p.returncode == 0 else {}
    check(p.returncode == 0 and ext.get("index") == 16 and [ext.get("value")] == json.loads(out.stdout)["pcrs"].get("16"),
          "policy pcr --extend MODEL gives the PCR16 the agent measures with --model")
    frm = "ab" * 48
    p = ctl("policy", "pcr", "--extend", model, "--index", "15", "--from", frm)
    want = hashlib.sha384(bytes.fromhex(frm) + hashlib.sha384(open(model, "rb").read()).digest()).hexdigest()
    check(p.returncode == 0 and json.loads(p.stdout)["value"] == want, "--from HEX: SHA-384(from || SHA-384(file))")
    p = ctl("policy", "pcr", "--extend", model, "--from", "abc")
    check(p.returncode == 2, "--from that is not a register value: usage error")
    p = ctl("policy", "kms-key-policy", "llm", "--principal", "arn:aws:iam::111122223333:role/llm",
            "--verifier", v.url, "--token-file", wd("owner.token"))
    kp = json.loads(p.stdout) if p.returncode == 0 else {"Statement": []}
    check(p.returncode == 0 and len(kp["Statement"]) == 4
          and "kms:RecipientAttestation:ImageSha384" in kp["Statement"][0]["Condition"]["StringEqualsIgnoreCase"],
          "the stored policy's current version as an AWS KMS key policy (Allow + a Deny per register)")

    open(wd("bad.token"), "w").write("not-a-token")
    before = listing()
    p = ctl("model", "seal", "--in", model, "--out", wd("w.sealed"), "--secret", "model-key", "--policy", "llm",
            "--verifier", v.url, "--token-file", wd("bad.token"))
    check(p.returncode == 1 and "401" in err(p) and listing() == before,
          f"the verifier refuses the upload (bad token): nothing written ({err(p).strip()[:100]})")
    p = ctl("model", "seal", "--in", model, "--out", wd("w.sealed"), "--secret", "model-key", "--policy", "llm",
            "--verifier", "http://127.0.0.1:1", "--token-file", wd("owner.token"), "--key-out", wd("w.key"))
    check(p.returncode != 0 and listing() == before,
          "the verifier cannot be reached: nothing written (the --key-out file is removed again)")
    p = ctl("model", "seal", "--in", model, "--out", wd("w.sealed"), "--secret", "model-key", "--policy", "llm",
            "--verifier", v.url, "--token-file", wd("owner.token"), "--json")
    j = json.loads(p.stdout) if p.returncode == 0 else {}
    check(p.returncode == 0 and j.get("sha256") == model_sha and j["header"]["secret"] == "model-key"
          and j["header"]["policy"] == "llm", "one-step seal: sealed, key stored as secret model-key bound to llm")
    check(listing() == sorted(before + ["w.sealed"]), "the data key never touches the disk")
    h = json.loads(ctl("model", "inspect", wd("w.sealed")).stdout)
    check(h["secret"] == "model-key" and h["policy"] == "llm" and h["key_id"] == j["header"]["key_id"],
          "inspect shows the secret and policy names")
    row = v.sql("SELECT policy FROM secrets WHERE name = 'model-key'")
    check(row and row[0][0] == "llm", "the verifier holds secret model-key bound to policy llm")

    # an existing secret is replaced only when asked (409 secret_exists, audited)
    kept = v.sql("SELECT value FROM secrets WHERE name = 'model-key'")
    before = listing()
    p = ctl("model", "seal", "--in", model, "--out", wd("w2.sealed"), "--secret", "model-key", "--policy", "llm",
            "--verifier", v.url, "--token-file", wd("owner.token"))
    check(p.returncode == 1 and "409" in err(p) and "secret_exists" in err(p) and listing() == before
          and v.sql("SELECT value FROM secrets WHERE name = 'model-key'") == kept,
          f"seal onto an existing secret without --replace: refused, nothing written ({err(p).strip()[:120]})")
    st, body = v.call("PUT", "/v1/secrets/model-key", body={"policy": "llm", "value": "AAAA"}, token=owner)
    check(st == 409 and body["error"]["code"] == "secret_exists" and "model-key" in body["error"]["message"]
          and v.sql("SELECT value FROM secrets WHERE name = 'model-key'") == kept,
          "PUT over an existing secret: 409 secret_exists, the value kept")
    row = v.sql("SELECT outcome, code FROM audit WHERE id = ?", (body["error"].get("audit_id"),))
    check(row == [("refused", "secret_exists")], f"the refusal is audited ({row})")
    st, body = v.call("PUT", "/v1/secrets/model-key?replace=yes", body={"policy": "llm", "value": "AAAA"},
                      token=owner)
    check(st == 400 and body["error"]["code"] == "bad_request", "?replace=yes: 400 bad_request")
    open(wd("spare.key"), "wb").write(b"0" * 32)
    p = ctl("secret", "put", "spare-key", "--policy", "llm", "--value-file", wd("spare.key"),
            "--verifier", v.url, "--token-file", wd("owner.token"))
    check(p.returncode == 0 and json.loads(p.stdout)["replaced"] is False, "secret put of a new name")
    open(wd("spare.key"), "wb").write(b"1" * 32)
    p = ctl("secret", "put", "spare-key", "--policy", "llm", "--value-file", wd("spare.key"),
            "--verifier", v.url, "--token-file", wd("owner.token"))
    check(p.returncode == 1 and "secret_exists" in err(p), "secret put of an existing name: secret_exists")
    p = ctl("secret", "put", "spare-key", "--policy", "llm", "--value-file", wd("spare.key"), "--replace",
            "--verifier", v.url, "--token-file", wd("owner.token"))
    j = json.loads(p.stdout) if p.returncode == 0 else {}
    row = v.sql("SELECT outcome, message FROM audit WHERE id = ?", (j.get("audit_id"),))
    check(p.returncode == 0 and j["replaced"] is True and row and row[0][0] == "ok" and "replaced" in row[0][1],
          f"secret put --replace replaces it, audited as a replacement ({row})")
    p = ctl("model", "seal", "--in", model, "--out", wd("spare.sealed"), "--secret", "spare-key", "--policy",
            "llm", "--replace", "--verifier", v.url, "--token-file", wd("owner.token"), "--quiet")
    check(p.returncode == 0 and os.path.exists(wd("spare.sealed")), "model seal --replace replaces the secret")

    # the agent refuses a sealed file recorded for another secret name
    p = subprocess.run([AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm",
                        "--verifier", v.url, "--listen", "127.0.0.1:0", "--upstream", llm.url,
                        "--model-sealed", wd("spare.sealed"), "--model-secret", "model-key",
                        "--model-out", wd("wrong.out")], capture_output=True, timeout=30)
    check(p.returncode == 2 and "secret_name_mismatch" in err(p) and "'spare-key'" in err(p)
          and "'model-key'" in err(p) and not os.path.exists(wd("wrong.out")),
          f"agent: --model-secret other than the file's secret name refused at start ({err(p).strip()[:160]})")

    a = Process(wd, "agent-model", [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm",
                                    "--verifier", v.url, "--listen", "127.0.0.1:0", "--upstream", llm.url,
                                    "--model-sealed", wd("w.sealed"), "--model-secret", "model-key",
                                    "--model-out", wd("w.out")])
    agents.append(a)
    a.start()
    end = time.time() + 30
    while time.time() < end and not http("GET", a.url + "/v1/status")[1].get("model_ready"):
        time.sleep(0.1)
    check(os.path.exists(wd("w.out")) and sha(wd("w.out")) == model_sha,
          "an agent with matching PCRs gets the key and writes the byte-exact model")
    a.stop()
    b = Process(wd, "agent-other", [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm",
                                    "--verifier", v.url, "--listen", "127.0.0.1:0", "--upstream", llm.url + "/x",
                                    "--model-sealed", wd("w.sealed"), "--model-secret", "model-key",
                                    "--model-out", wd("leak.out")])
    agents.append(b)
    b.start()
    end = time.time() + 15
    st = {}
    while time.time() < end and "pcr_mismatch" not in st.get("last_error", ""):
        st = http("GET", b.url + "/v1/status")[1]
        time.sleep(0.1)
    check("pcr_mismatch" in st.get("last_error", ""), "an agent with another PCR2 is refused (pcr_mismatch)")
    check(not os.path.exists(wd("leak.out")), "and writes nothing")
    b.stop()

    # rotation: a new version admits the new build without re-encrypting;
    # the version after it drops the old build, which is then refused
    def pcrs_of(upstream):
        o = subprocess.run([AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm",
                            "--verifier", v.url, "--listen", "127.0.0.1:0", "--upstream", upstream,
                            "--print-pcrs"], capture_output=True)
        return json.loads(o.stdout)
    old_p, new_p = pcrs_of(llm.url), pcrs_of(llm.url + "/x")
    both = dict(new_p, pcrs={k: sorted(set(old_p["pcrs"][k] + new_p["pcrs"][k])) for k in old_p["pcrs"]})
    st, _ = v.call("PUT", "/v1/policies/llm?allow_lint=1", body=both, token=owner)
    check(st == 201, "policy llm v2 admits the old and the new build")

    # the simulator's instance keeps its session: restart at the same endpoint
    def run_agent(name, upstream, out_name):
        ag = Process(wd, name, [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm",
                                "--verifier", v.url, "--listen", a.url.split("//")[1], "--upstream", upstream,
                                "--model-sealed", wd("w.sealed"), "--model-secret", "model-key",
                                "--model-out", wd(out_name)])
        agents.append(ag)
        ag.start()
        end = time.time() + 30
        st_ = {}
        while time.time() < end and not st_.get("model_ready") and "pcr_mismatch" not in st_.get("last_error", ""):
            st_ = http("GET", ag.url + "/v1/status")[1]
            time.sleep(0.1)
        ag.stop()
        return st_
    st_ = run_agent("agent-new", llm.url + "/x", "new.out")
    check(os.path.exists(wd("new.out")) and sha(wd("new.out")) == model_sha,
          f"the new build opens the same sealed file (no re-encryption) ({st_})")
    st, _ = v.call("PUT", "/v1/policies/llm", body=new_p, token=owner)
    check(st == 201, "policy llm v3 admits only the new build")
    st_ = run_agent("agent-old", llm.url, "old.out")
    check("pcr_mismatch" in st_.get("last_error", "") and not os.path.exists(wd("old.out")),
          "the old build is refused now (pcr_mismatch) and gets no model")
finally:
    for a_ in agents:
        if a_.proc:
            a_.stop()
    llm.stop()
    v.stop()
    wd.cleanup()
finish()
