"""A source tree of the project's own (the sandbox's extension) as a reproducible archive.

Source archives of upstream projects are fetched and sha256-locked like every other file; a tree inside the
project has no URL to lock, so its identity is the sha256 of this archive: same files, same bytes (sorted
names, no owners, no times), whichever machine or checkout makes it.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from functools import cache
from hashlib import sha256
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent.parent
SKIP = ("__pycache__", ".egg-info", "build")


def tree_path(source_dir: str) -> Path:
    """`source_dir` (relative to the project root, from knowledge) as a path; never outside the project."""
    path = (PROJECT / source_dir).resolve()
    if PROJECT not in path.parents or not path.is_dir():
        raise ValueError(f"{source_dir}: not a directory inside the project")
    return path


@cache
def tree_archive(source_dir: str) -> bytes:
    """The tree as a .tar.gz whose one top directory is `src/`."""
    root = tree_path(source_dir)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            if not path.is_file() or any(part.endswith(SKIP) for part in path.relative_to(root).parts):
                continue
            info = tarfile.TarInfo(f"src/{path.relative_to(root).as_posix()}")
            data = path.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def tree_sha256(source_dir: str) -> str:
    return sha256(tree_archive(source_dir)).hexdigest()
