#!/usr/bin/env bash
# Turns the corpus of scripts/fetch_corpus.sh into training data:
#   1. data/corpus/tokenizer.json   a 4096-token byte-level BPE (DeepSeek-V3 pre-tokenizer and
#                                   special tokens) trained on brown.txt + kjv.txt
#   2. data/tinyshards/             token shards (train_*.bin, val_*.bin, meta.json), 5% of the
#                                   documents in val
#   3. `dseek data info`            counts and the unigram entropy of the train split: the loss a
#                                   model reaches by learning token frequencies alone
# Usage: scripts/prepare_corpus.sh [--force]   (DSEEK=path/to/dseek to use another build)
# Idempotent: the tokenizer and the shards are kept when present (--force rebuilds both).
set -euo pipefail
cd "$(dirname "$0")/.."

DSEEK=${DSEEK:-./build/dseek}
CORPUS=data/corpus
SHARDS=data/tinyshards
VOCAB=4096
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

[ -x "$DSEEK" ] || { echo "[prepare] $DSEEK not found: build first (cmake --build build)" >&2; exit 1; }
for f in brown.txt kjv.txt; do
  [ -s "$CORPUS/$f" ] || { echo "[prepare] $CORPUS/$f missing: run scripts/fetch_corpus.sh" >&2; exit 1; }
done

if [ "$FORCE" = 1 ] || [ ! -s "$CORPUS/tokenizer.json" ]; then
  echo "[prepare] training a $VOCAB-token tokenizer"
  "$DSEEK" tokenizer train --input "$CORPUS/brown.txt" "$CORPUS/kjv.txt" --vocab-size "$VOCAB" \
    --output "$CORPUS/tokenizer.json"
  # the merges of a trained tokenizer are the output: a damaged or changed file shows here
  sha256sum "$CORPUS/tokenizer.json"
fi

if [ "$FORCE" = 1 ] || [ ! -s "$SHARDS/meta.json" ] ||
   [ "$CORPUS/tokenizer.json" -nt "$SHARDS/meta.json" ]; then
  "$DSEEK" data prepare --tokenizer "$CORPUS/tokenizer.json" \
    --input "$CORPUS/brown.txt" "$CORPUS/kjv.txt" --output "$SHARDS" \
    --val-fraction 0.05 --seed 0 --shard-tokens 1M
fi

"$DSEEK" data info "$SHARDS"
