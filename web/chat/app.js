// attest chat page: talks only to this gateway's own routes (/v1/models,
// /v1/chat/completions, /v1/attestation), so every prompt is sealed to a
// verified instance exactly as an SDK's is. Model output is untrusted: it is
// rendered by building DOM nodes with textContent (never innerHTML), links
// are shown as text, and the CSP forbids inline script and other origins.
'use strict';

const $ = (id) => document.getElementById(id);
const history = []; // {role, content}: only in this tab's memory
let controller = null; // AbortController of the answer in flight
let lastInstance = null;
let attest = null; // the last /v1/attestation answer
let expiresAt = 0; // ms, of the instance shown

// Plain words for the gateway's stable error codes.
function plainWords(code, message) {
  const m = message || '';
  if (code === 'policy_revoked')
    return 'The model owner revoked the approved software version (policy). No instance is approved right now, so nothing was sent.';
  if (code === 'attestation_expired')
    return 'The instance\u2019s proof that it runs the approved software expired and has not been renewed yet, so nothing was sent.';
  if (code === 'pcr_mismatch' || m.includes('(pcr_mismatch)'))
    return 'The instance runs software that differs from what the policy approves (a measurement did not match), so nothing was sent.';
  if (code === 'token_invalid')
    return 'The verifier\u2019s signed statement about the instance could not be checked, so nothing was sent.';
  if (m.includes('session list could not be fetched'))
    return 'The verifier that vouches for the instances cannot be reached right now, so no instance can be trusted and nothing was sent.';
  if (code === 'no_verified_instance')
    return 'No instance has proved that it runs the approved software, so nothing was sent.';
  if (code === 'instance_unreachable')
    return 'The verified instance did not answer. Try again in a moment.';
  return 'The gateway refused the request (' + (code || 'error') + ').';
}

// ---- safe Markdown subset ---------------------------------------------------
// Paragraphs, fenced code blocks, inline code, **strong**, *emphasis* (not
// _x_: identifiers have underscores),
// bulleted and numbered lists, # headings (as strong paragraphs). Links
// [text](url) are shown as "text (url)": never a clickable link, never an
// image. Only text nodes carry model output.
function inline(parent, text) {
  const re = /(`[^`\n]+`|\*\*[^*\n]+\*\*|\*[^*\s][^*\n]*\*|!?\[[^\]\n]*\]\([^)\n]*\))/;
  let rest = text;
  while (rest.length) {
    const m = re.exec(rest);
    if (!m) { parent.appendChild(document.createTextNode(rest)); break; }
    if (m.index) parent.appendChild(document.createTextNode(rest.slice(0, m.index)));
    const t = m[0];
    let el;
    if (t[0] === '`') { el = document.createElement('code'); el.textContent = t.slice(1, -1); }
    else if (t.startsWith('**')) { el = document.createElement('strong'); el.textContent = t.slice(2, -2); }
    else if (t[0] === '*') { el = document.createElement('em'); el.textContent = t.slice(1, -1); }
    else {
      const lm = /^!?\[([^\]]*)\]\(([^)]*)\)$/.exec(t);
      el = document.createTextNode(lm[1] + ' (' + lm[2] + ')');
    }
    parent.appendChild(el);
    rest = rest.slice(m.index + t.length);
  }
}

