#!/bin/sh
# This script contains all 12 commands that are planned to be executed during this hyperparameter search. The order of execution is preserved in this script.
# Note, for visual clarity, the output directories have been omitted. See script "commands.sh" for the full commands.
python3 train.py --lr=0.1 --opt=adam --random_seed=3
python3 train.py --lr=0.1 --opt=bad --random_seed=2
python3 train.py --lr=0.1 --opt=bad --random_seed=3
python3 train.py --lr=0.1 --opt=adam --random_seed=2
python3 train.py --lr=0.01 --opt=bad --random_seed=3
python3 train.py --lr=0.1 --opt=adam --random_seed=1
python3 train.py --lr=0.01 --opt=bad --random_seed=2
python3 train.py --lr=0.01 --opt=bad --random_seed=1
python3 train.py --lr=0.01 --opt=adam --random_seed=2
python3 train.py --lr=0.01 --opt=adam --random_seed=3
python3 train.py --lr=0.01 --opt=adam --random_seed=1
python3 train.py --lr=0.1 --opt=bad --random_seed=1
