#!/usr/bin/env python3
"""An hpman script: hyperparameters are inline _(name, default) calls; hpargparse adds
a flag for each (--learning-rate for learning_rate). Needs: pip install hpman hpargparse.

It prints "step N loss=..." lines; hpsearch reads them with a regular expression
(_METRICS source stdout_regex): the last loss, and every loss as a list.
"""

import argparse

import hpargparse
from hpman.m import _


def train() -> None:
    weight = 0.0
    for step in range(_("steps", 10)):
        weight -= _("learning_rate", 0.1) * 2 * (weight - _("target", 3.0))
        print(f"step {step} loss={(weight - 3) ** 2:.6g}")


parser = argparse.ArgumentParser()
parser.add_argument("--out_dir", default="out")
_.parse_file(__file__)
hpargparse.bind(parser, _)
parser.parse_args()
train()
