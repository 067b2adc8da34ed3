"""Which registry tags retention removes: a pure plan from what the registry holds, no I/O, no clock.

- A dated alias `<slug>-<yyyymmdd>` of a cell goes when it is older than `days` AND not among the cell's
  newest `keep` dated aliases.
- A staging candidate `<slug>-<12 hex>` goes when its image was created more than `days` ago.
- An image's SBOM and signature tags (`sha256-<hex>.sbom`, `.sig`) go with the image, and keep nothing.
- Never a manifest that something kept points to: the moving alias `<slug>`, a kept dated alias, a
  registration (its ledger entry), or any other tag of the repository that is not itself going. The
  registry deletes manifests, not tags (DELETE by digest takes every tag on it), so an expired tag whose
  manifest is protected stays, and the plan says why.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass

from generator.sbom.attach import fallback_tag
from generator.sign.layout import signature_tag

DATED = re.compile(r"(?P<slug>.+)-(?P<date>[0-9]{8})")
CANDIDATE = re.compile(r"(?P<slug>.+)-[0-9a-f]{12}")


@dataclass(frozen=True)
class Tag:
    repo: str
    tag: str
    digest: str
    created: datetime.date | None = None  # a candidate's image creation date (its config's `created`)


@dataclass(frozen=True)
class Doomed:
    repo: str
    tag: str
    digest: str
    why: str


@dataclass(frozen=True)
class Spared:
    repo: str
    tag: str
    why: str


@dataclass(frozen=True)
class Plan:
    delete: tuple[Doomed, ...]
    spared: tuple[Spared, ...]  # expired, but its manifest is protected

    def manifests(self) -> list[tuple[str, str]]:
        """(repo, digest) to DELETE, each once, in plan order."""
        return list(dict.fromkeys((d.repo, d.digest) for d in self.delete))


def dated(tag: str, slugs: Iterable[str]) -> tuple[str, datetime.date] | None:
    """(slug, date) when `tag` is a dated alias of one of `slugs`, else None."""
    match = DATED.fullmatch(tag)
    if match is None or match["slug"] not in set(slugs):
        return None
    try:
        return match["slug"], datetime.datetime.strptime(match["date"], "%Y%m%d").date()
    except ValueError:
        return None


def plan(
    release: Iterable[Tag],
    staging: Iterable[Tag],
    slugs: Iterable[str],
    registered: Iterable[str],
    *,
    today: datetime.date,
    days: int,
    keep: int,
) -> Plan:
    slugs = set(slugs)
    cutoff = today - datetime.timedelta(days=days)
    release, staging = list(release), list(staging)
    expired: list[tuple[Tag, str]] = []
    by_slug: dict[str, list[tuple[datetime.date, Tag]]] = {}
    for t in release:
        found = dated(t.tag, slugs)
        if found is not None:
            by_slug.setdefault(found[0], []).append((found[1], t))
    for slug, aliases in by_slug.items():
        newest_first = sorted(aliases, key=lambda pair: pair[0], reverse=True)
        for date, t in newest_first[keep:]:
            if date < cutoff:
                why = f"dated alias of {slug} from {date:%Y-%m-%d}: older than {days} days, not in the newest {keep}"
                expired.append((t, why))
    for t in staging:
        match = CANDIDATE.fullmatch(t.tag)
        if match and match["slug"] in slugs and t.created is not None and t.created < cutoff:
            expired.append((t, f"staging candidate created {t.created:%Y-%m-%d}: older than {days} days"))
    protected = _protected(release, staging, slugs, registered, {(t.repo, t.tag) for t, _ in expired})
    delete, spared = [], []
    for t, why in expired:
        keeper = protected.get(t.digest)
        if keeper is None:
            delete.append(Doomed(t.repo, t.tag, t.digest, why))
        else:
            spared.append(Spared(t.repo, t.tag, f"{why}; kept: its manifest is also {keeper}"))
    # An image's SBOM (the tag sha256-<hex>.sbom, generator/sbom/attach.py) and its signatures (sha256-<hex>.sig,
    # generator/sign/layout.py) go with the image: they describe a manifest that is no longer there.
    tagged = {(t.repo, t.tag): t for t in (*release, *staging)}
    for d in list(delete):
        for what, tag in (("SBOM", fallback_tag(d.digest)), ("signatures", signature_tag(d.digest))):
            beside = tagged.get((d.repo, tag))
            if beside is not None:
                delete.append(Doomed(d.repo, beside.tag, beside.digest, f"the {what} of {d.repo}:{d.tag}"))
    return Plan(tuple(delete), tuple(spared))


def _protected(
    release: list[Tag], staging: list[Tag], slugs: set[str], registered: Iterable[str], going: set[tuple[str, str]]
) -> dict[str, str]:
    """digest -> what keeps it: a registration, a moving alias, a dated alias or candidate that stays, or a
    tag retention does not know (someone else's). A cell's immutable tag `<slug>-<12 hex>` in the release
    repository keeps nothing: it is the build's own name and goes with its manifest."""
    out: dict[str, str] = {digest: "registered" for digest in registered}
    for t in (*release, *staging):
        if (t.repo, t.tag) in going or t.tag.endswith((".sbom", ".sig")):  # they keep no image alive
            continue
        candidate = CANDIDATE.fullmatch(t.tag)
        if t in release and candidate is not None and candidate["slug"] in slugs:
            continue
        out.setdefault(t.digest, f"{t.repo}:{t.tag}")
    return out