function renderMarkdown(target, text) {
  target.replaceChildren();
  const lines = text.split('\n');
  let para = null, list = null;
  const close = () => { para = null; list = null; };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('```')) {
      close();
      const pre = document.createElement('pre');
      const code = document.createElement('code');
      const body = [];
      for (i++; i < lines.length && !lines[i].startsWith('```'); i++) body.push(lines[i]);
      code.textContent = body.join('\n');
      pre.appendChild(code);
      target.appendChild(pre);
      continue;
    }
    if (!line.trim()) { close(); continue; }
    const item = /^\s*(?:([-*+])|(\d+)[.)])\s+(.*)$/.exec(line);
    if (item) {
      const tag = item[1] ? 'ul' : 'ol';
      if (!list || list.tagName.toLowerCase() !== tag) {
        para = null;
        list = document.createElement(tag);
        target.appendChild(list);
      }
      const li = document.createElement('li');
      inline(li, item[3]);
      list.appendChild(li);
      continue;
    }
    const h = /^#{1,6}\s+(.*)$/.exec(line);
    if (h) {
      close();
      const p = document.createElement('p');
      const s = document.createElement('strong');
      inline(s, h[1]);
      p.appendChild(s);
      target.appendChild(p);
      continue;
    }
    list = null;
    if (!para) { para = document.createElement('p'); target.appendChild(para); }
    else para.appendChild(document.createElement('br'));
    inline(para, line);
  }
}

// ---- conversation -------------------------------------------------------------
function addEntry(cls, text) {
  const li = document.createElement('li');
  li.className = cls;
  const body = document.createElement('div');
  body.className = 'body';
  if (cls === 'assistant') renderMarkdown(body, text); else body.textContent = text;
  const meta = document.createElement('div');
  meta.className = 'meta';
  li.append(body, meta);
  $('conversation').appendChild(li);
  li.scrollIntoView({block: 'end'});
  return {li, body, meta};
}

function setStatus(t) { $('status').textContent = t; }

function block(reason) {
  $('blocked').textContent = reason;
  $('blocked').hidden = false;
}

function unblock() { $('blocked').hidden = true; $('blocked').textContent = ''; }

// ---- attestation panel --------------------------------------------------------
const PCR_MEANING = {
  'nitro-tpm': {4: 'boot loader / unified kernel image (UKI)', 7: 'Secure Boot policy', 12: 'kernel command line and UKI add-ons', 15: 'model file (attest-agent --model)'},
  'nitro-enclave': {0: 'enclave image file', 1: 'enclave kernel and boot ramfs', 2: 'application', 3: 'IAM role of the parent instance', 4: 'parent instance id', 8: 'enclave image signing certificate', 16: 'model file (attest-agent --model)'},
};

function b64urlBytes(s) {
  const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
  return Uint8Array.from(b, (c) => c.charCodeAt(0));
}

// Verify a compact JWS (ES256) against the JWKS with WebCrypto; the claims
// on success, else null.
async function verifyEar(token, jwks) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const header = JSON.parse(new TextDecoder().decode(b64urlBytes(parts[0])));
  if (header.alg !== 'ES256') return null;
  const jwk = ((jwks && jwks.keys) || []).find((k) => k.kid === header.kid && k.kty === 'EC' && k.crv === 'P-256');
  if (!jwk) return null;
  const key = await crypto.subtle.importKey('jwk', {kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, ext: true},
    {name: 'ECDSA', namedCurve: 'P-256'}, false, ['verify']);
  const ok = await crypto.subtle.verify({name: 'ECDSA', hash: 'SHA-256'}, key, b64urlBytes(parts[2]),
    new TextEncoder().encode(parts[0] + '.' + parts[1]));
  if (!ok) return null;
  return {kid: header.kid, claims: JSON.parse(new TextDecoder().decode(b64urlBytes(parts[1])))};
}

function text(id, t, cls) {
  const el = $(id);
  el.textContent = t;
  el.className = cls || '';
}

