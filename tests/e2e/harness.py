"""harness: start the real attest binaries on loopback ports they choose
themselves, talk to them over HTTP, and always clean up. Shared by the
end-to-end tests in tests/e2e/*.py (standard library only)."""
import base64
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BUILD = os.environ.get("AT_BUILD") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SRCDIR = os.environ.get("AT_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
ATTESTCTL = os.path.join(BUILD, "ctl", "attestctl")
VERIFIER = os.path.join(BUILD, "verifier", "attest-verifier")
AGENT = os.path.join(BUILD, "agent", "attest-agent")
STANDIN = os.path.join(SRCDIR, "scripts", "llm-standin.py")
# AT_DB_BACKEND=pg: every Verifier gets a PostgreSQL database (tests/e2e/pg.py)
# named after its SQLite path, instead of the file; the rest is unchanged.
DB_BACKEND = os.environ.get("AT_DB_BACKEND", "sqlite")
_pg_paths = {}  # database URL -> the path its side files live beside


def pg_database(path):
    """The PostgreSQL database standing for a SQLite path (created once)."""
    import hashlib
    import pg
    for url, p in _pg_paths.items():
        if p == path:
            return url
    url = pg.shared().create_db("v_" + hashlib.sha256(path.encode()).hexdigest()[:24])
    _pg_paths[url] = path
    return url

failures = []


def check(cond, what):
    """Record a failed expectation (the test goes on, then fails at the end)."""
    if cond:
        print(f"ok   {what}")
    else:
        print(f"FAIL {what}")
        failures.append(what)
    return cond


def finish():
    if failures:
        print(f"\n{len(failures)} check(s) failed:")
        for f in failures:
            print(f"  - {f}")
        sys.exit(1)
    print("\nall checks passed")
    sys.exit(0)


def run(*args, check_rc=None, input=None, env=None):
    p = subprocess.run(list(args), capture_output=True, input=input, env=env)
    if check_rc is not None and p.returncode != check_rc:
        raise RuntimeError(f"{args} exited {p.returncode}: {p.stderr.decode()}")
    return p


def ctl(*args, **kw):
    return run(ATTESTCTL, *args, **kw)


def http(method, url, body=None, token=None, raw=None, headers=None, timeout=30):
    """Returns (status, parsed JSON or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        text = e.read()
        status = e.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode(errors="replace")


class Workdir:
    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix=f"attest-{name}-")

    def __call__(self, *parts):
        return os.path.join(self.path, *parts)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def log_tail(path, lines=40):
    """Print the end of a server's log: an unclean exit says why there."""
    try:
        tail = open(path, errors="replace").read().splitlines()[-lines:]
    except OSError as e:
        tail = [f"(cannot read {path}: {e})"]
    print(f"----- last {len(tail)} lines of {path}")
    for line in tail:
        print("  " + line)


def check_json_log(path, name):
    """Every line our servers write to stderr is one JSON object with ts,
    level, event and msg (libmicrohttpd's own messages included)."""
    bad = []
    for i, line in enumerate(open(path, errors="replace").read().splitlines(), 1):
        if not line.strip():
            continue
        try:
            o = json.loads(line)
            ok = isinstance(o, dict) and all(k in o for k in ("ts", "level", "event", "msg"))
        except ValueError:
            ok = False
        if not ok:
            bad.append(f"{i}: {line[:200]}")
    check(not bad, f"{name}: every log line is one JSON object")
    for b in bad[:5]:
        print("  not JSON: " + b)


class Verifier:
    """attest-verifier on 127.0.0.1:<free port> with its own SQLite file (or
    PostgreSQL database: AT_DB_BACKEND=pg)."""

    def __init__(self, wd, roots=(), extra=(), db=None):
        self.wd = wd
        self.db = self.path = db or wd("attest.db")
        if DB_BACKEND == "pg":
            if self.db in _pg_paths:
                self.path = _pg_paths[self.db]
            else:
                self.db = pg_database(self.path)
        self.roots = list(roots)
        self.extra = list(extra)
        self.proc = None
        self.log = wd("verifier.log")

    def start(self):
        portfile = self.wd("verifier.port")
        if os.path.exists(portfile):
            os.unlink(portfile)
        args = [VERIFIER, "--listen", "127.0.0.1:0", "--db", self.db, "--port-file", portfile]
        for r in self.roots:
            args += ["--root", r]
        args += self.extra
        if DB_BACKEND == "pg":
            args += ["--storage-key-file", self.path + ".storage-key",
                     "--admin-token-file", self.path + ".admin-token"]
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=self.logf)
        for _ in range(500):
            if os.path.exists(portfile):
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"verifier exited {self.proc.returncode}: {open(self.log).read()}")
            time.sleep(0.01)
        self.port = int(open(portfile).read())
        self.url = f"http://127.0.0.1:{self.port}"
        with open(self.path + ".admin-token") as f:
            self.admin = f.read().strip()
        return self

    def stop(self, sig=signal.SIGTERM):
        """Stop; returns the exit status. A sanitizer report fails the test."""
        if not self.proc:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.logf.close()
        self.proc = None
        if sig == signal.SIGTERM:
            log = open(self.log, errors="replace").read()
            check("AddressSanitizer" not in log and "LeakSanitizer" not in log
                  and "runtime error:" not in log, "verifier log has no sanitizer report")
            check(rc == 0, f"verifier exited cleanly on SIGTERM (status {rc})")
            check_json_log(self.log, "verifier")
            if rc != 0:
                log_tail(self.log)
        return rc

    def call(self, method, path, body=None, token=None, raw=None, headers=None):
        return http(method, self.url + path, body=body, token=token, raw=raw, headers=headers)

    def token(self, role):
        p = ctl("token", "create", "--db", self.db, "--role", role, check_rc=0)
        return p.stdout.decode().strip()

    def audit_row(self, audit_id):
        st, body = self.call("GET", f"/v1/audit?cursor={audit_id - 1}&limit=1", token=self.admin)
        entries = body.get("entries", []) if isinstance(body, dict) else []
        return entries[0] if entries and entries[0]["id"] == audit_id else None

    def challenge(self):
        st, body = self.call("POST", "/v1/challenge", body={})
        assert st == 201, (st, body)
        return base64.b64decode(body["nonce"])

    def sql(self, query, params=()):
        if DB_BACKEND == "pg":
            import pg
            from urllib.parse import urlparse
            return pg.query(pg.shared(), urlparse(self.db).path.lstrip("/"), query, params)
        con = sqlite3.connect(self.db, timeout=10)
        try:
            cur = con.execute(query, params)
            rows = cur.fetchall()
            con.commit()
            return rows
        finally:
            con.close()


