"""What a flag's name says: an output folder, or a parameter one usually sweeps.

Names are compared normalised (lower case, dashes as underscores), so
``--Output-Dir`` and ``--output_dir`` mean the same here.
"""

from __future__ import annotations

from hpsearch.discovery.flags import Flag

# Normalised names (lower case, dashes as underscores) of output-folder flags, most telling first.
OUT_NAMES = (
    "out_dir", "output_dir", "outdir", "output_folder", "out_folder", "save_dir", "savedir", "save_folder",
    "outf", "log_dir", "logdir", "logs_dir", "checkpoint_dir", "ckpt_dir", "checkpoint_path", "exp_dir",
    "experiment_dir", "work_dir", "workdir", "results_dir", "result_dir", "run_dir", "model_dir",
    "output_path", "out_path", "save_path", "output", "out",
)

# Parameters one usually sweeps, by kind (init suggests values for them; the flag check offers them as synonyms).
SWEEPS: dict[str, tuple[str, ...]] = {
    "lr": ("lr", "learning_rate", "base_lr", "init_lr", "initial_lr", "max_lr", "lr0"),
    "batch": ("batch_size", "bs", "train_batch_size", "per_device_train_batch_size", "batch", "mini_batch_size"),
    "weight_decay": ("weight_decay", "wd", "l2", "l2_reg", "weight_decay_rate"),
    "dropout": ("dropout", "dropout_rate", "dropout_prob", "drop", "drop_rate", "p_dropout", "hidden_dropout_prob",
                "attention_dropout", "attention_probs_dropout_prob"),
    "seed": ("seed", "random_seed", "rand_seed"),
    "momentum": ("momentum",),
    "warmup": ("warmup_steps", "num_warmup_steps", "warmup", "warmup_epochs"),
    "optimizer": ("optimizer", "optim", "opt"),
}


def normalised(name: str) -> str:
    """``--Batch-Size`` -> ``batch_size``."""
    return name.lower().lstrip("-").replace("-", "_")


def sweep_category(flag: Flag, key: str) -> str | None:
    """The kind of sweep parameter (``lr``, ``batch``, ...) the flag's key or dest names, if any."""
    names = {normalised(key), normalised(flag.dest)}
    for category, spellings in SWEEPS.items():
        if names & set(spellings):
            return category
    return None
