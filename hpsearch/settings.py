"""The settings of one search, as chosen on the command line.

A plain dataclass so that the CLI, the driver and the executor factory can
share it without importing each other.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass
class SearchSettings:
    """Every command-line choice that shapes a search (see ``hpsearch --help``)."""

    grid_module: str
    grid_config: str = ""
    num_searches: int = -1
    random_search: bool = False
    shuffle: bool = True
    seed: int = 42
    out_dir: str = "./out/hyperparam_search"
    force_out_dir: bool = False
    dont_force_new_dir: bool = False
    resume: str = ""
    run_cwd: str = "."
    python: str = field(default_factory=lambda: sys.executable or "python3")
    visible_gpus: str = ""
    allowed_load: float = 0.5
    allowed_memory: float = 0.5
    max_num_jobs_per_gpu: int = 1
    sim_startup_time: float = 60.0
    num_jobs: int | None = None
    timeout: float | None = None
    max_retries: int = 0
    rerun_failed: bool = False
    keep_going: bool = False
    max_failures: int = 3
    allow_unknown_condition_keys: bool = False
    gpu_poll_interval: float = 1.0
    run_cluster: bool = False
    scheduler: str = "lsf"
    num_hours: int = 24
    resources: str = '"rusage[mem=8000, ngpus_excl_p=1]"'
    slurm_mem: str = "8G"
    slurm_gres: str = "gpu:1"
    slurm_partition: str = ""
    slurm_qos: str = ""
    slurm_constraint: str = ""
    cluster_extra: list[str] = field(default_factory=list)
    cluster_setup: str = ""
    cluster_array: bool = False
    cancel_on_exit: bool = False
    generate_only: bool = False
    csv_interval: float = 1.0
    quiet: bool = False
    driver_argv: list[str] = field(default_factory=list)
