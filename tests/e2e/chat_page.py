"""End-to-end: the gateway's chat page (GET /) in headless Chromium, driven
by Selenium, against the real chain on loopback (verifier, simulator agent,
LLM stand-in, gateway). The page loads with no CSP violation, fills the
model list, streams an answer, shows the attestation panel (instance,
policy, PCRs, the EAR signature verified with WebCrypto) and announces a
change of instance; hostile model
output stays inert; the stop button aborts a stream; with the policy
revoked or the verifier gone the page says why in plain words and sends
nothing. Screenshots of
each state go to $AT_BUILD/chat-page-*.png for review."""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

try:
    from selenium import webdriver
except ImportError:
    # Debian's python3-selenium is for Debian's python3; a pyenv or venv
    # python3 first on the PATH does not see it.
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (AGENT, BUILD, SRCDIR, STANDIN, Pki, Process, Verifier, Workdir, check, finish, http)

GATEWAY = os.path.join(BUILD, "gateway", "attest-gateway")
WEB = os.path.join(SRCDIR, "web", "chat")
wd = Workdir("chat_page")
pki = Pki(wd)
pki2 = Pki(wd, "pki2")  # a second simulated instance (its own instance id)
v = Verifier(wd, roots=[pki.root, pki2.root], extra=["--rate", "0"]).start()
llm = Process(wd, "llm", ["python3", STANDIN], sanitizer_check=False).start()
procs = []
driver = None

# A "remote" origin the hostile answer points at: it must never be contacted.
remote = socket.socket()
remote.bind(("127.0.0.1", 0))
remote.listen(8)
remote_port = remote.getsockname()[1]
remote_hits = []


def serve_remote():
    while True:
        try:
            c, _ = remote.accept()
        except OSError:
            return
        remote_hits.append(1)
        c.close()


threading.Thread(target=serve_remote, daemon=True).start()


def start(p):
    procs.append(p)
    return p.start()


def completions_posted(gw):
    st, text = http("GET", gw.url + "/metrics")
    n = 0
    for line in text.splitlines():
        if line.startswith("attest_http_requests_total{") and 'route="completions"' in line:
            n += int(float(line.rsplit(" ", 1)[1]))
    return n


def shot(name):
    driver.save_screenshot(os.path.join(BUILD, f"chat-page-{name}.png"))


def wait(cond, what, timeout=30):
    try:
        WebDriverWait(driver, timeout).until(lambda d: cond())
        return True
    except Exception:
        check(False, f"{what} (timed out)")
        return False


def el(css):
    return driver.find_element(By.CSS_SELECTOR, css)


def ask(text):
    box = el("#prompt")
    box.clear()
    box.send_keys(text)
    el("#send").click()


