#!/usr/bin/env python3
"""A gin-config script: hpsearch writes the configuration as gin bindings into
config.gin in the run folder and passes --gin_file. Needs: pip install gin-config.

It writes its metrics to metrics.json in its output folder (_METRICS source json_file)."""

import argparse
import json
import os

import gin


@gin.configurable
def optimizer(lr=0.1, decay=1.0):
    return lr, decay


@gin.configurable
def train(steps=10, out_dir="out"):
    lr, decay = optimizer()
    weight = 0.0
    for _ in range(steps):
        weight -= lr * 2 * (weight - 3)
        lr *= decay
    with open(os.path.join(out_dir, "metrics.json"), "w") as handle:
        json.dump({"loss": (weight - 3) ** 2}, handle)


parser = argparse.ArgumentParser()
parser.add_argument("--gin_file", action="append", default=[])
parser.add_argument("--out_dir", default="out")
args = parser.parse_args()
gin.parse_config_files_and_bindings(args.gin_file, [])
train(out_dir=args.out_dir)
