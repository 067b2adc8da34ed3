"""Profiles: which matrix, lock and facts a run uses. `default` is the real fleet; others live in data.

A profile is a YAML file in generator/profiles/ (never code): its matrix, its lock, where its images
are rendered, how torch gets into images, and knowledge fragments merged over generator/knowledge/. It is
read by the matrix's strict loader (generator/yamlsource.py): a misspelt or unknown key is a one-line
`file:line: key: why` error, never a silent fall-back to a default.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.errors import MatrixError
from generator.facts import KNOWLEDGE_DIR
from generator.paths import ROOT
from generator.yamlsource import load_yaml

PROFILES_DIR = Path(__file__).parent / "profiles"
TORCH_FROM = ("index", "wheelhouse")
# key -> required; every value but `knowledge` is a string.
KEYS = {"description": True, "matrix": True, "lock": True, "images": True, "torch_from": False, "knowledge": False}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    matrix: Path
    images: Path
    lock: Path
    torch_from: str  # index: pip installs torch from the index in the build; wheelhouse: a fetched, COPY'd wheel
    knowledge_overlay: str | None  # JSON of {knowledge file: fragment}, the cache key of facts.knowledge()


def available() -> list[str]:
    return ["default", *sorted(p.stem for p in PROFILES_DIR.glob("*.yaml") if "." not in p.stem)]


def load_profile(name: str, matrix: Path | None = None) -> Profile:
    """The named profile; `matrix` (from --matrix) replaces its matrix, images/ and lock sit beside it."""
    if name == "default":
        path = matrix or Path("matrix.yaml")
        return Profile(
            "default", "the real fleet", path, path.parent / "images", path.parent / "wheels.lock.json", "index", None
        )
    file = PROFILES_DIR / f"{name}.yaml"
    if name not in available():
        raise MatrixError(f"unknown profile {name!r} (available: {', '.join(available())})")
    data = _read(file)
    torch_from = data.get("torch_from", "index")
    own_matrix = matrix is None
    path = matrix or PROFILES_DIR / data["matrix"]
    return Profile(
        name=name,
        description=str(data["description"]),
        matrix=path,
        images=ROOT / data["images"] if own_matrix else path.parent / "images",
        lock=PROFILES_DIR / data["lock"] if own_matrix else path.parent / "wheels.lock.json",
        torch_from=torch_from,
        knowledge_overlay=json.dumps(data.get("knowledge", {}), sort_keys=True),
    )


def _read(file: Path) -> dict[str, Any]:
    """The profile's keys, checked: known keys only, the required ones present, strings where strings go."""
    doc = load_yaml(file)
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "expected a mapping of profile keys")
    for key, value in data.items():
        if key not in KEYS:
            raise doc.error((key,), f"unknown key {key!r} (allowed: {', '.join(KEYS)})")
        if key != "knowledge" and not isinstance(value, str):
            raise doc.error((key,), "expected a string")
    missing = [key for key, required in KEYS.items() if required and key not in data]
    if missing:
        raise doc.error((), f"missing required key {missing[0]!r}")
    if data.get("torch_from", "index") not in TORCH_FROM:
        raise doc.error(("torch_from",), f"must be one of {', '.join(TORCH_FROM)}")
    overlay = data.get("knowledge", {})
    if not isinstance(overlay, dict):
        raise doc.error(("knowledge",), "expected a mapping of knowledge file -> fragment")
    known = sorted(path.name for path in KNOWLEDGE_DIR.glob("*.yaml"))  # the files facts.knowledge() merges into
    for name, fragment in overlay.items():
        if name not in known:
            raise doc.error(("knowledge", name), f"unknown knowledge file {name!r} (known: {', '.join(known)})")
        if not isinstance(fragment, dict):
            raise doc.error(("knowledge", name), "expected a mapping merged over that file")
    return data
