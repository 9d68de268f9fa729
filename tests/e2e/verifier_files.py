"""End-to-end: what attest-verifier writes and reads must not be half
there (issue 15). The bootstrap admin token and the storage key are written
atomically (lib/file): a leftover temporary file from a crash mid-write is
never read, no temporary file stays behind, and a partial file at the real
path stops the start. Listings that read many rows answer 500 internal when
SQLite fails mid-list, never 200 with a partial list."""
import glob
import os
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (VERIFIER, KeyPair, Pki, Verifier, Workdir, b64, check, finish)

wd = Workdir("files")
pki = Pki(wd)
kp = KeyPair(wd)
db = wd("attest.db")
tokfile, keyfile = db + ".admin-token", db + ".storage-key"


def start_fails(why):
    p = subprocess.run([VERIFIER, "--listen", "127.0.0.1:0", "--db", db, "--root", pki.root],
                       capture_output=True, timeout=60)
    out = (p.stdout + p.stderr).decode(errors="replace")
    check(p.returncode != 0, f"{why}: the verifier refuses to start (status {p.returncode})")
    return out


# ---- leftovers of a crash mid-write are never read -------------------------
for f, partial in ((tokfile, b"0123456789abcdef0123"), (keyfile, b"\x01" * 20)):
    with open(f + ".tmp-AbC123", "wb") as out:
        out.write(partial)
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()
try:
    check(v.admin != "0123456789abcdef0123" and len(v.admin) >= 32,
          "a fresh admin token was generated, not the leftover temporary file's")
    check(os.stat(tokfile).st_mode & 0o777 == 0o600 and os.stat(keyfile).st_mode & 0o777 == 0o600,
          "admin token and storage key files are 0600")
    check(os.path.getsize(keyfile) == 32, "the storage key file holds 32 bytes")
    st, body = v.call("GET", "/v1/tokens", token=v.admin)
    check(st == 200, f"the new admin token works ({st})")
    owner = v.token("owner")
    st, _ = v.call("PUT", "/v1/policies/llm", body=pki.policy(), token=owner)
    check(st == 201, "policy llm")
    st, _ = v.call("PUT", "/v1/policies/llm", body=pki.policy(session_ttl_s=600), token=owner)
    check(st == 201, "policy llm, version 2")
    for _ in range(3):
        st, _ = v.call("POST", "/v1/attestations",
                       body={"evidence": b64(pki.doc(nonce=v.challenge(), public_key=kp.config)),
                             "policy": "llm"})
        check(st == 201, f"a session is admitted ({st})")
    st, body = v.call("GET", "/v1/sessions?state=all", token=v.admin)
    check(st == 200 and len(body["sessions"]) == 3, "three sessions listed")
    sids = [x["id"] for x in body.get("sessions", [])]
finally:
    v.stop()
left = sorted(set(glob.glob(db + "*.tmp-*")) - {tokfile + ".tmp-AbC123", keyfile + ".tmp-AbC123"})
check(left == [], f"no temporary file of the verifier's own stays behind ({left})")

# ---- a read error mid-list is 500 internal, not a partial 200 -------------
# Stand-ins for the tables that make SQLite fail while stepping through the
# rows: json_extract() of malformed JSON raises an error at step time, from
# the second row on (the first one is returned, as a partial list would be).
con = sqlite3.connect(db)
cols = [r[1] for r in con.execute("PRAGMA table_info(sessions)")]
con.execute("ALTER TABLE sessions RENAME TO sessions_real")
sel = ", ".join(f"CASE WHEN rowid > (SELECT min(rowid) FROM sessions_real) THEN json_extract('x', '$')"
                f" ELSE {c} END AS {c}" if c in ("pcrs", "policy") else c for c in cols)
con.execute(f"CREATE VIEW sessions AS SELECT {sel} FROM sessions_real")
# The start prunes (UPDATE sessions): let that pass as a no-op.
con.execute("CREATE TRIGGER sessions_update INSTEAD OF UPDATE ON sessions BEGIN SELECT 1; END")
pcols = [r[1] for r in con.execute("PRAGMA table_info(policy_versions)")]
con.execute("ALTER TABLE policy_versions RENAME TO policy_versions_real")
sel = ", ".join("CASE WHEN version > 1 THEN json_extract('x', '$') ELSE created_by END AS created_by"
                if c == "created_by" else c for c in pcols)
con.execute(f"CREATE VIEW policy_versions AS SELECT {sel} FROM policy_versions_real")
con.commit()
con.close()
v.start()
try:
    st, body = v.call("GET", "/v1/sessions?state=all", token=v.admin)
    err = body.get("error", {}) if isinstance(body, dict) else {}
    check(st == 500 and err.get("code") == "internal" and "sessions" not in body,
          f"GET /v1/sessions: 500 internal when a row cannot be read, no partial list ({st} {body})")
    st, body = v.call("GET", "/v1/policies/llm", token=v.admin)
    err = body.get("error", {}) if isinstance(body, dict) else {}
    check(st == 500 and err.get("code") == "internal",
          f"GET /v1/policies/llm: 500 internal when a version cannot be read ({st} {body})")
    # A session row that cannot be read is the verifier's failure (500, the
    # database named), not an unknown session (401) for the caller.
    proof = "%d.%s" % (int(time.time() * 1000), "A" * 43)
    bad = [st_b for st_b in (v.call("POST", "/v1/secrets/k/release", body={"session": sid, "proof": proof})
                             for sid in sids)]
    check(any(st_b == 500 and b.get("error", {}).get("code") == "internal"
              and "database" in b.get("error", {}).get("message", "") for st_b, b in bad),
          f"release with an unreadable session row: 500 internal naming the database ({bad})")
    st, body = v.call("GET", "/v1/tokens", token=v.admin)
    check(st == 200, f"the verifier still answers ({st})")
finally:
    v.stop()

# ---- a partial file at the real path stops the start ----------------------
with open(keyfile, "r+b") as f:
    f.truncate(20)
out = start_fails("storage key file cut to 20 bytes")
check("expected exactly 32 bytes" in out, "... saying the key file is not 32 bytes")

wd2 = Workdir("files2")
db = wd2("attest.db")
with open(db + ".admin-token", "w") as f:
    f.write("0123456")
out = start_fails("admin token file cut to 7 characters")
check("shorter than 16 characters" in out, "... saying the admin token is too short")

for w in (wd, wd2):
    w.cleanup()
finish()
