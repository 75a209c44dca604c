#!/usr/bin/env bash
# Start a throwaway one-node Slurm cluster (munged, slurmctld, slurmd) for the Slurm sweep tests.
# Prints the lines to eval:  eval "$(bash .ci/slurm.sh)"
#   export SLURM_CONF=DIR/slurm.conf      (sbatch, squeue, scancel and submitit read it)
#   export OPTLAB_TEST_SLURM=DIR          (the tests' sign that a cluster is up; its state, logs, pids)
# Stop it with:  bash .ci/slurm.sh stop DIR   (cancels what is left, then ends the daemons by their pids)
# Everything else goes to stderr. Installs slurm-wlm and munge with apt-get when slurmctld is missing.
set -euo pipefail

stop() {
  local dir="$1"
  export SLURM_CONF="$dir/slurm.conf"
  scancel --user=root >/dev/null 2>&1 || true
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"; do
    if [ -s "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
}

if [ "${1:-}" = "stop" ]; then
  stop "${2:?usage: slurm.sh stop DIR}"
  exit 0
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  echo "slurm.sh: installing slurm-wlm and munge" >&2
  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge) >&2
fi

DIR="$(mktemp -d /tmp/optlab-slurm.XXXXXX)"
chmod 755 "$DIR"
HOST="$(hostname -s)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'; }
CTLD_PORT="$(free_port)"
SLURMD_PORT="$(free_port)"
# The node offers at least 8 CPUs however few the machine has (config_overrides keeps it from
# draining): the tests' arrays are tiny, and pytest -n 2 runs two of them at once.
CPUS="$(( $(nproc) > 8 ? $(nproc) : 8 ))"

# munge: its own key and socket for this cluster, run as the munge user
KEY="$DIR/munge.key"
/usr/sbin/mungekey -c -k "$KEY" >&2 2>/dev/null || dd if=/dev/urandom bs=1 count=1024 of="$KEY" 2>/dev/null
chown munge:munge "$KEY" && chmod 400 "$KEY"
mkdir -p /run/munge && chown munge:munge /run/munge
SOCKET=/run/munge/munge.socket.2
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  rm -f "$SOCKET" "$SOCKET.lock"
  mkdir -p "$DIR/munge" && chown munge:munge "$DIR/munge"
  su -s /bin/sh munge -c "/usr/sbin/munged --key-file='$KEY' --pid-file='$DIR/munge/munged.pid' --log-file='$DIR/munge/munged.log' --seed-file='$DIR/munge/seed'" >&2
  ln -sf "$DIR/munge/munged.pid" "$DIR/munged.pid"
fi
for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.25; done

mkdir -p "$DIR/state" "$DIR/spool"
cat > "$DIR/slurm.conf" <<EOF
ClusterName=optlab-ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobRequeue=1
KillWait=30
MinJobAge=600
SchedulerParameters=sched_interval=2
NodeName=$HOST CPUs=$CPUS RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$DIR/slurm.conf"
slurmctld -c >&2
slurmd >&2
for _ in $(seq 40); do
  if sinfo -h -o %T 2>/dev/null | grep -q idle; then break; fi
  sleep 0.5
done
if ! sinfo -h -o %T 2>/dev/null | grep -q idle; then
  echo "slurm.sh: the node did not come up (see $DIR/slurmctld.log, $DIR/slurmd.log)" >&2
  stop "$DIR"
  exit 1
fi
echo "export SLURM_CONF=$DIR/slurm.conf"
echo "export OPTLAB_TEST_SLURM=$DIR"
