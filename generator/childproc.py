"""Run a command line that must never prompt and never outlive its time: registration CLIs, credential helpers.

The child gets no controlling terminal (a new session), stdin on /dev/null or the given bytes, and its own
process group, so a call that outlives its timeout is killed with every child it started
(subprocess.run would kill only the command itself and could then wait forever on a child holding its
pipes).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

DRAIN_S = 5.0  # after the kill, how long to wait for the pipes to close


@dataclass(frozen=True)
class Completed:
    returncode: int | None  # None: timed out and killed
    stdout: str
    stderr: str


def run_bounded(argv: list[str], env: Mapping[str, str], timeout_s: float, *, stdin: bytes | None = None) -> Completed:
    """Run without a TTY; on timeout (or Ctrl-C) kill the whole process group. OSError if it cannot start."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        start_new_session=True,  # own session: no controlling terminal, and a process group to kill
    )
    try:
        out, err = proc.communicate(input=stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        out, err = _kill(proc)
        return Completed(None, _decode(out), _decode(err))
    except BaseException:  # Ctrl-C or the like: no child outlives the run
        _kill(proc)
        raise
    return Completed(proc.returncode, _decode(out), _decode(err))


def _kill(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    # The leader is not reaped yet, so its pid (the group id) cannot have been reused: the signal reaches
    # exactly the command and its children.
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # not a group leader after all: at least the command itself goes
            proc.kill()
    try:
        return proc.communicate(timeout=DRAIN_S)
    except subprocess.TimeoutExpired:  # something outside the group still holds the pipes: stop reading
        proc.kill()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return b"", b""


def _decode(data: bytes | None) -> str:
    return data.decode("utf-8", "replace") if data else ""
