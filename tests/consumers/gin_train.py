#!/usr/bin/env python3
"""A real gin-config script: ``@gin.configurable`` functions configured by the
``config.gin`` given with ``--gin_file``. The training code writes what gin handed
it to ``received.json`` and its metrics to ``metrics.json``."""

import argparse
import json
import os

import gin


@gin.configurable
class Adam:
    pass


@gin.configurable
def model(d_model=16, name="default", layers=(64,)):
    return {"d_model": d_model, "name": name, "layers": list(layers) if isinstance(layers, tuple) else layers}


@gin.configurable
def train(learning_rate=0.1, use_bias=False, optimizer=None, epochs=1):
    return {"learning_rate": learning_rate, "use_bias": use_bias, "epochs": epochs,
            "optimizer": None if optimizer is None else optimizer.__name__}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gin_file", action="append", default=[])
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args()
    gin.parse_config_files_and_bindings(args.gin_file, [])
    received = {"model": model(), "train": train()}
    with open(os.path.join(args.out_dir, "received.json"), "w") as handle:
        json.dump(received, handle)
    with open(os.path.join(args.out_dir, "metrics.json"), "w") as handle:
        json.dump({"val_acc": received["train"]["learning_rate"] * received["model"]["d_model"]}, handle)


if __name__ == "__main__":
    main()
