#!/usr/bin/env bash
# experiments:validate — every sweep file in experiments/ passes validation as the CLI reads
# it (--dry-run: nothing runs, no database is touched), and the study's three files share
# their [data], [teacher] and [eval] sections character for character, so that they train one
# teacher (cached by its config hash) and judge every trial against it.
#   bash tests/test_experiments.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for f in experiments/*.toml; do
  if ! "$build/bin/attnlab" run "$f" --dry-run --db "$tmp/never.sqlite" >"$tmp/out" 2>&1; then
    echo "FAILED: $f does not validate:"; cat "$tmp/out"; status=1
  fi
done
[ ! -e "$tmp/never.sqlite" ] || { echo "FAILED: --dry-run created the database"; status=1; }
shared() { sed -n '/^\[data\]/,/^\[grid\]/p' "$1" | sed '$d'; sed -n '/^\[eval\]/,$p' "$1"; }
for f in experiments/study_learned.toml experiments/study_controls.toml; do
  if ! diff <(shared experiments/study.toml) <(shared "$f") >"$tmp/diff"; then
    echo "FAILED: $f and experiments/study.toml differ in [data], [teacher] or [eval]:"; cat "$tmp/diff"; status=1
  fi
done
[ "$status" = 0 ] && echo "ok: $(ls experiments/*.toml | wc -l) sweep files validate; the study's shared sections agree"
exit "$status"
