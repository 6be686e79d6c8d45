#!/usr/bin/env bash
# A real one-node Slurm cluster on localhost, in user space under one folder: munged,
# slurmctld and slurmd from Debian's slurm-wlm and munge, no systemd. For trying
# `attnlab submit` without a cluster, and for tests/test_slurm.sh.
#
#   tools/slurm_local.sh start DIR [PORT]   bring it up (PORT: slurmctld's, default 6817; slurmd
#                                           takes PORT + 1); prints the SLURM_CONF to export
#   tools/slurm_local.sh stop DIR           cancel its jobs, stop exactly the daemons it started
#
# Facts it relies on (../shared/slurm.md, measured here): the munge socket folder must be
# o+x; batch_sched_delay=0 (else each wave of array tasks waits 3 s); proctrack/linuxproc
# and task/none (cgroup plugins are not portable); config_overrides lets the node declare
# what slurm.conf says. Needs root (slurmd runs jobs as their users).
set -euo pipefail
mode=${1:?usage: slurm_local.sh start|stop DIR [PORT]}
D=${2:?usage: slurm_local.sh start|stop DIR [PORT]}
port=${3:-6817}
mkdir -p "$D"
D=$(cd "$D" && pwd)
export SLURM_CONF=$D/slurm.conf

stop() {
  [ -f "$D/slurm.conf" ] && command -v scancel >/dev/null && scancel --full --quiet -u "$(id -un)" 2>/dev/null || true
  for name in slurmd slurmctld munged; do
    [ -f "$D/run/$name.pid" ] || continue
    pid=$(cat "$D/run/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$D/run/$name.pid"
  done
}

if [ "$mode" = stop ]; then stop; exit 0; fi
[ "$mode" = start ] || { echo "slurm_local.sh: unknown mode '$mode'" >&2; exit 2; }
for tool in munged mungekey slurmctld slurmd sbatch scontrol sinfo; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin
  command -v "$tool" >/dev/null || { echo "slurm_local.sh: $tool not found (tools/setup.sh installs slurm-wlm and munge)" >&2; exit 3; }
done
stop
mkdir -p "$D/munge" "$D/state" "$D/spool" "$D/run" "$D/log"
chmod o+x "$D"
chmod 711 "$D/munge"
# munged refuses a socket below any folder that others cannot enter.
for up in "$D" $(p=$D; while [ "$p" != / ]; do p=$(dirname "$p"); echo "$p"; done); do
  [ "$(( $(stat -c %a "$up") % 2 ))" = 1 ] || { echo "slurm_local.sh: $up must be o+x for munged (chmod o+x $up)" >&2; exit 1; }
done
[ -f "$D/munge/munge.key" ] || mungekey -c -k "$D/munge/munge.key" -b 1024 >/dev/null 2>&1
chmod 600 "$D/munge/munge.key"
: > "$D/plugstack.conf"
cpus=$(nproc)
cat > "$D/slurm.conf" <<EOF
ClusterName=attnlab
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=$(id -un)
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket.2
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.daemon.pid
SlurmdPidFile=$D/run/slurmd.daemon.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
PlugStackConfig=$D/plugstack.conf
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobContainerType=job_container/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
MinJobAge=600
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus Sockets=1 CoresPerSocket=$cpus ThreadsPerCore=1 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# slurmd (22.05 and 24.11) initializes its cgroup plugin even with proctrack/linuxproc and
# task/none, and its autodetection dies where /sys/fs/cgroup holds no cgroup filesystem (CI
# containers, a chroot with a plain /sys bind). Naming cgroup/v1 skips the detection; with no
# cgroup-using plugin configured it never touches a hierarchy (measured: jobs run with
# /sys/fs/cgroup unmounted). A cgroup v2 host keeps the detection, which works there.
if [ "$(stat -f -c %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then rm -f "$D/cgroup.conf"
else echo "CgroupPlugin=cgroup/v1" > "$D/cgroup.conf"; fi

show_logs() {  # on failure: what the daemons said, so a CI log shows why
  local f
  for name in munged slurmctld slurmd; do
    f=$D/log/$name.log
    [ -s "$f" ] || f=$D/log/$name.out
    [ -s "$f" ] || continue
    echo "--- $f (last lines)" >&2
    grep -v -e 'PMIx' -e 'mpi/pmix' -e 'MPI: Cannot create context' "$f" | tail -n 8 >&2 || true
  done
  if command -v sinfo >/dev/null; then echo "--- sinfo" >&2; sinfo -N -o '%N %T %E' >&2 2>&1 || true; fi
}
give_up() {  # message: say it, show the logs, stop what was started
  echo "slurm_local.sh: $1; logs in $D/log" >&2
  show_logs
  if grep -qs -e "cgroup plugin" -e "/sys/fs/cgroup" "$D/log/slurmd.log"; then
    echo "slurm_local.sh: slurmd's cgroup plugin failed; $D/cgroup.conf says: $(cat "$D/cgroup.conf" 2>/dev/null || echo '(autodetect)')" >&2
  fi
  stop
  exit 1
}
wait_for() {  # what, seconds, pidfile, command...
  local what=$1 seconds=$2 pidfile=$3; shift 3
  # A deadline, not a count of tries: on a machine whose name lookups time out each client
  # call can take seconds.
  local deadline=$((SECONDS + seconds))
  while [ "$SECONDS" -lt "$deadline" ]; do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$(cat "$pidfile")" 2>/dev/null || give_up "$what exited during start-up"
    sleep 0.1
  done
  give_up "$what did not come up in $seconds s"
}
# A node that registered but is marked down (an earlier slurmd on the same state, a clock
# jump) is put back to service; the readiness check is then "idle".
node_idle() {
  local state
  state=$(sinfo -h -n localhost -o %T 2>/dev/null) || return 1
  case "$state" in
    idle) return 0 ;;
    down*|drain*|fail*) scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true; return 1 ;;
    *) return 1 ;;
  esac
}
munged -F --socket="$D/munge/munge.socket.2" --key-file="$D/munge/munge.key" --pid-file="$D/run/munged.daemon.pid" \
  --seed-file="$D/munge/munge.seed" >"$D/log/munged.log" 2>&1 &
echo $! > "$D/run/munged.pid"
wait_for munged 20 "$D/run/munged.pid" sh -c "munge -n -S '$D/munge/munge.socket.2' | unmunge -S '$D/munge/munge.socket.2'"
slurmctld -D -f "$D/slurm.conf" >"$D/log/slurmctld.out" 2>&1 &
echo $! > "$D/run/slurmctld.pid"
wait_for slurmctld 60 "$D/run/slurmctld.pid" scontrol ping
slurmd -D -N localhost -f "$D/slurm.conf" >"$D/log/slurmd.out" 2>&1 &
echo $! > "$D/run/slurmd.pid"
wait_for slurmd 90 "$D/run/slurmd.pid" node_idle
echo "export SLURM_CONF=$D/slurm.conf"
