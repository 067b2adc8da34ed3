"""What a person could adopt: newer upstream releases than the matrix and the knowledge use, as proposals.

Nothing here edits matrix.yaml or the knowledge: a bump is a decision (it moves content digests, so the
nightly rebuilds), and each proposal says where to make it. Three kinds:

- torch: releases on the package index newer than the matrix's torch rows. A patch of a minor that has
  rows (2.8.1 beside 2.8.0) is a version bump on those lines; a newer minor is a new line, and when
  generator/knowledge/torch.yaml does not know that minor yet, the knowledge has to be extended first.
- pins, offline: per torch row, newer flash-attn releases and xformers pins from the knowledge that
  really work with that row (the resolver's own rules: torch minor, Python, CUDA, the wheel's real ABI,
  xformers' exact torch), where the row's pin is written down. An unpinned row already takes the newest.
- knowledge: xformers releases on the package index newer than generator/knowledge/xformers.yaml knows
  (each pins one exact torch: the pin goes into the knowledge, with its source, before any row can use it).

Only releases with a wheel for the matrix's Python on the images' Linux are proposed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag
from packaging.utils import canonicalize_name
from packaging.version import Version

from generator.model import Cell, Matrix, Origin, TorchRow
from generator.resolve.expand import torch_build
from generator.resolve.extensions import resolve
from generator.spec.knowledge import Knowledge, minor
from generator.upstream.index import PackageIndex, Release, image_tags, newest_final

TORCH_KNOWLEDGE = "generator/knowledge/torch.yaml"
XFORMERS_KNOWLEDGE = "generator/knowledge/xformers.yaml"
# Knowledge kinds whose releases the knowledge lists, and so which a row's pin can move along.
LISTED_KINDS = ("release-wheel", "torch-pinned")


@dataclass(frozen=True)
class TorchProposal:
    version: str  # the newest release of its minor on the index
    minor: str
    kind: str  # "patch": a minor that has rows; "minor": a newer minor
    known: bool  # generator/knowledge/torch.yaml has this minor
    rows: tuple[str, ...]  # "patch": the rows it would bump (their keys)

    @property
    def action(self) -> str:
        if self.kind == "patch":
            return f"bump the torch line(s) {', '.join(self.rows)} of the matrix to {self.version}"
        if self.known:
            return f"add a torch line `- {{version: {self.version}}}` to the matrix"
        return (
            f"extend {TORCH_KNOWLEDGE} with a {self.minor} release first (indexes, NCCL, ABI, Python range, "
            f"torchvision/torchaudio), then add a torch line `- {{version: {self.version}}}`"
        )

    def record(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "rows": list(self.rows), "action": self.action}


@dataclass(frozen=True)
class PinProposal:
    row: str  # the torch row's key (2.8.0, 2.8.0+cu129)
    extension: str
    current: str
    newer: tuple[str, ...]  # every newer release that works with the row, newest first
    origin: Origin  # where the pin is written

    def record(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "extension": self.extension,
            "current": self.current,
            "latest": self.newer[0],
            "newer": list(self.newer),
            "where": {"file": str(self.origin.file), "line": self.origin.line, "key": self.origin.key},
        }


@dataclass(frozen=True)
class KnowledgeProposal:
    project: str
    version: str
    file: str
    torch: str | None  # the exact torch its wheel requires (PEP 658 metadata); None: the index did not say

    @property
    def action(self) -> str:
        pin = f'"{self.version}": {{torch: "{self.torch or "?"}"}}'
        return f"add {pin} to {self.file} with its source (the wheel's Requires-Dist and cpp_lib.json)"

    def record(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "action": self.action}


@dataclass(frozen=True)
class Outdated:
    torch: list[TorchProposal] = field(default_factory=list)
    pins: list[PinProposal] = field(default_factory=list)
    knowledge: list[KnowledgeProposal] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.torch) + len(self.pins) + len(self.knowledge)

    def record(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "torch": [p.record() for p in self.torch],
            "pins": [p.record() for p in self.pins],
            "knowledge": [p.record() for p in self.knowledge],
        }


def outdated(matrix: Matrix, cells: list[Cell], facts: Knowledge, index: PackageIndex) -> Outdated:
    """Every proposal for `matrix`: asks the index about torch and xformers, the rest from the knowledge."""
    tags = image_tags(matrix.python)
    torch = newest_final(index.releases("torch").values(), tags)
    xformers = newest_final(index.releases("xformers").values(), tags)
    return Outdated(
        torch=torch_proposals(matrix, facts, [r.version for r in torch]),
        pins=pin_proposals(matrix, cells, facts),
        knowledge=xformers_proposals(facts, xformers, lambda release: _pinned_torch(index, release, tags)),
    )


def torch_proposals(matrix: Matrix, facts: Knowledge, available: Iterable[Version]) -> list[TorchProposal]:
    """The newest release per minor that is newer than the matrix's rows of that minor, or of a newer minor
    than any row has. Older minors than the matrix's (a 2.5.x beside rows from 2.6 on) are not proposals."""
    rows: dict[str, list[TorchRow]] = {}
    for row in matrix.torch:
        rows.setdefault(minor(row.version), []).append(row)
    top_minor = max((Version(m) for m in rows), default=None)
    newest: dict[str, Version] = {}
    for version in available:
        m = minor(version)
        if m in rows:
            wanted = version > max(Version(r.version) for r in rows[m])
        else:
            wanted = top_minor is None or Version(m) > top_minor
        if wanted and (m not in newest or version > newest[m]):
            newest[m] = version
    proposals = []
    for m, version in sorted(newest.items(), key=lambda item: item[1]):
        behind = tuple(r.key for r in rows.get(m, []) if Version(r.version) < version)
        kind = "patch" if m in rows else "minor"
        proposals.append(TorchProposal(str(version), m, kind, m in facts.torch, behind))
    return proposals


