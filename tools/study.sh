#!/usr/bin/env bash
# The recall study (experiments/study.toml, issue 18): one sweep into an empty or partial
# database, its report (recall, bits/byte and speedup against density, the heads each learned
# method keeps long-range, samples) and the verdict against the criteria in the sweep file.
#
#   tools/study.sh [ATTNLAB]     ATTNLAB: the CLI (default build/bin/attnlab). Run it on LibTorch
#                                2.6, whose flash SDPA is the teacher's peer:
#                                  tools/debian13.sh run tools/study.sh /root/build/bin/attnlab
#   tools/study.sh --plain [ATTNLAB]   the plain-perplexity study instead (experiments/study_plain*.toml,
#                                issue 13: the null result, fixed windows on the frontier)
#   ATTNLAB_STUDY_DB=FILE        the database (default results/study.sqlite; --plain: results/study_plain.sqlite)
# Resumable: rerun it after an interruption and only unfinished trials run. The teacher is
# trained once and cached under results/teachers (it is the recall runs' teacher).
set -euo pipefail
cd "$(dirname "$0")/.."
plain=0
if [ "${1:-}" = "--plain" ]; then plain=1; shift; fi
attnlab=${1:-build/bin/attnlab}
start=$SECONDS
if [ "$plain" = 1 ]; then
  db=${ATTNLAB_STUDY_DB:-results/study_plain.sqlite}
  for sweep in experiments/study_plain_controls.toml experiments/study_plain.toml experiments/study_plain_learned.toml; do
    "$attnlab" run "$sweep" --db "$db" --no-progress
  done
  "$attnlab" report --db "$db" --sweep study-controls,study,study-learned --out results/reports/study_plain
  "$attnlab" query --db "$db" "select sweep, backend, eval_len as T, seeds, printf('%+.2f%%', 100 * rel_delta_ppl) as rel_dppl,
    printf('[%+.2f, %+.2f]', 100 * rel_delta_ppl_min, 100 * rel_delta_ppl_max) as seed_range, printf('%.3f', causal_fraction) as of_causal,
    printf('%.2fx', speedup) as speedup, first_trial from distill_methods order by eval_len, causal_fraction"
  echo "[study] the plain study took $((SECONDS - start)) s"
  exit 0
fi
db=${ATTNLAB_STUDY_DB:-results/study.sqlite}
"$attnlab" run experiments/study.toml --db "$db" --no-progress
echo "[study] the sweep took $((SECONDS - start)) s"
"$attnlab" report --db "$db" --sweep recall-study --out results/reports/study
echo
echo "Seeds aggregated (means over the seeds; recall's bracket: the lowest 95% lower bound and the highest upper bound;"
echo "T = 4096 is cost only):"
"$attnlab" query --db "$db" "select eval_len as T, replace(replace(first_trial, '/seed:0/', '/'), '/seed:0', '') as student, seeds,
  printf('%.3f', causal_fraction) as of_causal,
  case when recall_acc is null then '' else printf('%.3f [%.3f, %.3f]', recall_acc, recall_acc_lo_min, recall_acc_hi_max) end as recall,
  case when student_bpb is null then '' else printf('%.3f', student_bpb) end as bpb,
  printf('%.2fx', speedup) as speedup from distill_methods where sweep = 'recall-study' order by eval_len, causal_fraction"
echo
echo "Verdict (docs/queries/recall_verdict.sql; the criteria are in experiments/study.toml's header):"
"$attnlab" query --db "$db" "$(cat docs/queries/recall_verdict.sql)" | tee results/reports/study/verdict.txt
echo "[study] took $((SECONDS - start)) s in all"
