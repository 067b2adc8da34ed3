"""`audit`: each cell's LOCKED Python environment against the package index's vulnerability data.

No image is needed: the cell's requirements.txt (the whole environment, every pin with its hash, exactly
what the build installs) and its fetched files (flash-attn's release wheel, apex's source: by project and
version) are the inventory. One record per cell, results/<profile>/audit/<slug>.json, for the gate and
the page. OS packages are not covered: the package index has no data about them (docs/operating.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from generator.audit.findings import Audit, merge_aliases
from generator.audit.index import IndexAuditor
from generator.clock import utc_stamp
from generator.results import record_path, write_record

if TYPE_CHECKING:
    from generator.render.renderer import RenderedCell

STEP = "audit"
REQUIREMENTS = "requirements.txt"


def locked_pins(rendered: RenderedCell) -> list[tuple[str, str]]:
    """(canonical name, version) of every `name==version` line of the cell's requirements, then of its
    fetched files; each once."""
    pins: dict[str, str] = {}
    text = rendered.files.get(REQUIREMENTS, b"").decode("utf-8")
    for line in text.splitlines():
        spec = line.split(" --hash", 1)[0].split("#", 1)[0].strip()
        if not spec or spec.startswith("-"):
            continue
        try:
            req = Requirement(spec)
        except InvalidRequirement:
            continue  # render writes only name==version lines; anything else is not a pin to audit
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact:
            pins.setdefault(canonicalize_name(req.name), exact[0])
    for artifact in rendered.cell.artifacts:
        pins.setdefault(canonicalize_name(artifact.project), artifact.version)
    return sorted(pins.items())


@dataclass
class AuditResult:
    slug: str
    digest: str  # the cell's content digest: the gate trusts this record only for the same digest
    source: str
    packages: int
    counts: dict[str, int]
    findings: list[dict[str, Any]]
    not_audited: list[dict[str, str]]
    audited_at: str = field(default_factory=utc_stamp)

    def record(self) -> dict[str, Any]:
        return asdict(self)


def audit_cell(auditor: IndexAuditor, rendered: RenderedCell) -> AuditResult:
    audit = Audit()
    for name, version in locked_pins(rendered):
        audit.packages += 1
        found, skipped = auditor.query(name, version)
        audit.findings.extend(found)
        if skipped is not None:
            audit.not_audited.append(skipped)
    audit.findings = merge_aliases(audit.findings)
    return AuditResult(
        slug=rendered.cell.slug,
        digest=rendered.digest,
        source=auditor.source,
        packages=audit.packages,
        counts=audit.counts(),
        findings=[f.record() for f in audit.findings],
        not_audited=[asdict(n) for n in audit.not_audited],
    )


def audit_cells(
    auditor: IndexAuditor,
    selected: Sequence[RenderedCell],
    results: Path,
    profile: str,
    say: Callable[[str], object] = lambda _: None,
) -> list[AuditResult]:
    """Audit each cell and store its record; AuditError (nothing stored for the rest) when the data
    cannot be reached."""
    out = []
    for rendered in selected:
        say(f"audit {rendered.cell.slug}")
        result = audit_cell(auditor, rendered)
        write_record(record_path(results, profile, STEP, rendered.cell.slug), result.record())
        out.append(result)
    return out
