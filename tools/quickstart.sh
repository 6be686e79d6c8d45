#!/usr/bin/env bash
# The README's main job: install what is missing, build, run the quickstart sweep and print
# its results table. Any sweep can be given instead: tools/quickstart.sh experiments/X.toml
set -euo pipefail
cd "$(dirname "$0")/.."
sweep=${1:-experiments/quickstart.toml}
bash tools/build.sh
./build/bin/attnlab run "$sweep" "${@:2}"
