#!/usr/bin/env python3
"""A Hydra app. hpsearch passes overrides (optim.lr=0.1) and hydra.run.dir=<run folder>.
Needs: pip install hydra-core. It prints "final loss=..."; hpsearch reads the number
with a regular expression (_METRICS source stdout_regex)."""

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    weight = 0.0
    for _ in range(cfg.train.steps):
        weight -= cfg.optim.lr * 2 * (weight - cfg.get("target", 3.0))
    print(f"{cfg.optim.name}: final loss={(weight - 3) ** 2:.6g}")


if __name__ == "__main__":
    main()
