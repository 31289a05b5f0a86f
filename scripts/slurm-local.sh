#!/bin/bash
# A one-node Slurm cluster on localhost with 4 fake GPUs, for hpsearch's tests.
#
# Usage: scripts/slurm-local.sh start|stop|status|check [FILE]|port
#
# start   installs Debian's slurmctld, slurmd, slurm-client and munge if they
#         are missing, writes slurm.conf and gres.conf under $SLURM_LOCAL_BASE
#         (default /tmp/hpsearch-slurm), starts munged, slurmctld and slurmd
#         and waits until the node is idle. Running it again while the cluster
#         is up does nothing.
# stop    cancels every job, then stops the daemons this script started, each
#         by its pid file (never by name), and waits until they are gone.
# status  exit 0 if the node answers and is usable, 3 otherwise.
# check   (changes nothing) says whether the controller answering on our port
#         is ours: exit 0 if it is, 4 if another controller answers there
#         (its ClusterName, configuration file and MaxArraySize are printed),
#         3 if none answers. With FILE, judges that `scontrol show config`
#         output instead of asking.
# port    (changes nothing) prints the port `start` would give slurmctld.
#
# Another Slurm controller may already answer on the usual port 6817 (the
# machine's own, or one started from another SLURM_LOCAL_BASE). Its answers
# would look like ours, with another cluster's limits; so whoever answers is
# compared with our configuration (ClusterName, SLURM_CONF, MaxArraySize), and
# if it is not ours, start takes the next free pair of ports (6917/6918,
# 7017/7018, ...) for a cluster of its own. SLURM_LOCAL_PORT chooses the port
# (slurmd gets the next one); start refuses if it is taken by another.
#
# The node offers at least 8 CPUs (oversubscribed on small machines), 4 fake
# GPUs (character devices with /dev/null's numbers, so --gres=gpu:N jobs get
# CUDA_VISIBLE_DEVICES) and MaxArraySize=5, so that tests see arrays split.
#
# The configuration is not written to /etc/slurm, so a machine's own Slurm
# set-up is never touched. Client commands find it through SLURM_CONF:
#     source "$SLURM_LOCAL_BASE/env"     # exports SLURM_CONF=<base>/slurm.conf
#
# Exit status 77 means Slurm cannot be provided on this machine (not root, no
# apt-get, packages not installable); tests skip with the printed reason.
# Any other non-zero status is a failure to start, with the daemon logs' tail.

set -euo pipefail

readonly UNAVAILABLE=77
readonly BASE="${SLURM_LOCAL_BASE:-/tmp/hpsearch-slurm}"
readonly CONF="$BASE/slurm.conf"
readonly RUN="$BASE/run"
readonly LOG="$BASE/log"
readonly PACKAGES=(slurmctld slurmd slurm-client munge)
readonly COMMANDS=(slurmctld slurmd sbatch squeue scontrol sinfo scancel munged munge unmunge)
readonly CLUSTER=ci
readonly MAX_ARRAY_SIZE=5
readonly DEFAULT_PORT=6817
readonly FOREIGN=4
export SLURM_CONF="$CONF"

say() { printf 'slurm-local: %s\n' "$*" >&2; }

unavailable() {
    say "Slurm unavailable: $*"
    exit "$UNAVAILABLE"
}

