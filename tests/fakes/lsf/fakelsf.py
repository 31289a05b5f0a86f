#!/usr/bin/env python3
"""A small fake of LSF's ``bsub``, ``bjobs``, ``bkill``, ``bstop`` and ``bresume`` that really runs jobs.

No LSF can be installed for the tests, so these programs follow LSF's
documented command lines and output formats closely enough to drive
hpsearch's LSF executor:

``bsub``, ``bjobs``, ``bkill``, ``bstop`` and ``bresume`` are links to this file; it acts as the
one it is called by.

* ``bsub [options] [command]`` (the job script on stdin when no command is
  given) answers ``Job <N> is submitted to queue <normal>.`` and starts a
  detached runner process that runs the job, or the elements of an array
  (``-J "name[1-N]%k"``, at most ``k`` at once, ``LSB_JOBINDEX``), with
  ``LSB_JOBID`` set and the output appended to ``-o``/``-e`` (``%J``/``%I``
  expanded). ``-W [hours:]minutes`` is enforced (``TERM_RUNLIMIT``; every
  process of the element is killed), ``-wa SIG -wt [hours:]minutes`` sends SIG
  to the job that long before it, ``-w
  "ended(N) && ..."`` waits for other jobs, and an ``-R`` value that still
  carries shell quotes is refused as LSF refuses it.
* ``bjobs [-a] [-noheader] [-o "field ... delimiter='c'"] [ids]`` prints
  ``jobid jobindex stat exit_code exit_reason job_name`` fields; an unknown id
  gives ``Job <N> is not found`` on stderr and exit status 255.
* ``bkill ids`` stops a job (or one element, ``123[4]``): its process group
  gets SIGTERM, then SIGKILL; it ends as ``EXIT`` with ``TERM_OWNER``.
* ``bstop ids`` suspends jobs or elements: a pending one becomes ``PSUSP``
  and is not started, a running one gets SIGSTOP and becomes ``USUSP``
  (``Job <N> is being stopped``). ``bresume ids`` undoes it: ``PSUSP`` becomes
  ``PEND`` again, ``USUSP`` gets SIGCONT and is ``RUN`` (``Job <N> is being
  resumed``); a job that is not suspended gets ``Job <N>: The job was not
  suspended`` on stderr, a finished one ``Job has already finished``, both
  exit status 255.

State lives in the folder named by ``$FAKE_LSF_STATE``. Test knobs:
``$FAKE_LSF_MINUTE`` (seconds per LSF minute, default 60), the file
``<state>/fail_bjobs`` holding how many of the next ``bjobs`` calls fail (-1:
all), and ``<state>/calls.log`` with one JSON line per command call.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

STATE_ENV = "FAKE_LSF_STATE"
MINUTE_ENV = "FAKE_LSF_MINUTE"
QUEUE = "normal"
RUNNER = "--fake-lsf-runner"
FIRST_ID = 100
KILL_GRACE = 2.0
TICK = 0.05
TERM_OWNER = "TERM_OWNER: job killed by owner"
TERM_RUNLIMIT = "TERM_RUNLIMIT: job killed after reaching LSF run time limit"
FINAL = ("DONE", "EXIT")

VALUE_OPTIONS = {"-J", "-o", "-e", "-oo", "-eo", "-W", "-n", "-R", "-q", "-w", "-P", "-G", "-M", "-app", "-gpu",
                 "-cwd", "-m", "-u", "-g", "-c", "-i", "-L", "-sp", "-We", "-wa", "-wt"}
FLAG_OPTIONS = {"-x", "-B", "-N", "-r", "-rn", "-H"}
_ARRAY_NAME = re.compile(r"^(?P<name>[^\[]*)\[(?P<spec>[^\]]+)\](?:%(?P<limit>\d+))?$")
_JOB_REF = re.compile(r"^(?P<id>\d+)(?:\[(?P<index>\d+)\])?$")


class Refused(Exception):
    """A command-line problem: printed on stderr, exit status 255."""


# --------------------------------------------------------------------------- state files


def state_dir() -> Path:
    folder = os.environ.get(STATE_ENV)
    if not folder:
        raise Refused(f"fake LSF: set {STATE_ENV} to a state folder")
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


def element_path(state: Path, job_id: str, index: int) -> Path:
    return job_dir(state, job_id) / f"element_{index}.json"


def elements(state: Path, job_id: str) -> dict[int, dict]:
    spec = read_json(job_dir(state, job_id) / "spec.json")
    return {index: read_json(element_path(state, job_id, index)) for index in spec["indices"]}


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


# --------------------------------------------------------------------------- bsub


def parse_indices(spec: str) -> list[int]:
    indices: list[int] = []
    for part in spec.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part.strip())
        if not match:
            raise Refused(f"Bad job array index list: {spec}. Job not submitted.")
        low, high, step = match.groups()
        indices += range(int(low), int(high or low) + 1, int(step or 1))
    return indices


def parse_runlimit(text: str) -> float:
    match = re.fullmatch(r"(?:(\d+):)?(\d+)", text.strip())
    if not match:
        raise Refused(f"{text}: Bad RUNLIMIT specification. Job not submitted.")
    minutes = int(match.group(1) or 0) * 60 + int(match.group(2))
    return minutes * float(os.environ.get(MINUTE_ENV, "60"))


def parse_dependency(text: str) -> list[str]:
    refs = re.findall(r"(?:ended|done)\((\d+)\)", text)
    rest = re.sub(r"(?:ended|done)\(\d+\)|&&|\s", "", text)
    if not refs or rest:
        raise Refused(f"{text}: Bad dependency condition (the fake knows ended(N) && ...). Job not submitted.")
    return refs


def parse_bsub(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    options: dict[str, str] = {}
    position = 0
    while position < len(argv) and argv[position].startswith("-"):
        option = argv[position]
        if option in FLAG_OPTIONS:
            options[option] = ""
            position += 1
        elif option in VALUE_OPTIONS:
            if position + 1 >= len(argv):
                raise Refused(f"bsub: option {option} requires an argument. Job not submitted.")
            options[option] = argv[position + 1]  # the last one wins
            position += 2
        else:
            raise Refused(f"bsub: illegal option -- {option}. Job not submitted.")
    return options, argv[position:]


def bsub(argv: list[str]) -> int:
    state = state_dir()
    options, command = parse_bsub(argv)
    resources = options.get("-R", "")
    if resources[:1] in ("'", '"'):
        raise Refused(f"{resources}: Bad resource requirement syntax. Job not submitted.")
    name = options.get("-J", "NONAME")
    indices, limit, is_array = [0], None, False
    match = _ARRAY_NAME.match(name)
    if match:
        name, indices, is_array = match.group("name"), parse_indices(match.group("spec")), True
        limit = int(match.group("limit")) if match.group("limit") else None
    script = sys.stdin.read() if not command else "#!/bin/sh\n" + " ".join(command) + "\n"
    if not script.strip():
        raise Refused("No command is specified. Job not submitted.")
    depends = parse_dependency(options["-w"]) if "-w" in options else []
    runlimit = parse_runlimit(options["-W"]) if "-W" in options else None
    job_id = allocate_id(state)
    folder = job_dir(state, job_id)
    folder.mkdir()
    (folder / "script").write_text(script)
    (folder / "script").chmod(0o755)
    spec = {"id": job_id, "name": name, "indices": indices, "array": is_array, "limit": limit,
            "out": options.get("-o") or options.get("-oo"), "err": options.get("-e") or options.get("-eo"),
            "runlimit": runlimit, "depends": depends, "cwd": os.getcwd(), "env": dict(os.environ),
            "queue": options.get("-q", QUEUE), "options": options}
    for index in indices:
        write_json(element_path(state, job_id, index), {"stat": "PEND", "exit_code": None, "exit_reason": None})
    write_json(folder / "spec.json", spec)
    with open(folder / "runner.log", "ab") as log:
        runner = subprocess.Popen([sys.executable, os.path.realpath(__file__), RUNNER, str(state), job_id],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                  close_fds=True)
    (folder / "runner.pid").write_text(str(runner.pid))
    print(f"Job <{job_id}> is submitted to queue <{spec['queue']}>.")
    return 0


# --------------------------------------------------------------------------- the runner


class Element:
    def __init__(self, index: int, process: subprocess.Popen) -> None:
        self.index = index
        self.process = process
        self.started = time.monotonic()
        self.reason: str | None = None
        self.kill_at: float | None = None
        self.warned = False

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self.kill_at = time.monotonic() + KILL_GRACE
            signal_group(self.process.pid, signal.SIGTERM)


def signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def element_marker(state: Path, job_id: str, index: int) -> str:
    """Names one element among those of every fake LSF on the machine (job ids repeat across states)."""
    return f"{state.resolve()}:{job_id}[{index}]"


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



def kill_requested(state: Path, job_id: str, index: int) -> bool:
    folder = job_dir(state, job_id)
    return (folder / "kill").exists() or (folder / f"kill.{index}").exists()


def expand_path(template: str | None, job_id: str, index: int) -> str:
    if not template:
        return os.devnull
    return template.replace("%J", job_id).replace("%I", str(index))


def dependencies_ended(state: Path, depends: list[str]) -> bool:
    for other in depends:
        if job_dir(state, other).exists() and any(e["stat"] not in FINAL for e in elements(state, other).values()):
            return False
    return True


def start_element(state: Path, spec: dict, index: int) -> Element:
    job_id = spec["id"]
    env = dict(spec["env"], LSB_JOBID=job_id, LSB_JOBINDEX=str(index), LSB_JOBNAME=spec["name"],
               LSB_QUEUE=spec["queue"], FAKE_LSF_ELEMENT=element_marker(state, job_id, index))
    with open(expand_path(spec["out"], job_id, index), "ab") as out, \
            open(expand_path(spec["err"] or spec["out"], job_id, index), "ab") as err:
        process = subprocess.Popen([str(job_dir(state, job_id) / "script")], cwd=spec["cwd"], env=env,
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
    write_json(element_path(state, job_id, index), {"stat": "RUN", "exit_code": None, "exit_reason": None,
                                                    "pgid": process.pid})
    return Element(index, process)


def finish_element(state: Path, job_id: str, element: Element, status: int) -> None:
    code = 128 - status if status < 0 else status
    if element.reason is None and code == 0:
        record = {"stat": "DONE", "exit_code": 0, "exit_reason": None}
    else:
        record = {"stat": "EXIT", "exit_code": code, "exit_reason": element.reason}
    signal_group(element.process.pid, signal.SIGKILL)  # leftovers of the job's process group
    kill_marked(f"FAKE_LSF_ELEMENT={element_marker(state, job_id, element.index)}")  # and of the groups its script made
    write_json(element_path(state, job_id, element.index), record)


def run(state: Path, job_id: str) -> int:
    spec = read_json(job_dir(state, job_id) / "spec.json")
    pending = list(spec["indices"])
    running: dict[int, Element] = {}
    limit = spec["limit"] or len(pending)
    while pending or running:
        for index in [i for i in pending if kill_requested(state, job_id, i)]:
            pending.remove(index)
            write_json(element_path(state, job_id, index), {"stat": "EXIT", "exit_code": None,
                                                            "exit_reason": TERM_OWNER})
        for element in list(running.values()):
            if kill_requested(state, job_id, element.index):
                signal_group(element.process.pid, signal.SIGCONT)  # a suspended job must see its SIGTERM
                element.stop(TERM_OWNER)
            if spec["runlimit"] is not None and time.monotonic() - element.started > spec["runlimit"]:
                element.stop(TERM_RUNLIMIT)
            options = spec["options"]
            warn_at = None if spec["runlimit"] is None else spec["runlimit"] - parse_runlimit(options.get("-wt", "0"))
            if ("-wa" in options and warn_at is not None and not element.warned and element.reason is None
                    and time.monotonic() - element.started > warn_at):
                element.warned = True  # -wa SIG -wt [hours:]minutes: the warning action before the run limit
                name = options["-wa"].upper()
                signal_group(element.process.pid, getattr(signal, name if name.startswith("SIG") else f"SIG{name}"))
            if element.kill_at is not None and time.monotonic() > element.kill_at:
                signal_group(element.process.pid, signal.SIGKILL)
            status = element.process.poll()
            if status is not None:
                with job_lock(state, job_id):
                    finish_element(state, job_id, element, status)
                del running[element.index]
        if dependencies_ended(state, spec["depends"]):
            with job_lock(state, job_id):  # bstop of a pending element and its start exclude each other
                for index in list(pending):
                    if len(running) >= limit:
                        break
                    if read_json(element_path(state, job_id, index))["stat"] == "PSUSP":
                        continue
                    pending.remove(index)
                    running[index] = start_element(state, spec, index)
        time.sleep(TICK)
    return 0


# --------------------------------------------------------------------------- bjobs


def parse_format(text: str) -> tuple[list[str], str]:
    fields, delimiter = [], " "
    for token in text.split():
        match = re.fullmatch(r"delimiter='(.)'", token)
        if match:
            delimiter = match.group(1)
        else:
            fields.append(token.split(":")[0].lower())
    return fields, delimiter


def field_value(field: str, job_id: str, index: int, spec: dict, element: dict) -> str:
    values = {
        "jobid": job_id,
        "jobindex": str(index),
        "stat": element["stat"],
        "exit_code": "-" if element["stat"] != "EXIT" or element["exit_code"] is None else str(element["exit_code"]),
        "exit_reason": element["exit_reason"] or "-",
        "job_name": f"{spec['name']}[{index}]" if spec["array"] else spec["name"],
        "queue": spec["queue"],
    }
    if field not in values:
        raise Refused(f"{field}: Illegal field name in -o. (the fake knows {', '.join(values)})")
    return values[field]


def take_failure(state: Path) -> bool:
    """Consume one injected ``bjobs`` failure, if any are left."""
    flag = state / "fail_bjobs"
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


def bjobs(argv: list[str]) -> int:
    state = state_dir()
    if take_failure(state):
        print("LSF daemon (LIM) not responding ... still trying", file=sys.stderr)
        print("Cannot connect to LSF. Please wait ...", file=sys.stderr)
        return 255
    show_all, header, fmt, refs = False, True, "jobid stat job_name", []
    position = 0
    while position < len(argv):
        arg = argv[position]
        if arg == "-a":
            show_all = True
        elif arg == "-noheader":
            header = False
        elif arg == "-o":
            position += 1
            fmt = argv[position]
        elif arg.startswith("-"):
            raise Refused(f"bjobs: illegal option -- {arg}")
        else:
            refs.append(arg)
        position += 1
    fields, delimiter = parse_format(fmt)
    status = 0
    rows = []
    explicit = bool(refs)  # named jobs are shown until cleaned, finished or not
    if not refs:
        refs = sorted((p.name for p in (state / "jobs").iterdir() if p.is_dir()), key=int)
    for ref in refs:
        match = _JOB_REF.match(ref)
        if not match or not (job_dir(state, match.group("id")) / "spec.json").exists():
            print(f"Job <{ref}> is not found", file=sys.stderr)
            status = 255
            continue
        job_id = match.group("id")
        spec = read_json(job_dir(state, job_id) / "spec.json")
        wanted = elements(state, job_id)
        if match.group("index") is not None:
            index = int(match.group("index"))
            if index not in wanted:
                print(f"Job <{ref}> is not found", file=sys.stderr)
                status = 255
                continue
            wanted = {index: wanted[index]}
        for index, element in wanted.items():
            if show_all or explicit or element["stat"] not in FINAL:
                rows.append(delimiter.join(field_value(f, job_id, index, spec, element) for f in fields))
    if header:
        print(delimiter.join(f.upper() for f in fields))
    for row in rows:
        print(row)
    return status


# --------------------------------------------------------------------------- bkill


def bkill(argv: list[str]) -> int:
    state = state_dir()
    status = 0
    for ref in argv:
        if ref.startswith("-"):
            raise Refused(f"bkill: illegal option -- {ref}")
        match = _JOB_REF.match(ref)
        if not match or not (job_dir(state, match.group("id")) / "spec.json").exists():
            print(f"Job <{ref}>: No matching job found", file=sys.stderr)
            status = 255
            continue
        job_id, index = match.group("id"), match.group("index")
        states = elements(state, job_id)
        targets = [int(index)] if index is not None else list(states)
        if all(states.get(i, {"stat": "DONE"})["stat"] in FINAL for i in targets):
            print(f"Job <{ref}>: Job has already finished", file=sys.stderr)
            status = 255
            continue
        (job_dir(state, job_id) / ("kill" if index is None else f"kill.{index}")).touch()
        print(f"Job <{ref}> is being terminated")
    return status


# --------------------------------------------------------------------------- bstop, bresume


def job_lock(state: Path, job_id: str):
    """An exclusive lock on one job's state (a context manager)."""
    import contextlib

    @contextlib.contextmanager
    def locked():
        with open(job_dir(state, job_id) / "lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    return locked()


def suspend_or_resume(argv: list[str], stop: bool) -> int:
    state = state_dir()
    tool = "bstop" if stop else "bresume"
    status = 0
    for ref in argv:
        if ref.startswith("-"):
            raise Refused(f"{tool}: illegal option -- {ref}")
        match = _JOB_REF.match(ref)
        if not match or not (job_dir(state, match.group("id")) / "spec.json").exists():
            print(f"Job <{ref}>: No matching job found", file=sys.stderr)
            status = 255
            continue
        job_id, index = match.group("id"), match.group("index")
        with job_lock(state, job_id):
            states = elements(state, job_id)
            targets = [int(index)] if index is not None else list(states)
            changed = False
            for target in targets:
                element = states.get(target)
                if element is None or element["stat"] in FINAL:
                    continue
                new = dict(element)
                if stop and element["stat"] == "PEND":
                    new["stat"] = "PSUSP"
                elif stop and element["stat"] == "RUN":
                    signal_group(element["pgid"], signal.SIGSTOP)
                    new["stat"] = "USUSP"
                elif not stop and element["stat"] == "PSUSP":
                    new["stat"] = "PEND"
                elif not stop and element["stat"] == "USUSP":
                    signal_group(element["pgid"], signal.SIGCONT)
                    new["stat"] = "RUN"
                else:
                    continue
                write_json(element_path(state, job_id, target), new)
                changed = True
        if all(states.get(i, {"stat": "DONE"})["stat"] in FINAL for i in targets):
            print(f"Job <{ref}>: Job has already finished", file=sys.stderr)
            status = 255
        elif not changed:
            print(f"Job <{ref}>: {'The job was already suspended' if stop else 'The job was not suspended'}",
                  file=sys.stderr)
            status = 255
        else:
            print(f"Job <{ref}> is being {'stopped' if stop else 'resumed'}")
    return status


def bstop(argv: list[str]) -> int:
    return suspend_or_resume(argv, True)


def bresume(argv: list[str]) -> int:
    return suspend_or_resume(argv, False)


# --------------------------------------------------------------------------- entry


TOOLS = {"bsub": bsub, "bjobs": bjobs, "bkill": bkill, "bstop": bstop, "bresume": bresume}


def main(tool: str, argv: list[str]) -> int:
    try:
        state = state_dir()
        log_call(state, tool, argv)
        return TOOLS[tool](argv)
    except Refused as exc:
        print(exc, file=sys.stderr)
        return 255


if __name__ == "__main__":
    if sys.argv[1:2] == [RUNNER]:
        sys.exit(run(Path(sys.argv[2]), sys.argv[3]))
    sys.exit(main(os.path.basename(sys.argv[0]), sys.argv[1:]))
