"""Fixture: an hpman script whose hyperparameters hpargparse turns into flags.

Hyperparameters are defined where they are used, ``_("name", default)``;
hpman parses them from this file and hpargparse adds ``--name-with-dashes``.
"""
import argparse
import json
import os

import hpargparse
from hpman.m import _


def build_model():
    hidden = _("hidden_size", 128, help="width of the hidden layer")
    layers = _("num_layers", 2)
    return {"hidden": hidden, "layers": layers, "act": _("activation", "relu", choices=["relu", "gelu", "tanh"])}


def train(model):
    lr = _("learning_rate", 1e-3)
    dropout = _("dropout", 0.1)
    use_amp = _("use_amp", False)
    milestones = _("milestones", [30, 60])
    steps = _("steps", 10 * 100)
    return {"val_acc": min(0.99, lr * 100 + dropout), "amp": use_amp, "m": milestones, "steps": steps}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out_dir", default="out", help="folder for the results")
    _.parse_file(__file__)
    hpargparse.bind(parser, _)
    args = parser.parse_args()
    result = train(build_model())
    os.makedirs(args.out_dir, exist_ok=True)
    print(json.dumps({"val_acc": result["val_acc"], "steps": result["steps"]}))


if __name__ == "__main__":
    main()
