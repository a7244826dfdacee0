// Reference encoder for the tokenizer tests and benchmarks: Hugging Face `tokenizers` (Rust core,
// npm binding installed by scripts/npm_deps.sh into .cache/npm).
//   node hf_encode.js TOKENIZER_JSON TEXTS_JSONL          one JSON array of ids per input line
//   node hf_encode.js TOKENIZER_JSON --bench FILE [RUNS] [lines]
//       encodes FILE as one string (or, with `lines`, its lines with encodeBatch, which
//       `tokenizers` spreads over its thread pool); prints {"bytes","ids","best_s","mb_s"}
// Each JSONL line is a JSON string. Encoding uses addSpecialTokens: false (no BOS/post-processor
// tokens); added tokens written in the text are matched, as in `tokenizers`.
'use strict';
const fs = require('fs');
const path = require('path');

function load_tokenizers() {
  const root = path.resolve(__dirname, '..', '..', '.cache', 'npm', 'node_modules', 'tokenizers');
  try {
    return require(root);
  } catch (e) {
    return require('tokenizers');
  }
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length < 2) {
    process.stderr.write('usage: hf_encode.js TOKENIZER_JSON TEXTS_JSONL | --bench FILE [RUNS]\n');
    process.exit(2);
  }
  const { Tokenizer } = load_tokenizers();
  const tok = Tokenizer.fromFile(args[0]);
  if (args[1] === '--bench') {
    const text = fs.readFileSync(args[2], 'utf8');
    const runs = args.length > 3 ? parseInt(args[3], 10) : 3;
    const by_lines = args[4] === 'lines';
    const lines = by_lines ? text.split(/(?<=\n)/) : null;
    let best = Infinity;
    let n_ids = 0;
    for (let r = 0; r < runs; r++) {
      const t0 = process.hrtime.bigint();
      if (by_lines) {
        const encs = await tok.encodeBatch(lines, { addSpecialTokens: false });
        n_ids = encs.reduce((n, e) => n + e.getLength(), 0);
      } else {
        const enc = await tok.encode(text, null, { addSpecialTokens: false });
        n_ids = enc.getLength();
      }
      const t1 = process.hrtime.bigint();
      best = Math.min(best, Number(t1 - t0) / 1e9);
    }
    const bytes = Buffer.byteLength(text, 'utf8');
    process.stdout.write(JSON.stringify({ bytes, ids: n_ids, best_s: best, mb_s: bytes / 1e6 / best }) + '\n');
    return;
  }
  const lines = fs.readFileSync(args[1], 'utf8').split('\n').filter((l) => l.length > 0);
  const texts = lines.map((l) => JSON.parse(l));
  const out = [];
  for (const t of texts) {
    const e = await tok.encode(t, null, { addSpecialTokens: false });
    out.push(JSON.stringify(e.getIds()));
  }
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
}

main().catch((e) => {
  process.stderr.write('hf_encode.js: ' + (e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
