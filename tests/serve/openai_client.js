// The official OpenAI node client (npm `openai`, installed by scripts/npm_deps.sh into
// .cache/npm) against a running `dseek serve`, for tests/serve/openai_client_test.cpp.
//   node openai_client.js BASE_URL CHAT_MODEL IDS_MODEL
// CHAT_MODEL has a tokenizer; IDS_MODEL is served without one. Prints one JSON object with what
// each call returned; exits non-zero when a call fails in a way the test did not ask for.
'use strict';
const path = require('path');

const OpenAI = require(path.resolve(__dirname, '..', '..', '.cache', 'npm', 'node_modules', 'openai'));

async function main() {
  const [base, chatModel, idsModel] = process.argv.slice(2);
  const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'unused', maxRetries: 0, timeout: 60000 });
  const out = {};

  const models = await client.models.list();
  out.models = models.data.map((m) => m.id);

  const messages = [{ role: 'user', content: 'Tell me a story.' }];
  const chat = await client.chat.completions.create({
    model: chatModel, messages, max_tokens: 16, temperature: 0,
  });
  out.chat = { content: chat.choices[0].message.content, finish_reason: chat.choices[0].finish_reason, usage: chat.usage };

  const stream = await client.chat.completions.create({
    model: chatModel, messages, max_tokens: 16, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (choice.delta && choice.delta.content) text += choice.delta.content;
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  out.chat_stream = { content: text, finish_reason: finish, usage };

  const cmpl = await client.completions.create({
    model: idsModel, prompt: [5, 17, 42, 7], max_tokens: 8, temperature: 0, ignore_eos: true,
  });
  out.completion = { ids: cmpl.choices[0].dseek_token_ids, text: cmpl.choices[0].text, finish_reason: cmpl.choices[0].finish_reason, usage: cmpl.usage };

  try {
    await client.chat.completions.create({ model: chatModel, messages, temperature: 'hot' });
    out.bad_request = { error: 'no exception' };
  } catch (e) {
    out.bad_request = {
      is_bad_request: e instanceof OpenAI.BadRequestError, status: e.status,
      param: e.param === undefined ? null : e.param, message: e.message,
    };
  }
  try {
    await client.chat.completions.create({ model: 'no-such-model', messages });
    out.not_found = { error: 'no exception' };
  } catch (e) {
    out.not_found = { is_not_found: e instanceof OpenAI.NotFoundError, status: e.status, code: e.code === undefined ? null : e.code };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
