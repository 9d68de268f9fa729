// Import first in every test-only script that uses an npm peer built on the
// WebCrypto API (jose, @hpke/*). Node >= 19 has the global `crypto` and
// `CryptoKey`; Debian 12's Node 18.20 has them only behind
// --experimental-global-webcrypto, so take them from node:crypto. A newer
// Node keeps its own.
import { webcrypto } from 'node:crypto';

if (globalThis.crypto === undefined)
  Object.defineProperty(globalThis, 'crypto', { value: webcrypto, configurable: true, writable: true });
if (globalThis.CryptoKey === undefined) globalThis.CryptoKey = webcrypto.CryptoKey;