try:
    owner = v.token("owner")
    gw_token = wd("gateway.token")
    open(gw_token, "w").write(v.token("gateway") + "\n")
    agent_args = [AGENT, "--attester", "sim", "--sim-pki", pki.dir, "--policy", "llm", "--verifier", v.url,
                  "--listen", "127.0.0.1:0", "--upstream", llm.url]
    pol = json.loads(subprocess.run(agent_args + ["--print-pcrs"], capture_output=True).stdout)
    st, _ = v.call("PUT", "/v1/policies/llm", body=pol, token=owner)
    check(st == 201, "policy from the agent's --print-pcrs")
    agent = start(Process(wd, "agent", agent_args))
    gw = start(Process(wd, "gateway", [GATEWAY, "--verifier", v.url, "--policy", "llm", "--listen",
                                       "127.0.0.1:0", "--token-file", gw_token, "--refresh", "1",
                                       "--verify-locally", "--root", pki.root, "--root", pki2.root,
                                       "--web-root", WEB]))
    # The page's files: allow-listed, with the strict CSP and the ETag.
    with urllib.request.urlopen(gw.url + "/", timeout=10) as r:
        csp, etag = r.headers.get("Content-Security-Policy"), r.headers.get("ETag")
        check(r.status == 200 and r.headers.get("Content-Type") == "text/html; charset=utf-8"
              and csp.startswith("default-src 'none'; script-src 'self'") and "connect-src 'self'" in csp
              and r.headers.get("X-Content-Type-Options") == "nosniff"
              and r.headers.get("Referrer-Policy") == "no-referrer"
              and r.headers.get_all("Cache-Control") == ["no-cache"] and etag,
              "GET / serves index.html with the strict CSP, nosniff, no referrer, one Cache-Control, an ETag")
    st, _ = http("GET", gw.url + "/", headers={"If-None-Match": etag})
    check(st == 304, f"If-None-Match with its ETag: 304 (got {st})")
    for path in ("/app.js", "/style.css"):
        st, _ = http("GET", gw.url + path)
        check(st == 200, f"GET {path}")
    for path in ("/../web/chat/index.html", "/%2e%2e/README.md", "/local.mk", "/index.htm"):
        st, body = http("GET", gw.url + path)
        check(st == 404, f"GET {path}: 404, only the listed files are served (got {st})")
    bad = subprocess.run([GATEWAY, "--verifier", v.url, "--policy", "llm", "--listen", "127.0.0.1:0",
                          "--token-file", gw_token, "--web-root", wd("nope")], capture_output=True, text=True)
    check(bad.returncode == 2 and "--web-root" in bad.stderr and "index.html" in bad.stderr,
          f"a --web-root without the page's files: exit 2 naming the file ({bad.stderr.strip()[:160]})")

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    opts.add_argument("--headless=new")
    # Chromium refuses to start as root with its sandbox: CI runs as root.
    opts.add_argument("--no-sandbox")
    opts.add_argument("--disable-dev-shm-usage")
    opts.add_argument("--window-size=1400,1000")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    svc = webdriver.ChromeService(executable_path="/usr/bin/chromedriver") \
        if hasattr(webdriver, "ChromeService") else webdriver.chrome.service.Service("/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=svc, options=opts)
    driver.get(gw.url + "/")
    wait(lambda: driver.execute_script("return document.body.dataset.ready === '1'"), "the page initialised")
    wait(lambda: len(el("#model").find_elements(By.TAG_NAME, "option")) > 0, "model list filled")
    check(el("#model").get_attribute("value") == "attest-standin-1", "the model picker lists /v1/models")
    wait(lambda: "signature verified" in el("#att-signature").text, "EAR signature verified in the browser")
    check(el("#att-verdict").text.startswith("Verified"), f"verdict: {el('#att-verdict').text}")
    check(el("#att-policy").text.startswith("llm@"), f"policy name@version shown ({el('#att-policy').text})")
    rows = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#att-pcrs tbody tr")]
    check(any(r.startswith("PCR0 enclave image file") and "matched (signed)" in r for r in rows),
          f"PCRs with their meaning and matched mark ({rows[:2]})")
    # per PCR from the signed pcrs_pinned: the policy's PCRs matched, the
    # others reported but not compared
    pinned = {f"PCR{i} " for i in pol["pcrs"]}
    check(len(rows) > len(pinned) and all(("matched (signed)" in r) == any(r.startswith(p) for p in pinned)
                                          and ("matched (signed)" in r or "not pinned by the policy" in r)
                                          for r in rows),
          f"only the {len(pinned)} PCRs the policy pins read as matched, the rest as not pinned ({len(rows)} rows)")
    check("yes" in el("#att-local").text, f"--verify-locally shown ({el('#att-local').text})")
    check('"eat_profile"' in el("#att-claims").text, "the EAR claims are shown")
    check(" min " in el("#att-expires").text, f"expiry countdown ({el('#att-expires').text})")

    # A prompt, streamed and rendered, tagged with its instance.
    ask("hello **bold** and `code`")
    wait(lambda: "done" in el("#status").text, "a streamed answer completes")
    ans = driver.find_elements(By.CSS_SELECTOR, "#conversation li.assistant")[-1]
    check(ans.find_element(By.CSS_SELECTOR, ".body").text.startswith("You said: hello bold and code"),
          f"the answer is rendered ({ans.text[:80]})")
    check(len(ans.find_elements(By.CSS_SELECTOR, "strong")) == 1 and len(ans.find_elements(By.CSS_SELECTOR, "code")) == 1,
          "Markdown subset: **strong** and `code` become elements built from text")
    inst = ans.get_attribute("data-instance")
    st, insts = http("GET", gw.url + "/v1/gateway/instances")
    check(inst and inst == insts["instances"][0]["instance"] and inst in ans.text and el("#att-instance").text == inst,
          f"the answer and the panel name the instance it came from ({inst})")
    logs = driver.get_log("browser")
    check(not [e for e in logs if "Content Security Policy" in e["message"] or e["level"] == "SEVERE"],
          f"no CSP violation or error in the browser console ({logs[:3]})")
    shot("answer")

    # Another instance takes over (the first one stops): the next answer
    # names it, and the page says the instance changed.
    agent2 = start(Process(wd, "agent2", [pki2.dir if a == pki.dir else a for a in agent_args]))
    end = time.time() + 20
    while time.time() < end:
        st, insts = http("GET", gw.url + "/v1/gateway/instances")
        if any(i["endpoint"] == agent2.url for i in insts.get("instances", [])):
            break
        time.sleep(0.2)
    agent.stop()
    ask("who answers now")
    wait(lambda: driver.execute_script("return document.querySelectorAll('#conversation li.assistant.done').length") == 2,
         "an answer from the second instance")
    inst2 = driver.find_elements(By.CSS_SELECTOR, "#conversation li.assistant")[-1].get_attribute("data-instance")
    notices = [n.text for n in driver.find_elements(By.CSS_SELECTOR, "#conversation li.notice")]
    check(inst2 and inst2 != inst and any(inst2 in n and inst in n and "changed" in n for n in notices),
          f"a change of instance is announced ({inst} -> {inst2}: {notices})")
    wait(lambda: el("#att-instance").text == inst2, "the panel follows the new instance")
    shot("instance-changed")

    # Hostile output: echoed back by the stand-in, it must stay text.
    hostile = (f"<script>window.__pwned=1</script> <img src=http://127.0.0.1:{remote_port}/i.png "
               f"onerror=window.__pwned=2> [x](javascript:window.__pwned=3) "
               f"![y](http://127.0.0.1:{remote_port}/y.png) <a href=javascript:window.__pwned=4>z</a>")
    ask(hostile)
    wait(lambda: driver.execute_script("return document.querySelectorAll('#conversation li.assistant.done').length") == 3,
         "the hostile answer completes")
    ans = driver.find_elements(By.CSS_SELECTOR, "#conversation li.assistant")[-1]
    check("<script>window.__pwned=1</script> <img src=http" in ans.text and "[x](javascript:" not in ans.text
          and "x (javascript:window.__pwned=3)" in ans.text,
          f"markup in the answer is shown as text, a link as 'text (url)' ({ans.text[:300]})")
    for tag in ("script", "img", "a", "iframe"):
        check(not ans.find_elements(By.TAG_NAME, tag), f"no <{tag}> element from model output")
    for a in driver.find_elements(By.CSS_SELECTOR, "#conversation li"):
        for child in a.find_elements(By.CSS_SELECTOR, "*"):
            check(not (child.get_attribute("onerror") or child.get_attribute("href") or child.get_attribute("src")),
                  "no element with a handler, href or src")
    check(driver.execute_script("return window.__pwned === undefined"), "no script from the answer ran")
    origins = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    check(all(o == gw.url for o in origins), f"every request stayed on the page's origin ({set(origins)})")
    check(not remote_hits, "nothing contacted the remote address the answer named")
    shot("hostile")

    # Stop: the stand-in holds its answer after the first word.
    n_answers = len(driver.find_elements(By.CSS_SELECTOR, "#conversation li.assistant"))
    ask("[hold] never finished")
    wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#conversation li.assistant")) == n_answers + 1
         and "You" in driver.find_elements(By.CSS_SELECTOR, "#conversation li.assistant")[-1].text,
         "the held stream's first word arrives")
    check(not el("#stop").get_attribute("disabled"), "stop is enabled while answering")
    el("#stop").click()
    wait(lambda: "stopped" in el("#status").text, "stop aborts the stream")
    last = driver.find_elements(By.CSS_SELECTOR, "#conversation li.assistant")[-1]
    check("never finished" not in last.text and "stopped" in last.text, f"the stopped answer is marked ({last.text[:80]})")
    check(not el("#send").get_attribute("disabled"), "send is enabled again after stop")
    shot("stopped")
    http("GET", llm.url + "/_standin/release")  # the held answer ends upstream (clean shutdowns)

    # Revoked: the page says why and sends nothing.
    st, pv = v.call("GET", "/v1/policies/llm", token=owner)
    st, body = v.call("DELETE", f"/v1/policies/llm/versions/{pv['version']}", token=owner)
    check(st == 200 and body["sessions_ended"] >= 1, "revoke the policy version")
    time.sleep(1.5)  # the gateway's --refresh 1: its list is stale after this
    before = completions_posted(gw)
    ask("a secret that must not leave")
    wait(lambda: "not sent" in el("#status").text, "the page refuses to send")
    blocked = el("#blocked")
    check(blocked.is_displayed() and "revoked" in blocked.text and "nothing was sent" in blocked.text,
          f"plain words for policy_revoked ({blocked.text})")
    check(el("#att-verdict").text.startswith("Not verified"), "the panel says not verified")
    check(completions_posted(gw) == before, "no completion request left the page")
    check(not [li for li in driver.find_elements(By.CSS_SELECTOR, "#conversation li.user")
               if "must not leave" in li.text], "the refused prompt is not in the conversation")
    shot("revoked")

    # The verifier gone: the page says it cannot be reached, sends nothing.
    v.stop()
    time.sleep(1.5)  # past the gateway's --refresh 1
    ask("another secret")
    wait(lambda: "cannot be reached" in el("#blocked").text, "plain words for an unreachable verifier")
    check(completions_posted(gw) == before, "still no completion request left the page")
    shot("verifier-down")
finally:
    if driver:
        driver.quit()
    remote.close()
    for p in procs:
        if p.proc:
            p.stop()
    llm.stop()
    v.stop()
    wd.cleanup()
finish()
