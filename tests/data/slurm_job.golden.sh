#!/bin/bash
#SBATCH --job-name=sim_20260101120000_01
#SBATCH '--output=/search dir/sim_20260101120000_01/slurm-%j.out'
#SBATCH '--error=/search dir/sim_20260101120000_01/slurm-%j.out'
#SBATCH --time=2:00:00
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

export HPSEARCH_RUN_KEY=k0001
export HPSEARCH_SEARCH_DIR='/search dir'
{ cd -- /project && /usr/bin/python3 train.py --lr=0.1 '--name=a b' '--out_dir=/search dir/sim_20260101120000_01'; } </dev/null >>'/search dir/sim_20260101120000_01/stdout.txt' 2>>'/search dir/sim_20260101120000_01/stderr.txt'
status=$?
printf '%d\n' "$status" >'/search dir/sim_20260101120000_01/.exit_code.txt.tmp' && mv -f -- '/search dir/sim_20260101120000_01/.exit_code.txt.tmp' '/search dir/sim_20260101120000_01/exit_code.txt'
exit "$status"