def pin_proposals(matrix: Matrix, cells: list[Cell], facts: Knowledge) -> list[PinProposal]:
    """Per torch row, per extension it pins that some cell of that row installs: newer known releases that
    resolve without a problem for the row's torch (what the cell's checks would then say OK to)."""
    used = {(_row_key(c), e.name) for c in cells for e in c.extensions}
    proposals = []
    for row in matrix.torch:
        build = torch_build(row, matrix.python, facts)
        for name in sorted({n for key, n in used if key == row.key}):
            decl = matrix.declared(name)
            pin = row.pin(name) or decl  # the row's own pin, else the matrix-wide one (as expand reads them)
            kind = decl.kind if decl else facts.extensions[name].kind
            if pin is None or pin.version is None or pin.build != "wheel" or kind not in LISTED_KINDS:
                continue  # unpinned: the newest that works is already picked; a source build is another matter
            version, origin = pin.version, pin.origin
            newer = [
                v
                for v in sorted(_known(kind, facts), key=Version, reverse=True)
                if Version(v) > Version(version)
                and resolve(name, v, "wheel", kind, build, facts, origin).problem is None
            ]
            if newer:
                proposals.append(PinProposal(row.key, name, version, tuple(newer), origin))
    return proposals


def xformers_proposals(
    facts: Knowledge, available: list[Release], torch_of: Callable[[Release], str | None]
) -> list[KnowledgeProposal]:
    """Releases newer than every pin the knowledge has; `torch_of(release)` says which torch it pins."""
    known = [Version(v) for v in facts.xformers_pins]
    top = max(known, default=None)
    return [
        KnowledgeProposal("xformers", str(r.version), XFORMERS_KNOWLEDGE, torch_of(r))
        for r in available
        if top is None or r.version > top
    ]


def _known(kind: str, facts: Knowledge) -> list[str]:
    return list(facts.flash_attn) if kind == "release-wheel" else list(facts.xformers_pins)


def _row_key(cell: Cell) -> str:
    """The key of the torch row a cell comes from (TorchRow.key)."""
    return cell.torch if cell.torch_from_pypi else f"{cell.torch}+{cell.torch_index}"


def _pinned_torch(index: PackageIndex, release: Release, tags: frozenset[Tag]) -> str | None:
    """The exact torch a release's wheel requires (`torch==X`), from the index's copy of its metadata
    (one small file for one wheel; the index may not offer it, then the proposal says `?`)."""
    wheel = next((w for w in release.wheels_for(tags) if w.metadata), None)
    for line in index.requires(wheel) if wheel else []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        pinned = [s.version for s in requirement.specifier if s.operator == "=="]
        if canonicalize_name(requirement.name) == "torch" and pinned and requirement.marker is None:
            return pinned[0]
    return None
