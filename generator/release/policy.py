"""The gate's policy decisions, pure: the same inputs, the same verdict, no clock, no I/O.

- `vulnerability_verdict`: may a cell with these findings be promoted, under the matrix's
  `vulnerabilities:` policy, on this date? Each refusal names the advisory.
- `size_verdict`: may a cell of this size replace its blessed image, under the matrix's `size:` policy?

Each returns (ok, why): why is one line a person can act on.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from fnmatch import fnmatchcase

from generator.audit.findings import UNKNOWN, Finding
from generator.model import SEVERITY_LEVELS, Allowance, SizePolicy, VulnerabilityPolicy

MB = 1_000_000


def _allowed(finding: Finding, allow: Sequence[Allowance], today: datetime.date) -> tuple[Allowance | None, str]:
    """The allowance that lets `finding` through today, or (None, a note on an expired one)."""
    expired = ""
    for entry in allow:
        if entry.id in finding.ids:
            if today <= entry.until:
                return entry, ""
            expired = f" (its allowance at {entry.origin} expired on {entry.until:%Y-%m-%d})"
    return None, expired


def _refused_by_severity(finding: Finding, policy: VulnerabilityPolicy) -> bool:
    if finding.severity == UNKNOWN:
        return policy.unknown == "fail"
    if policy.fail_on == "none":
        return False
    return SEVERITY_LEVELS.index(finding.severity) >= SEVERITY_LEVELS.index(policy.fail_on)


def vulnerability_verdict(
    policy: VulnerabilityPolicy,
    findings: Sequence[Finding],
    not_audited: Sequence[str],
    today: datetime.date,
) -> tuple[bool, str]:
    """(ok, why) for a cell's audit: refused when a finding's severity is refused (unknown by `unknown`)
    and no unexpired allowance names it, or when packages were not audited and `not_audited: fail`."""
    refused: list[tuple[Finding, str]] = []
    allowed: list[str] = []
    for finding in findings:
        if not _refused_by_severity(finding, policy):
            continue
        entry, expired = _allowed(finding, policy.allow, today)
        if entry is not None:
            allowed.append(f"{finding.id} allowed until {entry.until:%Y-%m-%d}")
        else:
            refused.append((finding, expired))
    if refused:
        named = "; ".join(
            f"{f.id} ({f.package} {f.version}, severity {f.severity}{', ' + f.link if f.link else ''}){expired}"
            for f, expired in refused
        )
        return False, f"known vulnerabilities: {named}"
    if not_audited and policy.not_audited == "fail":
        return False, f"not audited (the data had no answer): {', '.join(not_audited)}"
    parts = [f"{len(findings)} advisories, none refused" if findings else "no known vulnerabilities"]
    parts += allowed
    if not_audited:
        parts.append(f"{len(not_audited)} packages not audited")
    return True, "; ".join(parts)


def accepted_size(policy: SizePolicy, slug: str) -> int | None:
    """The largest size (bytes) the matrix accepts for this cell, or None when it accepts none."""
    sizes = [a.max_bytes for a in policy.accept if fnmatchcase(slug, a.cell)]
    return max(sizes) if sizes else None


def size_verdict(policy: SizePolicy, slug: str, blessed: int | None, candidate: int) -> tuple[bool, str]:
    """(ok, why): refused when the candidate outgrows the blessed size by more than the policy's percent,
    unless the matrix accepts the cell up to at least the candidate's size."""
    if blessed is None or blessed <= 0:
        return True, f"{candidate / MB:,.1f} MB, the first blessed size of this cell"
    growth = 100.0 * (candidate - blessed) / blessed
    change = f"{candidate / MB:,.1f} MB, {growth:+.1f} % over the blessed {blessed / MB:,.1f} MB"
    if growth <= policy.max_growth_percent:
        return True, change
    ceiling = accepted_size(policy, slug)
    if ceiling is not None and candidate <= ceiling:
        entry = next(a for a in policy.accept if fnmatchcase(slug, a.cell) and a.max_bytes == ceiling)
        return True, f"{change}: accepted up to {ceiling / MB:,.1f} MB at {entry.origin} ({entry.reason})"
    more = f"; the matrix accepts it only up to {ceiling / MB:,.1f} MB" if ceiling is not None else ""
    return False, (
        f"{change}, more than the {policy.max_growth_percent:g} % allowed{more}: find what grew, or accept it "
        "under `size: accept:` with a reason"
    )
