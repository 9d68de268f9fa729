"""End-to-end: the verifier's web console (/console/) in headless Chromium,
driven by Selenium, against a real verifier on loopback with a populated
database. An auditor sees audit and sessions but no policy write controls,
and a write from the page's own JS context is refused (403); an owner
imports a measurements file through the file input, previews and stores it
as a new version, compares two versions, sees the live sessions each
version admits and revokes one (its session ends); an owner scoped to one
policy sees only its sessions and ends one from the sessions view. The inspector shows a genuine AWS document's chain and the server's
verdict at the document's own time, and names the failing check of a
tampered one. Hostile strings (provenance, audit message, module id, file
name) stay text; no CSP violation is logged; the export holds the rows
shown. Screenshots go to $AT_BUILD/console-*.png for review."""
import base64
import csv
import io
import json
import os
import sys
import urllib.request

try:
    from selenium import webdriver
except ImportError:
    # Debian's python3-selenium is for Debian's python3 (see chat_page.py).
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ATTESTCTL, BUILD, SRCDIR, VERIFIER, KeyPair, Pki, Verifier, Workdir, b64, check, finish, run

WEB = os.path.join(SRCDIR, "web", "console")
GENUINE = os.path.join(SRCDIR, "tests", "data", "nitro", "ev_beta_prod_2022.cbor")
EIF = os.path.join(SRCDIR, "policies", "examples", "nitro-cli-build-enclave.json")
HOSTILE_ID = "<svg/onload=window.__pwned=3>"  # a module id is printable ASCII without spaces
HOSTILE = "<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>"

wd = Workdir("console")
pki = Pki(wd)
v = Verifier(wd, roots=[pki.root], extra=["--rate", "0", "--web-root", WEB]).start()
driver = None


def shot(name):
    driver.save_screenshot(os.path.join(BUILD, f"console-{name}.png"))


def wait(cond, what, timeout=20):
    try:
        WebDriverWait(driver, timeout).until(lambda d: cond())
        return True
    except Exception:
        check(False, f"timed out waiting: {what}")
        return False


def q(css):
    return driver.find_element(By.CSS_SELECTOR, css)


def qa(css):
    return driver.find_elements(By.CSS_SELECTOR, css)


def texts(css):
    return [e.text for e in qa(css)]


def js(script, *args):
    return driver.execute_script(script, *args)


def sign_in(tok):
    driver.get(v.url + "/console/")
    wait(lambda: js("return document.body.dataset.ready === '1'"), "the console initialised")
    q("#token").send_keys(tok)
    q("#signin button[type=submit]").click()
    wait(lambda: js("return !!document.body.dataset.role"), "signed in")


def view(name):
    q(f"#nav button[data-view={name}]").click()
    wait(lambda: js("return document.body.dataset.view") == name, f"view {name}")


AXE = os.path.join(SRCDIR, "tests", "interop", "node_modules", "axe-core", "axe.min.js")
axe_findings = {}


def axe(name):
    """axe-core (test-only, tests/interop) on the page as it is: serious and
    critical violations of WCAG 2 A/AA are collected per view."""
    if not js("return !!window.axe"):
        js(open(AXE).read())
    res = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}})"
        ".then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))), e => done(['error: ' + e]));")
    axe_findings[name] = res


