#!/usr/bin/env python3
"""A real hpman script: hyperparameters are inline ``_(name, default)`` calls, and
hpargparse's ``bind`` adds a flag for each. The training code writes what ``_``
handed it to ``received.json`` in the run folder, and prints its metric."""

import argparse
import json
import os

import hpargparse
from hpman.m import _


def train() -> dict:
    return {
        "learning_rate": _("learning_rate", 0.1),
        "run_name": _("run_name", "default"),
        "use_bias": _("use_bias", False),
        "layers": _("layers", [64]),
        "epochs": _("epochs", 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out_dir", required=True)
    _.parse_file(__file__)
    hpargparse.bind(parser, _)
    args = parser.parse_args()
    received = train()
    with open(os.path.join(args.out_dir, "received.json"), "w") as handle:
        json.dump(received, handle)
    print(f"val_acc={received['learning_rate'] * received['epochs']}")


if __name__ == "__main__":
    main()
