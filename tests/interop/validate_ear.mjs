// Independent check of attest's EAR profile with the npm package `ajv`
// (test-only): node validate_ear.mjs SCHEMA.json < claims.json
// Prints "valid"; exits 1 with ajv's errors on stderr when the claims do not
// follow docs/ear-profile.schema.json, 2 when the schema does not compile.
import { readFileSync } from 'node:fs';
import Ajv2020 from 'ajv/dist/2020.js';

const schema = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const claims = JSON.parse(readFileSync(0, 'utf8'));
let validate;
try {
  validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema);
} catch (e) {
  console.error(`ajv: schema: ${e.message}`);
  process.exit(2);
}
if (validate(claims)) {
  console.log('valid');
} else {
  console.error(`ajv: ${JSON.stringify(validate.errors)}`);
  process.exit(1);
}
