"""Profiles: which matrix, lock and facts a run uses. `default` is the real fleet; others live in data.

A profile is a YAML file in generator/profiles/ (never code): its matrix, its lock, where its images
are rendered, how torch gets into images, and knowledge fragments merged over generator/knowledge/. It is
read by the matrix's strict loader (generator/spec/yamlsource.py): a misspelt or unknown key is a one-line
`file:line: key: why` error, never a silent fall-back to a default.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator import paths
from generator.errors import MatrixError
from generator.paths import ROOT
from generator.spec.knowledge import KNOWLEDGE_DIR
from generator.spec.yamlsource import load_yaml

PROFILES_DIR = Path(__file__).parent.parent / "profiles"  # data beside the code: generator/profiles/
TORCH_FROM = ("index", "wheelhouse")
# key -> required; every value but `knowledge` is a string.
KEYS = {
    "description": True,
    "matrix": True,
    "lock": True,
    "images": True,
    "torch_from": False,
    "knowledge": False,
    "bases_lock": False,
    "signing": False,
}
# `bases_lock: machine`: the base images are built on each machine (the sandbox's stand-ins), so their
# digests are this machine's and locked under its state folder, never in the committed lock.
BASES_LOCK = ("lock", "machine")
# `signing: machine`: promoted images are signed with a key pair made on this machine on first use, in the
# user's config folder (generator/sign/config.py), unless the matrix names its own `signing:` keys.
SIGNING = ("machine",)


@dataclass(frozen=True)
class Profile:
    """A profile as loaded, with the matrix a run uses (its own, or the one `--matrix` names).

    `records` is the folder under results/ that holds this fleet's records (build, probe, bench, push,
    register, the page): the profile's name for its own matrix, `<name>/matrices/<stem>-<hash>` for another
    one. Another matrix has other cells under the same slugs: written into the profile's folder, its records
    replaced the real fleet's, whose push gate and page then saw another build's record and called their own
    cell unbuilt or stale.
    The hash is of the matrix file's absolute path, so the same file keeps its folder when it is edited (each
    record carries its cell's content digest: an edit makes records stale, never wrong).
    """

    name: str
    description: str
    matrix: Path
    images: Path
    lock: Path
    torch_from: str  # index: pip installs torch from the index in the build; wheelhouse: a fetched, COPY'd wheel
    knowledge_overlay: str | None  # JSON of {knowledge file: fragment}, the cache key of facts.knowledge()
    records: str  # results/<records>/<step>/<slug>.json
    bases_lock: Path | None = None  # where base digests are locked when not in `lock` (see BASES_LOCK)
    signing: str | None = None  # "machine": sign with this machine's own key pair (see SIGNING)


def available() -> list[str]:
    return ["default", *sorted(p.stem for p in PROFILES_DIR.glob("*.yaml") if "." not in p.stem)]


def load_profile(name: str, matrix: Path | None = None) -> Profile:
    """The named profile; `matrix` (from --matrix) replaces its matrix, images/ and lock sit beside it, and
    its records go to their own folder (see Profile). `matrix` naming the profile's own file changes nothing."""
    if name == "default":
        path = matrix or Path("matrix.yaml")
        return Profile(
            "default",
            "the real fleet",
            path,
            path.parent / "images",
            path.parent / "wheels.lock.json",
            "index",
            None,
            _records(name, path, Path("matrix.yaml")),
        )
    file = PROFILES_DIR / f"{name}.yaml"
    if name not in available():
        raise MatrixError(f"unknown profile {name!r} (available: {', '.join(available())})")
    data = _read(file)
    torch_from = data.get("torch_from", "index")
    own = PROFILES_DIR / data["matrix"]
    path = matrix or own
    own_matrix = _same_file(path, own)
    return Profile(
        name=name,
        description=str(data["description"]),
        matrix=path,
        images=ROOT / data["images"] if own_matrix else path.parent / "images",
        lock=PROFILES_DIR / data["lock"] if own_matrix else path.parent / "wheels.lock.json",
        torch_from=torch_from,
        knowledge_overlay=json.dumps(data.get("knowledge", {}), sort_keys=True),
        records=_records(name, path, own),
        bases_lock=_machine_lock(name) if data.get("bases_lock") == "machine" else None,
        signing=data.get("signing"),
    )


def _machine_lock(name: str) -> Path:
    """This machine's lock of a profile's base digests, beside the state that built the bases. One per
    profile, whatever the matrix: another matrix on the profile builds FROM the same stand-ins."""
    return paths.state_dir() / "locks" / f"{name}.bases.json"


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _records(name: str, matrix: Path, own: Path) -> str:
    """The records folder of profile `name` run on `matrix` (see Profile)."""
    if _same_file(matrix, own):
        return name
    where = matrix.resolve()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", where.stem).strip("-") or "matrix"  # a folder name, never `..`
    return f"{name}/matrices/{stem}-{hashlib.sha256(str(where).encode()).hexdigest()[:12]}"


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
    if data.get("bases_lock", "lock") not in BASES_LOCK:
        raise doc.error(("bases_lock",), f"must be one of {', '.join(BASES_LOCK)}")
    if data.get("signing", "machine") not in SIGNING:
        raise doc.error(("signing",), f"must be one of {', '.join(SIGNING)}")
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
