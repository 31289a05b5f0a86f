#!/usr/bin/env python3
"""A script configured by one file (``--config run/config.json`` or ``.yaml``).
It writes what it read to ``received.json`` and its metrics as JSON lines."""

import argparse
import json
import os


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args()
    with open(args.config) as handle:
        if args.config.endswith(".yaml"):
            import yaml

            config = yaml.safe_load(handle)
        else:
            config = json.load(handle)
    with open(os.path.join(args.out_dir, "received.json"), "w") as handle:
        json.dump(config, handle)
    with open(os.path.join(args.out_dir, "metrics.jsonl"), "w") as handle:
        for epoch in range(1, 4):
            handle.write(json.dumps({"epoch": epoch, "val_acc": config["learning_rate"] * epoch}) + "\n")


if __name__ == "__main__":
    main()
