"""The vulnerability gate over a cell's audit record: what promote asks before it copies a candidate.

Reads results/<profile>/audit/<slug>.json (written by `audit`) and hands its findings to the pure
`vulnerability_verdict` (generator/release/policy.py). A missing record, or one for another content
digest, refuses: an audit of other bytes says nothing about these.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from generator.audit.findings import finding_of
from generator.audit.step import STEP
from generator.model import VulnerabilityPolicy
from generator.release.policy import vulnerability_verdict
from generator.results import record_for


def vulnerability_gate(
    results: Path, profile: str, slug: str, digest: str, policy: VulnerabilityPolicy, today: datetime.date
) -> tuple[bool, str]:
    record, why = record_for(results, profile, STEP, slug, digest)
    if record is None:
        return False, why
    findings = [finding_of(f) for f in record.get("findings") or [] if isinstance(f, dict)]
    skipped = [f"{n.get('package')} {n.get('version')}" for n in record.get("not_audited") or [] if isinstance(n, dict)]
    return vulnerability_verdict(policy, findings, skipped, today)