def fetch_status(method, path, tok, body=None):
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[1], {method: arguments[0], headers: {Authorization: 'Bearer ' + arguments[2],"
        " 'Content-Type': 'application/json'}, body: arguments[3]}).then(r => done(r.status), e => done(-1));",
        method, path, tok, body)


try:
    # ---- a --web-root given must hold the console's files ---------------------
    p = run(VERIFIER, "--listen", "127.0.0.1:0", "--db", wd("nowhere.db"), "--web-root", wd("no-such-dir"))
    check(p.returncode == 1 and b"--web-root" in p.stdout + p.stderr and not os.path.exists(wd("nowhere.db")),
          "--web-root without the files: refused at start, before any database is made")

    # ---- the files: allow-listed, strict CSP, /console redirects ------------
    with urllib.request.urlopen(v.url + "/console/") as r:
        csp = r.headers.get("Content-Security-Policy") or ""
        check(r.status == 200 and csp.startswith("default-src 'none'; script-src 'self'")
              and "connect-src 'self'" in csp and b"app.js" in r.read(),
              "GET /console/ serves index.html with the strict CSP")
    st, _ = v.call("GET", "/console")
    check(st in (200, 308), "GET /console redirects to /console/ (followed)")
    for bad in ("/console/../verifier.log", "/console/app.js.map", "/console/%2e%2e/attest.db"):
        st, body = v.call("GET", bad)
        check(st == 404 and isinstance(body, dict) and body["error"]["code"] == "not_found",
              f"GET {bad}: 404 not_found (allow-list only)")

    # ---- a populated database ----------------------------------------------
    owner, auditor = v.token("owner"), v.token("auditor")
    base = pki.policy(session_ttl_s=3600, require_nonce=False)
    p1 = dict(base, provenance={"tool": "sim", "image": HOSTILE})
    st, _ = v.call("PUT", "/v1/policies/web", body=p1, token=owner)
    check(st == 201, "policy web v1 (hostile provenance)")
    p2 = json.loads(json.dumps(base))
    p2["pcrs"]["2"] = p2["pcrs"]["2"] + ["ab" * 48]
    st, _ = v.call("PUT", "/v1/policies/web", body=p2, token=owner)
    check(st == 201, "policy web v2 (PCR2 gains a value)")
    kp = KeyPair(wd)
    st, body = v.call("POST", "/v1/attestations", body={"evidence": b64(pki.doc(public_key=kp.config)),
                                                         "policy": "web"})
    check(st == 201, f"a live session under web@2 ({st})")
    session_id = body.get("session", {}).get("id")
    st, body = v.call("PUT", "/v1/policies/junk", body=dict(base, **{HOSTILE: 1}), token=owner)
    check(st == 400, "a hostile key in a policy is refused, with an audit row naming it")

    # ---- the API additions the console uses ---------------------------------
    st, body = v.call("GET", "/v1/tokens/self", token=auditor)
    check(st == 200 and body["role"] == "auditor" and body["policies"] is None, "GET /v1/tokens/self: role")
    st, body = v.call("GET", "/v1/tokens/self")
    check(st == 401 and body["error"]["code"] == "unauthorized", "GET /v1/tokens/self without a token: 401")
    st, body = v.call("GET", "/v1/policies", token=auditor)
    check(st == 200 and [p["name"] for p in body["policies"]] == ["web"] and body["policies"][0]["version"] == 2,
          "GET /v1/policies lists names with the current version")
    st, body = v.call("GET", "/v1/policies/web", token=auditor)
    check(st == 200 and body["history"][0]["policy"]["provenance"]["image"] == HOSTILE
          and "lint" in body["history"][0], "GET /v1/policies/web: each version's document and lint")
    st, body = v.call("POST", "/v1/policies/web/import", token=auditor,
                      body={"files": [{"name": "a.json", "content": open(EIF).read()}]})
    check(st == 403 and body["error"]["code"] == "forbidden", "import preview: an auditor gets 403 forbidden")
    st, body = v.call("POST", "/v1/policies/web/import", token=owner,
                      body={"files": [{"name": "a.json", "content": "{\"Measurements\": {\"HashAlgorithm\": \"MD5\"}}"}]})
    check(st == 400 and body["error"]["code"] == "bad_request" and "HashAlgorithm" in body["error"]["message"],
          "import preview: a bad file is 400 bad_request naming the field")
    _, me = v.call("GET", "/v1/tokens/self", token=owner)
    st, body = v.call("GET", f"/v1/audit?action=policy.put&actor={me['actor']}", token=auditor)
    check(st == 200 and len(body["entries"]) == 3, "audit filter actor: the owner's three policy.put rows")
    code = body["entries"][-1]["code"]
    st, body = v.call("GET", f"/v1/audit?action=policy.put&code={code}", token=auditor)
    check(st == 200 and [e["code"] for e in body["entries"]] == [code], f"audit filter code ({code})")
    st, body = v.call("GET", "/v1/audit?action=policy.put&actor=token:999/owner", token=auditor)
    check(st == 200 and body["entries"] == [], "audit filter actor: another actor matches nothing")

    # ---- auditor ------------------------------------------------------------
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1800"):
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    svc = webdriver.ChromeService(executable_path="/usr/bin/chromedriver") \
        if hasattr(webdriver, "ChromeService") else webdriver.chrome.service.Service("/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=svc, options=opts)
    driver.set_script_timeout(30)

    sign_in(auditor)
    visible = [b.get_attribute("data-view") for b in qa("#nav button") if b.is_displayed()]
    check(visible == ["inspect", "policies", "sessions", "audit"], f"auditor sees every view to read ({visible})")
    check(not q("#policy-import").is_displayed(), "auditor: no import control")
    check(js("return window.sessionStorage.length + window.localStorage.length") == 0,
          "the token is not kept in web storage")
    view("policies")
    wait(lambda: len(qa("#versions tbody tr")) == 2, "two versions listed")
    check(not [b for b in qa("#versions button.revoke") if b.is_displayed()], "auditor: no revoke button")
    prov = texts("#versions tbody tr td:nth-child(4)")
    check(any(HOSTILE in t for t in prov), "hostile provenance shown as text")
    live = texts("#versions tbody tr td:nth-child(7)")
    check(live[0] == "none" and live[1].startswith("1:"), f"live sessions per version ({live})")
    diff = qa("#diff tbody tr.differs")
    check(len(diff) == 1 and diff[0].text.startswith("PCR2"), "v1 vs v2: PCR2 highlighted as different")
    shot("policies-auditor")
    axe("policies")
    st = fetch_status("PUT", "/v1/policies/web", auditor, json.dumps(base))
    check(st == 403, f"a write from the page's JS context with the auditor token: 403 ({st})")

    view("sessions")
    wait(lambda: len(qa("#sessions tbody tr")) == 1, "one live session")
    cells = texts("#sessions tbody tr td")
    check(cells[1] == "web@2" and "min" in cells[4], f"session: policy@version and a countdown ({cells})")
    wait(lambda: len(q("#sessions tbody tr td:nth-child(4)").text) == 64, "key config fingerprint (SHA-256)")
    shot("sessions")
    axe("sessions")

    view("audit")
    q("#a-limit").clear()
    q("#a-limit").send_keys("3")
    q("#audit-search").click()
    wait(lambda: len(qa("#audit tbody tr")) == 3, "first page of 3 rows")
    check(q("#audit-more").is_enabled(), "more rows: Next page enabled (cursor)")
    q("#audit-more").click()
    wait(lambda: len(qa("#audit tbody tr")) == 6, "second page appended")
    ids = [int(t) for t in texts("#audit tbody tr td:first-child")]
    check(ids == sorted(ids) and len(set(ids)) == 6, "keyset paging: ascending ids, no repeats")
    q("#a-limit").clear()
    q("#a-limit").send_keys("50")
    q("#a-outcome").send_keys("refused")
    q("#a-action").send_keys("policy.put")
    q("#audit-search").click()
    wait(lambda: len(qa("#audit tbody tr")) >= 1, "the refused policy.put rows")
    msgs = texts("#audit tbody tr td:last-child")
    check(any("<img src=x onerror" in m for m in msgs), "hostile audit message shown as text")
    check(len(qa("#refusal-ranking li")) >= 1 and len(qa("#timeline .col")) == 24, "refusal timeline and ranking")
    shown = [int(t) for t in texts("#audit tbody tr td:first-child")]
    q("#export-jsonl").click()
    ex = js("return window.attestLastExport")
    rows = [json.loads(line) for line in ex["text"].splitlines()]
    check([r["id"] for r in rows] == shown and ex["name"] == "audit.jsonl", "JSON lines export: the rows shown")
    q("#export-csv").click()
    ex = js("return window.attestLastExport")
    crow = list(csv.DictReader(io.StringIO(ex["text"])))
    check([int(r["id"]) for r in crow] == shown and crow[0]["action"] == "policy.put",
          "CSV export: the rows shown")
    q("#audit-verify").click()
    wait(lambda: q("#audit-verify-out").get_attribute("data-ok") == "true", "audit chain check shown")
    check("hash" in q("#audit-verify-out").text, "the head to anchor is shown")
    shot("audit")
    axe("audit")

    # ---- inspector ----------------------------------------------------------
    view("inspect")
    genuine = open(GENUINE, "rb").read()
    js("document.getElementById('doc-b64').value = arguments[0]", b64(genuine))
    q("#inspect-run").click()
    wait(lambda: q("#verdict").text != "", "verdict shown")
    check(q("#verdict").text.startswith("Valid"), f"genuine AWS document valid at its own time ({q('#verdict').text})")
    chain = qa("#chain li")
    check(len(chain) >= 4 and all(li.get_attribute("data-valid") == "true" for li in chain)
          and "aws.nitro-enclaves" in chain[0].text, f"the chain, root first, each valid at the check time ({len(chain)})")
    pcr_rows = texts("#doc-pcrs tbody tr")
    check(any(r.startswith("PCR0 enclave image") for r in pcr_rows) and any("IAM role" in r for r in pcr_rows),
          "PCRs with their meaning")
    shot("inspect-genuine")
    axe("inspector")
    tampered = bytearray(genuine)
    tampered[-5] ^= 0x01  # in the signature
    st, want = v.call("POST", "/v1/verify", body={"evidence": b64(bytes(tampered)), "at": 1665651482})
    js("document.getElementById('doc-b64').value = arguments[0]", b64(bytes(tampered)))
    js("document.getElementById('verdict').textContent = ''")
    q("#inspect-run").click()
    wait(lambda: q("#verdict").text != "", "verdict shown (tampered)")
    code = q("#failing-check").get_attribute("data-code")
    check(q("#verdict").text == "Invalid" and code == want["error"]["code"] and code in q("#failing-check").text,
          f"tampered document: the failing check named ({code}, server says {want['error']['code']})")
    shot("inspect-tampered")
    hostile_doc = pki.doc(extra=["--module-id", HOSTILE_ID])
    js("document.getElementById('doc-b64').value = arguments[0]; document.getElementById('verdict').textContent = ''",
       b64(hostile_doc))
    q("#inspect-run").click()
    wait(lambda: q("#verdict").text != "", "verdict shown (hostile module id)")
    check(HOSTILE_ID in q("#doc-fields").text and q("#verdict").text.startswith("Valid"),
          "hostile module id (a valid document) shown as text")

    # ---- owner scoped to web: revoke one session from the sessions view --------
    st, _ = v.call("PUT", "/v1/policies/other", body=base, token=owner)
    kp2 = KeyPair(wd)
    st2, body = v.call("POST", "/v1/attestations", body={
        "evidence": b64(pki.doc(public_key=kp2.config, extra=["--module-id", "i-0fedcba9876543210-enc0fedcba987654321"])),
        "policy": "other"})
    check(st == 201 and st2 == 201, f"a live session under other@1 too ({st2})")
    owner_web = run(ATTESTCTL, "token", "create", "--db", v.db, "--role", "owner", "--policies", "web",
                    check_rc=0).stdout.decode().strip()
    sign_in(owner_web)
    visible = [b.get_attribute("data-view") for b in qa("#nav button") if b.is_displayed()]
    check(visible == ["inspect", "policies", "sessions"], f"owner sees inspector, policies and sessions ({visible})")
    view("sessions")
    wait(lambda: len(qa("#sessions tbody tr button.revoke")) == 1, "owner (web): one session, with a revoke button")
    check([t for t in texts("#sessions tbody tr td:nth-child(2)")] == ["web@2"],
          "owner scoped to web: only web's session listed (not other's)")
    rev = q("#sessions tbody tr button.revoke")
    check(rev.text == "Revoke session", f"the button ends the session ({rev.text})")
    rev.click()
    check("Confirm" in q("#sessions tbody tr button.revoke").text, "revoke asks for a second click")
    shot("sessions-owner-confirm")
    q("#sessions tbody tr button.revoke").click()
    wait(lambda: js("return document.querySelectorAll('#sessions tbody tr').length") == 0, "the session left the list")
    st, body = v.call("GET", f"/v1/sessions?state=all&id={session_id}", token=v.admin)
    check(st == 200 and body["sessions"][0]["state"] == "revoked", "its session ended (revoked)")
    st, body = v.call("GET", f"/v1/audit?action=session.revoke&outcome=ok", token=auditor)
    rows = body.get("entries", []) if st == 200 else []
    check(len(rows) == 1 and rows[0]["session_id"] == session_id and rows[0]["policy"] == "web@2",
          "one session.revoke audit row naming the session and web@2")
    shot("sessions-revoked")
    axe("sessions-owner")
    # the instance attests again (as its agent would on its next check): web@2 still admits it
    st, body = v.call("POST", "/v1/attestations", body={"evidence": b64(pki.doc(public_key=kp.config)),
                                                         "policy": "web"})
    check(st == 201, f"the instance re-attests under web@2 ({st})")
    session_id = body.get("session", {}).get("id")

    # ---- owner --------------------------------------------------------------
    sign_in(owner)
    visible = [b.get_attribute("data-view") for b in qa("#nav button") if b.is_displayed()]
    check(visible == ["inspect", "policies", "sessions"], f"owner sees inspector, policies and sessions ({visible})")
    view("policies")
    Select(q("#policy-name")).select_by_value("web")  # "other" comes first now
    wait(lambda: len(qa("#versions tbody tr")) == 2, "two versions listed (owner)")
    check(q("#policy-import").is_displayed(), "owner: import control shown")
    wait(lambda: texts("#versions tbody tr td:nth-child(7)")[1].startswith("1:"), "owner: live sessions per version")
    live = texts("#versions tbody tr td:nth-child(7)")
    _, sess = v.call("GET", f"/v1/sessions?id={session_id}", token=owner)
    check(live[0] == "none" and live[1] == "1: " + sess["sessions"][0]["instance_id"],
          f"owner: v1 admits none, v2 one session, its instance named ({live})")
    shot("policies-owner-sessions")
    hostile_file = wd(HOSTILE.replace("/", "_") + ".json")
    with open(hostile_file, "w") as f:
        f.write(open(EIF).read())
    q("#import-name").clear()
    q("#import-name").send_keys("web")
    q("#import-files").send_keys(hostile_file)
    wait(lambda: q("#import-store").is_enabled(), "import preview ready")
    preview = json.loads(q("#import-preview").text)
    check(preview["provenance"]["tool"] == "nitro-cli" and sorted(preview["pcrs"]) == ["0", "1", "2"],
          "preview: the policy attestctl policy import makes")
    shot("import-preview")
    axe("import")
    q("#import-store").click()
    wait(lambda: len(qa("#versions tbody tr")) == 3, "v3 stored and listed")
    check(any(HOSTILE in t for t in texts("#versions tbody tr td:nth-child(4)")), "hostile file name shown as text")
    Select(q("#diff-a")).select_by_value("2")
    Select(q("#diff-b")).select_by_value("3")
    wait(lambda: len(qa("#diff tbody tr.differs")) >= 3, "v2 vs v3: PCR0-2 differ")
    shot("diff")
    rev = [b for b in qa("#versions button.revoke") if b.get_attribute("data-version") == "2"][0]
    rev.click()
    check("Confirm" in rev.text, "revoke asks for a second click")
    rev.click()
    wait(lambda: "revoked" in js("const r = document.querySelector(\"#versions tbody tr[data-version='2']\");"
                                 " return r ? r.textContent : ''"), "v2 shown revoked")
    check(texts("#versions tbody tr td:nth-child(7)")[1] == "none", "v2 admits no live session any more")
    st, body = v.call("GET", "/v1/policies/web", token=owner)
    check(st == 200 and [h["revoked_at"] is not None for h in body["history"]] == [False, True, False]
          and body["version"] == 3, "v2 revoked, v3 current")
    st, body = v.call("GET", f"/v1/sessions?state=all&id={session_id}", token=v.admin)
    check(st == 200 and body["sessions"][0]["state"] == "policy revoked", "its session ended (policy revoked)")
    shot("revoked")

    bad = {k: f for k, f in axe_findings.items() if f}
    check(len(axe_findings) == 6 and not bad, f"axe-core: no serious or critical violation in any view ({bad})")

    # ---- nothing hostile ran, no CSP violation --------------------------------
    check(js("return window.__pwned === undefined"), "no injected script ran (global marker unset)")
    logs = driver.get_log("browser")
    csp_logs = [e for e in logs if "Content Security Policy" in e["message"] or "Refused to" in e["message"]]
    other = [e for e in logs if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]
    check(not csp_logs and not other, f"no CSP violation or script error in the console log ({(csp_logs + other)[:3]})")
except Exception as e:  # noqa: BLE001 - report and fail
    import traceback
    traceback.print_exc()
    check(False, f"exception: {e}")
finally:
    if driver:
        driver.quit()
    v.stop()
finish()
