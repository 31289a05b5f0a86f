"""Workload 5: workload 1 under hypnettorch 0.0.4's ``hpsearch`` and under ours.

Both get the same grid module, the same fake GPUs and the same interpreter for
the runs (hypnettorch starts ``python3 train.py`` through a shell, so its
environment's ``bin`` comes first on PATH; ours gets ``--python`` pointing at
the same file).
"""

from __future__ import annotations

from benchmarks.common import (
    GPUS,
    SLOTS_PER_GPU,
    Context,
    expect_runs,
    gpu_args,
    run_ours,
    utilisation,
)
from benchmarks.figures import Figure, WorkloadResult
from benchmarks.harness import (
    GRID_MODULE,
    environment,
    fake_gpus,
    nvidia_smi_calls,
    read_stamps,
    run_folders,
    run_process,
    sleep_grid,
    write_project,
)
from benchmarks.hypnettorch_env import HYPNETTORCH, EnvUnavailable, ensure_env

DURATION = 0.5


def versus_hypnettorch(ctx: Context, result: WorkloadResult) -> None:
    try:
        venv = ensure_env(ctx.work / "hypnettorch-venv", ctx.work / "hypnettorch-install.log")
    except EnvUnavailable as exc:
        result.skipped = f"{HYPNETTORCH} cannot be installed here: {exc}"
        return
    runs = ctx.slot_runs
    folder = ctx.folder("hypnettorch")
    project = write_project(folder / "project", sleep_grid(runs, DURATION))
    slots = GPUS * SLOTS_PER_GPU

    their_gpus = fake_gpus(folder / "theirs")
    env = environment(their_gpus, first_on_path=[venv.bin_dir])
    env.update(PYTHONPATH=venv.pythonpath(), MPLBACKEND="Agg")
    argv = [str(venv.python), "-m", "hypnettorch.hpsearch.hpsearch", f"--grid_module={GRID_MODULE}",
            *gpu_args(), f"--out_dir={folder / 'theirs' / 'search'}", "--force_out_dir", f"--run_cwd={project}"]
    theirs = run_process(argv, cwd=project, env=env, log=folder / "theirs" / "driver.log", timeout=900).check()
    their_stamps = read_stamps(run_folders(folder / "theirs" / "search"))
    expect_runs(their_stamps, runs, "hypnettorch")

    our_gpus = fake_gpus(folder / "ours")
    ours, stamps = run_ours(ctx, "hypnettorch/ours", project, [*gpu_args(), f"--python={venv.python}"],
                            environment(our_gpus), timeout=120)
    expect_runs(stamps, runs, "hpsearch")

    their_calls, our_calls = len(nvidia_smi_calls(their_gpus)), len(nvidia_smi_calls(our_gpus))
    result.details = {"runs": runs, "run_s": DURATION, "ours_wall_s": ours.wall, "hypnettorch_wall_s": theirs.wall,
                      "ours_nvidia_smi_calls": our_calls, "hypnettorch_nvidia_smi_calls": their_calls}
    result.figures += [
        Figure("hypnettorch_wall_over_ours", theirs.wall / ours.wall, "x",
               note=f"{runs} runs of {DURATION} s on {GPUS}x{SLOTS_PER_GPU}: hypnettorch {theirs.wall:.1f} s, "
                    f"ours {ours.wall:.1f} s"),
        Figure("utilisation_ours", utilisation(stamps, slots, ours.wall), "%"),
        Figure("utilisation_hypnettorch", utilisation(their_stamps, slots, theirs.wall), "%"),
        Figure("calls_per_run_ours", our_calls / runs, "", note="nvidia-smi calls per run"),
        Figure("calls_per_run_hypnettorch", their_calls / runs, ""),
    ]
