#!/usr/bin/env bash
# Installs everything dseek needs to build and test on a fresh Debian 12 machine.
# Debian packages via apt-get; the reference tokenizer (Hugging Face `tokenizers`) via npm.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake ninja-build pkg-config
      libcli11-dev nlohmann-json3-dev libopenblas-openmp-dev libpcre2-dev
      libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
      libgtest-dev libgmock-dev libfmt-dev clang-format gnuplot-nox)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[setup] apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# node + npm run the reference tokenizer (Hugging Face `tokenizers`) in the tests
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
echo "[setup] system packages ok"
