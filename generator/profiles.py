"""Profiles: which matrix, lock and facts a run uses. `default` is the real fleet; others live in data.

A profile is a YAML file in generator/profiles/ (never code): its matrix, its lock, where its images
are rendered, how torch gets into images, and knowledge fragments merged over generator/knowledge/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from generator.errors import MatrixError
from generator.paths import ROOT

PROFILES_DIR = Path(__file__).parent / "profiles"
TORCH_FROM = ("index", "wheelhouse")


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
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    torch_from = data.get("torch_from", "index")
    if torch_from not in TORCH_FROM:
        raise MatrixError(f"torch_from must be one of {', '.join(TORCH_FROM)}", file=file, key="torch_from")
    own_matrix = matrix is None
    path = matrix or PROFILES_DIR / data["matrix"]
    return Profile(
        name=name,
        description=str(data["description"]),
        matrix=path,
        images=ROOT / data["images"] if own_matrix else path.parent / "images",
        lock=PROFILES_DIR / data["lock"] if own_matrix else path.parent / "wheels.lock.json",
        torch_from=torch_from,
        knowledge_overlay=json.dumps(data.get("knowledge", {}), sort_keys=True) or None,
    )
