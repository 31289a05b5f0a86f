"""Fixture: an image-model training script in the style of timm's train.py.

A first parser reads only ``-c/--config`` with ``parse_known_args``; the main
parser's argument groups hold the rest; a YAML file may set their defaults.
torch and yaml are imported at the top.
"""
import argparse
import os

import torch
import yaml

config_parser = parser = argparse.ArgumentParser(description="Training Config", add_help=False)
parser.add_argument("-c", "--config", default="", type=str, metavar="FILE",
                    help="YAML config file specifying default arguments")

parser = argparse.ArgumentParser(description="Image model training")

group = parser.add_argument_group("Dataset parameters")
group.add_argument("data", nargs="?", metavar="DIR", const=None, help="path to dataset (positional is deprecated)")
group.add_argument("--data-dir", metavar="DIR", help="path to dataset (root dir)")
group.add_argument("--dataset", metavar="NAME", default="", help="dataset type + name")
group.add_argument("--train-split", metavar="NAME", default="train", help="dataset train split (default: train)")

group = parser.add_argument_group("Model parameters")
group.add_argument("--model", default="resnet50", type=str, metavar="MODEL", help="Name of model to train")
group.add_argument("--pretrained", action="store_true", default=False, help="Start with pretrained version")
group.add_argument("--num-classes", type=int, default=None, metavar="N", help="number of label classes")
group.add_argument("--img-size", type=int, default=None, metavar="N", help="Image size")
group.add_argument("--input-size", default=None, nargs=3, type=int, metavar="N N N", help="Input all image dims")
group.add_argument("-b", "--batch-size", type=int, default=128, metavar="N", help="Input batch size for training")
group.add_argument("--grad-accum-steps", type=int, default=1, metavar="N", help="Number of steps to accumulate")

group = parser.add_argument_group("Optimizer parameters")
group.add_argument("--opt", default="sgd", type=str, metavar="OPTIMIZER", help='Optimizer (default: "sgd")')
group.add_argument("--opt-eps", default=None, type=float, metavar="EPSILON", help="Optimizer Epsilon")
group.add_argument("--opt-betas", default=None, type=float, nargs="+", metavar="BETA", help="Optimizer Betas")
group.add_argument("--momentum", type=float, default=0.9, metavar="M", help="Optimizer momentum (default: 0.9)")
group.add_argument("--weight-decay", type=float, default=2e-5, help="weight decay (default: 2e-5)")
group.add_argument("--clip-grad", type=float, default=None, metavar="NORM", help="Clip gradient norm")
group.add_argument("--clip-mode", type=str, default="norm", help='Gradient clipping mode. One of ("norm", "value")')

group = parser.add_argument_group("Learning rate schedule parameters")
group.add_argument("--sched", type=str, default="cosine", metavar="SCHEDULER", help='LR scheduler (default: "cosine")')
group.add_argument("--lr", type=float, default=None, metavar="LR", help="learning rate, overrides lr-base if set")
group.add_argument("--lr-base", type=float, default=0.1, metavar="LR", help="base learning rate")
group.add_argument("--warmup-lr", type=float, default=1e-5, metavar="LR", help="warmup learning rate")
group.add_argument("--epochs", type=int, default=300, metavar="N", help="number of epochs to train")
group.add_argument("--decay-rate", "--dr", type=float, default=0.1, metavar="RATE", help="LR decay rate")

group = parser.add_argument_group("Augmentation and regularization parameters")
group.add_argument("--no-aug", action="store_true", default=False, help="Disable all training augmentation")
group.add_argument("--scale", type=float, nargs="+", default=[0.08, 1.0], metavar="PCT", help="Random resize scale")
group.add_argument("--hflip", type=float, default=0.5, help="Horizontal flip training aug probability")
group.add_argument("--drop", type=float, default=0.0, metavar="PCT", help="Dropout rate (default: 0.)")
group.add_argument("--drop-path", type=float, default=None, metavar="PCT", help="Drop path rate (default: None)")

group = parser.add_argument_group("Miscellaneous parameters")
group.add_argument("--seed", type=int, default=42, metavar="S", help="random seed (default: 42)")
group.add_argument("--log-interval", type=int, default=50, metavar="N", help="batches to wait before logging")
group.add_argument("-j", "--workers", type=int, default=4, metavar="N", help="how many training processes to use")
group.add_argument("--amp", action="store_true", default=False, help="use automatic mixed precision")
group.add_argument("--no-prefetcher", action="store_true", default=False, help="disable fast prefetcher")
group.add_argument("--output", default="", type=str, metavar="PATH", help="path to output folder")
group.add_argument("--eval-metric", default="top1", type=str, metavar="EVAL_METRIC", help='Best metric (default: "top1")')
group.add_argument("--local_rank", default=0, type=int)


def _parse_args():
    args_config, remaining = config_parser.parse_known_args()
    if args_config.config:
        with open(args_config.config, "r") as f:
            cfg = yaml.safe_load(f)
            parser.set_defaults(**cfg)
    args = parser.parse_args(remaining)
    return args, yaml.safe_dump(args.__dict__, default_flow_style=False)


def main():
    args, args_text = _parse_args()
    os.makedirs(args.output or "output", exist_ok=True)
    torch.manual_seed(args.seed)


if __name__ == "__main__":
    main()
