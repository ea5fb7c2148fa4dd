#!/bin/bash
# make test-slurm: a one-host Slurm cluster (slurmctld + slurmd in the foreground, auth/munge)
# in a temporary directory; submits a 2-seed sweep of a tiny config with `mbpo sweep --slurm`,
# requeues one array task while it runs, waits for both and compares each cell's progress.csv
# (outside time_* columns) with the same cell run alone. Bounded in time; stops every daemon it
# started. Prints "N passed, N failed" last.
set -u
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MBPO=$ROOT/$BUILD/mbpo
T=$(mktemp -d /tmp/mbpo-slurm.XXXXXX)
PIDS=""
fail() { echo "test-slurm: FAIL: $*"; finish 1; }
finish() {
  SLURM_CONF=$T/slurm.conf timeout 10 scontrol shutdown >/dev/null 2>&1
  sleep 0.5
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
  if [ "$1" = 0 ]; then echo "1 passed, 0 failed"; rm -rf "$T"; else
    echo "test-slurm: logs kept in $T"; echo "0 passed, 1 failed"; fi
  exit "$1"
}
trap 'fail "interrupted"' INT TERM
for c in slurmctld slurmd sbatch scontrol munged mungekey; do
  command -v $c >/dev/null || fail "$c missing: run make slurm-deps"
done
[ -x "$MBPO" ] || fail "$MBPO missing: run make"
mkdir -p "$T/munge" "$T/spool" "$T/state" && chmod 755 "$T" "$T/munge"
mungekey --create --keyfile="$T/munge/munge.key" >/dev/null 2>&1 || fail "mungekey"
chmod 400 "$T/munge/munge.key"
munged --foreground --socket="$T/munge/sock" --key-file="$T/munge/munge.key" \
  --log-file="$T/munge/log" --pid-file="$T/munge/pid" --seed-file="$T/munge/seed" >"$T/munge/out" 2>&1 &
PIDS="$PIDS $!"
cat > "$T/slurm.conf" <<CONF
ClusterName=mbpotest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/sock,cred_expire=10
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$T/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=sched_interval=2
ReturnToService=2
MailProg=/bin/true
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 Sockets=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=1000
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$T/slurm.conf
for i in $(seq 50); do [ -S "$T/munge/sock" ] && break; sleep 0.1; done
slurmctld -D -f "$SLURM_CONF" >"$T/slurmctld.out" 2>&1 & PIDS="$PIDS $!"
slurmd -D -N localhost -f "$SLURM_CONF" >"$T/slurmd.out" 2>&1 & PIDS="$PIDS $!"
ok=""
for i in $(seq 100); do
  [ "$(timeout 5 sinfo -h -N -o %T 2>/dev/null)" = idle ] && { ok=1; break; }; sleep 0.2
done
[ -n "$ok" ] || fail "the node never became idle (see $T/slurmd.log)"
TINY=$ROOT/tests/lua/data/tiny.lua
S=$T/sweep
out=$("$MBPO" sweep "$TINY" seed=1-2 epochs=30 --out "$S" --slurm --sbatch "--cpus-per-task=1" 2>&1) \
  || fail "mbpo sweep --slurm: $out"
echo "test-slurm: $out"
job=$(cat "$S/slurm_job")
# requeue task 1 once it has a checkpoint (mid-run)
c1=$S/001-tiny-epochs=30-seed=1
for i in $(seq 300); do [ -e "$c1/checkpoint" ] && break; sleep 0.1; done
[ -e "$c1/checkpoint" ] || fail "task 1 never wrote a checkpoint"
[ -e "$c1/DONE" ] && fail "task 1 finished before the requeue (make the config longer)"
scontrol requeue "${job}_1" || fail "scontrol requeue ${job}_1"
echo "test-slurm: requeued ${job}_1"
deadline=$((SECONDS + 150))
while [ $SECONDS -lt $deadline ]; do
  n=$(ls "$S"/*/DONE 2>/dev/null | wc -l)
  [ "$n" = 2 ] && break
  sleep 1
done
[ "$(ls "$S"/*/DONE 2>/dev/null | wc -l)" = 2 ] || fail "the cells did not finish in time: $("$MBPO" sweep --status "$S")"
"$MBPO" sweep --status "$S"
restarts=$(scontrol show job "${job}_1" 2>/dev/null | grep -o 'Restarts=[0-9]*')
echo "test-slurm: task 1 $restarts"
[ "$restarts" = "Restarts=1" ] || fail "task 1 was not requeued ($restarts)"
grep -q -- "--resume $c1" "$S/logs/001-tiny-epochs=30-seed=1.log" || fail "the requeued task 1 did not resume its checkpoint"
# each cell alone, same threads
strip() { awk -F, 'NR==1{for(i=1;i<=NF;i++) if($i !~ /^time_/) k[i]=1} {s=""; for(i=1;i<=NF;i++) if(k[i]) s=s $i ","; print s}' "$1"; }
for seed in 1 2; do
  c=$S/00$seed-tiny-epochs=30-seed=$seed
  MBPO_THREADS=1 "$MBPO" run "$TINY" epochs=30 seed=$seed --out "$T/alone$seed" >/dev/null 2>&1 || fail "run alone seed $seed"
  diff <(strip "$c/progress.csv") <(strip "$T/alone$seed/progress.csv") >/dev/null \
    || fail "progress.csv of $c differs from the cell run alone"
done
echo "test-slurm: both cells match their runs alone"
finish 0
