#!/usr/bin/env python3
"""A script configured by one YAML file (--config run_folder/config.yaml). Needs: pip install pyyaml.

It writes its final metrics to metrics.json in its output folder (_METRICS source json_file)."""

import argparse
import json
import os

import yaml

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--out_dir", default="out")
args = parser.parse_args()
with open(args.config) as handle:
    config = yaml.safe_load(handle)

weight = 0.0
for _ in range(config["epochs"]):
    weight -= config["lr"] * 2 * (weight - 3)
with open(os.path.join(args.out_dir, "metrics.json"), "w") as handle:
    json.dump({"loss": (weight - 3) ** 2}, handle)
