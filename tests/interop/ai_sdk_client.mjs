// Interop: the Vercel AI SDK (`ai` + `@ai-sdk/openai`, test-only) against
// attest-gateway, driven by tests/e2e/openai_sdk.py.
//   node ai_sdk_client.mjs ok URL      generateText and streamText over chat
//                                      completions and the Responses API,
//                                      embed, a cut stream surfaced as an error
//   node ai_sdk_client.mjs error URL STATUS CODE
//                                      generateText fails with an APICallError
//                                      of that status and attest code
// Prints one line per check; exits 1 on the first failure.
import "./webcrypto.mjs";
import { createOpenAI } from "@ai-sdk/openai";
import { APICallError, embed, generateText, streamText } from "ai";

const [mode, baseURL, wantStatus, wantCode] = process.argv.slice(2);
if (!mode || !baseURL) {
  console.error("usage: node ai_sdk_client.mjs ok|error URL [STATUS CODE]");
  process.exit(99);
}
const openai = createOpenAI({ baseURL: `${baseURL}/v1`, apiKey: "unused" });
let checks = 0;
function expect(cond, what) {
  if (!cond) {
    console.error(`FAIL: ${what}`);
    process.exit(1);
  }
  checks++;
  console.log(`ok: ${what}`);
}
// The attest code of an APICallError: the body is OpenAI's error shape.
function codeOf(e) {
  try {
    return JSON.parse(e.responseBody).error.code;
  } catch {
    return undefined;
  }
}

if (mode === "ok") {
  const chat = await generateText({ model: openai.chat("attest-standin-1"), prompt: "hello ai sdk", maxRetries: 0 });
  expect(chat.text === "You said: hello ai sdk", `generateText over chat completions (${JSON.stringify(chat.text)})`);
  const h = chat.response.headers || {};
  expect((h["attest-instance"] || "").length > 0 && /^[^@]+@\d+$/.test(h["attest-policy"] || ""),
         `the answer's Attest-* headers reach the SDK (${h["attest-instance"]}, ${h["attest-policy"]})`);

  const resp = await generateText({ model: openai.responses("attest-standin-1"), prompt: "via responses",
                                    maxRetries: 0 });
  expect(resp.text === "You said: via responses", `generateText over the Responses API (${JSON.stringify(resp.text)})`);

  const s = streamText({ model: openai.chat("m"), prompt: "one two three", maxRetries: 0 });
  let text = "";
  for await (const part of s.textStream) text += part;
  expect(text === "You said: one two three", `streamText over chat completions (${JSON.stringify(text)})`);

  const e = await embed({ model: openai.textEmbeddingModel("m"), value: "a", maxRetries: 0 });
  expect(e.embedding.length === 8 && e.embedding.every((x) => typeof x === "number"), "embed");

  // A stream cut mid-answer: the SDK's error part carries the gateway's
  // code, the text before it is what arrived whole, and no clean finish.
  let err = null;
  let finish = null;
  const cut = streamText({
    model: openai.chat("m"),
    prompt: "[cut] a b c d",
    maxRetries: 0,
    onError: ({ error }) => {
      err = error;
    },
  });
  let got = "";
  let parts = [];
  let thrown = null;
  try {
    for await (const part of cut.fullStream) {
      parts.push(part.type);
      if (part.type === "text-delta") got += part.text;
      if (part.type === "error") err = part.error;
      if (part.type === "finish") finish = part.finishReason;
    }
  } catch (e) {
    thrown = e;
  }
  // The SDK yields the gateway's SSE error event as an error part (with
  // attest's code), then the transfer's abort (the gateway never ends a cut
  // answer cleanly, so clients that ignore error events cannot take it as
  // whole) surfaces as a thrown APICallError.
  expect(err !== null && err.code === "instance_unreachable" && /cut/.test(err.message),
         `a cut stream: an error part with attest's code (${JSON.stringify(err)}; parts ${parts.join(",")})`);
  expect(thrown === null || APICallError.isInstance(thrown), `then the abort, as an APICallError (${thrown})`);
  expect(got === "You said:" && finish !== "stop", `only whole events before the cut, no clean stop (${JSON.stringify(got)}, ${finish})`);
} else if (mode === "error") {
  let err = null;
  try {
    await generateText({ model: openai.chat("m"), prompt: "x", maxRetries: 0 });
  } catch (e) {
    err = e;
  }
  expect(APICallError.isInstance(err) && err.statusCode === Number(wantStatus) && codeOf(err) === wantCode &&
         !/https?:\/\//.test(err.responseBody || ""),
         `APICallError ${wantStatus} ${wantCode} (got ${err && err.constructor.name} ${err && err.statusCode} ` +
         `${err && codeOf(err)}: ${err && err.message})`);
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(99);
}
console.log(`${checks} passed, 0 failed`);
