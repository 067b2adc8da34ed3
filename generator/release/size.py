"""The size gate's measurements: how large a candidate is against the cell's blessed image, asked of the
registry (no engine: the gate runs where promote runs).

Sizes are what users download: the compressed bytes a manifest names (its config and layers), the
same number on every machine, unlike an engine's unpacked size. The blessed image is the one the
release repository's moving alias `<slug>` points at (what users pull today); the candidate is the
staging repository's immutable tag. Each check is recorded (results/<profile>/size/<slug>.json: both
sizes and digests, the change, the verdict) for the page.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.clock import utc_stamp
from generator.model import SizePolicy
from generator.release.distribution import Registry
from generator.release.oci import split_ref
from generator.release.policy import size_verdict
from generator.results import record_path, write_record

if TYPE_CHECKING:
    from generator.render.renderer import RenderedCell

STEP = "size"


@dataclass(frozen=True)
class Measured:
    digest: str
    bytes: int


def manifest_size(registry: Registry, repo: str, reference: str) -> Measured | None:
    """The compressed size of the image `reference` names in `repo`, or None when it is not there."""
    answer = registry.manifest(repo, reference)
    if answer is None:
        return None
    document = json.loads(answer.body)
    parts = [document.get("config") or {}, *(document.get("layers") or [])]
    total = sum(int(p.get("size") or 0) for p in parts if isinstance(p, dict))
    return Measured(str(answer.digest), total)


@dataclass
class SizeResult:
    slug: str
    digest: str  # the cell's content digest
    ok: bool
    why: str
    candidate: dict[str, Any] | None  # {"digest", "bytes"}: the staging candidate
    blessed: dict[str, Any] | None  # {"digest", "bytes"}: what the release alias points at; None: none yet
    change_percent: float | None = None
    checked_at: str = field(default_factory=utc_stamp)

    def record(self) -> dict[str, Any]:
        return asdict(self)


def check_size(
    registry: Registry, slug: str, digest: str, staging: str, tag: str, release: str, policy: SizePolicy
) -> SizeResult:
    """The candidate `staging:tag` against the blessed `release:<slug>` (repositories on the registry's host)."""
    candidate = manifest_size(registry, staging, tag)
    blessed = manifest_size(registry, release, slug)
    if candidate is None:
        why = f"no candidate {registry.host}/{staging}:{tag} in the registry: push it first"
        return SizeResult(slug, digest, False, why, None, _plain(blessed))
    ok, why = size_verdict(policy, slug, blessed.bytes if blessed else None, candidate.bytes)
    change = round(100.0 * (candidate.bytes - blessed.bytes) / blessed.bytes, 2) if blessed and blessed.bytes else None
    return SizeResult(slug, digest, ok, why, _plain(candidate), _plain(blessed), change)


def check_rendered(registry: Registry, rendered: RenderedCell, policy: SizePolicy) -> SizeResult:
    _, staging, tag = split_ref(rendered.ref)
    _, release, _ = split_ref(rendered.release_ref)
    return check_size(registry, rendered.cell.slug, rendered.digest, staging, tag, release, policy)


def _plain(measured: Measured | None) -> dict[str, Any] | None:
    return asdict(measured) if measured is not None else None


def check_sizes(
    registry: Registry, selected: list[RenderedCell], policy: SizePolicy, results: Path, profile: str
) -> list[SizeResult]:
    out = []
    for rendered in selected:
        result = check_rendered(registry, rendered, policy)
        write_record(record_path(results, profile, STEP, rendered.cell.slug), result.record())
        out.append(result)
    return out
