#!/usr/bin/env python3
"""A small fake of Slurm's ``sbatch``, ``squeue``, ``sacct``, ``scancel`` and
``scontrol`` that really runs jobs.

The real one-node Slurm (scripts/slurm-local.sh) is not everywhere, so these
programs follow Slurm's documented command lines and output formats (checked
against Slurm 22.05, see docs in /work/shared/notes/slurm-local.md) closely
enough to drive hpsearch's Slurm executor. ``sbatch`` and the others are
links to this file; it acts as the one it is called by.

* ``sbatch [--parsable] [--dependency=afterany:A:B] [options] script`` reads
  the ``#SBATCH`` lines of the script (command-line options win), answers
  ``Submitted batch job N`` (``N`` with ``--parsable``) and starts a detached
  runner that runs the job, or the tasks of ``--array=0-N%k`` (at most ``k``
  at once, ``SLURM_ARRAY_TASK_ID``), in the submission's folder with
  ``SLURM_JOB_ID`` set and its output appended to ``--output``/``--error``
  (``%j``, ``%A``, ``%a``, ``%x`` and ``%%`` expanded). ``--time`` is enforced
  (state ``TIMEOUT``; every process of the job is killed, also those in
  process groups of their own), ``--signal=[B:]SIG@SECONDS`` sends SIG that
  long before it (seconds scaled like minutes, to the batch shell only with
  ``B:``), ``--dependency=afterany:...`` waits for other jobs.
* ``squeue [-h] [--me] [-t all] [-r] [-o FORMAT] [-j ids]`` knows ``%i %A %F %K %T
  %t %l %r %j %Z``; without ``-t all`` only unfinished jobs are shown, and
  without ``-r`` pending array tasks are folded into ``123_[2-5%2]``. Ended
  jobs stay visible for ``$FAKE_SLURM_MIN_JOB_AGE`` seconds (``MinJobAge``,
  default 300); after that a single unknown id gives ``slurm_load_jobs
  error: Invalid job id specified`` and exit status 1.
* ``sacct`` fails with ``Slurm accounting storage is disabled`` unless the
  file ``<state>/accounting`` exists; then ``-X -P -n -o
  jobid,jobidraw,state,exitcode,timelimit -j ids`` prints every job ever run
  (cancelled ones as ``CANCELLED by <uid>``).
* ``scontrol show config`` prints ``MaxArraySize = N`` (``<state>/max_array_size``,
  default 1001); ``scontrol -o show job ID`` one line per job or array task
  until ``MinJobAge`` has passed.
* ``scancel ids`` stops a job, an array (``123``) or one task (``123_4``):
  SIGTERM to its process group, SIGKILL after ``KillWait``; it ends
  ``CANCELLED`` with exit code ``0:15``.

State lives in the folder named by ``$FAKE_SLURM_STATE``. Test knobs:
``$FAKE_SLURM_MINUTE`` (seconds per Slurm minute, default 60), the files
``<state>/fail_squeue`` and ``<state>/fail_sbatch`` holding how many of the
next calls fail (-1: all), ``<state>/sbatch_delay`` (seconds ``sbatch`` waits
between queueing the job and answering), and ``<state>/calls.log`` with one
JSON line per command call.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

STATE_ENV = "FAKE_SLURM_STATE"
MINUTE_ENV = "FAKE_SLURM_MINUTE"
MIN_JOB_AGE_ENV = "FAKE_SLURM_MIN_JOB_AGE"
RUNNER = "--fake-slurm-runner"
FIRST_ID = 100
KILL_WAIT = 2.0
TICK = 0.05
DEFAULT_MAX_ARRAY_SIZE = 1001
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
INVALID = "slurm_load_jobs error: Invalid job id specified"

# sbatch options the fake understands; the value-less ones are flags.
SBATCH_FLAGS = {"--parsable", "--exclusive", "--requeue", "--no-requeue", "-H", "--hold"}
SBATCH_VALUES = {
    "-J": "--job-name", "-o": "--output", "-e": "--error", "-t": "--time", "-p": "--partition", "-a": "--array",
    "-d": "--dependency", "-A": "--account", "-q": "--qos", "-C": "--constraint", "-x": "--exclude",
    "-D": "--chdir", "-n": "--ntasks", "-c": "--cpus-per-task", "-w": "--nodelist", "-G": "--gpus",
}
SBATCH_LONG = {"--job-name", "--output", "--error", "--time", "--partition", "--array", "--dependency",
               "--account", "--qos", "--constraint", "--exclude", "--chdir", "--ntasks", "--cpus-per-task",
               "--nodelist", "--gpus", "--mem", "--gres", "--nice", "--comment", "--mail-type", "--mail-user",
               "--export", "--signal", "--mem-per-cpu", "--nodes", "--reservation", "--wckey"}


class Refused(Exception):
    """A command-line problem: printed on stderr, exit status 1."""


# --------------------------------------------------------------------------- state files


def state_dir() -> Path:
    folder = os.environ.get(STATE_ENV)
    if not folder:
        raise Refused(f"fake Slurm: set {STATE_ENV} to a state folder")
    path = Path(folder)
    (path / "jobs").mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, data: object) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(data))
    os.replace(temp, path)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def job_dir(state: Path, job_id: str) -> Path:
    return state / "jobs" / job_id


def task_path(state: Path, job_id: str, index: int) -> Path:
    return job_dir(state, job_id) / f"task_{index}.json"


def tasks(state: Path, job_id: str) -> dict[int, dict]:
    spec = read_json(job_dir(state, job_id) / "spec.json")
    return {index: read_json(task_path(state, job_id, index)) for index in spec["indices"]}


def all_jobs(state: Path) -> list[str]:
    return sorted((p.name for p in (state / "jobs").iterdir() if (p / "spec.json").exists()), key=int)


def log_call(state: Path, tool: str, argv: list[str]) -> None:
    with open(state / "calls.log", "a") as handle:
        handle.write(json.dumps({"tool": tool, "argv": argv, "time": time.time()}) + "\n")


def allocate_id(state: Path) -> str:
    with open(state / "next_id", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        text = handle.read().strip()
        job_id = int(text) if text else FIRST_ID
        handle.seek(0)
        handle.truncate()
        handle.write(str(job_id + 1))
    return str(job_id)


def take_failure(state: Path, name: str) -> bool:
    """Consume one injected failure of ``name`` (a count in a file; -1: always)."""
    flag = state / name
    with open(flag, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        text = handle.read().strip()
        left = int(text) if text else 0
        if left == 0:
            return False
        if left > 0:
            handle.seek(0)
            handle.truncate()
            handle.write(str(left - 1))
        return True


def min_job_age() -> float:
    return float(os.environ.get(MIN_JOB_AGE_ENV, "300"))


def forgotten(task: dict) -> bool:
    """Whether the controller has purged an ended task (``MinJobAge``)."""
    return task["state"] in FINAL and time.time() - task["end"] > min_job_age()


# --------------------------------------------------------------------------- sbatch


def parse_time(text: str) -> float | None:
    """Slurm's time formats (``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``) in seconds."""
    text = text.strip()
    if text.upper() in ("UNLIMITED", "INFINITE"):
        return None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise Refused("sbatch: error: Invalid --time specification")
    days, a, b, c = match.groups()
    numbers = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:
        hours, minutes, seconds = (numbers + [0, 0])[:3]
    elif len(numbers) == 1:
        hours, minutes, seconds = 0, numbers[0], 0
    elif len(numbers) == 2:
        hours, minutes, seconds = 0, numbers[0], numbers[1]
    else:
        hours, minutes, seconds = numbers
    minutes_total = int(days or 0) * 24 * 60 + hours * 60 + minutes + seconds / 60
    return minutes_total * float(os.environ.get(MINUTE_ENV, "60"))


