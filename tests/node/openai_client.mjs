// openai_client.mjs — drives psi serve with the official openai npm client.
// usage: node openai_client.mjs BASE_URL API_KEY MODEL QUESTION PROMPT
// Prints one JSON object: what each call returned (or the error it threw).
import OpenAI from 'openai';

const [baseURL, apiKey, model, question, prompt] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120000 });
const out = {};
const messages = [{ role: 'user', content: question }];

const chat = await client.chat.completions.create({ model, messages, temperature: 0, max_tokens: 8 });
out.chat = { text: chat.choices[0].message.content, finish: chat.choices[0].finish_reason, usage: chat.usage };

const stream = await client.chat.completions.create({
  model, messages, temperature: 0, max_tokens: 8, stream: true, stream_options: { include_usage: true },
});
let text = '', role = null, finish = null, usage = null, chunks = 0;
for await (const chunk of stream) {
  chunks++;
  const c = chunk.choices[0];
  if (c?.delta?.role && role === null) role = c.delta.role;
  if (c?.delta?.content) text += c.delta.content;
  if (c?.finish_reason) finish = c.finish_reason;
  if (chunk.usage) usage = chunk.usage;
}
out.stream = { text, role, finish, usage, chunks };

const comp = await client.completions.create({ model, prompt, temperature: 0, max_tokens: 12 });
out.completion = { text: comp.choices[0].text, finish: comp.choices[0].finish_reason, usage: comp.usage };

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

try {
  await client.chat.completions.create({ model: 'no-such-model', messages, max_tokens: 2 });
  out.unknown_model = 'no error';
} catch (e) {
  out.unknown_model = { status: e.status, type: e.constructor.name, code: e.code };
}
try {
  await new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0 }).models.list();
  out.bad_key = 'no error';
} catch (e) {
  out.bad_key = { status: e.status, type: e.constructor.name };
}
console.log(JSON.stringify(out));