fail() {
    say "$*"
    local file
    for file in "$LOG"/*.log; do
        [[ -f "$file" ]] || continue
        say "--- last lines of $file"
        tail -n 20 "$file" >&2
    done
    exit 1
}

have_commands() {
    local cmd
    for cmd in "${COMMANDS[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || return 1
    done
}

# Package scripts would start the daemons with Debian's default
# configuration; a policy-rc.d that answers 101 forbids that.
apt_install() {
    local policy=/usr/sbin/policy-rc.d created=0 status=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" \
        >"$BASE/apt.log" 2>&1 || status=$?
    if ((created)); then
        rm -f "$policy"
    fi
    return "$status"
}

install_packages() {
    have_commands && return 0
    command -v apt-get >/dev/null 2>&1 || unavailable "no apt-get to install ${PACKAGES[*]}"
    say "installing ${PACKAGES[*]}"
    if ! apt_install; then
        say "install failed; running apt-get update and trying again"
        apt-get update -q >>"$BASE/apt.log" 2>&1 || true
        apt_install || { tail -n 20 "$BASE/apt.log" >&2; unavailable "apt-get install ${PACKAGES[*]} failed"; }
    fi
    have_commands || unavailable "the installed packages lack one of: ${COMMANDS[*]}"
}

# True if PID names a live process (a zombie counts as gone).
alive() {
    local pid="$1" state
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
    [[ -n "$state" && "$state" != Z ]]
}

gone() { ! alive "$1"; }

# munged runs as user munge, so its pid file lives in a folder munge owns.
pid_file() {
    if [[ "$1" == munged ]]; then
        printf '%s\n' "$RUN/munge/munged.pid"
    else
        printf '%s\n' "$RUN/$1.pid"
    fi
}

pid_of() {
    local file
    file=$(pid_file "$1")
    [[ -f "$file" ]] && tr -d '[:space:]' <"$file"
}

daemon_alive() {
    local pid
    pid=$(pid_of "$1") || return 1
    alive "$pid"
}

# Poll CHECK (a command) until it succeeds or SECONDS_ elapse.
wait_for() {
    local seconds_="$1"
    shift
    local deadline=$((SECONDS + seconds_))
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

write_config() {
    local node="$1" port="$2" cpus memory
    cpus=$(nproc)
    ((cpus >= 8)) || cpus=8 # oversubscribed on purpose: tests run several tiny jobs at once
    memory=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$RUN" "$LOG" "$BASE/state" "$BASE/spool" "$BASE/fakegpu"
    local i
    for i in 0 1 2 3; do
        [[ -c "$BASE/fakegpu/nvidia$i" ]] || mknod "$BASE/fakegpu/nvidia$i" c 1 3
    done
    cat >"$CONF.tmp" <<EOF
# Written by hpsearch scripts/slurm-local.sh; regenerated by every start.
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
MpiDefault=none
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.txt
MinJobAge=300
# Small on purpose: tests of larger searches then see arrays split and chained.
MaxArraySize=$MAX_ARRAY_SIZE
KillWait=5
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$BASE/gres.conf.tmp" <<EOF
AutoDetect=off
NodeName=$node Name=gpu File=$BASE/fakegpu/nvidia[0-3]
EOF
    mv -f "$CONF.tmp" "$CONF"
    mv -f "$BASE/gres.conf.tmp" "$BASE/gres.conf"
    printf 'export SLURM_CONF=%q\n' "$CONF" >"$BASE/env.tmp"
    mv -f "$BASE/env.tmp" "$BASE/env"
}

munge_works() {
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1
}

start_munge() {
    munge_works && return 0
    local key=/etc/munge/munge.key
    if [[ ! -s "$key" ]]; then
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$key" --force
        else
            head -c 1024 /dev/urandom >"$key"
        fi
    fi
    chown munge:munge "$key" /etc/munge
    chmod 400 "$key"
    mkdir -p /run/munge /var/lib/munge /var/log/munge "$RUN/munge"
    chown munge:munge /run/munge /var/lib/munge /var/log/munge "$RUN/munge"
    runuser -u munge -- munged --pid-file="$(pid_file munged)" >"$LOG/munged.start.log" 2>&1 ||
        fail "munged did not start"
    wait_for 10 munge_works || fail "munge does not answer"
}

node_state() {
    sinfo -h -o %t 2>/dev/null | head -n 1
}

node_idle() {
    [[ "$(node_state)" =~ ^(idle|mix|alloc)$ ]]
}

start_slurm() {
    local node="$1"
    if ! daemon_alive slurmctld; then
        slurmctld >"$LOG/slurmctld.start.log" 2>&1 || fail "slurmctld did not start"
    fi
    wait_for 20 scontrol ping >/dev/null 2>&1 || fail "slurmctld does not answer"
    if ! daemon_alive slurmd; then
        slurmd >"$LOG/slurmd.start.log" 2>&1 || fail "slurmd did not start"
    fi
    if ! wait_for 20 node_idle; then
        case "$(node_state)" in
            drain* | drng | inval | down*)
                scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
                wait_for 10 node_idle || fail "node $node is $(node_state) after resume"
                ;;
            *) fail "node $node is '$(node_state)', not idle" ;;
        esac
    fi
}

# The value of KEY in `scontrol show config` output on stdin ("Key   = value" lines).
config_value() {
    awk -v key="$1" '$1 == key && $2 == "=" { sub(/^[^=]*=[ ]*/, ""); print; exit }'
}

# Judge `scontrol show config` output (stdin): exit 0 if it comes from our
# configuration, else say what answers instead and exit 1.
controller_is_ours() {
    local shown cluster conf arrays
    shown=$(cat)
    cluster=$(config_value ClusterName <<<"$shown")
    conf=$(config_value SLURM_CONF <<<"$shown")
    arrays=$(config_value MaxArraySize <<<"$shown")
    [[ "$cluster" == "$CLUSTER" && "$conf" == "$CONF" && "$arrays" == "$MAX_ARRAY_SIZE" ]] && return 0
    say "another Slurm controller answers: ClusterName=${cluster:-?} SLURM_CONF=${conf:-?}" \
        "MaxArraySize=${arrays:-?} (ours: ClusterName=$CLUSTER SLURM_CONF=$CONF MaxArraySize=$MAX_ARRAY_SIZE)"
    return 1
}