def format_limit(seconds: float | None) -> str:
    if seconds is None:
        return "UNLIMITED"
    minutes = seconds / float(os.environ.get(MINUTE_ENV, "60"))
    total = int(round(minutes * 60))
    days, rest = divmod(total, 86400)
    text = f"{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}" if rest >= 3600 or days else \
        f"{rest // 60}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def parse_array(text: str) -> tuple[list[int], int | None]:
    spec, _, limit = text.partition("%")
    indices: list[int] = []
    for part in spec.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part.strip())
        if not match:
            raise Refused("sbatch: error: Invalid job array specification")
        low, high, step = match.groups()
        indices += range(int(low), int(high or low) + 1, int(step or 1))
    return indices, int(limit) if limit else None


def parse_options(words: list[str], options: dict[str, str], *, stop_at_script: bool) -> list[str]:
    """Read sbatch options from ``words`` into ``options``; return what follows them."""
    position = 0
    while position < len(words) and words[position].startswith("-"):
        word = words[position]
        name, has_value, value = word.partition("=")
        name = SBATCH_VALUES.get(name, name)
        if name in SBATCH_FLAGS:
            options[name] = ""
            position += 1
            continue
        if name not in SBATCH_LONG:
            raise Refused(f"sbatch: unrecognized option '{word}'")
        if not has_value:
            if position + 1 >= len(words):
                raise Refused(f"sbatch: option '{word}' requires an argument")
            value = words[position + 1]
            position += 1
        options[name] = value
        position += 1
    return words[position:] if stop_at_script else []


