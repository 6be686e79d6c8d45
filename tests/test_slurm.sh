#!/usr/bin/env bash
# slurm:array_kill_resubmit_merge — a sweep on a real Slurm (tools/slurm_local.sh: munged,
# slurmctld, slurmd on localhost): submitted as a 4-task array, one task cancelled while it
# runs, `attnlab status` shows what is missing, a resubmission sends only that task, the
# shards are merged (twice: the second changes nothing), and every trial is done exactly
# once — counted in the fault backend's execution log, not in database rows. The daemons are
# stopped by the PIDs the script started.
#   bash tests/test_slurm.sh BUILD_DIR        (exit 77: skipped, not root)
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then echo "skipped: slurmd needs root"; exit 77; fi
D=$(mktemp -d /tmp/attnlab_slurm_XXXXXX)
chmod 755 "$D"  # munged wants o+x on every folder above its socket
trap 'bash "$src/tools/slurm_local.sh" stop "$D/cluster" >/dev/null 2>&1 || true' EXIT
# A random port pair can be taken on a busy machine: three tries, each on fresh ports.
cluster=
for try in 1 2 3; do
  port=$((20000 + RANDOM % 20000))
  if cluster=$(bash "$src/tools/slurm_local.sh" start "$D/cluster" "$port"); then break; fi
  echo "cluster start $try (ports $port, $((port + 1))) failed"
  cluster=
done
[ -n "$cluster" ] || { echo "FAILED: the cluster did not start"; exit 1; }
eval "$cluster"
export ATTNLAB_PLUGIN_PATH=$build/test_plugins ATTNLAB_FAULT_LOG=$D/executions
attnlab=$build/bin/attnlab
fail() { echo "FAILED: $*"; echo "--- logs:"; tail -n 20 "$D"/results.slurm/*/logs/*.out 2>/dev/null || true; exit 1; }
wait_until() {  # seconds, description, command...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  fail "$what (after $seconds s)"
}
job_gone() { [ -z "$(squeue -h -j "$1" 2>/dev/null)" ]; }

cd "$D"
cat > sweep.toml <<'EOF'
[sweep]
name = "slurm-test"
kind = "bench"
warmup = 0
repeats = 1

[slurm]
tasks = 4
cpus_per_task = 1

[grid]
backend = ["fault"]
seq_len = 8
heads = 1
head_dim = 4

[backend.fault]
sleep_ms = 1500
tag = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"]
EOF

start=$(date +%s)
out=$("$attnlab" submit sweep.toml --db "$D/results.sqlite")
echo "$out"
job=$(echo "$out" | sed -n 's/^submitted job \([0-9]*\).*/\1/p')
[ -n "$job" ] || fail "no job id in: $out"
echo "$out" | grep -q "8 trials left in 4 of 4 tasks" || fail "first submission should send all 4 tasks"

# Cancel task 2 while it runs (its worker gets SIGTERM: it stops its trial and gives the
# claim back).
wait_until 60 "task 2 running" sh -c "squeue -h -j ${job}_2 -o %T | grep -q RUNNING"
wait_until 60 "task 2's first trial started" grep -q "^start t2 " "$D/executions"
sleep 0.5
scancel "${job}_2"
wait_until 120 "job $job finished" job_gone "$job"

status=$("$attnlab" status --sweep slurm-test --db "$D/results.sqlite")
echo "$status"
echo "$status" | grep -q "8 trials, 6 done" || fail "after the cancel, 6 of 8 trials should be done"

# Resubmitting sends only the task that has trials left, with the same explicit shard count.
out=$("$attnlab" submit sweep.toml --db "$D/results.sqlite")
echo "$out"
echo "$out" | grep -q "2 trials left in 1 of 4 tasks" || fail "resubmission should send task 2 only"
echo "$out" | grep -q -- "--array=2 " || fail "resubmission should be --array=2"
job2=$(echo "$out" | sed -n 's/^submitted job \([0-9]*\).*/\1/p')
wait_until 120 "job $job2 finished" job_gone "$job2"

merged=$("$attnlab" merge --db "$D/results.sqlite" "$D"/results.slurm/slurm-test/shard-*.sqlite)
echo "$merged"
echo "$merged" | grep -q "8 added, 0 replaced" || fail "the merge should add the 8 trials"
again=$("$attnlab" merge --db "$D/results.sqlite" "$D"/results.slurm/slurm-test/shard-*.sqlite)
echo "$again" | grep -q "0 added, 0 replaced, 8 kept" || fail "merging again should change nothing: $again"

done_rows=$(sqlite3 "$D/results.sqlite" "select count(*) from trials where status = 'done'")
[ "$done_rows" = 8 ] || fail "$done_rows of 8 trials done after the merge"
[ "$(sqlite3 "$D/results.sqlite" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check"
# Executions: every trial finished exactly once; only the cancelled one may have started twice.
for i in 0 1 2 3 4 5 6 7; do
  ends=$(grep -c "^end t$i " "$D/executions" || true)
  [ "$ends" = 1 ] || fail "t$i finished $ends times"
done
starts=$(grep -c "^start " "$D/executions")
[ "$starts" -ge 9 ] || fail "the cancel should have landed mid-trial (t2 started twice), $starts executions started"
echo "ok: 8 trials done exactly once, $starts executions started, $(( $(date +%s) - start )) s from submit to merge"