# True if something listens on TCP port PORT (IPv4 or IPv6, any address).
port_listening() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v port=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == port { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# `scontrol show config` of whatever controller answers on 127.0.0.1:PORT
# (through a client-only configuration, so no daemon's file is read or changed).
show_config_on() {
    local port="$1" probe
    probe=$(mktemp)
    printf 'ClusterName=probe\nSlurmctldHost=%s(127.0.0.1)\nSlurmctldPort=%s\nAuthType=auth/munge\n' \
        "$(hostname -s)" "$port" >"$probe"
    SLURM_CONF="$probe" timeout 5 scontrol show config 2>/dev/null
    local status=$?
    rm -f "$probe"
    return "$status"
}

# The port in our configuration file, if there is one.
configured_port() {
    [[ -f "$CONF" ]] || return 1
    local port
    port=$(awk -F= '$1 == "SlurmctldPort" {print $2}' "$CONF")
    printf '%s\n' "${port:-$DEFAULT_PORT}"
}

# Whether the controller on PORT is ours: 0 ours, FOREIGN another, 3 none answers.
judge_port() {
    local shown
    port_listening "$1" || return 3 # asking a port nobody listens on takes scontrol seconds
    shown=$(show_config_on "$1") || return 3
    controller_is_ours <<<"$shown" && return 0
    return "$FOREIGN"
}

# The port for slurmctld: SLURM_LOCAL_PORT if given (refused if another
# controller has it), else the first of 6817, 6917, ... where ours answers or
# nothing listens on the port and the next one.
choose_port() {
    local port status
    if [[ -n "${SLURM_LOCAL_PORT:-}" ]]; then
        [[ "$SLURM_LOCAL_PORT" =~ ^[0-9]+$ ]] && ((SLURM_LOCAL_PORT > 0 && SLURM_LOCAL_PORT < 65535)) ||
            { say "SLURM_LOCAL_PORT must be a port number, got '$SLURM_LOCAL_PORT'"; return 1; }
        status=0
        judge_port "$SLURM_LOCAL_PORT" || status=$?
        if ((status == FOREIGN)) || { ((status == 3)) && port_listening "$SLURM_LOCAL_PORT"; }; then
            say "port $SLURM_LOCAL_PORT (SLURM_LOCAL_PORT) is taken by another program; choose another"
            return 1
        fi
        printf '%s\n' "$SLURM_LOCAL_PORT"
        return 0
    fi
    for ((port = DEFAULT_PORT; port < DEFAULT_PORT + 2000; port += 100)); do
        status=0
        judge_port "$port" >/dev/null 2>&1 || status=$?
        if ((status == 0)) || { ((status == 3)) && ! port_listening "$port" && ! port_listening $((port + 1)); }; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    say "no free port pair between $DEFAULT_PORT and $((DEFAULT_PORT + 2000))"
    return 1
}

cmd_start() {
    [[ "$(id -u)" == 0 ]] || unavailable "starting slurmctld, slurmd and munged needs root"
    mkdir -p "$BASE"
    install_packages
    local node port
    node=$(hostname -s)
    if daemon_alive slurmctld && daemon_alive slurmd && node_idle && scontrol show config | controller_is_ours; then
        say "already running (SLURM_CONF=$CONF)"
        return 0
    fi
    port=$(choose_port) || fail "cannot choose a port for slurmctld"
    if ((port != DEFAULT_PORT)) && [[ -z "${SLURM_LOCAL_PORT:-}" ]]; then
        say "port $DEFAULT_PORT belongs to another Slurm controller; ours gets ports $port and $((port + 1))"
    fi
    write_config "$node" "$port"
    start_munge
    start_slurm "$node"
    scontrol show config | controller_is_ours || fail "the controller answering on port $port is not the one started here"
    say "running: node $node is $(node_state); source $BASE/env for SLURM_CONF"
}

stop_daemon() {
    local name="$1" pid
    pid=$(pid_of "$name") || return 0
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_for 15 gone "$pid" || { kill -KILL "$pid" 2>/dev/null || true; }
    fi
    rm -f "$(pid_file "$name")"
}

no_running_jobs() {
    [[ -z "$(squeue -h -t running,completing -o %i 2>/dev/null)" ]]
}

cmd_stop() {
    # never cancel the jobs of another cluster that answers on our port
    if daemon_alive slurmctld && scontrol show config 2>/dev/null | controller_is_ours 2>/dev/null; then
        local jobs
        jobs=$(squeue -h -o %A 2>/dev/null | sort -u) || true
        if [[ -n "$jobs" ]]; then
            # shellcheck disable=SC2086 # one argument per job id
            scancel $jobs 2>/dev/null || true
            wait_for 20 no_running_jobs || say "jobs still running after scancel"
        fi
    fi
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
    say "stopped"
}

cmd_check() {
    if [[ -n "${1:-}" ]]; then
        controller_is_ours <"$1" || return "$FOREIGN"
        say "ours"
        return 0
    fi
    local port status=0
    port=$(configured_port) || port="${SLURM_LOCAL_PORT:-$DEFAULT_PORT}"
    judge_port "$port" || status=$?
    case "$status" in
        0) say "the controller on port $port is ours (SLURM_CONF=$CONF)" ;;
        3) say "no Slurm controller answers on port $port" ;;
    esac
    return "$status"
}

cmd_status() {
    if daemon_alive slurmctld && daemon_alive slurmd && node_idle && scontrol show config 2>/dev/null | controller_is_ours; then
        say "running: node $(node_state), SLURM_CONF=$CONF"
        return 0
    fi
    say "not running"
    return 3
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    check) cmd_check "${2:-}" ;;
    port) choose_port ;;
    *)
        say "usage: $0 start|stop|status|check [FILE]|port"
        exit 2
        ;;
esac
