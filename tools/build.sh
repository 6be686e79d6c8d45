#!/usr/bin/env bash
# Installs what is missing (tools/setup.sh), then configures and builds attnlab into build/.
#   ATTNLAB_BUILD_DIR=...  another build folder
#   extra arguments go to cmake's configure step (e.g. -DCMAKE_PREFIX_PATH=/path/to/libtorch)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
build=${ATTNLAB_BUILD_DIR:-build}
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
generator=()
if command -v ninja >/dev/null 2>&1 && [ ! -f "$build/Makefile" ]; then generator=(-G Ninja); fi
cmake -S . -B "$build" "${generator[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
# Each torch TU needs ~1.1 GB of RAM at -O2; one job per core is the measured sweet spot.
cmake --build "$build" -j "$(nproc)"
