#!/usr/bin/env bash
# The README's main command: install, build, then show what runs: DeepSeek-V3's shape and MLA
# cache arithmetic, the transformers fixtures reproduced exactly (logits, loss, latent-cache
# decoding, greedy generation, every gradient), the real DeepSeek-V3 tokenizer, and then
# DeepSeek-R1's recipe end to end on the CPU (scripts/r1_pipeline.sh: pretrain the tiny
# DeepSeek-V3-shaped model on text + worked additions, cold-start SFT, GRPO with rule-based
# rewards, a before/after table of held-out accuracy and format, plots). About 20 minutes on a
# quiet 2-core machine. R1_PRETRAIN_S / R1_GRPO_S bound the two long stages (seconds);
# QUICKSTART_SEED picks the seed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/npm_deps.sh
# Without a GPU the CUDA kernels are not built (minutes saved on 2 cores); a build folder that
# already exists (e.g. from scripts/test.sh) keeps its settings.
cuda=()
if [ ! -f build/CMakeCache.txt ] && ! nvidia-smi -L >/dev/null 2>&1; then cuda=(-DDSEEK_CUDA=OFF); fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda[@]}" >/dev/null
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
echo; echo "== DeepSeek-R1's recipe on the CPU: pretrain -> cold-start SFT -> GRPO (scripts/r1_pipeline.sh)"
bash scripts/r1_pipeline.sh --seed "${QUICKSTART_SEED:-0}" --out runs/quickstart

echo; echo "quickstart done: runs/quickstart (summary.json, grpo/metrics.jsonl, grpo/samples.jsonl, plots/)."
echo "Next: dseek --help, docs/posttraining.md, docs/training.md"
