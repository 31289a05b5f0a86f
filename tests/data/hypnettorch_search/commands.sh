#!/bin/sh
# This script contains all 12 commands that are planned to be executed during this hyperparameter search. The order of execution is preserved in this script.

python3 train.py --lr=0.1 --opt=adam --random_seed=3 --out_dir=out/hnt_search/sim_20261201121601_01
python3 train.py --lr=0.1 --opt=bad --random_seed=2 --out_dir=out/hnt_search/sim_20261201121601_02
python3 train.py --lr=0.1 --opt=bad --random_seed=3 --out_dir=out/hnt_search/sim_20261201121601_03
python3 train.py --lr=0.1 --opt=adam --random_seed=2 --out_dir=out/hnt_search/sim_20261201121601_04
python3 train.py --lr=0.01 --opt=bad --random_seed=3 --out_dir=out/hnt_search/sim_20261201121601_05
python3 train.py --lr=0.1 --opt=adam --random_seed=1 --out_dir=out/hnt_search/sim_20261201121601_06
python3 train.py --lr=0.01 --opt=bad --random_seed=2 --out_dir=out/hnt_search/sim_20261201121601_07
python3 train.py --lr=0.01 --opt=bad --random_seed=1 --out_dir=out/hnt_search/sim_20261201121601_08
python3 train.py --lr=0.01 --opt=adam --random_seed=2 --out_dir=out/hnt_search/sim_20261201121601_09
python3 train.py --lr=0.01 --opt=adam --random_seed=3 --out_dir=out/hnt_search/sim_20261201121601_10
python3 train.py --lr=0.01 --opt=adam --random_seed=1 --out_dir=out/hnt_search/sim_20261201121601_11
python3 train.py --lr=0.1 --opt=bad --random_seed=1 --out_dir=out/hnt_search/sim_20261201121601_12
