"""pg: a throwaway PostgreSQL server for the tests (Debian's postgresql
package), in a temporary directory, on a free loopback port, with fsync and
synchronous_commit on, password authentication (scram-sha-256), stopped and
removed at the end. Run as root, the server runs as the unprivileged user
`nobody` (PostgreSQL refuses to run as root); otherwise as the invoking user.

  python3 tests/e2e/pg.py run -- CMD ARGS...
      start a server, run CMD with AT_PG_URL (a server URL without a
      database: append a name) and AT_TEST_DB_URL (a fresh database), stop it.

harness.py uses Server directly when AT_DB_BACKEND=pg (standard library
only)."""
import glob
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

USER = "attest"  # the database role the tests connect as


def bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise RuntimeError("PostgreSQL not installed: apt-get install postgresql")
    return os.path.dirname(found[-1])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fix_dev_null():
    """PostgreSQL's tools redirect to /dev/null; on a machine where it is
    mode 0600 they fail when run as an unprivileged user. As root, make it
    0666 (what every Debian ships), saying so."""
    mode = stat.S_IMODE(os.stat("/dev/null").st_mode)
    if mode != 0o666 and os.geteuid() == 0:
        sys.stderr.write(f"pg.py: /dev/null is mode {mode:o}; setting 0666 so PostgreSQL's tools "
                         "can run as an unprivileged user\n")
        os.chmod("/dev/null", 0o666)


class Server:
    def __init__(self):
        self.bin = bindir()
        self.dir = tempfile.mkdtemp(prefix="attest-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.password = "pw-" + secrets.token_hex(12)
        self.port = None
        self.started = False
        self.as_user = "nobody" if os.geteuid() == 0 else None

    def _run(self, args, **kw):
        if self.as_user:
            args = ["runuser", "-u", self.as_user, "--"] + args
        return subprocess.run(args, stdin=subprocess.DEVNULL, **kw)

    def start(self):
        fix_dev_null()
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self.as_user:
            os.chmod(self.dir, 0o700)
            shutil.chown(self.dir, self.as_user)
            shutil.chown(pwfile, self.as_user)
        r = self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", USER, "-A", "scram-sha-256",
                       "--pwfile", pwfile, "-E", "UTF8", "--locale=C"],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        os.unlink(pwfile)
        if r.returncode != 0:
            raise RuntimeError("initdb failed: " + r.stdout.decode(errors="replace"))
        for attempt in range(5):
            self.port = free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir}"
                    " -c fsync=on -c synchronous_commit=on -c max_connections=400"
                    " -c shared_buffers=16MB")
            self.opts = opts
            r = self._pg_ctl_start()
            if r.returncode == 0:
                self.started = True
                return self
        raise RuntimeError("postgres did not start: " + r.stdout.decode(errors="replace") +
                           open(self.log, errors="replace").read()[-2000:])

    def _pg_ctl_start(self):
        return self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log, "-o", self.opts,
                          "-w", "-t", "60", "start"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def halt(self):
        """pg_ctl stop -m fast: the server goes away under its clients
        (tests/e2e/pg_resilience.py); resume() starts it again on the same
        port and data."""
        r = self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "-t", "60",
                       "stop"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise RuntimeError("pg_ctl stop: " + r.stdout.decode(errors="replace"))

    def resume(self):
        r = self._pg_ctl_start()
        if r.returncode != 0:
            raise RuntimeError("pg_ctl start again: " + r.stdout.decode(errors="replace") +
                               open(self.log, errors="replace").read()[-2000:])

    def base_url(self):
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/"

    def psql(self, sql, db="postgres"):
        env = dict(os.environ, PGPASSWORD=self.password)
        r = subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
                            "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", db, "-c", sql],
                           env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {r.stderr.decode(errors='replace')}")
        return r.stdout.decode()

    def create_db(self, name):
        self.psql(f'CREATE DATABASE "{name}"')
        return self.base_url() + name

    def stop(self):
        if self.started:
            self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


class Remote:
    """A server started elsewhere: AT_PG_URL (pg.py run)."""

    def __init__(self, url):
        from urllib.parse import urlparse
        u = urlparse(url)
        self.password, self.port = u.password, u.port
        self.bin = bindir()
        self.url = url

    def base_url(self):
        return self.url

    psql = Server.psql
    create_db = Server.create_db

    def stop(self):
        pass


_shared = None


def shared():
    """The server of this test process: AT_PG_URL's, or one started now and
    stopped at exit."""
    global _shared
    if _shared is None:
        if os.environ.get("AT_PG_URL"):
            _shared = Remote(os.environ["AT_PG_URL"])
        else:
            import atexit
            _shared = Server().start()
            atexit.register(_shared.stop)
    return _shared


NULL = "\x01"


def literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "'\\x" + bytes(v).hex() + "'::bytea"
    return "'" + str(v).replace("'", "''") + "'"


def query(srv, db, sql, params=()):
    """sqlite3-style: ? placeholders, rows as tuples of int/str/bytes/None."""
    out, k, quote = [], 0, None
    for ch in sql:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append(literal(params[k]))
            k += 1
            continue
        out.append(ch)
    env = dict(os.environ, PGPASSWORD=srv.password)
    r = subprocess.run([os.path.join(srv.bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-F", "\x1f", "-R", "\x1e", "-P", "null=" + NULL, "-h", "127.0.0.1", "-p", str(srv.port),
                        "-U", USER, "-d", db, "-c", "".join(out)],
                       env=env, stdin=subprocess.DEVNULL, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"psql: {r.stderr.decode(errors='replace')}")
    rows = []
    for line in r.stdout.decode().rstrip("\n").split("\x1e"):
        if not line:
            continue
        row = []
        for f in line.split("\x1f"):
            if f == NULL:
                row.append(None)
            elif f.lstrip("-").isdigit():
                row.append(int(f))
            elif f.startswith("\\x"):
                row.append(bytes.fromhex(f[2:]))
            else:
                row.append(f)
        rows.append(tuple(row))
    return rows


def main(argv):
    if len(argv) < 3 or argv[1] != "run" or "--" not in argv:
        sys.stderr.write("usage: pg.py run -- CMD ARGS...\n")
        return 2
    cmd = argv[argv.index("--") + 1:]
    srv = Server()
    try:
        srv.start()
        env = dict(os.environ, AT_PG_URL=srv.base_url(), AT_PG_DIR=srv.dir,
                   AT_TEST_DB_URL=srv.create_db("unit"))
        return subprocess.run(cmd, env=env).returncode
    finally:
        srv.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
