#!/usr/bin/env python3
"""A plain argparse script: dashed flags, --flag/--no-flag booleans, a list flag.

It "trains" one weight towards 3 with gradient descent and prints its metrics as one
JSON object on stdout, the last line hpsearch reads (_METRICS source stdout_json).
"""

import argparse
import json

parser = argparse.ArgumentParser()
parser.add_argument("--learning-rate", type=float, default=0.1)
parser.add_argument("--momentum", action=argparse.BooleanOptionalAction, default=False)
parser.add_argument("--steps", type=int, nargs="+", default=[10])
parser.add_argument("--out_dir", default="out")
args = parser.parse_args()

weight, velocity = 0.0, 0.0
for _ in range(sum(args.steps)):
    velocity = (0.9 * velocity if args.momentum else 0.0) - args.learning_rate * 2 * (weight - 3)
    weight += velocity
print(json.dumps({"loss": (weight - 3) ** 2, "weight": weight}))
