#!/usr/bin/env python3
"""A real Hydra app (``@hydra.main`` with a config folder). It writes the config
Hydra composed from the overrides to ``received.json`` in its output folder."""

import json
import os

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    out_dir = HydraConfig.get().runtime.output_dir
    received = OmegaConf.to_container(cfg, resolve=True)
    with open(os.path.join(out_dir, "received.json"), "w") as handle:
        json.dump({"config": received, "output_dir": out_dir}, handle)
    print(f"epoch 1 val_acc={cfg.model.learning_rate * cfg.train.epochs}")


if __name__ == "__main__":
    main()
