"""End-to-end: attestctl policy import reads real build outputs strictly.
The samples in policies/examples/ (nitro-cli build-enclave / describe-eif,
nitro-tpm-pcr-compute) round trip into a policy that admits a simulator
document with those PCRs; unknown keys, missing registers, mixed or
contradicting formats are refused with a message naming the problem."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SRCDIR, KeyPair, Pki, Workdir, check, ctl, finish

wd = Workdir("import")
EX = os.path.join(SRCDIR, "policies", "examples")
eif, desc, tpm = (os.path.join(EX, f) for f in
                  ("nitro-cli-build-enclave.json", "nitro-cli-describe-eif.json", "nitro-tpm-pcr-compute.json"))


def err(p):
    return p.stderr.decode()


def write(name, obj):
    open(wd(name), "w").write(json.dumps(obj))
    return wd(name)


try:
    pki = Pki(wd)
    kp = KeyPair(wd)
    for src, fmt, regs, tool in ((eif, "nitro-enclave", ["0", "1", "2"], "nitro-cli"),
                                 (desc, "nitro-enclave", ["0", "1", "2", "8"], "nitro-cli"),
                                 (tpm, "nitro-tpm", ["12", "4", "7"], "nitro-tpm-pcr-compute")):
        p = ctl("policy", "import", src)
        pol = json.loads(p.stdout) if p.returncode == 0 else {}
        check(p.returncode == 0 and pol.get("format") == fmt and sorted(pol.get("pcrs", {})) == regs
              and pol["provenance"]["tool"] == tool, f"{os.path.basename(src)}: a {fmt} policy pinning {regs}")
        if p.returncode:
            continue
        open(wd("pol.json"), "w").write(p.stdout.decode())
        m = json.load(open(src))["Measurements"]
        pcrs = {k[3:]: v for k, v in m.items() if k.startswith("PCR")}
        open(wd("doc.cbor"), "wb").write(pki.doc(fmt=fmt, pcrs=pcrs, purpose=None, public_key=kp.config,
                                                 nonce=bytes(range(16))))
        p = ctl("verify", "--root", pki.root, "--policy", wd("pol.json"), "--nonce", bytes(range(16)).hex(),
                wd("doc.cbor"))
        check(p.returncode == 0, f"  ... which admits a simulator document with those PCRs ({p.stdout[:160]})")
        other = dict(pcrs, **{min(pcrs): "ab" * 48})
        open(wd("doc2.cbor"), "wb").write(pki.doc(fmt=fmt, pcrs=other, purpose=None, public_key=kp.config,
                                                  nonce=bytes(range(16))))
        p = ctl("verify", "--root", pki.root, "--policy", wd("pol.json"), "--nonce", bytes(range(16)).hex(),
                wd("doc2.cbor"))
        check(p.returncode == 1 and b"pcr_mismatch" in p.stdout, "  ... and refuses one with another value")

    p = ctl("policy", "import", "-", input=open(eif, "rb").read())
    check(p.returncode == 0 and json.loads(p.stdout)["provenance"]["files"] == ["(stdin)"], "import - reads stdin")

    m = json.load(open(eif))
    m["Measurements"]["PCR_2"] = m["Measurements"].pop("PCR2")
    p = ctl("policy", "import", write("typo.json", m))
    check(p.returncode == 2 and 'unknown measurement key "PCR_2"' in err(p) and p.stdout == b"",
          f"a typo PCR_2 is an error naming the key ({err(p).strip()})")
    m = json.load(open(eif))
    del m["Measurements"]["PCR2"]
    p = ctl("policy", "import", write("missing.json", m))
    check(p.returncode == 2 and "PCR2 is missing" in err(p), "an EIF file without PCR2 is an error")
    p = ctl("policy", "import", "--allow-missing", "2", wd("missing.json"))
    check(p.returncode == 0 and "2" not in json.loads(p.stdout)["pcrs"], "... unless --allow-missing 2")
    m = json.load(open(tpm))
    del m["Measurements"]["PCR7"]
    p = ctl("policy", "import", write("tpm-missing.json", m))
    check(p.returncode == 2 and "PCR7 is missing" in err(p), "a NitroTPM file without PCR7 is an error")
    m = json.load(open(eif))
    m["Measurements"]["PCR1"] = "abc"
    p = ctl("policy", "import", write("short.json", m))
    check(p.returncode == 2 and "PCR1: expected 96 hex digits" in err(p), "a value that is not SHA-384 hex: refused")
    m = json.load(open(eif))
    m["Measurements"]["HashAlgorithm"] = "Sha256 { ... }"
    p = ctl("policy", "import", write("sha256.json", m))
    check(p.returncode == 2 and "HashAlgorithm" in err(p), "another hash algorithm: refused")
    p = ctl("policy", "import", eif, tpm)
    check(p.returncode == 2 and "mixed" in err(p) and p.stdout == b"", "an EIF file and a NitroTPM file: refused")
    p = ctl("policy", "import", "--format", "nitro-tpm", eif)
    check(p.returncode == 2 and "--format nitro-tpm" in err(p), "--format that disagrees with the file: refused")
    p = ctl("policy", "import", write("none.json", {"pcr0": "00"}))
    check(p.returncode == 2 and "no \"Measurements\"" in err(p), "a file of neither kind: refused")
    p = ctl("policy", "import", eif, desc)
    pol = json.loads(p.stdout) if p.returncode == 0 else {}
    check(p.returncode == 0 and len(pol["pcrs"]["0"]) == 1 and "8" in pol["pcrs"],
          "two builds of one image merge (same values kept once)")

    # AWS KMS key policy: the documented condition keys, an explicit Deny per register
    DOC_KEYS = {"nitro-enclave": "kms:RecipientAttestation:PCR", "nitro-tpm": "kms:RecipientAttestation:NitroTPMPCR"}
    for src, fmt in ((eif, "nitro-enclave"), (tpm, "nitro-tpm")):
        open(wd("pol.json"), "wb").write(ctl("policy", "import", src).stdout)
        p = ctl("policy", "kms-key-policy", "--file", wd("pol.json"), "--principal", "arn:aws:iam::111122223333:role/llm",
                "--key-arn", "arn:aws:kms:us-east-1:111122223333:key/k1")
        kp_ = json.loads(p.stdout) if p.returncode == 0 else {"Statement": []}
        pcrs = {k[3:]: v for k, v in json.load(open(src))["Measurements"].items() if k.startswith("PCR")}
        want = {(("kms:RecipientAttestation:ImageSha384" if fmt == "nitro-enclave" and i == "0" else DOC_KEYS[fmt] + i)): v
                for i, v in pcrs.items()}
        st = kp_["Statement"]
        allow = [x for x in st if x["Effect"] == "Allow"]
        deny = [x for x in st if x["Effect"] == "Deny"]
        check(p.returncode == 0 and kp_.get("Version") == "2012-10-17" and len(allow) == 1
              and allow[0]["Principal"] == {"AWS": "arn:aws:iam::111122223333:role/llm"}
              and allow[0]["Resource"] == "arn:aws:kms:us-east-1:111122223333:key/k1"
              and allow[0]["Condition"] == {"StringEqualsIgnoreCase": want},
              f"kms-key-policy ({fmt}): one Allow conditioned on {sorted(want)}")
        check(len(deny) == len(want) and all(d["Principal"] == {"AWS": "*"} and "kms:Decrypt" in d["Action"]
                                             and "kms:GenerateDataKey" in d["Action"] for d in deny)
              and sorted(k for d in deny for k in d["Condition"]["StringNotEqualsIgnoreCase"]) == sorted(want),
              f"kms-key-policy ({fmt}): an explicit Deny of Decrypt/GenerateDataKey per register for everyone else")
    m = json.load(open(eif))
    m["Measurements"]["PCR1"] = "cd" * 48
    open(wd("pol2.json"), "wb").write(ctl("policy", "import", eif, write("build2.json", m)).stdout)
    p = ctl("policy", "kms-key-policy", "--file", wd("pol2.json"))
    kp_ = json.loads(p.stdout) if p.returncode == 0 else {"Statement": [{"Condition": {}}]}
    check(p.returncode == 0 and "PCR1 allows 2 values" in err(p) and "no --principal" in err(p)
          and len(kp_["Statement"][0]["Condition"]["StringEqualsIgnoreCase"]["kms:RecipientAttestation:PCR1"]) == 2,
          "more than one value per register: a list in the condition, and a lint warning")
    p = ctl("policy", "kms-key-policy", "--file", write("empty.json", {"format": "nitro-enclave", "pcrs": {}}))
    check(p.returncode == 2 and p.stdout == b"", "a policy that pins nothing: no KMS policy")
finally:
    wd.cleanup()
finish()
