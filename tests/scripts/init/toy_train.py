"""Fixture: a small training script that runs here (standard library only).

Dashed flags, an argument group, a store_true switch and a choice; it writes
hypnettorch's summary file into ``--output-dir`` and prints ``key=value``.
"""
import argparse
import math
import os


def get_args(argv=None):
    parser = argparse.ArgumentParser(description="toy regression")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--learning-rate", type=float, default=0.1, help="step size")
    optim.add_argument("--batch-size", type=int, default=16, help="samples per step")
    optim.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"], help="update rule")
    optim.add_argument("--weight_decay", type=float, default=0.0, help="L2 penalty")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the data")
    parser.add_argument("--use-bias", action="store_true", help="add a bias term")
    parser.add_argument("--output-dir", default="runs", help="where results go")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    return parser.parse_args(argv)


def main():
    args = get_args()
    loss = abs(math.log10(args.learning_rate) + 2) + 1.0 / args.batch_size + args.weight_decay
    acc = 1.0 / (1.0 + loss)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "performance_overview.txt"), "w") as f:
        f.write(f"acc_test {acc}\n")
        f.write("loss_test %f\n" % loss)
        f.write("finished 1\n")
    print(f"acc_test={acc} loss_test={loss}")


if __name__ == "__main__":
    main()
