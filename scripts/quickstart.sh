#!/usr/bin/env bash
# The README's main command: install, build, then show what runs today: DeepSeek-V3's shape and
# MLA cache arithmetic, the transformers fixtures reproduced exactly (logits, loss, latent-cache
# decoding, greedy generation, every gradient), the real DeepSeek-V3 tokenizer, and a short
# pretraining run of the tiny DeepSeek-V3-shaped recipe on a real corpus with a sample after it.
# QUICKSTART_TRAIN_S (default 90) sets the training time; recipes/tiny.json uses 600 s.
# Later stages extend this to the full pretrain -> SFT -> GRPO pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/npm_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target dseek
D=./build/dseek
F=tests/fixtures

echo; echo "== DeepSeek-V3 (671B) from its config: parameters and the MLA latent cache"
$D info $F/configs/deepseek_v3_671b.json

echo; echo "== dseek vs transformers on the three reference models (logits, loss, cache, greedy)"
for m in v3_tiny v3_tiny_yarn_noqlora v2_tiny dseek_yarn_tied; do
  $D check-reference --brief $F/$m $F/$m/reference.safetensors
done

echo; echo "== greedy generation with the latent KV cache (v3_tiny, token ids)"
$D generate -m $F/v3_tiny --prompt-ids 1,17,42,300,5 --greedy --ignore-eos -n 16 --stats

V3TOK=.cache/deepseek_v3/tokenizer.json
if [ -f "$V3TOK" ]; then
  echo; echo "== the real DeepSeek-V3 tokenizer"
  $D tokenizer encode --tokenizer "$V3TOK" --text "Hello, world! 你好 12345 apples"
fi
echo; echo "== pretraining the tiny recipe on Brown + King James Bible (${QUICKSTART_TRAIN_S:-90} s)"
bash scripts/fetch_corpus.sh
bash scripts/prepare_corpus.sh
$D train --config recipes/tiny.json --out runs/quickstart --steps 1600 \
  --time-limit "${QUICKSTART_TRAIN_S:-90}"
$D plot runs/quickstart --out runs/quickstart/plots
echo; echo "== generating from the trained checkpoint"
$D generate -m runs/quickstart/checkpoint --prompt "And the" -n 40 --seed 1

echo; echo "quickstart done: runs/quickstart (metrics.jsonl, checkpoint/, plots/). Next: dseek --help"
