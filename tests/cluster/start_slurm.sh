#!/usr/bin/env bash
# Start a real single-node Slurm (Debian 12: Slurm 22.05) for tests/test_slurm.py, without
# systemd or cgroups. Runs as root, non-interactive, idempotent: re-running with the daemons up
# only rewrites slurm.conf (and reconfigures if it changed).
#
#   bash tests/cluster/start_slurm.sh      # exit 0: node idle, srun and sbatch work
#   bash tests/cluster/stop_slurm.sh       # stop what this started (by PID files)
#
# Exit status: 0 ready; 3 the packages could not be installed (apt failed: the test skips);
# anything else: Slurm is installed but did not come up (the test fails).
#
# The cluster is what snakemake-executor-plugin-slurm meets on a site without slurmdbd:
#   AccountingStorageType=accounting_storage/none, so job status comes from `squeue`, which
#   shows finished jobs for MinJobAge seconds. The plugin trusts squeue only when
#   MinJobAge >= 3 x init-seconds-before-status-checks (the slurm profile uses 1 s; 300 here).
# One partition, `debug` (the default); DefMemPerCPU gives jobs without --mem 1 GB per CPU.
set -euo pipefail

NODE="$(hostname -s)"
export DEBIAN_FRONTEND=noninteractive

T_START=$(date +%s.%N)
log() { printf '[start_slurm +%ss] %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$T_START" 'BEGIN{printf "%.1f", a-b}')" "$*" >&2; }
# alive PIDFILE NAME: true if the pid file names a live process called NAME (guards against stale/reused PIDs)
alive() { [ -s "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$2" ]; }

if [ "$(id -u)" != 0 ]; then log "must run as root (installs packages, starts daemons)"; exit 3; fi

# ---------------------------------------------------------------- 1. packages
PKGS="slurm-wlm munge"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  log "installing:$missing"
  command -v apt-get >/dev/null || { log "no apt-get: cannot install$missing"; exit 3; }
  apt-get update -qq || { log "apt-get update failed"; exit 3; }
  # no systemd here: postinst "invoke-rc.d ... policy-rc.d denied" messages are expected
  apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || { log "apt-get install$missing failed"; exit 3; }
  log "packages installed"
fi

# ---------------------------------------------------------------- 2. munge
# Debian's munge postinst creates /etc/munge/munge.key; create it if it is missing.
if [ ! -s /etc/munge/munge.key ]; then
  install -d -o munge -g munge -m 0700 /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
if ! alive /run/munge/munged.pid munged; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged          # daemonizes, writes /run/munge/munged.pid
fi
munge -n | unmunge >/dev/null                    # fails (set -e) if munge is broken

# ---------------------------------------------------------------- 3. slurm.conf
MEM_MB=$(( $(free -m | awk '/^Mem:/{print $2}') - 2048 ))
CPUS=$(nproc)
install -d -o slurm -g slurm -m 0755 /run/slurm /var/lib/slurm/slurmctld /var/log/slurm
install -d -o root -g root -m 0755 /var/lib/slurm/slurmd
CONF=/etc/slurm/slurm.conf
NEW_CONF="$(mktemp)"
cat > "$NEW_CONF" <<CONF_EOF
ClusterName=ci
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
# no cgroups / systemd needed:
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no slurmdbd: sacct has no data, job status comes from squeue
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
ReturnToService=2
# snakemake-executor-plugin-slurm only trusts 'squeue' status if MinJobAge >= 3*init_seconds_before_status_checks
MinJobAge=300
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} Sockets=1 CoresPerSocket=${CPUS} ThreadsPerCore=1 RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF_EOF
changed=1
if [ -f "$CONF" ] && cmp -s "$NEW_CONF" "$CONF"; then changed=0; fi
install -m 0644 "$NEW_CONF" "$CONF"; rm -f "$NEW_CONF"

# ---------------------------------------------------------------- 4. slurm daemons
if ! alive /run/slurm/slurmctld.pid slurmctld; then log "starting slurmctld"; /usr/sbin/slurmctld; changed=0; fi   # daemonizes
if ! alive /run/slurm/slurmd.pid slurmd;    then log "starting slurmd";    /usr/sbin/slurmd;    fi   # daemonizes
if [ "$changed" = 1 ]; then log "slurm.conf changed: scontrol reconfigure"; scontrol reconfigure; fi

# ---------------------------------------------------------------- 5. health check
state=""
for _ in $(seq 1 60); do
  state="$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)"
  case "$state" in idle*|mix*|alloc*) break ;; esac
  sleep 0.5
done
case "$state" in idle*|mix*|alloc*) ;; *)
  log "node not ready (state='$state')"; scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
  sleep 1; state="$(sinfo -h -n "$NODE" -o %T)"; case "$state" in idle*|mix*|alloc*) ;; *) exit 1;; esac;;
esac
[ "$(srun -N1 -n1 --mem=64 -t 1 hostname)" = "$NODE" ]
jid=$(sbatch --parsable --mem=64 -t 1 -o /dev/null --wrap true)
# poll ourselves: `sbatch --wait` only re-checks every few seconds
js=""
for _ in $(seq 1 150); do
  js="$(scontrol show job -o "$jid" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)"
  case "$js" in COMPLETED) break ;; FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL) break ;; esac
  sleep 0.2
done
[ "$js" = COMPLETED ] || { log "sbatch test job $jid ended in state '$js'"; exit 1; }
log "OK: node $NODE is $state; srun works; sbatch job $jid completed"
sinfo
