#!/usr/bin/env bash
# The README's main command. For now (foundation stage): install, build, then show what runs:
# DeepSeek-V3's shape and MLA cache arithmetic, the transformers fixtures reproduced exactly,
# greedy generation with the latent cache, and the real DeepSeek-V3 tokenizer with its chat
# template. Later stages turn this into the full pretrain -> SFT -> GRPO pipeline.
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
for m in v3_tiny v3_tiny_yarn_noqlora v2_tiny; do
  printf '%-22s ' "$m"
  $D check-reference $F/$m $F/$m/reference.safetensors | cut -c1-160
done

echo; echo "== greedy generation with the latent KV cache (v3_tiny, token ids)"
$D generate -m $F/v3_tiny --prompt-ids 1,17,42,300,5 --greedy --ignore-eos -n 16 --stats

V3TOK=.cache/deepseek_v3/tokenizer.json
if [ -f "$V3TOK" ]; then
  echo; echo "== the real DeepSeek-V3 tokenizer"
  $D tokenizer encode --tokenizer "$V3TOK" --text "Hello, world! 你好 12345 apples"
fi
echo; echo "quickstart done. Next: dseek --help"
