#!/bin/sh
python3 train.py --lr=0.1 --opt=adam --random_seed=1 --out_dir=out/hnt_search/sim_20261201121601_06