"""End-to-end: the operator's rough edges (issue 11), tried as a new user
would: start-up refusals that leave no state behind, a port in use, the
log level, attestctl's --version/--help/missing flags, token files 0600,
absent databases, audit paging and action names, and the messages."""
import glob
import json
import os
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, ATTESTCTL, BUILD, VERIFIER, Pki, Verifier, Workdir, check, ctl,
                     finish, run)

GATEWAY = os.path.join(BUILD, "gateway", "attest-gateway")
wd = Workdir("operator")
pki = Pki(wd)


def out_of(p):
    return (p.stdout + p.stderr).decode(errors="replace")


try:
    # ---- verifier start-up: every input checked before any state --------
    db = wd("fresh.db")
    p = run(VERIFIER, "--listen", "127.0.0.1:0", "--db", db, "--root", wd("nope.pem"))
    check(p.returncode != 0 and "nope.pem" in out_of(p), f"missing --root refused, named ({p.returncode})")
    check(not glob.glob(db + "*"), "missing --root: no database, admin token or storage key created")
    bad = wd("bad.pem")
    open(bad, "w").write("not a certificate\n")
    p = run(VERIFIER, "--listen", "127.0.0.1:0", "--db", db, "--tls-cert", bad, "--tls-key", bad)
    check(p.returncode != 0 and "--tls-cert" in out_of(p), "a TLS file that is not PEM refused")
    check(not glob.glob(db + "*"), "bad TLS files: no state created")
    for prog in (VERIFIER, AGENT, GATEWAY):
        p = run(prog, "--log-level", "verbose")
        check(p.returncode == 2 and "--log-level" in out_of(p) and "verbose" in out_of(p),
              f"{os.path.basename(prog)} --log-level verbose refused (exit {p.returncode})")
    p = run(VERIFIER, "--db", wd("typo.db"), "--rotate-signing-key")
    check(p.returncode != 0 and "typo.db" in out_of(p), "--rotate-signing-key on an absent database refused")
    check(not os.path.exists(wd("typo.db")), "--rotate-signing-key made no database")

    # TLS on is said at start-up
    cert, key = wd("tls.crt"), wd("tls.key")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", check_rc=0)
    other = wd("other.key")
    run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", other,
        check_rc=0)
    p = run(VERIFIER, "--listen", "127.0.0.1:0", "--db", db, "--tls-cert", cert, "--tls-key", other)
    check(p.returncode != 0 and "does not match" in out_of(p), "a TLS key of another certificate refused")
    check(not glob.glob(db + "*"), "mismatched TLS pair: no state created")
    vt = Verifier(wd, roots=[pki.root], db=wd("tls.db"), extra=["--tls-cert", cert, "--tls-key", key])
    vt.log = wd("verifier-tls.log")
    vt.start()
    vt.stop()
    start = [json.loads(l) for l in open(vt.log) if '"start"' in l]
    check(start and "TLS on" in start[0]["msg"], f"start-up line says TLS on ({start[:1]})")

    # ---- a second verifier on a port in use ------------------------------
    v = Verifier(wd, roots=[pki.root]).start()
    p = run(VERIFIER, "--listen", f"127.0.0.1:{v.port}", "--db", wd("second.db"), "--root", pki.root)
    check(p.returncode != 0 and "address in use" in out_of(p),
          f"second verifier on port {v.port} refused: address in use (exit {p.returncode})")
    check(not any(os.path.exists(wd("second.db" + x)) for x in ("", ".admin-token", ".storage-key")),
          "the refused verifier created no database, admin token or storage key")
    for line in out_of(p).splitlines():
        if line.startswith("{"):
            json.loads(line)  # libmicrohttpd's own message is JSON too
    check(all(l.startswith("{") for l in p.stderr.decode().splitlines() if l),
          "the refused start logs JSON lines only (libmicrohttpd's message included)")

    # ---- attestctl: version, help, missing flags -------------------------
    p = ctl("--version")
    check(p.returncode == 0 and p.stdout.decode().startswith("attestctl "), "attestctl --version")
    cmds = ["attest", "audit", "ear", "hpke", "model", "ohttp", "peer", "policy", "secret", "session",
            "sim", "token", "verify", "version"]
    for c in cmds:
        p = ctl(c, "--help")
        check(p.returncode == 0 and b"usage" in p.stdout.lower() + (b"usage" if c == "version" else b""),
              f"attestctl {c} --help: usage on stdout, exit 0 (got {p.returncode})")
    # Every subcommand each usage names: `attestctl C S --help` is usage on stdout, exit 0.
    subs = set()
    for c in cmds:
        for line in ctl(c, "--help").stdout.decode().splitlines():
            w = line.replace("usage:", "").split()
            if len(w) >= 3 and w[0] == "attestctl" and w[1] == c and w[2][0].isalpha() and w[2].islower():
                subs.update((c, sub) for sub in w[2].split("|"))
    check(len(subs) >= 20, f"subcommands found in the usages ({len(subs)})")
    for c, s in sorted(subs):
        p = ctl(c, s, "--help")
        check(p.returncode == 0 and b"usage" in p.stdout.lower() and not p.stderr,
              f"attestctl {c} {s} --help: usage on stdout, exit 0 (got {p.returncode} {p.stderr[:60]!r})")
    check(not os.path.exists("--help"), "no subcommand took --help for an argument (sim init made a folder)")
    p = ctl("attest", "--help")
    check(b"secret release" not in p.stdout and b"attestctl attest" in p.stdout,
          "attest --help shows attest's usage only")
    p = ctl("attest", "--policy", "p", "--key-file", "k", "--pki", pki.dir)
    check(p.returncode == 2 and "missing --state-file" in out_of(p), "attest: the missing flag is named")
    p = ctl("secret", "put", "s", "--policy", "p")
    check(p.returncode == 2 and "missing --value-file" in out_of(p), "secret put: the missing flag is named")
    p = ctl("token", "create", "--db", v.db)
    check(p.returncode == 2 and "missing --role" in out_of(p), "token create: missing --role named")
    p = ctl("ear", "verify", "tok")
    check(p.returncode == 2 and "missing --jwks" in out_of(p), "ear verify: missing --jwks named")

    # ---- token create: absent database, --create, --out 0600 -------------
    p = ctl("token", "create", "--db", wd("typo.db"), "--role", "owner")
    check(p.returncode == 2 and "typo.db" in out_of(p) and "--create" in out_of(p),
          "token create --db typo.db refused, --create suggested")
    check(not os.path.exists(wd("typo.db")), "token create made no database")
    p = ctl("token", "create", "--db", wd("new.db"), "--role", "owner", "--create")
    check(p.returncode == 0 and os.path.exists(wd("new.db")), "token create --create makes the database")
    tf = wd("gateway.token")
    p = ctl("token", "create", "--db", v.db, "--role", "gateway", "--out", tf)
    mode = stat.S_IMODE(os.stat(tf).st_mode) if os.path.exists(tf) else None
    check(p.returncode == 0 and p.stdout == b"" and mode == 0o600,
          f"token create --out writes the token 0600, nothing on stdout (mode {mode and oct(mode)})")
    st, _ = v.call("GET", "/v1/sessions", token=open(tf).read().strip())
    check(st == 200, "the token written by --out works")

    # ---- audit: --cursor, next, action names ------------------------------
    admin_file = v.db + ".admin-token"
    owner = v.token("owner")
    for i in range(3):
        v.call("PUT", f"/v1/policies/p{i}", body=pki.policy(), token=owner)
    base = ["--verifier", v.url, "--token-file", admin_file]
    p = ctl("audit", "query", "--action", "policy.create", *base)
    check(p.returncode == 2 and "policy.put" in out_of(p) and "unknown action" in out_of(p),
          "audit query --action with an unknown name refused, the names listed")
    p = ctl("audit", "query", "--action", "policy.put", "--limit", "2", *base)
    rows = [json.loads(l) for l in p.stdout.decode().splitlines()]
    err = p.stderr.decode()
    check(p.returncode == 0 and len(rows) == 2 and "--cursor" in err, f"audit query shows the next cursor ({err!r})")
    cur = err.split("--cursor", 1)[1].split()[0] if "--cursor" in err else "0"
    p = ctl("audit", "query", "--action", "policy.put", "--limit", "2", "--cursor", cur, *base)
    more = [json.loads(l) for l in p.stdout.decode().splitlines()]
    check(p.returncode == 0 and len(more) == 1 and more[0]["id"] > rows[-1]["id"],
          "audit query --cursor returns the next page")
    seen = {json.loads(l)["action"] for l in ctl("audit", "export", *base, check_rc=0).stdout.decode().splitlines()}
    for a in sorted(seen):
        p = ctl("audit", "query", "--action", a, "--limit", "1", *base)
        check(p.returncode == 0, f"audit action {a} seen in the log is a known name")

    # ---- messages ---------------------------------------------------------
    p = ctl("policy", "put", "x", wd("nope.json"), *base)
    check(p.returncode == 2 and "(line -1)" not in out_of(p) and "nope.json" in out_of(p)
          and "No such file" in out_of(p), f"policy put of a missing file: no line -1 ({out_of(p).strip()})")
    lintf = wd("lint.json")
    json.dump({"format": "nitro-enclave", "pcrs": {"0": ["00" * 48]}}, open(lintf, "w"))
    of = wd("owner.token")
    ctl("token", "create", "--db", v.db, "--role", "owner", "--out", of, check_rc=0)
    p = ctl("policy", "put", "dbg", lintf, "--verifier", v.url, "--token-file", of)
    check("--allow-lint" in out_of(p), "a lint refusal tells CLI users about --allow-lint")
    p = ctl("secret", "release", "s", "--state-file", wd("absent.state"))
    check(p.returncode == 2 and "No such file" in out_of(p) and "not a state file" not in out_of(p),
          f"missing state file said as missing ({out_of(p).strip()})")
    p = ctl("ear", "verify", "--jwks", v.url + "/wrong/jwks.json", "tok")
    msg = out_of(p)
    check(p.returncode == 2 and "404" in msg and ": (HTTP" not in msg, f"ear verify against a wrong URL says why ({msg.strip()})")
    p = ctl("sim", "doc", "--pki", pki.dir, "-o", wd("d.cbor"), "--pcr", "40=" + "ab" * 48)
    check(p.returncode != 0 and "index 40" in out_of(p), f"sim doc --pcr 40= blames the index ({out_of(p).strip()})")
    p = ctl("sim", "doc", "--pki", pki.dir, "-o", wd("d.cbor"), "--pcr", "4=abc")
    check(p.returncode != 0 and "96 hex" in out_of(p) and "--pcr 4" in out_of(p), "sim doc --pcr 4=abc blames the value")
    p = run(VERIFIER, "--config", wd("nope.json"))
    check(p.returncode == 2 and "(line -1)" not in out_of(p) and "nope.json" in out_of(p),
          "verifier --config of a missing file: no line -1")

    # ---- agent: a non-loopback upstream -----------------------------------
    common = [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm", "--verifier", v.url,
              "--listen", "127.0.0.1:0", "--print-pcrs"]
    p = run(*common, "--upstream", "http://192.0.2.10:8080")
    check(p.returncode == 2 and "--allow-remote-upstream" in out_of(p), "agent refuses a remote --upstream")
    for local in ("http://127.0.0.1:9", "http://localhost:9/v1", "http://[::1]:9"):
        p = run(*common, "--upstream", local)
        check(p.returncode == 0, f"agent accepts the local upstream {local}")
    p1 = run(*common, "--upstream", "http://192.0.2.10:8080", "--allow-remote-upstream")
    check(p1.returncode == 0, "--allow-remote-upstream accepts it")
    base_pcrs = json.loads(run(*common, "--upstream", "http://127.0.0.1:9").stdout)["pcrs"]
    flagged = json.loads(run(*common, "--upstream", "http://127.0.0.1:9", "--allow-remote-upstream").stdout)["pcrs"]
    check(flagged["2"] != base_pcrs["2"] and flagged["0"] == base_pcrs["0"],
          "--allow-remote-upstream is measured into PCR2")
    v.stop()
finally:
    wd.cleanup()
finish()
