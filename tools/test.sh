#!/usr/bin/env bash
# The README's test command: install what is missing, build, run every test (CTest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/build.sh
ctest --test-dir "${ATTNLAB_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)"
