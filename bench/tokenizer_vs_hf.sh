#!/usr/bin/env bash
# Encoding throughput, ours vs Hugging Face `tokenizers` 0.23.2 (Rust core through its npm
# binding), on the same text and machine, for the fixture tokenizer (3k vocab) and the real
# DeepSeek-V3 tokenizer (128k vocab). Prints MB/s (best of RUNS) and checks token counts agree.
#   bench/tokenizer_vs_hf.sh [MB] [RUNS]     (default: brown_sample.txt repeated to ~20 MB, 3 runs)
# Needs: a built `dseek` (DSEEK=path, else build/dseek or build-*/dseek) and scripts/npm_deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

MB=${1:-20}
RUNS=${2:-3}
DSEEK=${DSEEK:-}
if [ -z "$DSEEK" ]; then
  for c in build/dseek build-*/dseek; do [ -x "$c" ] && { DSEEK=$c; break; }; done
fi
[ -n "$DSEEK" ] && [ -x "$DSEEK" ] || { echo "no dseek binary: build it or set DSEEK=" >&2; exit 1; }
./scripts/npm_deps.sh >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
corpus=$tmp/corpus.txt
src=tests/fixtures/tokenizer_v3style/brown_sample.txt
: > "$corpus"
while [ "$(stat -c %s "$corpus")" -lt $((MB * 1000 * 1000)) ]; do cat "$src" >> "$corpus"; done

field() { node -e "process.stdout.write(String(JSON.parse(require('fs').readFileSync(0,'utf8'))['$1']))"; }
fmt() { printf "%8.1f" "$1"; }

echo "# $(stat -c %s "$corpus") bytes (brown_sample.txt x$(( $(stat -c %s "$corpus") / $(stat -c %s "$src") ))), best of $RUNS, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
printf "%-22s %12s %12s %12s %14s %14s\n" tokenizer "ours-1thr" "ours-all" "hf-encode" "hf-batch-lines" "ids(ours/hf)"
for name in fixture deepseek-v3; do
  if [ $name = fixture ]; then tok=tests/fixtures/tokenizer_v3style/tokenizer.json; else tok=.cache/deepseek_v3/tokenizer.json; fi
  o1=$("$DSEEK" tokenizer bench --tokenizer "$tok" --file "$corpus" --runs "$RUNS" --threads 1 --json)
  oa=$("$DSEEK" tokenizer bench --tokenizer "$tok" --file "$corpus" --runs "$RUNS" --json)
  h1=$(node tests/tokenizer/hf_encode.js "$tok" --bench "$corpus" "$RUNS")
  hb=$(node tests/tokenizer/hf_encode.js "$tok" --bench "$corpus" "$RUNS" lines)
  ids_o=$(echo "$o1" | field ids); ids_h=$(echo "$h1" | field ids)
  printf "%-22s %12s %12s %12s %14s %14s\n" "$name" \
    "$(fmt "$(echo "$o1" | field mb_s)")" "$(fmt "$(echo "$oa" | field mb_s)")" \
    "$(fmt "$(echo "$h1" | field mb_s)")" "$(fmt "$(echo "$hb" | field mb_s)")" \
    "$([ "$ids_o" = "$ids_h" ] && echo "$ids_o same" || echo "$ids_o/$ids_h DIFFER")"
done
echo "# MB/s = 1e6 bytes/s of encoding (no BOS, special tokens matched). ours-1thr: one thread;"
echo "# ours-all: all cores (input cut at exact boundaries); hf-encode: Tokenizer.encode(text)"
echo "# on the whole text; hf-batch-lines: encodeBatch over its lines (HF's thread pool)."
