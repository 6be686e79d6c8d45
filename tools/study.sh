#!/usr/bin/env bash
# The long-context study (experiments/study*.toml, issue 13): the three sweeps into one
# database, then one report over all of them and the seeds-aggregated table.
#
#   tools/study.sh [ATTNLAB]     ATTNLAB: the CLI to use (default build/bin/attnlab; in the
#                                Debian 13 chroot: tools/debian13.sh run tools/study.sh
#                                /root/build/bin/attnlab, LibTorch 2.6's flash SDPA as the peer)
#   ATTNLAB_STUDY_DB=FILE        the database (default results/study.sqlite)
# Resumable: rerun it after an interruption and only unfinished trials run.
set -euo pipefail
cd "$(dirname "$0")/.."
attnlab=${1:-build/bin/attnlab}
db=${ATTNLAB_STUDY_DB:-results/study.sqlite}
for sweep in experiments/study_controls.toml experiments/study.toml experiments/study_learned.toml; do
  start=$SECONDS
  "$attnlab" run "$sweep" --db "$db" --no-progress
  echo "[study] $sweep took $((SECONDS - start)) s"
done
"$attnlab" report --db "$db" --sweep study-controls,study,study-learned --out results/reports/study
"$attnlab" query --db "$db" "select sweep, backend, eval_len as T, seeds, printf('%+.2f%%', 100 * rel_delta_ppl) as rel_dppl,
  printf('[%+.2f, %+.2f]', 100 * rel_delta_ppl_min, 100 * rel_delta_ppl_max) as seed_range, printf('%.3f', causal_fraction) as of_causal,
  printf('%.2fx', speedup) as speedup, printf('%.2fx', attention_speedup) as attn_speedup, first_trial
  from distill_methods order by eval_len, causal_fraction"