def directives(script: str) -> list[str]:
    """The words of the ``#SBATCH`` lines before the first command."""
    words: list[str] = []
    for line in script.splitlines()[1:]:
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        if stripped.startswith("#SBATCH"):
            words += shlex.split(stripped[len("#SBATCH"):])
    return words


def parse_dependency(text: str) -> list[str]:
    kind, _, ids = text.partition(":")
    if kind != "afterany" or not ids or not all(part.isdigit() for part in ids.split(":")):
        raise Refused("sbatch: error: Batch job submission failed: Job dependency problem")
    return ids.split(":")


def sbatch(argv: list[str]) -> int:
    state = state_dir()
    command_line: dict[str, str] = {}
    rest = parse_options(argv, command_line, stop_at_script=True)
    if not rest:
        raise Refused("sbatch: error: no script given (the fake reads no script from stdin)")
    script_path = Path(rest[0])
    try:
        script = script_path.read_text()
    except OSError as exc:
        raise Refused(f"sbatch: error: Unable to open file {rest[0]}") from exc
    if not script.startswith("#!"):
        raise Refused("sbatch: error: This does not look like a batch script.  The first")
    options: dict[str, str] = {}
    parse_options(directives(script), options, stop_at_script=False)
    options.update(command_line)
    if take_failure(state, "fail_sbatch"):
        raise Refused("sbatch: error: Batch job submission failed: Invalid account or account/partition "
                      "combination specified")
    indices, limit, is_array = [0], None, False
    if "--array" in options:
        indices, limit = parse_array(options["--array"])
        is_array = True
        max_size = read_max_array_size(state)
        if max(indices) >= max_size:
            raise Refused("sbatch: error: Batch job submission failed: Invalid job array specification")
    depends = parse_dependency(options["--dependency"]) if "--dependency" in options else []
    job_id = allocate_id(state)
    folder = job_dir(state, job_id)
    folder.mkdir()
    (folder / "script").write_text(script)
    (folder / "script").chmod(0o755)
    cwd = options.get("--chdir") or os.getcwd()
    default_output = "slurm-%A_%a.out" if is_array else "slurm-%j.out"
    spec = {"id": job_id, "name": options.get("--job-name", script_path.name), "indices": indices,
            "array": is_array, "limit": limit, "output": options.get("--output", default_output),
            "error": options.get("--error") or options.get("--output", default_output),
            "timelimit": parse_time(options["--time"]) if "--time" in options else None,
            "depends": depends, "cwd": cwd, "env": dict(os.environ), "options": options}
    for index in indices:
        write_json(task_path(state, job_id, index), {"state": "PENDING", "exit": "0:0", "raw": None, "end": None,
                                                     "reason": "Dependency" if depends else "None"})
    write_json(folder / "spec.json", spec)
    with open(folder / "runner.log", "ab") as log:
        runner = subprocess.Popen([sys.executable, os.path.realpath(__file__), RUNNER, str(state), job_id],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                  close_fds=True)
    (folder / "runner.pid").write_text(str(runner.pid))
    delay = state / "sbatch_delay"
    if delay.exists():  # the job is in the queue; the answer is late (a test kills the caller meanwhile)
        time.sleep(float(delay.read_text()))
    print(job_id if "--parsable" in options else f"Submitted batch job {job_id}")
    return 0


