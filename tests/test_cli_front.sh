#!/usr/bin/env bash
# cli:front — bin/attnlab (tools/attnlab/front.cpp) loads no LibTorch, answers --help exactly
# as libexec/attnlab-torch does, runs query, trials and status itself with the same output as
# attnlab-torch, and hands every other command over unchanged (arguments, output, exit code).
# No timings here: the speed is measured in docs/BENCHMARKS.md.
#   bash tests/test_cli_front.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
front=$build/bin/attnlab
torch=$build/libexec/attnlab-torch
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAILED: $*"; exit 1; }

# (ldd into a file: grep -q stops reading early, and pipefail would count ldd's SIGPIPE.)
ldd "$front" >"$tmp/front.ldd"
ldd "$torch" >"$tmp/torch.ldd"
if grep -q 'libtorch\|libc10' "$tmp/front.ldd"; then cat "$tmp/front.ldd"; fail "bin/attnlab links LibTorch"; fi
grep -q libtorch "$tmp/torch.ldd" || fail "libexec/attnlab-torch does not link LibTorch"

# The same words from both: attnlab-torch run under the front's name, as the front execs it.
same() {  # same NAME ARGS...: stdout, stderr and exit code of both agree
  local name=$1; shift
  set +e
  (exec -a "$front" "$front" "$@") >"$tmp/front.out" 2>"$tmp/front.err"; local a=$?
  (exec -a "$front" "$torch" "$@") >"$tmp/torch.out" 2>"$tmp/torch.err"; local b=$?
  set -e
  [ "$a" = "$b" ] || fail "$name: exit code $a from bin/attnlab, $b from attnlab-torch"
  diff "$tmp/torch.out" "$tmp/front.out" || fail "$name: stdout differs (above: < attnlab-torch, > bin/attnlab)"
  diff "$tmp/torch.err" "$tmp/front.err" || fail "$name: stderr differs"
}
same "--help" --help
same "-h" -h
same "query --help" query --help
same "trials --help" trials --help
same "status --help" status --help
same "metrics --markdown" metrics --markdown
same "query without a database" query "select 1" --db "$tmp/none.sqlite"

# A real database: a two-trial bench sweep run through the front (which hands run over).
cat >"$tmp/two.toml" <<'TOML'
[sweep]
name = "front-two"
kind = "bench"
warmup = 0
repeats = 1
[grid]
backend = ["dense"]
seq_len = [8, 16]
heads = 1
head_dim = 4
TOML
"$front" run --no-progress --no-ceiling "$tmp/two.toml" --db "$tmp/r.sqlite" >"$tmp/run.out" 2>&1 ||
  { cat "$tmp/run.out"; fail "attnlab run through the front"; }
grep -q "2 trials: 2 ran" "$tmp/run.out" || { cat "$tmp/run.out"; fail "run's summary"; }
same "query" query "select name, status from trials order by ordinal" --db "$tmp/r.sqlite"
same "query csv" query "select count(*) as n from trials" --db "$tmp/r.sqlite" --format csv
same "bad SQL" query "select nothing from nowhere" --db "$tmp/r.sqlite"
same "trials" trials --db "$tmp/r.sqlite"
same "trials json" trials --sweep front-two --db "$tmp/r.sqlite" --format json
same "status" status --sweep front-two --db "$tmp/r.sqlite"
same "status of no sweep" status --sweep nothing --db "$tmp/r.sqlite"
[ "$("$front" query "select count(*) from trials where status = 'done'" --db "$tmp/r.sqlite" --format csv | tail -1)" = 2 ] ||
  fail "query does not see the two done trials"
# Handed over: a torch command, an unknown command, no command at all.
same "keys" keys
same "unknown command" frobnicate
same "no command" 
echo "ok: bin/attnlab has no LibTorch; --help, query, trials and status agree with attnlab-torch; the rest is handed over"
