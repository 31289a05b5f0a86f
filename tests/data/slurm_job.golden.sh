#!/bin/bash
#SBATCH --job-name=sim_20260101120000_01
#SBATCH '--output=/search dir/sim_20260101120000_01/slurm-%j.out'
#SBATCH '--error=/search dir/sim_20260101120000_01/slurm-%j.out'
#SBATCH --time=2:00:00
#SBATCH --signal=B:USR1@120
#SBATCH --mem=4G
#SBATCH --gres=gpu:1
#SBATCH --partition=gpu
#SBATCH '--constraint=a100|h100'
#SBATCH '--account=my lab'
#SBATCH -x node1
#SBATCH --exclusive

# --- set-up (the user's own shell code) ---
module load cuda/12
source '/opt/my env/bin/activate'
# --- end of set-up ---

# --- hpsearch: the runs of this job, one after another ---
set -m  # each run gets a process group of its own, so a signal reaches all of it
status=0 hpsearch_pid="" hpsearch_dir="" hpsearch_woken="" hpsearch_cut="" hpsearch_stop=""
hpsearch_record() {  # FOLDER NAME TEXT: the file appears whole or not at all
  printf '%s\n' "$3" >"$1/.$2.tmp" && mv -f -- "$1/.$2.tmp" "$1/$2"
}
hpsearch_stopped() {  # SIGTERM: cancelled, or killed at the time limit
  hpsearch_woken=1 hpsearch_stop=1
  [ -n "$hpsearch_pid" ] && kill -s TERM -- "-$hpsearch_pid" 2>/dev/null
}
trap hpsearch_stopped TERM
hpsearch_deadline=$((SECONDS + 7200))
hpsearch_warned() {  # SIGUSR1: the scheduler's warning before the time limit, or preemption
  hpsearch_woken=1
  [ -n "$hpsearch_cut" ] && return
  if [ $((hpsearch_deadline - SECONDS)) -le 180 ]; then hpsearch_cut="time limit"; else hpsearch_cut="preempted"; fi
  if [ -n "$hpsearch_pid" ]; then
    hpsearch_record "$hpsearch_dir" cut_off.txt "$hpsearch_cut"
    kill -s USR1 -- "-$hpsearch_pid" 2>/dev/null
  fi
}
trap hpsearch_warned USR1
hpsearch_wait() {  # PID: wait for the run through any signal, then record its exit status
  hpsearch_pid=$1
  wait "$1"; status=$?
  while [ -n "$hpsearch_woken" ]; do
    hpsearch_woken=""
    wait "$1" 2>/dev/null; local again=$?
    if [ "$again" -eq 127 ] || [ "$again" -lt 0 ]; then break; fi  # reaped already: $status stands
    status=$again
  done
  hpsearch_pid=""
  if [ -n "$hpsearch_stop" ] && { [ "$status" -gt 128 ] || [ "$status" -lt 0 ]; }; then
    trap - TERM; kill -s TERM $$; exit 143  # end by the signal, as the scheduler expects
  fi
  hpsearch_record "$hpsearch_dir" exit_code.txt "$status"
}
if [ -z "$hpsearch_cut" ]; then  # sim_20260101120000_01
  hpsearch_dir='/search dir/sim_20260101120000_01'
  { export HPSEARCH_RUN_KEY=k0001; export HPSEARCH_SEARCH_DIR='/search dir'; cd -- /project && exec /usr/bin/python3 train.py --lr=0.1 '--name=a b' '--out_dir=/search dir/sim_20260101120000_01'; } </dev/null >>'/search dir/sim_20260101120000_01/stdout.txt' 2>>'/search dir/sim_20260101120000_01/stderr.txt' &
  hpsearch_wait $!
else
  hpsearch_record '/search dir/sim_20260101120000_01' cut_off.txt "not started: $hpsearch_cut"
fi
exit "$status"
