#!/usr/bin/env bash
# The benchmarks' cheapest training script, for the scale workload: the same
# contract as sleeper.py (sleep --sleep seconds, write the summary with the
# run's own start/end stamps into --out_dir) at a fraction of Python's start-up
# cost, so 20,000 runs measure the driver rather than the interpreter.
# Needs bash 5 ($EPOCHREALTIME: a clock without starting a process).
started=$EPOCHREALTIME
seconds=0
out_dir=
for arg in "$@"; do
    case $arg in
        --sleep=*) seconds=${arg#*=} ;;
        --out_dir=*) out_dir=${arg#*=} ;;
    esac
done
[ -n "$out_dir" ] || { echo "sleeper.sh: --out_dir is required" >&2; exit 2; }
[ "$seconds" = 0 ] || sleep "$seconds"
[ -d "$out_dir" ] || mkdir -p -- "$out_dir"
ended=$EPOCHREALTIME
micros=$(( ${ended/[.,]/} - ${started/[.,]/} ))
printf 'run_time %d.%06d\nstarted %s\nended %s\nfinished 1\n' \
    $((micros / 1000000)) $((micros % 1000000)) "${started/,/.}" "${ended/,/.}" >"$out_dir/performance_overview.txt"
