"""`prune`: what retention removes, listed, then (with `--yes`) removed.

Three places hold what the fleet leaves behind:
- the registry: expired dated aliases and staging candidates (the plan: generator/release/retention.py),
  deleted through the distribution API by manifest digest (the sandbox registry has deletion on);
- the local engine: images of the profile's repositories whose tag no current cell has;
- the wheelhouse cache: files no profile's lock names.
"""

from __future__ import annotations

import datetime
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.clock import parse_day
from generator.release.distribution import Registry
from generator.release.retention import CANDIDATE, Plan, Tag, plan

if TYPE_CHECKING:
    from generator.render.renderer import RenderedCell


def registry_tags(registry: Registry, repo: str, slugs: set[str], *, created: bool) -> list[Tag]:
    """Every tag of `repo` with its manifest digest; with `created`, a candidate's image creation date
    (from its config blob) too."""
    out = []
    for tag in sorted(registry.tags(repo)):
        answer = registry.manifest(repo, tag)
        if answer is None or answer.digest is None:
            continue  # deleted while we looked
        date = None
        match = CANDIDATE.fullmatch(tag)
        if created and match is not None and match["slug"] in slugs:
            date = _created(registry, repo, answer.body)
        out.append(Tag(repo, tag, answer.digest, date))
    return out


def _created(registry: Registry, repo: str, manifest: bytes) -> datetime.date | None:
    config = (json.loads(manifest).get("config") or {}).get("digest")
    if not config:
        return None
    stamp = str(json.loads(registry.get_blob(repo, str(config))).get("created") or "")
    try:
        return parse_day(stamp)
    except ValueError:
        return None  # no creation date: never taken for old


def registered_digests(ledgers: Path) -> set[str]:
    """Every manifest digest any workspace's registration ledger holds (<state>/register/*.json)."""
    out: set[str] = set()
    for path in sorted(ledgers.glob("*.json")):
        images = json.loads(path.read_text(encoding="utf-8")).get("images") or {}
        out.update(str(digest) for digest in images)
    return out


def registry_plan(
    registry: Registry,
    release_repo: str,
    staging_repo: str,
    slugs: set[str],
    registered: set[str],
    *,
    today: datetime.date,
    days: int,
    keep: int,
) -> Plan:
    release = registry_tags(registry, release_repo, slugs, created=False)
    staging = registry_tags(registry, staging_repo, slugs, created=True)
    return plan(release, staging, slugs, registered, today=today, days=days, keep=keep)


def apply_registry(registry: Registry, doomed: Plan) -> list[tuple[str, str]]:
    """Delete each manifest of the plan once; the (repo, digest) pairs the registry had."""
    return [(repo, digest) for repo, digest in doomed.manifests() if registry.delete_manifest(repo, digest)]


@dataclass
class LocalPlan:
    images: list[str] = field(default_factory=list)  # local tags no current cell has
    wheelhouse: list[Path] = field(default_factory=list)  # cache entries no lock names


def local_images(client: Any, cells: Iterable[RenderedCell]) -> list[str]:
    """Local tags in the cells' repositories (release and staging) that are no current cell's immutable tag
    nor a cell's alias: builds of older digests, whose layers are the disk's."""
    cells = list(cells)
    repos = {r.ref.rpartition(":")[0] for r in cells} | {r.release_ref.rpartition(":")[0] for r in cells}
    current = {r.tag for r in cells}
    slugs = {r.cell.slug for r in cells}
    out = []
    # The low-level list: one request, no inspect per image (another run may remove one meanwhile).
    for image in client.api.images():
        for ref in image.get("RepoTags") or []:
            repo, _, tag = ref.rpartition(":")
            if repo in repos and tag not in current and tag not in slugs and not _alias_of(tag, slugs):
                out.append(ref)
    return sorted(out)


def _alias_of(tag: str, slugs: set[str]) -> bool:
    from generator.release.retention import dated

    return dated(tag, slugs) is not None


def wheelhouse_orphans(root: Path, referenced: set[str]) -> list[Path]:
    """Cache entries (<root>/sha256/<xx>/<hex>/) whose sha256 no profile's lock names."""
    base = root / "sha256"
    if not base.is_dir():
        return []
    return sorted(p for p in base.glob("*/*") if p.is_dir() and p.name not in referenced)


def apply_local(client: Any, local: LocalPlan) -> None:
    for ref in local.images:
        client.images.remove(ref)  # by tag: layers another image uses stay
    for entry in local.wheelhouse:
        shutil.rmtree(entry)
