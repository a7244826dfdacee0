// Reference chat-template renderer for tests/tokenizer/chat_template_test.cpp: the Jinja engine
// of transformers.js (@huggingface/jinja, installed by scripts/npm_deps.sh into .cache/npm).
//   node hf_chat.js TEMPLATE_JSON CASES_JSON
// TEMPLATE_JSON: a file with "chat_template" (and optionally "bos_token"), e.g. a
// tokenizer_config.json. CASES_JSON: [{"messages": [...], "add_generation_prompt": bool}, ...].
// Prints a JSON list with the rendered string of each case.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..', '.cache', 'npm', 'node_modules', '@huggingface', 'jinja');
const { Template } = require(root);

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const cases = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
let bos = cfg.bos_token;
if (bos && typeof bos === 'object') bos = bos.content;
const tpl = new Template(cfg.chat_template);
const out = cases.map((c) =>
  tpl.render({ messages: c.messages, add_generation_prompt: c.add_generation_prompt, bos_token: bos }));
process.stdout.write(JSON.stringify(out) + '\n');
