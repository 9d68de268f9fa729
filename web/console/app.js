// attest console: a page served by attest-verifier under /console/ that
// talks only to this verifier's API, with the bearer token the user typed
// (kept in this tab's memory, never in storage: a reload signs out). The UI
// hides what the token's role cannot do; the server decides (a refusal is
// shown as it comes). Everything from the database or a document (policy
// names, module ids, audit messages, certificate names) is untrusted: it is
// only ever put into the page as text (textContent, Option text), never as
// markup, and the CSP forbids inline script and other origins.
'use strict';

const $ = (id) => document.getElementById(id);
let token = null; // the signed-in user's API token: memory only
let me = null; // GET /v1/tokens/self
let policyDoc = null; // GET /v1/policies/{name} answer shown
let importPreview = null; // the policy the verifier built from dropped files
let auditRows = []; // rows of the current query, every page loaded so far
let auditNext = null; // cursor of the next page
let auditQuery = ''; // query string of the current search (without cursor)
const timers = [];

// ---- helpers ---------------------------------------------------------------
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function row(cells) {
  const tr = document.createElement('tr');
  for (const c of cells) {
    const td = document.createElement('td');
    if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? '–' : String(c);
    tr.appendChild(td);
  }
  return tr;
}
function notice(text) {
  const n = $('notice');
  n.textContent = text || '';
  n.hidden = !text;
}
function can(...roles) { return !!me && (me.role === 'admin' || roles.includes(me.role)); }

// Every call carries the token; a refusal is shown with its code and the
// server's words, and returned so the caller can stop.
async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + token };
  const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
  if (body !== undefined) { headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
  let r;
  try { r = await fetch(path, init); } catch (e) {
    notice('The verifier cannot be reached (' + e.message + ').');
    return { status: 0, body: null };
  }
  let j = null;
  try { j = await r.json(); } catch (e) { j = null; }
  if (!r.ok) {
    const err = j && j.error ? j.error : {};
    const what = r.status === 403 ? 'Not allowed for this token'
      : r.status === 401 ? 'Not signed in (token unknown, revoked or expired)' : 'Refused';
    notice(what + ': ' + r.status + ' ' + (err.code || '') + ': ' + (err.message || '') +
      (err.audit_id ? ' (audit row ' + err.audit_id + ')' : ''));
  }
  return { status: r.status, body: j };
}

