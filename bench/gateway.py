#!/usr/bin/env python3
"""bench/gateway: what attest-gateway + attest-agent add to an LLM call.
Requests/s, p50 and p99 of a 1 KiB chat completion through gateway ->
(OHTTP) agent -> LLM stand-in, against calling the same stand-in directly,
at 1 and at 8 keep-alive client connections, all in the same run; prints the
overhead and the throughput ratio. Clients are Python threads on the same
box: compare the two columns, not absolute figures across machines.

  AT_BUILD=build python3 bench/gateway.py [--seconds S] [--short] [--smoke]

--short: 1 s per case. --smoke: 20 requests per case and a check that every
answer was right (make check runs this so the bench cannot rot)."""
import argparse
import http.client as httpclient
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from harness import AGENT, BUILD, STANDIN, Pki, Process, Verifier, Workdir, http  # noqa: E402

GATEWAY = os.path.join(BUILD, "gateway", "attest-gateway")
PROMPT = "x" * 1024
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": PROMPT}]}).encode()
WANT = "You said: " + PROMPT


def worker(port, deadline, count, lat, errors):
    c = httpclient.HTTPConnection("127.0.0.1", port, timeout=60)
    n = 0
    while (count and n < count) or (not count and time.perf_counter() < deadline):
        t0 = time.perf_counter()
        try:
            c.request("POST", "/v1/chat/completions", body=BODY, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            ok = r.status == 200 and json.loads(data)["choices"][0]["message"]["content"] == WANT
        except (OSError, httpclient.HTTPException, ValueError, KeyError):
            ok = False
            c.close()
            c = httpclient.HTTPConnection("127.0.0.1", port, timeout=60)
        lat.append(time.perf_counter() - t0)
        if not ok:
            errors.append(1)
        n += 1
    c.close()


def run_case(port, conns, seconds, count):
    lat, errors, threads = [], [], []
    t0 = time.perf_counter()
    for _ in range(conns):
        th = threading.Thread(target=worker, args=(port, t0 + seconds, count, lat, errors))
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")  # noqa: E731
    return {"n": len(lat), "rps": len(lat) / wall, "p50": pct(0.50), "p99": pct(0.99), "errors": len(errors)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("AT_BENCH_SECONDS", "5")))
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    seconds = 1.0 if a.short else a.seconds
    count = 20 if a.smoke else 0
    wd = Workdir("bench-gateway")
    procs = []
    try:
        pki = Pki(wd)
        v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()
        procs.append(v)
        llm = Process(wd, "llm", ["python3", STANDIN], sanitizer_check=False).start()
        procs.append(llm)
        owner = v.token("owner")
        tok = wd("gateway.token")
        open(tok, "w").write(v.token("gateway") + "\n")
        agent_args = [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm", "--verifier", v.url,
                      "--listen", "127.0.0.1:0", "--upstream", llm.url]
        pol = json.loads(subprocess.run(agent_args + ["--print-pcrs"], capture_output=True).stdout)
        v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
        procs.append(Process(wd, "agent", agent_args).start())
        gw = Process(wd, "gateway", [GATEWAY, "--verifier", v.url, "--policy", "llm", "--listen", "127.0.0.1:0",
                                     "--token-file", tok]).start()
        procs.append(gw)
        end = time.time() + 20
        while time.time() < end:
            st, inst = http("GET", gw.url + "/v1/gateway/instances")
            if isinstance(inst, dict) and inst.get("instances"):
                break
            time.sleep(0.2)
        else:
            print("bench/gateway: the gateway never saw the agent", file=sys.stderr)
            return 1
        print(f"bench/gateway: 1 KiB chat completion, {'20 requests' if count else f'{seconds:g} s'} per case")
        print(f"{'conns':>5} {'path':<16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        bad = 0
        for conns in (1, 8):
            direct = run_case(llm.port, conns, seconds, count)
            via = run_case(gw.port, conns, seconds, count)
            if not direct["n"] or not via["n"]:
                print("bench/gateway: a case ran no request", file=sys.stderr)
                return 1
            for name, r in (("direct", direct), ("gateway+agent", via)):
                print(f"{conns:>5} {name:<16} {r['rps']:>8.1f} {r['p50']:>8.2f} {r['p99']:>8.2f}"
                      + (f"  ({r['errors']} errors)" if r["errors"] else ""))
                bad += r["errors"]
            print(f"{conns:>5} overhead: p50 +{via['p50'] - direct['p50']:.2f} ms, "
                  f"p99 +{via['p99'] - direct['p99']:.2f} ms, throughput x{via['rps'] / direct['rps']:.2f} of direct")
        return 1 if bad else 0
    finally:
        for p in reversed(procs):
            p.stop()
        wd.cleanup()


if __name__ == "__main__":
    sys.exit(main())
