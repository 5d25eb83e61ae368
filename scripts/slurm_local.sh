#!/usr/bin/env bash
# Usage: bash scripts/slurm_local.sh start|stop|status
# A one-node Slurm on this machine (Debian's slurm-wlm with munge), to run bench's submitit_slurm path for real.
# No cgroups (proctrack/linuxproc, task/none): containers often forbid them. Needs root and:
#   apt-get install -y --no-install-recommends slurmd slurmctld slurm-client munge
set -euo pipefail
conf=/etc/slurm/slurm.conf
log=/var/log/slurm
start() {
  command -v slurmctld >/dev/null || { echo "slurm is not installed (see the usage line)" >&2; exit 2; }
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$log" /run/munge /var/lib/munge /var/log/munge
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge && dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
  host=$(hostname -s)
  # slurmd -C prints this machine's node line (CPUs, sockets, cores, threads, memory) as Slurm sees it.
  node=$(slurmd -C | head -1)
  cat > "$conf" <<CONF
ClusterName=bench
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$log/slurmctld.log
SlurmdLogFile=$log/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|alloc" && { sinfo; exit 0; }; sleep 1; done
  echo "slurm did not come up; see $log/slurmctld.log and $log/slurmd.log" >&2; sinfo >&2 || true; exit 1
}
stop() {
  # Only the daemons this script starts, by their pid files.
  for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
}
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: bash scripts/slurm_local.sh start|stop|status" >&2; exit 2 ;;
esac
