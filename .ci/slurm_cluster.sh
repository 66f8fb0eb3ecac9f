#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, so that tests/test_slurm.py can run the
# smoke pipeline through profiles/slurm/ for real. For CI and for trying the profile
# on a Debian machine; needs root. Idempotent: packages are installed once, and a
# cluster that is already up is left as it is.
#
#   .ci/slurm_cluster.sh start    install slurm-wlm and munge, configure, start, wait for the node
#   .ci/slurm_cluster.sh stop     stop the daemons this script started
#   .ci/slurm_cluster.sh status   sinfo
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARKER="# Written by .ci/slurm_cluster.sh"
NODE=localhost
PARTITION=debug
LOGDIR=/var/log/slurm
STATEDIR=/var/lib/slurm

log() { echo "slurm_cluster: $*" >&2; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    log "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Recommends would pull in documentation and a mail server; nothing here needs them.
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

write_config() {
    # A machine with a real SLURM configuration is never touched.
    if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
        log "$CONF exists and was not written by this script; refusing to overwrite it"
        exit 1
    fi
    # slurmd -C prints this machine's CPUs, sockets, cores and memory as slurmd will
    # count them; declaring more than it finds would drain the node, so memory keeps a
    # 5% margin for what the kernel holds back by the time slurmd registers.
    local hw mem
    hw=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]* //')
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    hw=$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 95 / 100))/" <<<"$hw")
    mkdir -p "$LOGDIR" "$STATEDIR/slurmctld" "$STATEDIR/slurmd"
    cat >"$CONF" <<EOF
$MARKER: a one-node test cluster.
ClusterName=mdmtest
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
# No cgroups: linuxproc tracks processes and no task plugin binds them, which also
# works in containers without a delegated cgroup tree.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# Cores are the consumable resource, memory only a limit: two 1-core jobs run side by side.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Finished jobs stay visible to squeue this long; Snakemake's squeue status check needs that.
MinJobAge=600
ReturnToService=2
# Jobs are requeueable only when submitted with --requeue, as the profile's slurm-requeue asks.
JobRequeue=0
StateSaveLocation=$STATEDIR/slurmctld
SlurmdSpoolDir=$STATEDIR/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 $hw State=UNKNOWN
# Up to 4 jobs share a core: a test's short jobs spend much of their life starting
# Python, so running every queued job at once keeps the 2 cores of CI busy.
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}

running() {  # running PIDFILE: the daemon of that pid file is alive
    [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

start_daemons() {
    if ! running /run/munge/munged.pid; then
        [[ -f /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
        mkdir -p /run/munge && chown munge:munge /run/munge
        runuser -u munge -- munged
    fi
    # -c: a fresh cluster every time; jobs of an earlier CI run are not carried over.
    running /run/slurmctld.pid || slurmctld -c
    running /run/slurmd.pid || slurmd -N "$NODE"
}

wait_for_node() {
    local state=""
    for _ in $(seq 60); do
        state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
        if [[ $state == idle* || $state == mixed* || $state == allocated* ]]; then
            log "node $NODE is $state"
            return
        fi
        sleep 1
    done
    log "node $NODE did not come up (state: '${state:-none}'); the daemons' logs:"
    tail -n 20 "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log" >&2 || true
    exit 1
}

stop_daemons() {
    # By pid file only: nothing else of that name on the machine is touched.
    local pidfile
    for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
        if running "$pidfile"; then
            kill "$(cat "$pidfile")"
        fi
    done
    for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
        for _ in $(seq 20); do running "$pidfile" || break; sleep 0.5; done
    done
    log "stopped"
}

case "${1:-start}" in
    start)
        if [[ $(id -u) != 0 ]]; then log "needs root (apt-get, daemons)"; exit 1; fi
        install_packages
        if running /run/slurmctld.pid && running /run/slurmd.pid; then
            log "already running"
        else
            write_config
            start_daemons
        fi
        wait_for_node
        ;;
    stop) stop_daemons ;;
    status) sinfo ;;
    *) log "usage: $0 start|stop|status"; exit 2 ;;
esac