# --------------------------------------------------------------------------- the runner


class Task:
    def __init__(self, index: int, process: subprocess.Popen, raw: str) -> None:
        self.index = index
        self.process = process
        self.raw = raw
        self.started = time.monotonic()
        self.ending: str | None = None  # CANCELLED or TIMEOUT once asked to stop
        self.kill_at: float | None = None
        self.warned = False

    def stop(self, ending: str) -> None:
        if self.ending is None:
            self.ending = ending
            self.kill_at = time.monotonic() + KILL_WAIT
            signal_group(self.process.pid, signal.SIGTERM)


def signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def task_marker(state: Path, job_id: str, index: int) -> str:
    """Names one task among those of every fake cluster on the machine (job ids repeat across states)."""
    return f"{state.resolve()}:{job_id}_{index}"


def kill_marked(marker: str) -> None:
    """SIGKILL every process whose environment holds ``marker`` (``NAME=value``): a real
    scheduler stops every process of a job, also those in process groups of their own."""
    wanted = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def warning_of(text: str) -> tuple[bool, int, float]:
    """``[B:]SIG@SECONDS`` of ``--signal`` -> (batch shell only, signal number, seconds)."""
    batch, _, rest = text.rpartition(":") if ":" in text else ("", "", text)
    name, _, seconds = rest.partition("@")
    number = int(name) if name.isdigit() else getattr(signal, name if name.startswith("SIG") else f"SIG{name}")
    return batch.upper() == "B", int(number), float(seconds or 60)


def cancel_requested(state: Path, job_id: str, index: int) -> bool:
    folder = job_dir(state, job_id)
    return (folder / "cancel").exists() or (folder / f"cancel.{index}").exists()


def expand(template: str, spec: dict, raw: str, index: int) -> str:
    values = {"j": raw, "A": spec["id"], "a": str(index) if spec["array"] else "4294967294", "x": spec["name"],
              "%": "%"}
    return re.sub(r"%([jAax%])", lambda m: values[m.group(1)], template)


def dependencies_ended(state: Path, depends: list[str]) -> bool:
    for other in depends:
        if (job_dir(state, other) / "spec.json").exists() and any(
                t["state"] not in FINAL for t in tasks(state, other).values()):
            return False
    return True


