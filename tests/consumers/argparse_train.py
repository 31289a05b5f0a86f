#!/usr/bin/env python3
"""A real argparse script with dashed flags, ``BooleanOptionalAction`` and ``nargs``.
It writes what its parser handed to the training code to ``received.json``."""

import argparse
import json
import os


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--run-name", default="default")
    parser.add_argument("--use-bias", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--layers", type=int, nargs="+", default=[64])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args()
    received = {key: value for key, value in vars(args).items() if key != "out_dir"}
    with open(os.path.join(args.out_dir, "received.json"), "w") as handle:
        json.dump(received, handle)
    print(json.dumps({"val_acc": args.learning_rate * args.epochs}))


if __name__ == "__main__":
    main()
