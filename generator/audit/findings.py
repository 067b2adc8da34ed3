"""What an audit found: advisories per locked package, with severity said honestly.

The package index's vulnerability data (what pip-audit's default service reads) carries no severity: an
advisory from it has severity "unknown", and the policy (generator/release/policy.py) decides what
unknown means, explicitly, rather than guessing a number. Aliases are merged: the index lists one flaw
under each of its ids (PYSEC-…, GHSA-…, each naming the other), and it is one finding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

SEVERITIES = ("low", "medium", "high", "critical")  # in rising order; "unknown" is none of them
UNKNOWN = "unknown"
ADVISORY_URL = "https://osv.dev/vulnerability/{id}"  # resolves PYSEC-, GHSA- and CVE- ids alike


@dataclass(frozen=True)
class Finding:
    package: str  # canonical name
    version: str
    id: str  # the advisory's id as the source gave it first
    aliases: tuple[str, ...] = ()
    summary: str = ""
    link: str = ""
    fix_versions: tuple[str, ...] = ()
    severity: str = UNKNOWN  # one of SEVERITIES, or UNKNOWN

    @property
    def ids(self) -> frozenset[str]:
        return frozenset({self.id, *self.aliases})

    def record(self) -> dict[str, object]:
        return {
            "package": self.package,
            "version": self.version,
            "id": self.id,
            "aliases": list(self.aliases),
            "summary": self.summary,
            "link": self.link or ADVISORY_URL.format(id=self.id),
            "fix_versions": list(self.fix_versions),
            "severity": self.severity,
        }


def finding_of(record: dict[str, object]) -> Finding:
    """A Finding back from its record (the audit's JSON): what the gate reads."""

    def strings(key: str) -> tuple[str, ...]:
        value = record.get(key)
        return tuple(str(v) for v in value) if isinstance(value, list) else ()

    severity = str(record.get("severity") or UNKNOWN)
    return Finding(
        package=str(record.get("package", "")),
        version=str(record.get("version", "")),
        id=str(record.get("id", "")),
        aliases=strings("aliases"),
        summary=str(record.get("summary") or ""),
        link=str(record.get("link") or ""),
        fix_versions=strings("fix_versions"),
        severity=severity if severity in SEVERITIES else UNKNOWN,
    )


def merge_aliases(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per flaw per package: entries sharing an id or alias are one, with every alias kept.
    The id shown is the GHSA one where there is one (its page carries a severity for a person to read)."""
    out: list[Finding] = []
    for finding in findings:
        same = next((i for i, f in enumerate(out) if f.package == finding.package and f.ids & finding.ids), None)
        if same is None:
            out.append(finding)
            continue
        kept = out[same]
        ids = sorted(kept.ids | finding.ids)
        first = next((i for i in ids if i.startswith("GHSA-")), kept.id)
        out[same] = replace(
            kept,
            id=first,
            aliases=tuple(i for i in ids if i != first),
            summary=kept.summary or finding.summary,
            fix_versions=tuple(sorted(set(kept.fix_versions) | set(finding.fix_versions))),
        )
    return [replace(f, link=f.link if f.link.endswith(f.id) else ADVISORY_URL.format(id=f.id)) for f in out]


@dataclass(frozen=True)
class NotAudited:
    package: str
    version: str
    why: str


@dataclass
class Audit:
    """One cell's locked environment against the vulnerability data."""

    packages: int = 0
    findings: list[Finding] = field(default_factory=list)
    not_audited: list[NotAudited] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in (*reversed(SEVERITIES), UNKNOWN)}
        for f in self.findings:
            out[f.severity] += 1
        return out
