#!/usr/bin/env bash
# experiments:validate — every sweep file in experiments/ passes validation as the CLI reads
# it (--dry-run: nothing runs, no database is touched), the plain study's three files share
# their [data], [teacher] and [eval] sections character for character, so that they train one
# teacher (cached by its config hash) and judge every trial against it; the recall study and
# the long recall runs share [data] and [teacher] (one teacher) the same way.
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
for f in experiments/study_plain_learned.toml experiments/study_plain_controls.toml; do
  if ! diff <(shared experiments/study_plain.toml) <(shared "$f") >"$tmp/diff"; then
    echo "FAILED: $f and experiments/study_plain.toml differ in [data], [teacher] or [eval]:"; cat "$tmp/diff"; status=1
  fi
done
# The recall study and the long recall runs share one teacher (cached by its config hash).
teacher_of() { sed -n '/^\[data\]/,/^\[grid\]/p' "$1" | sed '$d'; }
for f in experiments/recall_teacher_long.toml experiments/recall_students_long.toml experiments/recall_students_long_lambda.toml; do
  if ! diff <(teacher_of experiments/study.toml) <(teacher_of "$f") >"$tmp/diff"; then
    echo "FAILED: $f and experiments/study.toml differ in [data] or [teacher]:"; cat "$tmp/diff"; status=1
  fi
done
[ "$status" = 0 ] && echo "ok: $(ls experiments/*.toml | wc -l) sweep files validate; the studies' shared sections agree"
exit "$status"