function b64ToBytes(b64) {
  const s = atob(b64.replace(/\s+/g, '').replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
function bytesToB64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
async function sha256Hex(bytes) {
  if (!window.crypto || !crypto.subtle) return null;
  const h = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(h, (b) => b.toString(16).padStart(2, '0')).join('');
}
function fmtDuration(ms) {
  if (ms <= 0) return 'expired';
  const s = Math.floor(ms / 1000);
  return (s >= 3600 ? Math.floor(s / 3600) + ' h ' : '') + Math.floor((s % 3600) / 60) + ' min ' + (s % 60) + ' s';
}

// ---- sign-in and views -------------------------------------------------------
async function signIn(ev) {
  ev.preventDefault();
  token = $('token').value.trim();
  $('token').value = '';
  const r = await api('GET', '/v1/tokens/self');
  if (r.status !== 200) {
    token = null;
    $('signin-error').textContent = 'Sign-in failed: ' + (r.body && r.body.error ? r.body.error.message : 'status ' + r.status);
    notice('');
    return;
  }
  me = r.body;
  $('signin-error').textContent = '';
  $('signin').hidden = true;
  $('signout').hidden = false;
  $('nav').hidden = false;
  $('whoami').textContent = 'Signed in as ' + me.actor + ' (role ' + me.role + (me.policies ? ', policies ' + me.policies : '') + ')';
  document.body.dataset.role = me.role;
  for (const b of document.querySelectorAll('#nav button')) {
    const roles = b.dataset.roles ? b.dataset.roles.split(' ') : null;
    b.hidden = roles ? !can(...roles) : false;
  }
  for (const w of document.querySelectorAll('.writes')) w.hidden = !can('owner');
  if (can('owner', 'auditor')) await loadPolicyNames();
  show('inspect');
}

function signOut() {
  token = null;
  me = null;
  location.reload();
}

function show(view) {
  notice('');
  for (const s of document.querySelectorAll('.view')) s.hidden = s.id !== 'view-' + view;
  for (const b of document.querySelectorAll('#nav button')) b.setAttribute('aria-pressed', String(b.dataset.view === view));
  document.body.dataset.view = view;
  if (view === 'policies') loadPolicy();
  if (view === 'sessions') loadSessions();
}

// ---- inspector ---------------------------------------------------------------
const ENCLAVE_PCRS = {
  0: 'enclave image file (the whole EIF)', 1: 'Linux kernel and boot ramfs', 2: 'application (user space)',
  3: 'IAM role of the parent instance', 4: 'parent instance id', 8: 'EIF signing certificate',
};
const TPM_PCRS = {
  0: 'firmware code (AWS-controlled)', 1: 'firmware configuration (AWS-controlled)',
  4: 'boot manager code: the boot loader / UKI', 7: 'Secure Boot policy',
  12: 'kernel command line additions (all-zero hash when unmodified)', 15: 'OS use (a model hash, in AWS\u2019s demo)',
  16: 'debug', 23: 'application',
};
function pcrMeaning(format, idx) {
  const n = Number(idx);
  if (format === 'nitro-tpm') return TPM_PCRS[n] || (n >= 8 && n <= 15 ? 'operating system use' : 'not assigned');
  return ENCLAVE_PCRS[n] || (n >= 16 ? 'extended at run time by the enclave' : 'reserved');
}

async function docFromFile(file) {
  const buf = new Uint8Array(await file.arrayBuffer());
  // COSE_Sign1: tag 18 (0xd2) or a 4-array (0x84); anything else is base64 text.
  if (buf.length && (buf[0] === 0xd2 || buf[0] === 0x84)) return bytesToB64(buf);
  return new TextDecoder().decode(buf).trim();
}

async function inspect(ev) {
  ev.preventDefault();
  notice('');
  let b64 = $('doc-b64').value.trim();
  const f = $('doc-file').files[0];
  if (f) b64 = await docFromFile(f);
  if (!b64) { notice('Paste a document or choose a file.'); return; }
  const body = { evidence: b64.replace(/\s+/g, '') };
  const pol = $('inspect-policy').value;
  if (pol) body.policy = pol;
  const mode = $('check-time').value;
  if (mode === 'given') {
    const t = Date.parse($('check-at').value);
    if (Number.isNaN(t)) { notice('Time: expected RFC 3339, e.g. 2024-09-07T14:40:00Z'); return; }
    body.at = Math.floor(t / 1000);
  }
  let r = await api('POST', '/v1/verify', body);
  // At the document's own time: decode first, then check at its timestamp.
  if (r.status === 200 && mode === 'document' && typeof r.body.timestamp_ms === 'number') {
    body.at = Math.floor(r.body.timestamp_ms / 1000);
    r = await api('POST', '/v1/verify', body);
  }
  if (r.status !== 200) return;
  renderVerdict(r.body);
}

function renderVerdict(v) {
  $('inspect-out').hidden = false;
  const verdict = $('verdict');
  verdict.textContent = v.valid ? 'Valid: every check passed' : 'Invalid';
  verdict.className = v.valid ? 'valid' : 'invalid';
  const fc = $('failing-check');
  fc.textContent = v.valid ? '' : 'Failing check: ' + v.error.code + ' \u2014 ' + v.error.message;
  fc.dataset.code = v.valid ? '' : v.error.code;
  const dl = $('doc-fields');
  clear(dl);
  const fields = [['format', v.format], ['module id', v.module_id], ['timestamp', v.timestamp],
    ['checked at', v.checked_at], ['digest', v.digest], ['nonce', v.nonce], ['user data', v.user_data],
    ['public key', v.public_key], ['COSE tag', v.cose_tagged === undefined ? null : String(v.cose_tagged)],
    ['payload map', v.payload_map], ['root SHA-256', v.root_sha256],
    ['AWS root', v.aws_root === undefined ? null : String(v.aws_root)], ['policy SHA-256', v.policy_sha256],
    ['audit row', v.audit_id], ['warning', v.warning]];
  for (const [k, val] of fields) {
    if (val === undefined) continue;
    dl.appendChild(el('dt', k));
    dl.appendChild(el('dd', val === null ? '–' : val));
  }
  renderChain(v.chain || [], v.checked_at);
  const tb = document.querySelector('#doc-pcrs tbody');
  clear(tb);
  const bad = new Set();
  if (v.error && v.error.pcrs) for (const k of Object.keys(v.error.pcrs)) if (v.error.pcrs[k] && v.error.pcrs[k].match === false) bad.add(k);
  for (const k of Object.keys(v.pcrs || {}).sort((a, b) => a - b)) {
    const tr = row(['PCR' + k, pcrMeaning(v.format, k), el('code', v.pcrs[k])]);
    if (/^0+$/.test(v.pcrs[k])) tr.className = 'zero';
    if (bad.has(k)) tr.className = 'mismatch';
    tb.appendChild(tr);
  }
}

// Each certificate's validity as a bar on a common time axis, with the
// check time marked: an expired or not yet valid certificate shows at once.
function renderChain(chain, checkedAt) {
  const ol = $('chain');
  clear(ol);
  const at = Date.parse(checkedAt) / 1000;
  $('chain-time').textContent = checkedAt ? '(checked at ' + checkedAt + ')' : '';
  const parsed = chain.filter((c) => c.parsed);
  if (!parsed.length) return;
  // The axis spans the shorter-lived certificates (the root's decades would
  // flatten the rest); a bar running off the axis is clipped at its edge.
  const axis = parsed.length > 1 ? parsed.filter((c) => c.position !== 'root') : parsed;
  const lo0 = Math.min(at, ...axis.map((c) => c.not_before_s));
  const hi0 = Math.max(at, ...axis.map((c) => c.not_after_s));
  const pad = Math.max(1, (hi0 - lo0) * 0.05);
  const lo = lo0 - pad, hi = hi0 + pad;
  const pct = (t) => Math.min(100, Math.max(0, (100 * (t - lo)) / (hi - lo)));
  for (const c of chain) {
    const li = el('li', null, 'cert');
    li.appendChild(el('strong', c.position));
    if (!c.parsed) { li.appendChild(el('span', ' (not a parsable certificate, ' + c.bytes + ' bytes)')); ol.appendChild(li); continue; }
    li.appendChild(el('div', 'subject: ' + c.subject, 'subject'));
    li.appendChild(el('div', 'issuer: ' + c.issuer, 'issuer'));
    const ok = at >= c.not_before_s && at <= c.not_after_s;
    li.appendChild(el('div', c.not_before + ' \u2013 ' + c.not_after + (ok ? ' (valid at the check time)' : ' (NOT valid at the check time)'), 'validity'));
    const bar = el('div', null, 'bar');
    const span = el('div', null, ok ? 'span ok' : 'span bad');
    span.style.left = pct(c.not_before_s) + '%'; // CSSOM, not an inline style attribute
    span.style.width = Math.max(0.5, pct(c.not_after_s) - pct(c.not_before_s)) + '%';
    const mark = el('div', null, 'mark');
    mark.style.left = pct(at) + '%';
    bar.appendChild(span);
    bar.appendChild(mark);
    li.appendChild(bar);
    li.dataset.valid = String(ok);
    ol.appendChild(li);
  }
}

// ---- policies ----------------------------------------------------------------
async function loadPolicyNames() {
  const r = await api('GET', '/v1/policies');
  if (r.status !== 200) return;
  const sel = $('policy-name');
  const keep = sel.value;
  clear(sel);
  const isel = $('inspect-policy');
  while (isel.options.length > 1) isel.remove(1);
  for (const p of r.body.policies) {
    sel.appendChild(new Option(p.name + (p.version === null ? ' (all revoked)' : ' @' + p.version), p.name));
    isel.appendChild(new Option(p.name, p.name));
  }
  if (keep) sel.value = keep;
  if (!$('import-name').value && sel.value) $('import-name').value = sel.value;
}

async function loadPolicy() {
  const name = $('policy-name').value;
  $('policy-out').hidden = true;
  if (!name) return;
  const r = await api('GET', '/v1/policies/' + encodeURIComponent(name));
  if (r.status !== 200) return;
  policyDoc = r.body;
  let live = null;
  if (can('gateway', 'auditor', 'owner')) {
    const s = await api('GET', '/v1/sessions?policy=' + encodeURIComponent(name));
    if (s.status === 200) live = s.body.sessions;
  }
  const tb = document.querySelector('#versions tbody');
  clear(tb);
  const a = $('diff-a'), b = $('diff-b');
  clear(a); clear(b);
  for (const h of policyDoc.history) {
    const prov = h.policy && h.policy.provenance ? h.policy.provenance : null;
    const provText = prov ? [prov.tool, prov.image, prov.source_sha256, (prov.files || []).join(', ')].filter(Boolean).join(' \u00b7 ') : null;
    let sessCell;
    if (live === null) sessCell = el('span', 'not visible to role ' + me.role, 'muted');
    else {
      const mine = live.filter((s) => s.policy === name + '@' + h.version);
      sessCell = el('span', mine.length ? mine.length + ': ' + mine.map((s) => s.instance_id).join(', ') : 'none');
    }
    const cmp = el('button', 'compare');
    cmp.type = 'button';
    cmp.addEventListener('click', () => { b.value = String(h.version); renderDiff(); });
    let rev = el('span', '');
    if (can('owner') && !h.revoked_at) {
      rev = el('button', 'Revoke', 'revoke');
      rev.type = 'button';
      rev.dataset.version = h.version;
      rev.addEventListener('click', () => revoke(rev, name, h.version));
    }
    const tr = row(['v' + h.version, h.created_at, h.created_by, provText, h.lint || (h.lint_overridden ? 'overridden' : 'clean'),
      h.revoked_at ? 'revoked ' + h.revoked_at : h.version === policyDoc.version ? 'current' : 'admits', sessCell, cmp, rev]);
    tr.dataset.version = h.version;
    if (h.revoked_at) tr.className = 'revoked';
    if (!can('owner')) tr.lastChild.hidden = true;
    tb.appendChild(tr);
    a.appendChild(new Option('v' + h.version, String(h.version)));
    b.appendChild(new Option('v' + h.version, String(h.version)));
  }
  const n = policyDoc.history.length;
  if (n) { a.value = String(policyDoc.history[Math.max(0, n - 2)].version); b.value = String(policyDoc.history[n - 1].version); }
  $('policy-out').hidden = false;
  renderDiff();
}

async function revoke(button, name, version) {
  // Two steps: the first click asks, the second revokes.
  if (button.dataset.armed !== '1') {
    button.dataset.armed = '1';
    button.textContent = 'Confirm: revoke v' + version + ' and end its sessions';
    return;
  }
  const r = await api('DELETE', '/v1/policies/' + encodeURIComponent(name) + '/versions/' + version);
  if (r.status !== 200) return;
  await loadPolicy();
  notice('');
  $('whoami').dataset.lastAction = 'revoked v' + version + ', ' + r.body.sessions_ended + ' session(s) ended';
}

function renderDiff() {
  if (!policyDoc) return;
  const va = Number($('diff-a').value), vb = Number($('diff-b').value);
  const pa = (policyDoc.history.find((h) => h.version === va) || {}).policy || {};
  const pb = (policyDoc.history.find((h) => h.version === vb) || {}).policy || {};
  $('diff-a-head').textContent = 'v' + va;
  $('diff-b-head').textContent = 'v' + vb;
  const tb = document.querySelector('#diff tbody');
  clear(tb);
  const ka = pa.pcrs || {}, kb = pb.pcrs || {};
  const keys = Array.from(new Set([...Object.keys(ka), ...Object.keys(kb)])).sort((x, y) => x - y);
  const fmt = pb.format || pa.format;
  for (const k of keys) {
    const xa = (ka[k] || []).slice().sort(), xb = (kb[k] || []).slice().sort();
    const cell = (vals) => { const d = el('div'); for (const v of vals) d.appendChild(el('code', v)); if (!vals.length) d.textContent = 'not checked'; return d; };
    const tr = row(['PCR' + k + ' \u2014 ' + pcrMeaning(fmt, k), cell(xa), cell(xb)]);
    if (JSON.stringify(xa) !== JSON.stringify(xb)) tr.className = 'differs';
    tb.appendChild(tr);
  }
  const other = [];
  for (const f of ['format', 'max_document_age_s', 'session_ttl_s', 'require_nonce', 'require_public_key', 'module_ids']) {
    if (JSON.stringify(pa[f]) !== JSON.stringify(pb[f])) other.push(f + ': ' + JSON.stringify(pa[f]) + ' \u2192 ' + JSON.stringify(pb[f]));
  }
  $('diff-other').textContent = other.length ? 'Other differences: ' + other.join('; ') : 'No other differences.';
}

async function importFiles(files) {
  notice('');
  const name = $('import-name').value.trim() || $('policy-name').value;
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(name)) { notice('Store as policy: a name of 1..128 of A-Z a-z 0-9 . _ -'); return; }
  $('import-name').value = name;
  const list = [];
  for (const f of files) list.push({ name: f.name, content: await f.text() });
  const body = { files: list };
  const ttl = parseInt($('import-ttl').value, 10);
  if (ttl > 0) body.session_ttl_s = ttl;
  importPreview = null;
  $('import-store').disabled = true;
  const r = await api('POST', '/v1/policies/' + encodeURIComponent(name) + '/import', body);
  $('import-preview').textContent = r.status === 200 ? JSON.stringify(r.body.policy, null, 2) : '';
  $('import-lint').textContent = r.status === 200 ? (r.body.lint ? 'Lint: ' + r.body.lint : 'Lint: clean') : '';
  if (r.status !== 200) return;
  importPreview = r.body.policy;
  $('import-store').disabled = false;
}

async function storeImport() {
  if (!importPreview) return;
  const name = $('import-name').value.trim();
  const q = $('import-allow-lint').checked ? '?allow_lint=1' : '';
  const r = await api('PUT', '/v1/policies/' + encodeURIComponent(name) + q, importPreview);
  if (r.status !== 201) return;
  importPreview = null;
  $('import-store').disabled = true;
  $('import-preview').textContent = 'Stored as ' + name + ' v' + r.body.version + '.';
  await loadPolicyNames();
  $('policy-name').value = name;
  await loadPolicy();
}

// ---- sessions ----------------------------------------------------------------
async function loadSessions() {
  const r = await api('GET', '/v1/sessions?state=active');
  const tb = document.querySelector('#sessions tbody');
  clear(tb);
  if (r.status !== 200) return;
  for (const s of r.body.sessions) {
    const kc = el('code', s.key_config ? '…' : 'none');
    if (s.key_config) sha256Hex(b64ToBytes(s.key_config)).then((h) => { kc.textContent = h || 'unavailable'; });
    const exp = el('span', fmtDuration(s.expires_at_ms - Date.now()), 'countdown');
    exp.dataset.expires = s.expires_at_ms;
    // An owner (within its scope: the list holds only its policies'
    // sessions) or an admin ends one session; its agent re-attests and comes
    // back if the version still admits it (revoke the version to bar it).
    let rev = el('span', '');
    if (can('owner')) {
      rev = el('button', 'Revoke session', 'revoke');
      rev.type = 'button';
      rev.dataset.session = s.id;
      rev.addEventListener('click', () => revokeSession(rev, s.id, s.instance_id));
    }
    const tr = row([s.instance_id, s.policy, s.endpoint, kc, exp, s.state, rev]);
    tr.dataset.session = s.id;
    tb.appendChild(tr);
  }
}
// Two steps, as for a policy version: the first click asks, the second ends it.
async function revokeSession(button, id, instance) {
  if (button.dataset.armed !== '1') {
    button.dataset.armed = '1';
    button.textContent = 'Confirm: end the session of ' + instance;
    return;
  }
  const r = await api('DELETE', '/v1/sessions/' + encodeURIComponent(id));
  if (r.status !== 200) return;
  await loadSessions();
  $('whoami').dataset.lastAction = 'session ' + id + ' ' + r.body.state;
}
function tick() {
  for (const c of document.querySelectorAll('.countdown')) c.textContent = fmtDuration(Number(c.dataset.expires) - Date.now());
}

// ---- audit -------------------------------------------------------------------
function auditParams() {
  const p = new URLSearchParams();
  const add = (k, id) => { const v = $(id).value.trim(); if (v) p.set(k, v); };
  add('actor', 'a-actor'); add('action', 'a-action'); add('outcome', 'a-outcome'); add('code', 'a-code');
  add('policy', 'a-policy'); add('instance', 'a-instance'); add('since', 'a-since'); add('until', 'a-until');
  add('limit', 'a-limit');
  return p;
}

async function auditSearch(ev) {
  if (ev) ev.preventDefault();
  notice('');
  auditQuery = auditParams().toString();
  auditRows = [];
  auditNext = null;
  clear(document.querySelector('#audit tbody'));
  await auditPage();
}

async function auditPage(more) {
  const p = new URLSearchParams(auditQuery);
  if (more && auditNext) p.set('cursor', auditNext);
  const r = await api('GET', '/v1/audit?' + p.toString());
  if (r.status !== 200) return;
  const tb = document.querySelector('#audit tbody');
  for (const e of r.body.entries) {
    auditRows.push(e);
    const tr = row([e.id, e.time, e.actor, e.action, e.outcome, e.code, e.policy, e.instance_id, e.message]);
    tr.className = 'outcome-' + (e.outcome === 'ok' || e.outcome === 'refused' || e.outcome === 'error' ? e.outcome : 'other');
    tr.dataset.id = e.id;
    tb.appendChild(tr);
  }
  auditNext = r.body.next;
  $('audit-more').disabled = !auditNext;
  $('audit-count').textContent = auditRows.length + ' row(s) shown' + (auditNext ? '; more follow (Next page)' : '');
  renderTimeline();
}

// Attestations and refusals of the rows loaded, in up to 24 time buckets,
// and the refusal codes ranked.
function renderTimeline() {
  const tl = $('timeline');
  clear(tl);
  const rank = $('refusal-ranking');
  clear(rank);
  if (!auditRows.length) return;
  const ts = auditRows.map((e) => e.time_ms);
  const lo = Math.min(...ts), hi = Math.max(...ts) + 1;
  const n = 24, w = Math.max(1, Math.ceil((hi - lo) / n));
  const buckets = Array.from({ length: n }, () => ({ ok: 0, refused: 0 }));
  const codes = new Map();
  for (const e of auditRows) {
    const b = buckets[Math.min(n - 1, Math.floor((e.time_ms - lo) / w))];
    if (e.outcome === 'ok') b.ok++; else { b.refused++; codes.set(e.code || '(none)', (codes.get(e.code || '(none)') || 0) + 1); }
  }
  const max = Math.max(1, ...buckets.map((b) => b.ok + b.refused));
  buckets.forEach((b, i) => {
    const col = el('div', null, 'col');
    col.title = new Date(lo + i * w).toISOString() + ': ' + b.ok + ' ok, ' + b.refused + ' refused or errors';
    const r = el('div', null, 'refused');
    r.style.height = (100 * b.refused) / max + '%';
    const o = el('div', null, 'ok');
    o.style.height = (100 * b.ok) / max + '%';
    col.appendChild(r);
    col.appendChild(o);
    tl.appendChild(col);
  });
  for (const [code, count] of Array.from(codes).sort((x, y) => y[1] - x[1])) rank.appendChild(el('li', code + ': ' + count));
}

const CSV_COLUMNS = ['id', 'time', 'actor', 'action', 'outcome', 'code', 'message', 'policy', 'instance_id', 'session_id',
  'pcr_sha256', 'evidence_sha256', 'client', 'prev_hash', 'hash'];
function csvCell(v) {
  let s = v === null || v === undefined ? '' : String(v);
  // A cell a spreadsheet would run as a formula is kept as text.
  const formula = /^[=+\-@\t\r]/.test(s);
  if (formula) s = "'" + s;
  return formula || /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}
function exportRows(kind) {
  const text = kind === 'csv'
    ? [CSV_COLUMNS.join(',')].concat(auditRows.map((e) => CSV_COLUMNS.map((c) => csvCell(e[c])).join(','))).join('\r\n') + '\r\n'
    : auditRows.map((e) => JSON.stringify(e)).join('\n') + (auditRows.length ? '\n' : '');
  const name = 'audit.' + (kind === 'csv' ? 'csv' : 'jsonl');
  window.attestLastExport = { name, text, rows: auditRows.length };
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], { type: kind === 'csv' ? 'text/csv' : 'application/jsonl' }));
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

