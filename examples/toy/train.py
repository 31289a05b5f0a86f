#!/usr/bin/env python3
"""A tiny training script to try hpsearch on a CPU-only machine.

It fits a logistic-regression classifier with plain Python SGD on a synthetic
two-blob data set, then writes the summary file hpsearch reads:
one line per keyword, ``finished 1`` last.
"""

from __future__ import annotations

import argparse
import math
import os
import random


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--l2", type=float, default=0.0)
    parser.add_argument("--use_bias", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out_dir", default="out/toy")
    return parser.parse_args(argv)


def make_data(rng: random.Random, n: int = 400) -> list[tuple[float, float, int]]:
    data = []
    for _ in range(n):
        label = rng.random() < 0.5
        cx, cy = (1.0, 0.8) if label else (-0.6, -1.0)
        data.append((rng.gauss(cx, 1.1), rng.gauss(cy, 1.1), int(label)))
    return data


def accuracy(w: list[float], data) -> float:
    hits = sum((w[0] * x + w[1] * y + w[2] > 0) == bool(t) for x, y, t in data)
    return hits / len(data)


def train(args: argparse.Namespace) -> tuple[list[float], float]:
    rng = random.Random(args.seed)
    data = make_data(rng)
    train_set, val_set = data[:300], data[300:]
    w, velocity = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    accuracies = []
    for _ in range(args.epochs):
        rng.shuffle(train_set)
        for start in range(0, len(train_set), args.batch_size):
            batch = train_set[start:start + args.batch_size]
            grad = [args.l2 * w[0], args.l2 * w[1], 0.0]
            for x, y, t in batch:
                z = w[0] * x + w[1] * y + (w[2] if args.use_bias else 0.0)
                p = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
                for i, feature in enumerate((x, y, 1.0 if args.use_bias else 0.0)):
                    grad[i] += (p - t) * feature / len(batch)
            for i in range(3):
                velocity[i] = args.momentum * velocity[i] - args.lr * grad[i]
                w[i] += velocity[i]
        accuracies.append(accuracy(w, val_set))
    loss = sum(
        math.log1p(math.exp(-max(-50.0, min(50.0, (2 * t - 1) * (w[0] * x + w[1] * y + w[2])))))
        for x, y, t in val_set
    ) / len(val_set)
    return accuracies, loss


def main() -> None:
    args = parse_args()
    accuracies, loss = train(args)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "performance_overview.txt"), "w") as summary:
        summary.write(f"val_acc {accuracies[-1]}\n")
        summary.write("val_acc_per_epoch " + " ".join(str(a) for a in accuracies) + "\n")
        summary.write(f"val_loss {loss}\n")
        summary.write("finished 1\n")
    print(f"val_acc={accuracies[-1]:.3f} val_loss={loss:.4f}")


if __name__ == "__main__":
    main()
