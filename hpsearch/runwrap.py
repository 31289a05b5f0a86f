"""The wrapper a run starts through when it must outlive its driver.

A run of the search service keeps going when the driver that started it is
stopped or killed (a service restart must not end a week of training). The
driver then is no longer its parent and cannot learn its exit status, so the
run is started as ``python -I -S runwrap.py EXIT_FILE -- ARGV...``: this small
process starts ARGV (same environment, working directory and output files,
which it inherits), forwards SIGTERM, SIGINT and SIGHUP to it, waits for it,
and writes its exit status, or 128 + the signal that killed it, atomically
into EXIT_FILE, as the cluster job scripts do. Then it ends the same way as
the run (the same exit code, or the same signal), so a driver that is still
its parent sees the run's own end.

ARGV goes to ``posix_spawnp`` as a list: no value passes through a shell. The
module uses only the standard library and is run by path with ``-I -S`` (no
site-packages, no ``PYTHON*`` variables, nothing prepended to ``sys.path``),
so it starts in a few milliseconds and does not depend on the driver.

It runs once per run, so its start-up is on every run's path: it uses the C
module ``_signal`` behind ``signal`` (``signal`` imports ``enum``, about 8 ms
of CPU, a third of the wrapper's cost), and ``resource`` only for a run killed
by a signal.
"""

from __future__ import annotations

import _signal as signal  # the module `signal` wraps, without its enum classes (see above)
import os
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
USAGE = 2  # what a malformed wrapper command line exits with (a bug of the caller)


def write_status(path: str, status: int) -> None:
    """``status`` into ``path`` via a temporary file and a rename, fsynced: a
    reader sees the whole number or nothing, also after a crash."""
    folder = os.path.dirname(path) or "."
    temp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, b"%d\n" % status)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def shell_status(wait_status: int) -> int:
    """The exit code, or 128 + N for a run killed by signal N (as a shell's ``$?``)."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)


def end_like(wait_status: int) -> None:
    """Exit as the run did: with its code, or killed by its signal (no core dump)."""
    if os.WIFSIGNALED(wait_status):
        import resource

        number = os.WTERMSIG(wait_status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        for forwarded in FORWARDED:
            signal.signal(forwarded, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
        os.kill(os.getpid(), number)
        os._exit(128 + number)  # a signal that does not kill (e.g. one the run ignored before)
    os._exit(os.waitstatus_to_exitcode(wait_status))


def main(argv: list[str]) -> None:
    """``runwrap.py EXIT_FILE -- PROGRAM [ARGS...]``"""
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: runwrap.py EXIT_FILE -- PROGRAM [ARGS...]\n")
        os._exit(USAGE)
    exit_file, command = argv[0], argv[2:]
    child = 0
    pending: list[int] = []

    def forward(number: int, _frame: object) -> None:
        if child:
            try:
                os.kill(child, number)
            except ProcessLookupError:
                pass
        else:
            pending.append(number)

    for number in FORWARDED:
        signal.signal(number, forward)
    try:
        child = os.posix_spawnp(command[0], command, os.environ)
    except OSError as exc:
        sys.stderr.write(f"hpsearch: cannot start {command[0]!r}: {exc.strerror or exc}\n")
        write_status(exit_file, 127)
        os._exit(127)
    for number in pending:
        os.kill(child, number)
    while True:
        _pid, wait_status = os.waitpid(child, 0)  # retried after a forwarded signal (PEP 475)
        if os.WIFEXITED(wait_status) or os.WIFSIGNALED(wait_status):
            break
    write_status(exit_file, shell_status(wait_status))
    end_like(wait_status)


if __name__ == "__main__":
    main(sys.argv[1:])
