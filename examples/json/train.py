#!/usr/bin/env python3
"""A script configured by one JSON file (--config run_folder/config.json).

It appends one JSON line per epoch to metrics.jsonl in its output folder; hpsearch
reads the last line (_METRICS source json_file)."""

import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--out_dir", default="out")
args = parser.parse_args()
with open(args.config) as handle:
    config = json.load(handle)

weight = 0.0
with open(os.path.join(args.out_dir, "metrics.jsonl"), "a") as log:
    for epoch in range(config["epochs"]):
        weight -= config["lr"] * 2 * (weight - 3)
        log.write(json.dumps({"epoch": epoch, "loss": (weight - 3) ** 2}) + "\n")
