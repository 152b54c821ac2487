#!/usr/bin/env bash
# Stop the daemons started by tests/cluster/start_slurm.sh, each by the PID in its pid file, and
# only if that PID really is the expected program (no pkill/killall). Packages, slurm.conf and
# state stay in place.
set -u
stop() { # $1 = pid file, $2 = expected /proc/PID/comm
  [ -s "$1" ] || return 0
  local pid; pid="$(cat "$1")"
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]; then
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then echo "[stop_slurm] $2 ($pid) ignored TERM, sending KILL"; kill -KILL "$pid"; fi
    echo "[stop_slurm] stopped $2 ($pid)"
  fi
  rm -f "$1"
}
stop /run/slurm/slurmd.pid     slurmd
stop /run/slurm/slurmctld.pid  slurmctld     # its child "slurmscriptd" exits with it
stop /run/munge/munged.pid     munged
