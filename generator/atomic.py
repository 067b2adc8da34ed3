"""Atomic file writes: a temp file in the same directory, then a rename.

Readers see the old file or the new one, never half of one, and a killed run leaves no torn file.
Every file the project writes for others to read (generated images/, locks, bake file, result records,
the registration ledger) goes through here.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

# write_atomic's temp files: `.<name>.<8 characters>.tmp` beside <name>. The 8 characters are mkstemp's random
# part (CPython draws them from a-z, 0-9 and _). `temp_target` recognises exactly this pattern, so that a run
# can remove what a killed one left behind (SIGKILL runs no cleanup) and nothing else.
_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\.(.+)\.[a-z0-9_]{8}" + re.escape(_TEMP_SUFFIX))


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace `path` with `data` (mode 0644). `durable`: fsync the bytes and the directory first, for
    records whose loss after a crash would repeat an expensive step (a registration)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; these are ordinary readable files
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a crash
        finally:
            os.close(folder)


def temp_target(name: str) -> str | None:
    """The file name a write_atomic temp file called `name` was for (`.Dockerfile.k2x_8qzp.tmp` ->
    `Dockerfile`), or None when `name` is not one."""
    match = _TEMP_NAME.fullmatch(name)
    return match.group(1) if match else None


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write only when the bytes differ, so an unchanged file keeps its mtime (Make, git and watchers stay
    quiet); True when written."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    write_atomic(path, data)
    return True
