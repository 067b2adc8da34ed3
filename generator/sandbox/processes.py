"""The processes the sandbox starts: detached with a pidfile and a private log, waited on, and stopped.

A pidfile only counts while its pid still runs the same program, started with the file: `down` never
stops what merely got the pid after ours died.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, TextIO

from generator.clock import utc_stamp
from generator.sandbox.errors import ServiceError
from generator.sandbox.report import Progress, gist

STOP_WAIT_S = 30.0  # dockerd gives running containers 15 s to stop before it exits
POLL_S = 0.2
PIDFILE_SLACK_S = 10.0  # most seconds between a child's start and its pidfile's mtime

# The sandbox's children, kept so that they are reaped (no zombies) while this process lives.
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(argv: list[str], log_path: Path, pidfile: Path, env: dict[str, str] | None = None) -> int:
    """Start `argv` detached (new session, so a closing terminal or make does not take it down)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with append_private(log_path) as log:
        log.write(f"--- {utc_stamp()} air-fleet sandbox: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
                env=env,
            )
        except OSError as exc:
            raise ServiceError(f"cannot run {argv[0]}: {exc.strerror or exc} (log: {log_path})") from None
    CHILDREN[child.pid] = child
    temp = pidfile.with_suffix(".tmp")
    temp.write_text(f"{child.pid}\n", encoding="ascii")
    temp.replace(pidfile)
    return child.pid


def append_private(path: Path) -> BinaryIO:
    """`path` opened for appending, readable by its owner only (0600), an existing file's mode fixed too.

    Why: these logs are the services' own output. dockerd writes a registry's error text into its log, and
    that text can echo credentials (an auth header, a token URL); the registry logs its requests; apt names
    the mirrors and proxies it uses, whose URLs can carry a user and password (so do debootstrap and the
    stand-ins' builds, which run apt). A 0644 log under the state folder would hand all that to every
    local user.
    """
    return os.fdopen(_open_private(path, os.O_APPEND), "ab")


def write_private(path: Path) -> TextIO:
    """`path` emptied and opened for writing UTF-8 text, 0600 as in `append_private`: a log of one run only."""
    return os.fdopen(_open_private(path, os.O_TRUNC), "w", encoding="utf-8")


def _open_private(path: Path, flag: int) -> int:
    fd = os.open(path, os.O_WRONLY | flag | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode applies to a new file only: a log an older run made 0644 stays so
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_private(logs: Iterable[Path]) -> None:
    """Existing logs to 0600 (see `append_private`); one that is not ours to change stays as it is."""
    for log in logs:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            log.chmod(0o600)


def wait_ready(name: str, pid: int, ready: Callable[[], bool], timeout: float, log: Path, pidfile: Path) -> None:
    """Poll `ready` until it holds; a child that exits or stays deaf past `timeout` is a ServiceError."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not alive(pid):
            pidfile.unlink(missing_ok=True)
            raise ServiceError(f"{name} exited while starting: {gist(log)} (log: {log})")
        if time.monotonic() > deadline:
            stop(pid, STOP_WAIT_S)
            pidfile.unlink(missing_ok=True)
            raise ServiceError(f"{name} did not answer within {timeout:.0f} s: {gist(log)} (log: {log})")
        time.sleep(POLL_S)


def stop_ours(name: str, pidfile: Path, program: str, progress: Progress) -> int | None:
    """Stop the process the sandbox's pidfile names, if it is still that program; its pid, or None."""
    pid = our_pid(pidfile, program)
    if pid is not None:
        progress(f"{name}: stopping (pid {pid})…")
        stop(pid, STOP_WAIT_S)
    pidfile.unlink(missing_ok=True)  # also a stale one: its process is gone, or the pid is another's now
    return pid


def stop(pid: int, wait: float) -> None:
    """SIGTERM, then SIGKILL after `wait` seconds; returns once the process is gone."""
    for sig, patience in ((signal.SIGTERM, wait), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + patience
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not alive(pid):
            return
    raise ServiceError(f"pid {pid} survived SIGKILL; stop it by hand")


def our_pid(pidfile: Path, program: str) -> int | None:
    """The pid in the sandbox's pidfile if that process still runs `program` and was started with the file."""
    pid = pid_in(pidfile, program)
    if pid is None:
        return None
    # `spawn` writes the pidfile right after the exec: a process started much earlier or any later is
    # another one that got the pid (or a pidfile written by hand). 1 s of slack: btime is whole seconds.
    started = _started_at(pid)
    try:
        written = pidfile.stat().st_mtime
    except OSError:
        return None
    return pid if started is not None and written - PIDFILE_SLACK_S <= started <= written + 1.0 else None


def pid_in(pidfile: Path, program: str) -> int | None:
    """The pid a pidfile names when that process is alive and its executable is `program`."""
    try:
        pid = int(pidfile.read_text(encoding="ascii").strip())
        exe = str(Path(f"/proc/{pid}/exe").readlink())
    except (OSError, ValueError):
        return None
    name = Path(exe.removesuffix(" (deleted)")).name  # " (deleted)": the package was upgraded under it
    return pid if name == program and alive(pid) else None


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not); a child of ours is reaped on the way."""
    child = CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None  # also reaps it, so it does not linger as a zombie
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}


def _started_at(pid: int) -> float | None:
    """The process's start time (epoch seconds), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    # fields[0] is the state (field 3 of stat(5)); the start time in clock ticks is field 22.
    return int(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")
