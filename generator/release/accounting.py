"""The accounting half of the promotion gate, one call for `promote`: known vulnerabilities (the audit
record and the matrix's `vulnerabilities:` policy) and size (the registry and the matrix's `size:` policy).

Promote asks this after its own gate (probe records for the same manifest digest: `promote(accounting=)`,
which `python -m generator promote` passes) and refuses a cell whose answer is not ok, with `why`, which
names each refused advisory or the growth.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from generator.audit.gate import vulnerability_gate
from generator.model import Matrix
from generator.release.distribution import Registry
from generator.release.size import STEP as SIZE_STEP
from generator.release.size import check_size
from generator.render.renderer import image_tag
from generator.results import record_path, write_record

if TYPE_CHECKING:
    from generator.release.promote import PromoteCell


def accounting_gate(
    results: Path,
    profile: str,
    cell: PromoteCell,
    matrix: Matrix,
    registry: Registry,
    today: datetime.date,
) -> tuple[bool, str]:
    """(ok, why): the cell passes the vulnerability policy AND the size gate; the size check is recorded."""
    vulns_ok, vulns_why = vulnerability_gate(results, profile, cell.slug, cell.digest, matrix.vulnerabilities, today)
    tag = image_tag(cell.slug, cell.digest)
    size = check_size(registry, cell.slug, cell.digest, cell.staging, tag, cell.release, matrix.size)
    write_record(record_path(results, profile, SIZE_STEP, cell.slug), size.record())
    return vulns_ok and size.ok, f"vulnerabilities: {vulns_why}; size: {size.why}"
