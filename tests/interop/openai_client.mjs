// Interop: the official `openai` npm client (test-only) against
// attest-gateway, driven by tests/e2e/openai_sdk.py.
//   node openai_client.mjs ok URL      every route an OpenAI client uses, the
//                                      Attest-* headers, a cut stream
//   node openai_client.mjs error URL STATUS CODE
//                                      a chat completion fails with an APIError
//                                      of that status and attest code
// Prints one line per check; exits 1 on the first failure.
import OpenAI, { APIError } from "openai";

const [mode, baseURL, wantStatus, wantCode] = process.argv.slice(2);
if (!mode || !baseURL) {
  console.error("usage: node openai_client.mjs ok|error URL [STATUS CODE]");
  process.exit(99);
}
// No retries: each error must be seen as the gateway sent it.
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: "unused", maxRetries: 0, timeout: 30000 });
let checks = 0;
function expect(cond, what) {
  if (!cond) {
    console.error(`FAIL: ${what}`);
    process.exit(1);
  }
  checks++;
  console.log(`ok: ${what}`);
}
const msgs = (content) => [{ role: "user", content }];

if (mode === "ok") {
  const { data: chat, response } = await client.chat.completions
    .create({ model: "attest-standin-1", messages: msgs("hello sdk") })
    .withResponse();
  expect(chat.choices[0].message.content === "You said: hello sdk", "chat.completions.create");
  const h = (n) => response.headers.get(n) || "";
  expect(h("attest-instance").length > 0 && /^[^@]+@\d+$/.test(h("attest-policy")) &&
         /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(h("attest-expires")) &&
         /^sha-256=[0-9a-f]{64}$/.test(h("attest-pcr-digest")),
         `Attest-* headers (${h("attest-instance")}, ${h("attest-policy")}, ${h("attest-expires")}, ${h("attest-pcr-digest")})`);

  const stream = await client.chat.completions.create({ model: "m", messages: msgs("one two three"), stream: true });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
  expect(text === "You said: one two three", "chat.completions.create stream: true");

  const cmpl = await client.completions.create({ model: "m", prompt: "plain" });
  expect(cmpl.choices[0].text === "You said: plain", "completions.create");

  const emb = await client.embeddings.create({ model: "m", input: ["a", "b"] });
  expect(emb.data.length === 2 && emb.data[0].embedding.length === 8 &&
         emb.data[0].embedding.every((x) => typeof x === "number" && x >= 0 && x <= 1),
         "embeddings.create (base64 as the SDK asks, decoded by it)");
  const embf = await client.embeddings.create({ model: "m", input: "a", encoding_format: "float" });
  expect(embf.data[0].embedding.length === 8 &&
         embf.data[0].embedding.every((x, i) => Math.abs(x - emb.data[0].embedding[i]) < 1e-3),
         "embeddings.create encoding_format float");

  const list = await client.models.list();
  const ids = [];
  for await (const m of list) ids.push(m.id);
  expect(ids.includes("attest-standin-1"), "models.list");
  const model = await client.models.retrieve("attest-standin-1");
  expect(model.id === "attest-standin-1" && model.object === "model", "models.retrieve");
  try {
    await client.models.retrieve("no-such-model");
    expect(false, "models.retrieve of an unknown model fails");
  } catch (e) {
    expect(e instanceof APIError && e.status === 404 && e.code === "model_not_found",
           `the upstream's own errors pass through (${e.status} ${e.code})`);
  }

  const resp = await client.responses.create({ model: "m", input: "via responses" });
  expect(resp.output_text === "You said: via responses", "responses.create");

  // A stream cut mid-answer: an APIError with the gateway's code, after the
  // events that did arrive whole; never a clean end.
  const cut = await client.chat.completions.create({ model: "m", messages: msgs("[cut] a b c d"), stream: true });
  let got = "";
  let err = null;
  try {
    for await (const chunk of cut) got += chunk.choices[0]?.delta?.content ?? "";
  } catch (e) {
    err = e;
  }
  expect(err instanceof APIError && err.code === "instance_unreachable" && /cut/.test(err.message),
         `a cut stream raises an APIError (${err && err.constructor.name}: ${err && err.message})`);
  expect(got === "You said:", `only the whole events before the cut arrived (${JSON.stringify(got)})`);

  const att = await (await fetch(`${baseURL}/v1/attestation`)).json();
  expect(att.attestations.length === 1 && att.attestations[0].token.split(".").length === 3 &&
         att.attestations[0].instance === h("attest-instance") &&
         att.attestations[0].pcr_digest === h("attest-pcr-digest").slice(8) &&
         att.jwks_uri.endsWith("/.well-known/jwks.json"),
         "GET /v1/attestation: the EAR token of the instance named in the headers, and the JWKS location");
} else if (mode === "error") {
  let err = null;
  try {
    await client.chat.completions.create({ model: "m", messages: msgs("x") });
  } catch (e) {
    err = e;
  }
  expect(err instanceof APIError && err.status === Number(wantStatus) && err.code === wantCode &&
         err.type === "attestation_error" && typeof err.message === "string" && !/https?:\/\//.test(err.message),
         `APIError ${wantStatus} ${wantCode} (got ${err && err.constructor.name} ${err && err.status} ` +
         `${err && err.code}: ${err && err.message})`);
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(99);
}
console.log(`${checks} passed, 0 failed`);
