"""Result records: one JSON file per cell and step under the results folder, so later steps (probe,
push, publish) and later runs read what happened instead of keeping it in memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generator.atomic import write_atomic


def record_path(results: Path, profile: str, step: str, slug: str) -> Path:
    return results / profile / step / f"{slug}.json"


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Atomic write: a reader never sees half a record, even if the run is killed mid-write."""
    write_atomic(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def mapping(value: object) -> dict[str, Any]:
    """A field that should be a JSON object, or {} when it is absent or something else: records and
    payload answers come from containers and older versions, and a reader never crashes on their shape."""
    return value if isinstance(value, dict) else {}


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def record_for(results: Path, profile: str, step: str, slug: str, digest: str) -> tuple[dict[str, Any] | None, str]:
    """(the cell's `step` record, "") when there is one for this content digest; else (None, what to do):
    a record of other bytes says nothing about these."""
    record = read_record(record_path(results, profile, step, slug))
    if record is None:
        return None, f"no {step} record: run `{step}` first"
    if record.get("digest") != digest:
        found = str(record.get("digest") or "no digest").removeprefix("sha256:")[:12]
        return None, f"the {step} record is for {found}, not {digest.removeprefix('sha256:')[:12]}: {step} again"
    return record, ""
