"""One run at a time per output tree: an advisory file lock that says who holds it.

Two `build` runs on the same images/ would stage wheels into the same directories and race for the same
tags; with this lock the second waits (or, with wait=False, fails at once) and never corrupts the first.
The lock dies with its process, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from generator import paths
from generator.clock import utc_stamp
from generator.errors import FleetError


class Busy(FleetError):
    """Another run holds the lock and the caller chose not to wait."""


def fleet_lock(
    name: str, profile: str, *, wait: bool = True, progress: Callable[[str], None] = print
) -> AbstractContextManager[None]:
    """The run lock `name` over one profile's fleet: `build` (taken by `build`, and by `fetch`, which
    stages wheels into the same build contexts) or `push`. Held: "another <name> of the <profile> fleet"."""
    path = paths.state_dir() / "locks" / f"{name}-{profile}.lock"
    return hold(path, f"{name} of the {profile} fleet", wait=wait, progress=progress)


@contextmanager
def hold(path: Path, what: str, *, wait: bool = True, progress: Callable[[str], None] = print) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            if not wait:
                raise Busy(f"another {what} is running ({holder}); lock file {path}") from None
            progress(f"waiting for another {what} to finish ({holder})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "what": what, "since": utc_stamp()}))
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    return f"pid {info.get('pid', '?')} since {info.get('since', '?')}"