async function refreshAttestation() {
  let a;
  try {
    const r = await fetch('/v1/attestation', {cache: 'no-store'});
    a = await r.json();
  } catch (e) {
    a = {error: {code: 'gateway_unreachable', message: 'the gateway did not answer'}};
  }
  attest = a;
  const atts = a.attestations || [];
  if (a.error || !atts.length) {
    const code = a.error ? a.error.code : 'no_verified_instance';
    const why = plainWords(code, a.error ? a.error.message : '');
    block(why);
    text('att-verdict', 'Not verified: ' + why, 'bad');
    ['att-instance', 'att-policy', 'att-expires', 'att-signature', 'att-local'].forEach((id) => text(id, '–'));
    $('att-pcrs').tBodies[0].replaceChildren();
    $('att-claims').textContent = '';
    $('att-pcr-summary').textContent = '';
    expiresAt = 0;
    return false;
  }
  const att = atts.find((x) => x.instance === lastInstance) || atts[0];
  let v = null;
  try { v = await verifyEar(att.token, a.jwks); } catch (e) { v = null; }
  if (!v) {
    const why = plainWords('token_invalid');
    block(why);
    text('att-verdict', 'Not verified: ' + why, 'bad');
    text('att-signature', 'does NOT verify against the verifier\u2019s keys', 'bad');
    return false;
  }
  // From here on only signed claims are shown as verified.
  const c = v.claims;
  const subs = Object.entries(c.submods || {});
  const [instance, sub] = subs.length === 1 ? subs[0] : [null, {}];
  const ae = sub['ear.veraison.annotated-evidence'] || {};
  const tv = sub['ear.trustworthiness-vector'] || {};
  const affirming = sub['ear.status'] === 'affirming';
  const fresh = typeof c.exp === 'number' && c.exp * 1000 > Date.now();
  unblock();
  text('att-verdict', affirming && fresh ? 'Verified: affirming (signed by the verifier)' : 'Not affirming: ' + sub['ear.status'],
    affirming && fresh ? 'ok' : 'bad');
  text('att-instance', instance || '?');
  text('att-policy', String(sub['ear.appraisal-policy-id'] || '').replace(/^policy:/, ''));
  expiresAt = c.exp * 1000;
  tick();
  text('att-signature', 'signature verified (ES256, key ' + v.kid + ', against the verifier\u2019s JWKS)', 'ok');
  text('att-local', a.verify_locally ? (att.checked_locally ? 'yes: the instance\u2019s own fresh document verified here and its PCRs equal these' : 'not yet') : 'no (gateway runs without --verify-locally)',
    a.verify_locally && att.checked_locally ? 'ok' : '');
  const meaning = PCR_MEANING[ae.format] || {};
  const pcrsOk = tv.executables === 2;
  // pcrs_pinned (signed, in the annotated evidence): which PCRs the policy
  // compared; the others were reported by the instance but not pinned.
  const pinned = new Set(Array.isArray(ae.pcrs_pinned) ? ae.pcrs_pinned.map(Number) : []);
  $('att-pcr-summary').textContent = ae.format === undefined ? '' : 'Format ' + ae.format + ', policy version ' + ae.policy_version +
    (pcrsOk ? '. Each PCR the policy pins (' + pinned.size + ') matched one of its approved values; the others are reported, not compared (signed: pcrs_pinned, ear.trustworthiness-vector executables = 2).'
      : '. The verifier did not affirm the PCRs (executables = ' + tv.executables + ').');
  const tbody = $('att-pcrs').tBodies[0];
  tbody.replaceChildren();
  for (const [idx, val] of Object.entries(ae.pcrs || {}).sort((x, y) => Number(x[0]) - Number(y[0]))) {
    const tr = document.createElement('tr');
    const isPinned = pinned.has(Number(idx));
    const cells = ['PCR' + idx, meaning[idx] || '', String(val),
      !pcrsOk ? 'not affirmed' : isPinned ? 'matched (signed)' : 'not pinned by the policy'];
    cells.forEach((t, i) => {
      const td = document.createElement('td');
      td.textContent = t;
      if (i === 2) td.className = 'value';
      if (i === 3) td.className = !pcrsOk ? 'bad' : isPinned ? 'ok' : '';
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
  }
  $('att-claims').textContent = JSON.stringify(c, null, 2);
  return affirming && fresh;
}

function tick() {
  if (!expiresAt) { text('att-expires', '–'); return; }
  const s = Math.round((expiresAt - Date.now()) / 1000);
  if (s <= 0) { text('att-expires', 'expired', 'bad'); return; }
  text('att-expires', Math.floor(s / 60) + ' min ' + (s % 60) + ' s (' + new Date(expiresAt).toISOString() + ')');
}

// ---- sending ---------------------------------------------------------------------
async function loadModels() {
  try {
    const r = await fetch('/v1/models');
    const j = await r.json();
    if (!r.ok) return;
    const sel = $('model');
    sel.replaceChildren();
    for (const m of j.data || []) {
      const o = document.createElement('option');
      o.value = o.textContent = String(m.id);
      sel.appendChild(o);
    }
  } catch (e) { /* shown by the attestation panel */ }
}

async function send(ev) {
  ev.preventDefault();
  const prompt = $('prompt').value;
  if (!prompt.trim() || controller) return;
  // Fail closed: nothing leaves the page unless an instance verifies now.
  setStatus('checking the attestation…');
  if (!(await refreshAttestation())) { setStatus('not sent'); return; }
  if (!$('model').options.length) await loadModels();
  $('prompt').value = '';
  addEntry('user', prompt);
  history.push({role: 'user', content: prompt});
  const out = addEntry('assistant', '');
  controller = new AbortController();
  $('send').disabled = true;
  $('stop').disabled = false;
  setStatus('answering…');
  let answer = '';
  let instance = null;
  try {
    const r = await fetch('/v1/chat/completions', {
      method: 'POST', signal: controller.signal, headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({model: $('model').value, messages: history, stream: true}),
    });
    instance = r.headers.get('Attest-Instance');
    if (!r.ok) {
      let e = {};
      try { e = (await r.json()).error || {}; } catch (x) { /* not JSON */ }
      throw Object.assign(new Error(e.message || 'HTTP ' + r.status), {code: e.code});
    }
    out.meta.textContent = 'from instance ' + instance + ' (policy ' + r.headers.get('Attest-Policy') + ')';
    out.li.dataset.instance = instance || '';
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '', done = false;
    while (!done) {
      const {value, done: end} = await reader.read();
      if (end) break;
      buf += dec.decode(value, {stream: true});
      let k;
      while ((k = buf.indexOf('\n\n')) >= 0) {
        const evt = buf.slice(0, k);
        buf = buf.slice(k + 2);
        for (const line of evt.split('\n')) {
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]') { done = true; break; }
          const j = JSON.parse(data);
          if (j.error) throw Object.assign(new Error(j.error.message), {code: j.error.code});
          const d = j.choices && j.choices[0] && j.choices[0].delta;
          if (d && typeof d.content === 'string') answer += d.content;
        }
        renderMarkdown(out.body, answer);
      }
    }
    if (!done) throw Object.assign(new Error('the answer ended before its end'), {code: 'instance_unreachable'});
    history.push({role: 'assistant', content: answer});
    out.li.classList.add('done');
    setStatus('done');
  } catch (e) {
    if (e.name === 'AbortError') {
      out.meta.textContent += ' \u2014 stopped';
      out.li.classList.add('stopped');
      setStatus('stopped');
    } else {
      out.li.className = 'error';
      out.body.textContent = plainWords(e.code, e.message);
      setStatus('failed');
      if (e.code !== 'instance_unreachable') block(plainWords(e.code, e.message));
    }
  } finally {
    controller = null;
    $('send').disabled = false;
    $('stop').disabled = true;
  }
  if (instance && lastInstance && instance !== lastInstance) {
    const n = addEntry('notice', 'The instance changed: this answer came from ' + instance + ', the previous one from ' + lastInstance + '.');
    n.li.dataset.instance = instance;
  }
  if (instance) lastInstance = instance;
  await refreshAttestation();
}

function stop() { if (controller) controller.abort(); }

document.addEventListener('DOMContentLoaded', () => {
  $('ask').addEventListener('submit', send);
  $('stop').addEventListener('click', stop);
  $('prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('ask').requestSubmit(); }
  });
  setInterval(tick, 1000);
  loadModels();
  refreshAttestation().then(() => document.body.dataset.ready = '1');
});
