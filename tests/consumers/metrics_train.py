#!/usr/bin/env python3
"""A script that writes no summary file: its metrics go where ``--where`` says
(a JSON file, JSON lines, a JSON object on stdout, or ``key=value`` lines), with
noise around them; ``--missing`` leaves the metric out, ``--fail`` exits 1 after."""

import argparse
import json
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--where", required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--missing", action="store_true")
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args()
    accs = [round(args.lr * epoch, 6) for epoch in (1, 2, 3)]
    metrics = {"val_acc": accs[-1], "val_loss": 1 - accs[-1], "note": "a b"}
    if args.missing:
        del metrics["val_acc"]
    print("starting {json-looking but not JSON}")
    if args.where == "json_file":
        with open(os.path.join(args.out_dir, "metrics.json"), "w") as handle:
            json.dump(metrics, handle)
    elif args.where == "jsonl":
        with open(os.path.join(args.out_dir, "metrics.jsonl"), "w") as handle:
            for epoch, acc in enumerate(accs, 1):
                handle.write(json.dumps({"epoch": epoch, **({} if args.missing else {"val_acc": acc})}) + "\n")
    elif args.where == "stdout_json":
        print(json.dumps({"val_acc": 0.0, "stale": True}))  # an earlier object: the last one counts
        print(json.dumps(metrics))
    elif args.where == "stdout_regex":
        for epoch, acc in enumerate(accs, 1):
            print(f"epoch {epoch} loss={1 - acc:.4f}" + ("" if args.missing else f" val_acc={acc}"))
    print("done")
    sys.exit(1 if args.fail else 0)


if __name__ == "__main__":
    main()
