// Independent check of an attest attestation result token with the npm
// package `jose` (test-only): node verify_ear.mjs JWKS_URL TOKEN
// Prints the verified claims as JSON; exits 1 when verification fails, with
// jose's error code (e.g. ERR_JWS_SIGNATURE_VERIFICATION_FAILED) on stderr.
import './webcrypto.mjs';
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';

const [jwksUrl, token] = process.argv.slice(2);
try {
  const header = decodeProtectedHeader(token);
  if (header.alg !== 'ES256') throw new Error(`alg ${header.alg}, expected ES256`);
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload } = await jwtVerify(token, jwks, { algorithms: ['ES256'] });
  if (payload.eat_profile !== 'tag:github.com,2023:veraison/ear') throw new Error('wrong eat_profile');
  console.log(JSON.stringify(payload));
} catch (e) {
  console.error(`jose: ${e.code ?? 'error'}: ${e.message}`);
  process.exit(1);
}
