#!/bin/bash
#SBATCH --job-name=search_array_001
#SBATCH '--output=/search dir/job_logs/search_array_001-%A_%a.out'
#SBATCH '--error=/search dir/job_logs/search_array_001-%A_%a.out'
#SBATCH --time=2:00:00
#SBATCH --mem=4G
#SBATCH --gres=gpu:1
#SBATCH --partition=gpu
#SBATCH '--constraint=a100|h100'
#SBATCH --array=0-1%3

case "${SLURM_ARRAY_TASK_ID:-}" in
  0)  # sim_20260101120000_01
    export HPSEARCH_RUN_KEY=k0001
    export HPSEARCH_SEARCH_DIR='/search dir'
    { cd -- /project && /usr/bin/python3 train.py --lr=0.1 '--name=a b' '--out_dir=/search dir/sim_20260101120000_01'; } </dev/null >>'/search dir/sim_20260101120000_01/stdout.txt' 2>>'/search dir/sim_20260101120000_01/stderr.txt'
    status=$?
    printf '%d\n' "$status" >'/search dir/sim_20260101120000_01/.exit_code.txt.tmp' && mv -f -- '/search dir/sim_20260101120000_01/.exit_code.txt.tmp' '/search dir/sim_20260101120000_01/exit_code.txt'
    ;;
  1)  # sim_20260101120000_02
    export HPSEARCH_RUN_KEY=k0002
    { cd -- /project && python3 train.py --lr=1e-05; } </dev/null >>'/search dir/sim_20260101120000_02/stdout.txt' 2>>'/search dir/sim_20260101120000_02/stderr.txt'
    status=$?
    printf '%d\n' "$status" >'/search dir/sim_20260101120000_02/.exit_code.txt.tmp' && mv -f -- '/search dir/sim_20260101120000_02/.exit_code.txt.tmp' '/search dir/sim_20260101120000_02/exit_code.txt'
    ;;
  *)
    echo "hpsearch: no run for array index ${SLURM_ARRAY_TASK_ID:-unset}" >&2
    status=2
    ;;
esac
exit "$status"
