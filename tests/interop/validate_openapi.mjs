// Independent checks of docs/openapi.yaml (test-only npm packages):
// node validate_openapi.mjs docs/openapi.yaml CAPTURED.json
// First the document itself against the OpenAPI 3.1 schemas
// (@seriousme/openapi-schema-validator; exit 3 when it does not conform),
// then real answers against its schemas with `ajv` (JSON Schema 2020-12,
// OpenAPI 3.1's dialect).
// CAPTURED is a list of {server, method, path (the document's template),
// status, content_type, body}. Each answer's status must be documented on
// its operation (or `default`), its media type listed, and a JSON body must
// validate against that media type's schema. Exits 1 listing every
// mismatch; prints "valid N" otherwise.
import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';
import { Validator } from '@seriousme/openapi-schema-validator';

const oas = new Validator();
const res = await oas.validate(readFileSync(process.argv[2], 'utf8'));
if (!res.valid || oas.version !== '3.1') {
  console.error(`openapi-schema-validator: ${oas.version}: ${JSON.stringify(res.errors, null, 1)}`);
  process.exit(3);
}
const doc = oas.specification;
const captured = JSON.parse(readFileSync(process.argv[3], 'utf8'));
const ID = 'urn:attest:openapi';
// The document is one schema resource: component $refs resolve within it.
// OpenAPI's own keywords are not JSON Schema: strict mode off for those.
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
ajv.addSchema({ ...doc, $id: ID });

const esc = (s) => s.replace(/~/g, '~0').replace(/\//g, '~1');
const deref = (o) => {
  let ptr = [];
  while (o && o.$ref) {
    ptr = o.$ref.replace(/^#\//, '').split('/');
    o = ptr.reduce((x, k) => x[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
  }
  return [o, ptr];
};
const bad = [];
const cache = new Map();
for (const c of captured) {
  const what = `${c.server} ${c.method.toUpperCase()} ${c.path} -> ${c.status}`;
  const op = doc.paths?.[c.path]?.[c.method];
  if (!op) { bad.push(`${what}: no such operation in the document`); continue; }
  const key = String(c.status) in op.responses ? String(c.status) : 'default';
  let [resp, ptr] = deref(op.responses[key]);
  if (!resp) { bad.push(`${what}: status not documented`); continue; }
  if (ptr.length === 0) ptr = ['paths', c.path, c.method, 'responses', key];
  if (!resp.content) {
    if (c.body !== '' && c.body !== null) bad.push(`${what}: documented without a body, got one`);
    continue;
  }
  if (!(c.content_type in resp.content)) {
    bad.push(`${what}: media type ${c.content_type} not documented (${Object.keys(resp.content)})`);
    continue;
  }
  if (!/json/.test(c.content_type)) continue;
  const pointer = `${ID}#/${[...ptr, 'content', c.content_type, 'schema'].map(esc).join('/')}`;
  let validate = cache.get(pointer);
  if (!validate) {
    try {
      validate = ajv.compile({ $ref: pointer });
    } catch (e) {
      console.error(`ajv: ${what}: schema: ${e.message}`);
      process.exit(2);
    }
    cache.set(pointer, validate);
  }
  if (!validate(c.body)) bad.push(`${what}: ${ajv.errorsText(validate.errors)}; body ${JSON.stringify(c.body).slice(0, 400)}`);
}
if (bad.length) {
  for (const b of bad) console.error(b);
  process.exit(1);
}
console.log(`valid ${captured.length}`);
