// The official openai SDK against pkmserve's HTTP API: plain, streamed, logprobs and echo
// completions, the model list, and a wrong key. Prints one JSON object of what the SDK saw.
//   node client.mjs BASE_URL API_KEY
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0 });
const prompt = "Once upon a time";
const out = {};

out.models = (await client.models.list()).data.map((m) => m.id);

const plain = await client.completions.create({ model: "pkm-small", prompt, max_tokens: 8, temperature: 0 });
out.plain = { text: plain.choices[0].text, finish_reason: plain.choices[0].finish_reason, usage: plain.usage };

const stream = await client.completions.create({
  model: "pkm-small", prompt, max_tokens: 8, temperature: 0, stream: true,
});
out.stream = { texts: [], finish_reason: null };
for await (const chunk of stream) {
  out.stream.texts.push(chunk.choices[0].text);
  if (chunk.choices[0].finish_reason) out.stream.finish_reason = chunk.choices[0].finish_reason;
}

const lp = await client.completions.create({ model: "pkm-small", prompt, max_tokens: 4, temperature: 0, logprobs: 2 });
out.logprobs = lp.choices[0].logprobs;

const echo = await client.completions.create({ model: "pkm-small", prompt, max_tokens: 0, echo: true, logprobs: 1 });
out.echo = { text: echo.choices[0].text, logprobs: echo.choices[0].logprobs };

try {
  await new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: "not-the-key", maxRetries: 0 }).models.list();
  out.wrong_key = { status: 200 };
} catch (e) {
  out.wrong_key = { status: e.status, type: e.type ?? e.error?.type, name: e.constructor.name };
}
console.log(JSON.stringify(out));
