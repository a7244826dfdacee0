#!/usr/bin/env bash
# DeepSeek-R1's recipe at CPU scale, end to end, on 2-digit addition:
#   1. data      Brown + King James Bible (scripts/fetch_corpus.sh) plus worked additions as text
#                (`dseek tasks generate --format text`, train split only), one tokenizer
#   2. pretrain  the tiny DeepSeek-V3-shaped recipe (MLA, MoE, MTP) on that mix
#   3. SFT       cold start on a few hundred R1-format examples (<think>..</think> <answer>..)
#   4. GRPO      rule-based rewards (accuracy + format) on fresh train-split problems
#   5. report    held-out pass@1 / format / pass@k before and after RL (200 test-split problems,
#                disjoint from everything trained on), sample answers, plots
# Usage: scripts/r1_pipeline.sh [--seed N] [--pretrain-seed N] [--pretrained DIR] [--out DIR]
#   --seed           seeds the post-training (cold-start examples, SFT order, GRPO problems and
#                    sampling); default 0
#   --pretrain-seed  seeds pretraining (default 1: the base model of docs/posttraining.md's figures)
#   --pretrained     reuse a pretrained checkpoint folder instead of pretraining (several
#                    post-training seeds on one base, as R1's runs all start from V3-Base)
# Device (env): R1_DEVICE (default auto) is pretraining's `dseek train --device`: the GPU when
# there is one (seconds instead of minutes; a GPU-trained base is not bit-identical to the CPU
# one, so the figures of docs/posttraining.md, made on the CPU, then differ slightly), else the
# CPU. SFT, GRPO and evaluation run on the CPU.
# Time budgets (seconds, env): R1_PRETRAIN_S (default 600), R1_GRPO_S (default 480); pretraining
# steps R1_PRETRAIN_STEPS (default 1000: fewer leave some seeds without the carry-and-copy skill
# the trace needs, see docs/posttraining.md). Steps are sized for a quiet 2-core machine (about 6
# minutes each for pretraining and GRPO); the time limits stop earlier on a slower one (checkpoint
# kept, figures then differ). DSEEK=path picks the binary (default ./build/dseek).
set -euo pipefail
cd "$(dirname "$0")/.."

SEED=0
PSEED=1
PRETRAINED=""
OUT=""
usage="usage: $0 [--seed N] [--pretrain-seed N] [--pretrained DIR] [--out DIR]"
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) SEED="$2"; shift 2 ;;
    --pretrain-seed) PSEED="$2"; shift 2 ;;
    --pretrained) PRETRAINED="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
if [ -n "$PRETRAINED" ] && [ ! -s "$PRETRAINED/model.safetensors" ]; then
  echo "[r1] --pretrained $PRETRAINED: no model.safetensors there" >&2; exit 1
fi
OUT=${OUT:-runs/r1/seed$SEED}
D=${DSEEK:-./build/dseek}
PRE_S=${R1_PRETRAIN_S:-600}
GRPO_S=${R1_GRPO_S:-480}
DIGITS=2
[ -x "$D" ] || { echo "[r1] $D not found: build first" >&2; exit 1; }
mkdir -p "$OUT"

# ---- 1. data -------------------------------------------------------------------------------
# A 4096-token BPE with one token per digit (DeepSeek's pre-tokenizer groups up to 3 digits,
# which a 6M-parameter model cannot learn to add in minutes), and 100k worked 2-digit additions
# from the TRAIN split, each its own document, next to the Brown text (~80% of the tokens are
# arithmetic).
bash scripts/fetch_corpus.sh
TOK=data/r1/tokenizer.json
DATA=data/r1/shards
mkdir -p data/r1
if [ ! -s "$TOK" ]; then
  "$D" tokenizer train --input data/corpus/brown.txt data/corpus/kjv.txt --vocab-size 4096 \
    --individual-digits --output "$TOK"
fi
if [ ! -s "$DATA/meta.json" ] || [ "$TOK" -nt "$DATA/meta.json" ]; then
  echo "[r1] task text: 100000 worked $DIGITS-digit additions (train split)"
  "$D" tasks generate --task add --digits $DIGITS --split train -n 100000 --seed 1 \
    --format text -o data/r1/add_text.raw
  sed 'G' data/r1/add_text.raw > data/r1/add_text.txt   # one document per problem
  "$D" data prepare --tokenizer "$TOK" -q \
    --input data/corpus/brown.txt data/r1/add_text.txt --output "$DATA"
fi

# ---- 2. pretrain ---------------------------------------------------------------------------
BASE=${PRETRAINED:-$OUT/pretrain/checkpoint}
if [ -z "$PRETRAINED" ]; then
  echo; echo "== [r1 seed $SEED] pretraining the tiny recipe on text + task data (seed $PSEED, <= ${PRE_S}s)"
  "$D" train --config recipes/tiny.json --data "$DATA" --tokenizer "$TOK" \
    --out "$OUT/pretrain" --seed "$PSEED" --steps "${R1_PRETRAIN_STEPS:-1000}" --time-limit "$PRE_S" \
    --device "${R1_DEVICE:-auto}"
else
  echo; echo "== [r1 seed $SEED] pretrained base: $PRETRAINED"
fi

# ---- 3. cold-start SFT ---------------------------------------------------------------------
echo; echo "== [r1 seed $SEED] cold-start SFT on 300 formatted examples"
"$D" tasks generate --task add --digits $DIGITS --split train -n 300 --seed $((SEED + 100)) \
  --format sft -o "$OUT/cold_start.jsonl"
"$D" sft -m "$BASE" --data "$OUT/cold_start.jsonl" --out "$OUT/sft" \
  --epochs 3 --lr 1e-3 --seed "$SEED"

# ---- 4. GRPO -------------------------------------------------------------------------------
echo; echo "== [r1 seed $SEED] GRPO on $DIGITS-digit addition (<= ${GRPO_S}s)"
"$D" grpo -m "$OUT/sft/final" --task add --digits $DIGITS --out "$OUT/grpo" --seed "$SEED" \
  --steps 80 --time-limit "$GRPO_S" --prompts 16 -G 8 --max-new-tokens 64 --temperature 0.7 \
  --lr "${R1_GRPO_LR:-1e-4}" --warmup 5 --beta 0.04 --eval-every 10 --eval-n 200 --eval-k 8 \
  | tee "$OUT/summary.json"

# ---- 5. plots ------------------------------------------------------------------------------
"$D" plot "$OUT/grpo" --out "$OUT/plots/grpo" >/dev/null || true
[ -n "$PRETRAINED" ] || "$D" plot "$OUT/pretrain" --out "$OUT/plots/pretrain" >/dev/null || true
echo "[r1] seed $SEED done: $OUT (summary.json, grpo/metrics.jsonl, plots/)"
