"""Write a rendered fleet to disk incrementally and atomically, or report what is stale.

A file is written only when its bytes change (temp file + rename, so readers never see half a file and
unchanged mtimes keep Make quiet). Directories of cells that left the matrix are removed; directories
the generator did not make are never touched. A run killed by SIGKILL leaves its temp file behind
(`.Dockerfile.k2x_8qzp.tmp`): the next run removes such strays, and `--check` reports them as stale. Only
names that match write_atomic's temp pattern for a file the generator writes in that directory count.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from generator.atomic import temp_target, write_atomic
from generator.render.renderer import HEADER

STAGED_DIRS = ("wheels",)  # filled by fetch, ignored by git: never "stale"


@dataclass(frozen=True)
class Change:
    action: str  # write | remove
    path: Path
    reason: str  # new | changed | cell left the matrix | no longer generated | left by a killed run

    def __str__(self) -> str:
        return f"{self.action:6} {self.path}  ({self.reason})"


def _generated_files(cell_dir: Path) -> list[str] | None:
    """The files a previous run generated in `cell_dir` (from its cell.json), or None if not ours."""
    try:
        data = json.loads((cell_dir / "cell.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("_generated") != HEADER:
        return None
    files = data.get("files")
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []


def plan(out: Path, desired: dict[str, bytes]) -> list[Change]:
    """Changes that bring `out` to `desired` (paths relative to `out`, first part = cell directory)."""
    changes: list[Change] = []
    for rel, data in desired.items():
        path = out / rel
        try:
            # A size mismatch settles most changed files without reading them.
            current = path.read_bytes() if path.stat().st_size == len(data) else None
        except FileNotFoundError:
            changes.append(Change("write", path, "new"))
            continue
        except IsADirectoryError:
            current = None
        if current != data:
            changes.append(Change("write", path, "changed"))
    cell_dirs = {rel.split("/", 1)[0] for rel in desired if "/" in rel}
    ours = set(desired)  # files this or an earlier run writes: their temp files are strays of ours
    if out.is_dir():
        for child in sorted(out.iterdir()):
            if not child.is_dir():
                continue
            previous = _generated_files(child)
            if previous is None:
                continue  # not a generated cell directory: leave it alone
            if child.name not in cell_dirs:
                changes.append(Change("remove", child, "cell left the matrix"))
                continue
            for name in previous:
                rel = f"{child.name}/{name}"
                ours.add(rel)
                if rel not in desired and name.split("/", 1)[0] not in STAGED_DIRS and (child / name).is_file():
                    changes.append(Change("remove", child / name, "no longer generated"))
    return changes + _strays(out, ours)


def _strays(out: Path, ours: set[str]) -> list[Change]:
    """Temp files a killed run left beside the files in `ours` (paths relative to `out`)."""
    names: dict[Path, set[str]] = {}
    for rel in ours:
        path = out / rel
        names.setdefault(path.parent, set()).add(path.name)
    found = []
    for folder, files in names.items():
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        found += [Path(e.path) for e in entries if temp_target(e.name) in files and e.is_file(follow_symlinks=False)]
    return [Change("remove", path, "left by a killed run") for path in sorted(found)]


def apply(changes: list[Change], out: Path, desired: dict[str, bytes]) -> None:
    made: set[Path] = set()  # one mkdir per directory, not per file
    for change in changes:
        if change.action == "write":
            if change.path.parent not in made:
                change.path.parent.mkdir(parents=True, exist_ok=True)
                made.add(change.path.parent)
            write_atomic(change.path, desired[change.path.relative_to(out).as_posix()])
        elif change.path.is_dir():
            shutil.rmtree(change.path)
        else:
            change.path.unlink(missing_ok=True)
            parent = change.path.parent
            if parent != out and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