def start_task(state: Path, spec: dict, index: int, first: bool) -> Task:
    job_id = spec["id"]
    raw = job_id if first or not spec["array"] else allocate_id(state)
    env = dict(spec["env"], SLURM_JOB_ID=raw, SLURM_JOBID=raw, SLURM_JOB_NAME=spec["name"],
               SLURM_SUBMIT_DIR=spec["cwd"], FAKE_SLURM_TASK=task_marker(state, job_id, index))
    if spec["array"]:
        env.update(SLURM_ARRAY_JOB_ID=job_id, SLURM_ARRAY_TASK_ID=str(index))
    cwd = Path(spec["cwd"])
    out_path = cwd / expand(spec["output"], spec, raw, index)
    err_path = cwd / expand(spec["error"], spec, raw, index)
    with open(out_path, "ab") as out, open(err_path, "ab") as err:
        process = subprocess.Popen([str(job_dir(state, job_id) / "script")], cwd=cwd, env=env,
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
    write_json(task_path(state, job_id, index), {"state": "RUNNING", "exit": "0:0", "raw": raw, "end": None,
                                                 "reason": "None", "pgid": process.pid})
    return Task(index, process, raw)


def finish_task(state: Path, job_id: str, task: Task, status: int) -> None:
    code, signum = (0, -status) if status < 0 else (status, 0)
    if task.ending is not None:
        final, code, signum = task.ending, 0, signum or signal.SIGTERM
    else:
        final = "COMPLETED" if code == 0 and signum == 0 else "FAILED"
    signal_group(task.process.pid, signal.SIGKILL)  # leftovers of the job's process group
    kill_marked(f"FAKE_SLURM_TASK={task_marker(state, job_id, task.index)}")  # and of the process groups its script made
    write_json(task_path(state, job_id, task.index), {"state": final, "exit": f"{code}:{signum}", "raw": task.raw,
                                                      "end": time.time(), "reason": "None"})


def run(state: Path, job_id: str) -> int:
    spec = read_json(job_dir(state, job_id) / "spec.json")
    pending = list(spec["indices"])
    running: dict[int, Task] = {}
    limit = spec["limit"] or len(pending)
    started_any = False
    while pending or running:
        for index in [i for i in pending if cancel_requested(state, job_id, i)]:
            pending.remove(index)
            write_json(task_path(state, job_id, index), {"state": "CANCELLED", "exit": "0:0", "raw": None,
                                                         "end": time.time(), "reason": "None"})
        for task in list(running.values()):
            if cancel_requested(state, job_id, task.index):
                task.stop("CANCELLED")
            if spec["timelimit"] is not None and time.monotonic() - task.started > spec["timelimit"]:
                task.stop("TIMEOUT")
            warning = spec["options"].get("--signal")
            if (warning and spec["timelimit"] is not None and not task.warned and task.ending is None
                    and time.monotonic() - task.started > spec["timelimit"] - warning_of(warning)[2]
                    * float(os.environ.get(MINUTE_ENV, "60")) / 60):
                task.warned = True
                batch_only, number, _ = warning_of(warning)
                try:
                    os.kill(task.process.pid, number) if batch_only else os.killpg(task.process.pid, number)
                except (ProcessLookupError, PermissionError):
                    pass
            if task.kill_at is not None and time.monotonic() > task.kill_at:
                signal_group(task.process.pid, signal.SIGKILL)
            status = task.process.poll()
            if status is not None:
                finish_task(state, job_id, task, status)
                del running[task.index]
        if dependencies_ended(state, spec["depends"]):
            while pending and len(running) < limit:
                index = pending.pop(0)
                running[index] = start_task(state, spec, index, first=not started_any)
                started_any = True
            for index in pending:  # waiting for a slot of the array's %limit
                path = task_path(state, job_id, index)
                record = read_json(path)
                if record["reason"] != "JobArrayTaskLimit":
                    write_json(path, dict(record, reason="JobArrayTaskLimit"))
        time.sleep(TICK)
    return 0


# --------------------------------------------------------------------------- squeue, scontrol, sacct


def task_ids(state: Path, job_id: str, spec: dict) -> dict[str, tuple[int, dict]]:
    """``{'123': ...}`` or ``{'123_4': ...}`` for a job's tasks."""
    found = {}
    for index, task in tasks(state, job_id).items():
        found[f"{job_id}_{index}" if spec["array"] else job_id] = (index, task)
    return found


def wanted_jobs(state: Path, refs: list[str]) -> tuple[list[tuple[str, int | None]], list[str]]:
    """(job id, task index or None for all) for each ref; and the refs that are unknown."""
    found, unknown = [], []
    for ref in refs:
        match = re.fullmatch(r"(\d+)(?:_(\d+))?", ref)
        if not match or not (job_dir(state, match.group(1)) / "spec.json").exists():
            unknown.append(ref)
            continue
        found.append((match.group(1), int(match.group(2)) if match.group(2) is not None else None))
    return found, unknown


def squeue_field(letter: str, spec: dict, index: int, task: dict, shown_id: str) -> str:
    raw = task["raw"] or spec["id"]
    state = task["state"]
    values = {
        "i": shown_id, "A": raw, "F": spec["id"], "K": str(index) if spec["array"] else "N/A", "T": state,
        "t": {"PENDING": "PD", "RUNNING": "R", "COMPLETED": "CD", "FAILED": "F", "CANCELLED": "CA",
              "TIMEOUT": "TO"}[state],
        "l": format_limit(spec["timelimit"]), "r": task["reason"], "j": spec["name"], "Z": spec["cwd"],
        "P": "debug", "u": os.environ.get("USER", "root"), "M": "0:00", "D": "1",
    }
    if letter not in values:
        raise Refused(f"squeue: the fake does not know the format letter %{letter}")
    return values[letter]


def render(fmt: str, **kwargs) -> str:
    return re.sub(r"%(?:\.?\d+)?([A-Za-z])", lambda m: squeue_field(m.group(1), **kwargs), fmt)


def squeue(argv: list[str]) -> int:
    state = state_dir()
    if take_failure(state, "fail_squeue"):
        print("squeue: error: Unable to contact slurm controller (connect failure)", file=sys.stderr)
        return 1
    header, show_all, one_per_line, fmt, refs = True, False, False, "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R", []
    names: set[str] | None = None
    position = 0
    while position < len(argv):
        arg = argv[position]
        if arg in ("-h", "--noheader"):
            header = False
        elif arg in ("-r", "--array"):
            one_per_line = True
        elif arg == "--me":  # every job of the fake is the caller's
            pass
        elif arg in ("-u", "--user"):
            position += 1
        elif arg in ("-t", "--states"):
            position += 1
            show_all = argv[position].lower() == "all"
        elif arg in ("-o", "--format"):
            position += 1
            fmt = argv[position]
        elif arg in ("-j", "--jobs"):
            position += 1
            refs += [ref for ref in argv[position].split(",") if ref]
        elif arg in ("-n", "--name"):
            position += 1
            names = set(argv[position].split(","))
        else:
            raise Refused(f"squeue: unrecognized option '{arg}'")
        position += 1
    fmt = fmt.replace("%R", "%r")
    jobs, unknown = wanted_jobs(state, refs) if refs else ([(j, None) for j in all_jobs(state)], [])
    rows = []
    for job_id, only in jobs:
        spec = read_json(job_dir(state, job_id) / "spec.json")
        if names is not None and spec["name"] not in names:
            continue
        folded = []
        for shown, (index, task) in task_ids(state, job_id, spec).items():
            if only is not None and index != only:
                continue
            if forgotten(task) or (not show_all and task["state"] in FINAL):
                continue
            if spec["array"] and task["state"] == "PENDING" and not one_per_line:
                folded.append((index, task))
                continue
            rows.append(render(fmt, spec=spec, index=index, task=task, shown_id=shown))
        if folded:
            limit = f"%{spec['limit']}" if spec["limit"] else ""
            indices = [index for index, _ in folded]
            shown = f"{job_id}_[{min(indices)}-{max(indices)}{limit}]" if len(indices) > 1 else \
                f"{job_id}_[{indices[0]}{limit}]"
            rows.append(render(fmt, spec=spec, index=folded[0][0], task=folded[0][1], shown_id=shown))
    if len(refs) == 1 and not rows and (unknown or all(forgotten(task) for task in tasks(state, jobs[0][0]).values())):
        print(INVALID, file=sys.stderr)  # only a single forgotten id is an error; in a list it is left out
        return 1
    if header:
        print(re.sub(r"%(?:\.?\d+)?([A-Za-z])", lambda m: {"i": "JOBID", "T": "STATE"}.get(m.group(1), m.group(1)),
                     fmt))
    for row in rows:
        print(row)
    return 0


def scontrol(argv: list[str]) -> int:
    state = state_dir()
    words = [word for word in argv if word != "-o"]
    if words == ["show", "config"]:
        print("Configuration data as of 2026-01-01T00:00:00")
        print("ClusterName             = fake")
        print(f"MaxArraySize            = {read_max_array_size(state)}")
        print(f"MinJobAge               = {int(min_job_age())} sec")
        return 0
    if len(words) == 3 and words[:2] == ["show", "job"]:
        jobs, unknown = wanted_jobs(state, [words[2]])
        lines = []
        for job_id, only in jobs:
            spec = read_json(job_dir(state, job_id) / "spec.json")
            for index, task in tasks(state, job_id).items():
                if (only is not None and index != only) or forgotten(task):
                    continue
                fields = [f"JobId={task['raw'] or job_id}"]
                if spec["array"]:
                    fields += [f"ArrayJobId={job_id}", f"ArrayTaskId={index}"]
                fields += [f"JobName={spec['name']}", f"JobState={task['state']}", f"Reason={task['reason']}",
                           f"ExitCode={task['exit']}", f"TimeLimit={format_limit(spec['timelimit'])}",
                           f"WorkDir={spec['cwd']}"]
                lines.append(" ".join(fields))
        if not lines:
            print(INVALID, file=sys.stderr)
            return 1
        print("\n".join(lines) if "-o" in argv else "\n\n".join(line.replace(" ", "\n   ") for line in lines))
        return 0
    raise Refused(f"scontrol: the fake knows 'show config' and 'show job ID', not {' '.join(argv)!r}")


def sacct(argv: list[str]) -> int:
    state = state_dir()
    if not (state / "accounting").exists():
        print("sacct: error: Slurm accounting storage is disabled", file=sys.stderr)
        return 1
    fields, refs, position = ["jobid", "jobname", "state", "exitcode"], [], 0
    while position < len(argv):
        arg = argv[position]
        if arg in ("-o", "--format"):
            position += 1
            fields = [f.lower() for f in argv[position].split(",")]
        elif arg in ("-j", "--jobs"):
            position += 1
            refs += [ref for ref in argv[position].split(",") if ref]
        elif arg not in ("-X", "-P", "-n", "--allocations", "--parsable2", "--noheader"):
            raise Refused(f"sacct: unrecognized option '{arg}'")
        position += 1
    jobs, _ = wanted_jobs(state, refs) if refs else ([(j, None) for j in all_jobs(state)], [])
    for job_id, only in jobs:
        spec = read_json(job_dir(state, job_id) / "spec.json")
        for shown, (index, task) in task_ids(state, job_id, spec).items():
            if only is not None and index != only:
                continue
            values = {"jobid": shown, "jobidraw": task["raw"] or job_id,
                      "state": "CANCELLED by 0" if task["state"] == "CANCELLED" else task["state"],
                      "exitcode": task["exit"], "timelimit": format_limit(spec["timelimit"]),
                      "jobname": spec["name"]}
            print("|".join(values.get(field, "") for field in fields))
    return 0


def read_max_array_size(state: Path) -> int:
    path = state / "max_array_size"
    return int(path.read_text()) if path.exists() else DEFAULT_MAX_ARRAY_SIZE


# --------------------------------------------------------------------------- scancel


def scancel(argv: list[str]) -> int:
    state = state_dir()
    status = 0
    for ref in argv:
        if ref.startswith("-"):
            raise Refused(f"scancel: unrecognized option '{ref}'")
        jobs, unknown = wanted_jobs(state, [ref])
        if unknown:
            print(f"scancel: error: Kill job error on job id {ref}: Invalid job id specified", file=sys.stderr)
            status = 1
            continue
        [(job_id, only)] = jobs
        (job_dir(state, job_id) / ("cancel" if only is None else f"cancel.{only}")).touch()
    return status


# --------------------------------------------------------------------------- entry


TOOLS = {"sbatch": sbatch, "squeue": squeue, "sacct": sacct, "scontrol": scontrol, "scancel": scancel}


def main(tool: str, argv: list[str]) -> int:
    try:
        state = state_dir()
        log_call(state, tool, argv)
        return TOOLS[tool](argv)
    except Refused as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    if sys.argv[1:2] == [RUNNER]:
        sys.exit(run(Path(sys.argv[2]), sys.argv[3]))
    sys.exit(main(os.path.basename(sys.argv[0]), sys.argv[1:]))
