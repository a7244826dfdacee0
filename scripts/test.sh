#!/usr/bin/env bash
# The README's test command: install dependencies, build (CUDA too when nvcc is present), run
# every test with CTest. Tests that need a GPU say they are skipped on machines without one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/npm_deps.sh
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j"$(nproc)"