class Process:
    """A background binary that writes its port to a file (--port-file)."""

    def __init__(self, wd, name, args, sanitizer_check=True):
        self.wd, self.name, self.args = wd, name, list(args)
        self.log = wd(f"{name}.log")
        self.portfile = wd(f"{name}.port")
        self.proc = None
        self.sanitizer_check = sanitizer_check

    def start(self):
        if os.path.exists(self.portfile):
            os.unlink(self.portfile)
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args + ["--port-file", self.portfile], stdout=self.logf,
                                     stderr=self.logf)
        for _ in range(500):
            if os.path.exists(self.portfile):
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {open(self.log).read()}")
            time.sleep(0.01)
        self.port = int(open(self.portfile).read())
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def stop(self):
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.logf.close()
        self.proc = None
        if self.sanitizer_check:
            log = open(self.log, errors="replace").read()
            check("AddressSanitizer" not in log and "LeakSanitizer" not in log
                  and "runtime error:" not in log, f"{self.name} log has no sanitizer report")
            check(rc == 0, f"{self.name} exited cleanly on SIGTERM (status {rc})")
            check_json_log(self.log, self.name)
            if rc != 0:
                log_tail(self.log)
        return rc


class Pki:
    """A simulator PKI (attestctl sim init) and document minting."""

    def __init__(self, wd, name="pki"):
        self.dir = wd(name)
        self.wd = wd
        ctl("sim", "init", self.dir, check_rc=0)
        self.root = os.path.join(self.dir, "root.pem")

    def doc(self, nonce=None, public_key=None, fmt=None, pcrs=None, extra=(), purpose="session",
            endpoint=None):
        """purpose/endpoint: the document binding in user_data (lib/binding);
        the default is what POST /v1/attestations without an endpoint admits.
        purpose=None: no binding (extra may then carry --user-data)."""
        out = self.wd(f"doc-{secrets.token_hex(6)}.cbor")
        args = ["sim", "doc", "--pki", self.dir, "-o", out]
        if purpose is not None and "--user-data" not in extra:
            args += ["--purpose", purpose]
            if endpoint is not None:
                args += ["--endpoint", endpoint]
        if nonce is not None:
            args += ["--nonce", nonce.hex()]
        if public_key is not None:
            kc = self.wd(f"kc-{secrets.token_hex(6)}.bin")
            with open(kc, "wb") as f:
                f.write(public_key)
            args += ["--public-key", kc]
        if fmt:
            args += ["--format", fmt]
        for i, v in (pcrs or {}).items():
            args += ["--pcr", f"{i}={v}"]
        args += list(extra)
        ctl(*args, check_rc=0)
        with open(out, "rb") as f:
            return f.read()

    def policy(self, fmt=None, **fields):
        args = ["sim", "pcrs", "--pki", self.dir]
        if fmt:
            args += ["--format", fmt]
        p = json.loads(ctl(*args, check_rc=0).stdout)
        p.update(fields)
        return p


class KeyPair:
    """An agent's HPKE key: a key file (lib/ohttp key-file format) and its
    RFC 9458 key configuration, made with the openssl command line."""

    def __init__(self, wd, key_id=1):
        pem = wd(f"x25519-{secrets.token_hex(4)}.pem")
        run("openssl", "genpkey", "-algorithm", "X25519", "-out", pem, check_rc=0)
        der = run("openssl", "pkey", "-in", pem, "-outform", "DER", check_rc=0).stdout
        pub = run("openssl", "pkey", "-in", pem, "-pubout", "-outform", "DER", check_rc=0).stdout
        self.private = der[-32:]
        self.public = pub[-32:]
        self.key_id = key_id
        # key id, KEM X25519, public key, one (HKDF-SHA256, AES-128-GCM) pair
        self.config = bytes([key_id, 0x00, 0x20]) + self.public + bytes([0, 4, 0, 1, 0, 1])
        self.file = wd(f"keys-{secrets.token_hex(4)}.txt")
        fd = os.open(self.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, f"attest-ohttp-keys v1\nkey {key_id} x25519 {self.private.hex()} 0001:0001\n".encode())
        os.close(fd)


def b64(b):
    return base64.b64encode(b).decode()
