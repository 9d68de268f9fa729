"""deploy/enclave/init.sh (the enclave's entrypoint) and deploy/attestable-ami, run
as far as this machine allows: the same script as in the enclave, with the
simulator instead of the NSM and UNIX sockets instead of vsock (socat serves
the sealed model like deploy/parent/attest-bridge-weights.service does).
1. init fetches the sealed model from the "parent", the agent attests, has the
   data key released and opens the weights; only then the model server starts;
   a consumer's chat completion goes gateway -> agent -> model server.
2. More bytes than ATTEST_WEIGHTS_MAX_BYTES: init stops before the agent
   starts. A tampered sealed model: the weights never open and the model
   server is never started (fail closed); SIGTERM stops init and the agent.
3. The Dockerfile copies only files that exist; the KIWI fragment is XML and
   its agent.json is a configuration attest-agent accepts."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, BUILD, SRCDIR, STANDIN, Pki, Process, Verifier, Workdir, check, ctl, finish, http,
                     log_tail)

GATEWAY = os.path.join(BUILD, "gateway", "attest-gateway")
INIT = os.path.join(SRCDIR, "deploy", "enclave", "init.sh")
wd = Workdir("deploy-enclave")
pki = Pki(wd)
procs = []


def wait_for(cond, seconds=60):
    end = time.time() + seconds
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


def connects(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def init_env(model_dir, llm_sock, agent_sock, weights_sock, verifier_url):
    env = dict(os.environ)
    env.update({
        "ATTEST_ATTESTER": "sim",
        "ATTEST_AGENT": AGENT,
        "ATTEST_AGENT_EXTRA": f"--sim-pki {pki.dir}",
        "ATTEST_POLICY": "llm",
        "ATTEST_VERIFIER": verifier_url,
        "ATTEST_LISTEN": "unix:" + agent_sock,
        "ATTEST_ADVERTISE": "http://localhost",
        "ATTEST_UPSTREAM": "unix:" + llm_sock,
        "ATTEST_WEIGHTS_FROM": "UNIX-CONNECT:" + weights_sock,
        "ATTEST_MODEL_DIR": model_dir,
        "ATTEST_MODEL_SERVER": f"python3 {STANDIN} --unix {llm_sock}",
    })
    return env


def start_init(env, log):
    logf = open(log, "wb")
    return subprocess.Popen(["sh", INIT], env=env, stdout=logf, stderr=logf, start_new_session=True)


def stop_init(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        return p.wait()


try:
    v = Verifier(wd, roots=[pki.root], extra=["--rate", "0"]).start()
    procs.append(v)
    owner = wd("owner.token")
    open(owner, "w").write(v.token("owner") + "\n")
    gw_token = wd("gateway.token")
    open(gw_token, "w").write(v.token("gateway") + "\n")
    model_dir, llm_sock, agent_sock, weights_sock = wd("model"), wd("llm.sock"), wd("agent.sock"), wd("w.sock")
    env = init_env(model_dir, llm_sock, agent_sock, weights_sock, v.url)

    # The owner registers the enclave's PCRs (here the simulator's for this
    # configuration) and seals the weights to that policy.
    p = subprocess.run(["sh", INIT, "--print-pcrs"], env=env, capture_output=True)
    check(p.returncode == 0, f"init.sh --print-pcrs ({p.stderr.decode()[-200:]})")
    open(wd("llm.json"), "w").write(p.stdout.decode())
    p = ctl("policy", "put", "llm", wd("llm.json"), "--verifier", v.url, "--token-file", owner)
    check(p.returncode == 0, f"policy llm from init.sh --print-pcrs ({p.stderr.decode()[-200:]})")
    weights = os.urandom(3 << 20)
    open(wd("model.gguf"), "wb").write(weights)
    p = ctl("model", "seal", "--in", wd("model.gguf"), "--out", wd("model.sealed"), "--secret", "model-key",
            "--policy", "llm", "--verifier", v.url, "--token-file", owner, "--quiet")
    check(p.returncode == 0, f"attestctl model seal --secret model-key --policy llm ({p.stderr.decode()[-200:]})")

    # The parent serves the sealed file (deploy/parent/attest-bridge-weights.service, UNIX for vsock).
    bridge = subprocess.Popen(["socat", f"UNIX-LISTEN:{weights_sock},fork", f"OPEN:{wd('model.sealed')},rdonly"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(bridge)
    check(wait_for(lambda: os.path.exists(weights_sock), 20), "the parent's weights bridge listens")

    # ---- 1. the enclave starts -----------------------------------------------------
    init = start_init(env, wd("init.log"))
    gw = Process(wd, "gateway", [GATEWAY, "--verifier", v.url, "--route", f"unix:{agent_sock},http://localhost",
                                 "--policy", "llm", "--listen", "127.0.0.1:0", "--token-file", gw_token,
                                 "--refresh", "1"])
    procs.append(gw)
    gw.start()
    model = os.path.join(model_dir, "model.gguf")
    opened = wait_for(lambda: os.path.exists(model), 60)
    if not check(opened, "init: the agent attested, the key was released, the weights opened in the enclave"):
        log_tail(wd("init.log"))
    check(opened and open(model, "rb").read() == weights, "the opened weights are the owner's, byte for byte")
    check(oct(os.stat(model_dir).st_mode & 0o777) == "0o700", "the weights' folder is 0700")
    check(wait_for(lambda: os.path.exists(llm_sock), 30), "the model server started after the weights opened")
    check(wait_for(lambda: not os.path.exists(os.path.join(model_dir, "model.sealed")), 10),
          "the ciphertext is removed from enclave memory once the weights are open")

    def one_instance():
        st, inst = http("GET", gw.url + "/v1/gateway/instances")
        return st == 200 and len(inst.get("instances", [])) == 1
    check(wait_for(one_instance, 30), "the gateway sees the enclave's agent")
    st, ans = http("POST", gw.url + "/v1/chat/completions",
                   body={"messages": [{"role": "user", "content": "hello enclave"}]})
    check(st == 200 and ans["choices"][0]["message"]["content"] == "You said: hello enclave",
          f"consumer -> gateway -> agent -> model server in the enclave (got {st})")
    rc = stop_init(init)
    check(rc != 0 and wait_for(lambda: not os.path.exists(agent_sock), 10) and not connects(llm_sock),
          f"SIGTERM stops init, the agent and the model server (init status {rc})")
    gw.stop()
    procs.remove(gw)

    # ---- 2. a parent sending more than the image allows, then a tampered file: fail closed
    small = dict(env, ATTEST_WEIGHTS_MAX_BYTES=str(1 << 20))
    p = subprocess.run(["sh", INIT], env=small, capture_output=True, timeout=120)
    check(p.returncode == 1 and b"larger than ATTEST_WEIGHTS_MAX_BYTES" in p.stderr
          and b"attest-agent started" not in p.stderr and not os.listdir(model_dir),
          f"a sealed file over ATTEST_WEIGHTS_MAX_BYTES: init stops before the agent, nothing kept "
          f"({p.returncode} {p.stderr[-200:]!r})")
    raw = bytearray(open(wd("model.sealed"), "rb").read())
    raw[len(raw) // 2] ^= 1
    open(wd("model.sealed"), "wb").write(bytes(raw))
    if os.path.exists(model):
        os.remove(model)
    if os.path.exists(llm_sock):
        os.remove(llm_sock)  # the stand-in leaves its socket file behind when killed
    init = start_init(env, wd("init2.log"))
    refused = wait_for(lambda: "does not open" in open(wd("init2.log"), errors="replace").read(), 60)
    if not check(refused, "a flipped bit in the sealed model: the agent refuses to open it"):
        log_tail(wd("init2.log"))
    time.sleep(0.5)
    check(not os.path.exists(model) and not os.path.exists(llm_sock),
          "no weights written and the model server never started")
    stop_init(init)

    # ---- 3. the recipes' files --------------------------------------------------------
    docker = open(os.path.join(SRCDIR, "deploy", "enclave", "Dockerfile")).read().splitlines()
    missing = [ln.split()[1] for ln in docker
               if ln.startswith("COPY ") and "--from=" not in ln and ln.split()[1] != "."
               and not os.path.exists(os.path.join(SRCDIR, ln.split()[1]))]
    check(not missing, f"the Dockerfile copies only files in the repository (missing: {missing})")
    env_keys = {ln.split("=")[0].strip().rstrip("\\").strip() for ln in docker if "ATTEST_" in ln and "=" in ln}
    used = open(INIT).read()
    unknown = [k.replace("ENV ", "") for k in env_keys if k.replace("ENV ", "") not in used]
    check(not unknown, f"every ATTEST_* the Dockerfile sets is read by init.sh (unknown: {unknown})")
    kiwi = os.path.join(SRCDIR, "deploy", "attestable-ami", "kiwi")
    root = ET.parse(os.path.join(kiwi, "attest-agent.kiwi.xml")).getroot()
    check(root.tag == "image" and root.find("packages/package[@name='attest-agent']") is not None,
          "the KIWI fragment is XML and installs attest-agent")
    cfg = os.path.join(kiwi, "root", "etc", "attest", "agent.json")
    json.load(open(cfg))
    p = subprocess.run([AGENT, "--config", cfg, "--attester", "sim", "--sim-pki", pki.dir, "--print-pcrs"],
                       capture_output=True)
    check(p.returncode == 0 and "pcrs" in json.loads(p.stdout or b"{}"),
          f"attest-agent accepts the attestable AMI's agent.json ({p.stderr.decode()[-200:]})")
finally:
    for p in procs:
        if isinstance(p, subprocess.Popen):
            p.terminate()
            p.wait()
        else:
            p.stop()
    wd.cleanup()
finish()
