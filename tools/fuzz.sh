#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted input (tests/fuzz: sweep TOML, safetensors headers,
# the GPT-2 BPE tokenizer, mask expressions) with libFuzzer, AddressSanitizer (leaks included)
# and UndefinedBehaviorSanitizer, for a bounded time each. Fails on any crash, leak, timeout or
# undefined behaviour; the input that found it is left in build-fuzz/findings/<target>/.
#
#   tools/fuzz.sh [SECONDS_PER_TARGET]     default 60, as .ci/run uses
#
# Each target starts from its seed corpus (tests/fuzz/corpus/<target>/); what it discovers
# goes to a scratch corpus, never into the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
bash tools/setup.sh >/dev/null
build=${ATTNLAB_FUZZ_BUILD_DIR:-build-fuzz}
cxx=$(command -v clang++ || command -v clang++-14 || true)
[ -n "$cxx" ] || { echo "[fuzz] clang++ not found (tools/setup.sh installs clang)" >&2; exit 1; }
cmake -S tests/fuzz -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# Quiet when it builds; the compiler's last words when it does not (a source list out of date).
cmake --build "$build" -j "$(nproc)" >"$build/build.log" 2>&1 || { tail -40 "$build/build.log" >&2; exit 1; }
export ATTNLAB_DATA_DIR=${ATTNLAB_DATA_DIR:-$PWD/data/npm}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
printf '%-18s %12s %10s %s\n' target executions exec/s result
for target in sweep safetensors tokenizer masks; do
  scratch=$(mktemp -d)
  findings=$build/findings/$target
  mkdir -p "$findings"
  log=$build/fuzz_$target.log
  set +e
  "$build/fuzz_$target" "$scratch" "tests/fuzz/corpus/$target" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then result="0 findings"; else result="FINDING (exit $rc): see $log and $findings/"; status=1; fi
  printf '%-18s %12s %10s %s\n' "fuzz_$target" "${runs:-?}" "${rate:-?}" "$result"
  rm -rf "$scratch"
done
exit $status