async function auditVerify() {
  const r = await api('GET', '/v1/audit/verify');
  const dl = $('audit-verify-out');
  clear(dl);
  if (r.status !== 200) return;
  const v = r.body;
  const items = [['result', v.ok ? 'intact' : 'BROKEN'], ['rows', v.entries], ['mode', v.mode], ['rows recomputed', v.checked],
    ['first bad row', v.first_bad], ['reason', v.reason],
    ['head to anchor', v.head ? 'id ' + v.head.id + ', hash ' + v.head.hash : null]];
  for (const [k, val] of items) {
    if (val === undefined) continue;
    dl.appendChild(el('dt', k));
    dl.appendChild(el('dd', val === null ? '–' : val));
  }
  dl.dataset.ok = String(!!v.ok);
}

// ---- wiring ------------------------------------------------------------------
function init() {
  $('signin').addEventListener('submit', signIn);
  $('signout').addEventListener('click', signOut);
  for (const b of document.querySelectorAll('#nav button')) b.addEventListener('click', () => show(b.dataset.view));
  $('inspect-form').addEventListener('submit', inspect);
  $('policy-name').addEventListener('change', () => { $('import-name').value = $('policy-name').value; loadPolicy(); });
  $('policy-reload').addEventListener('click', async () => { await loadPolicyNames(); await loadPolicy(); });
  $('diff-a').addEventListener('change', renderDiff);
  $('diff-b').addEventListener('change', renderDiff);
  $('import-files').addEventListener('change', () => importFiles(Array.from($('import-files').files)));
  const dz = $('dropzone');
  dz.addEventListener('dragover', (e) => { e.preventDefault(); dz.classList.add('over'); });
  dz.addEventListener('dragleave', () => dz.classList.remove('over'));
  dz.addEventListener('drop', (e) => { e.preventDefault(); dz.classList.remove('over'); importFiles(Array.from(e.dataTransfer.files)); });
  $('import-store').addEventListener('click', storeImport);
  $('sessions-reload').addEventListener('click', loadSessions);
  $('audit-form').addEventListener('submit', auditSearch);
  $('audit-more').addEventListener('click', () => auditPage(true));
  $('export-jsonl').addEventListener('click', () => exportRows('jsonl'));
  $('export-csv').addEventListener('click', () => exportRows('csv'));
  $('audit-verify').addEventListener('click', auditVerify);
  timers.push(setInterval(tick, 1000));
  document.body.dataset.ready = '1';
}
init();
