"""The push gate: which cells may be pushed, from their build and probe records.

A cell is pushed only if its build record (`results/<profile>/build/<slug>.json`) says `built` or
`up to date` for the cell's current digest AND its probe record (`results/<profile>/probe/<slug>.json`:
at least `{"slug", "digest", "status"}`, status one of OK / WARN / FAIL / N/A) is for the same digest
and did not FAIL. N/A (nothing measurable failed) passes; FAIL, a missing record or an unknown status
does not.
"""

from __future__ import annotations

from pathlib import Path

from generator.results import read_record, record_path
from generator.status import BUILD_PASSED, PROBE_PASSED


def gate(results: Path, profile: str, slug: str, digest: str) -> tuple[bool, str]:
    """May this cell be pushed? (ok, why) from its build and probe records, both for this very digest."""
    build = read_record(record_path(results, profile, "build", slug))
    if build is None:
        return False, "no build record: run `build` first"
    if build.get("digest") != digest:
        return (
            False,
            f"the build record is for {short_digest(build.get('digest'))}, not {short_digest(digest)}: rebuild",
        )
    if build.get("status") not in BUILD_PASSED:
        return False, f"build {build.get('status')}"
    probe = read_record(record_path(results, profile, "probe", slug))
    if probe is None:
        return False, "no probe record: run `probe` first"
    if probe.get("slug", slug) != slug or probe.get("digest") != digest:
        return (
            False,
            f"the probe record is for {short_digest(probe.get('digest'))}, not {short_digest(digest)}: probe again",
        )
    status = probe.get("status")
    if status not in PROBE_PASSED:
        return False, f"probe {status}"
    return True, f"build {build['status']}, probe {status}"


def short_digest(digest: object) -> str:
    """The first 12 hex digits, enough to tell two digests apart in a message."""
    return str(digest).removeprefix("sha256:")[:12] if digest else "no digest"
