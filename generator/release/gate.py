"""The gates: which cells may be pushed as candidates, and which candidates may be promoted.

**Push** (a candidate to staging): the cell's build record (`results/<profile>/build/<slug>.json`) says
`built` or `up to date` for the cell's current content digest AND a probe record (`probe/<slug>.json`,
else `gpu-probe/<slug>.json`: at least `{"slug", "digest", "status"}`, status OK / WARN / FAIL / N/A) is
for the same digest and did not FAIL. N/A (nothing measurable failed) passes; FAIL, a missing record or an
unknown status does not.

**Promote** (a staging manifest to the release repository): the probe records must have tested THAT
manifest: each names the manifest digest it ran (pulled by digest, or a local image already pushed), or,
for a probe of the local image before its push, the image ID, which must be the manifest's config digest
(the config fixes every layer's content). A cell whose image carries CUDA also needs a GPU probe record
(`gpu-probe/`) that passed for that manifest: the CPU probe cannot see kernels, NCCL or the driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.results import read_record, record_path
from generator.status import BUILD_PASSED, PROBE_PASSED

PROBE_STEPS = ("probe", "gpu-probe")


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
    records = [r for r in (read_record(record_path(results, profile, s, slug)) for s in PROBE_STEPS) if r]
    if not records:
        return False, "no probe record: run `probe` first"
    probe = records[0]
    why = _for_this_build(probe, slug, digest)
    if why:
        return False, why
    status = probe.get("status")
    if status not in PROBE_PASSED:
        return False, f"probe {status}"
    return True, f"build {build['status']}, probe {status}"


@dataclass(frozen=True)
class Candidate:
    """What the staging repository holds for a cell: its manifest digest and the config it names."""

    manifest_digest: str
    config_digest: str | None  # None for an index (a multi-platform candidate): then only the digest counts


def promotion_gate(
    results: Path, profile: str, slug: str, digest: str, candidate: Candidate, *, needs_gpu_probe: bool
) -> tuple[bool, str]:
    """May this candidate be promoted? (ok, why): its probes passed for this content digest AND tested
    this manifest."""
    said = []
    for step in ("probe", "gpu-probe") if needs_gpu_probe else ("probe",):
        name = "GPU probe" if step == "gpu-probe" else "probe"
        record = read_record(record_path(results, profile, step, slug))
        if record is None and step == "probe":  # a GPU runner's probe covers the CPU one
            record = read_record(record_path(results, profile, "gpu-probe", slug))
        if record is None:
            return False, f"no {name} record: run `probe{' --gpus' if step == 'gpu-probe' else ''}` first"
        why = _for_this_build(record, slug, digest) or _tested(record, candidate)
        if why:
            return False, f"the {name} record {why}"
        if record.get("status") not in PROBE_PASSED:
            return False, f"{name} {record.get('status')}"
        said.append(f"{name} {record.get('status')}")
    return True, ", ".join(said) + f" for {short_digest(candidate.manifest_digest)}"


def _for_this_build(record: dict[str, Any], slug: str, digest: str) -> str | None:
    if record.get("slug", slug) != slug or record.get("digest") != digest:
        return f"is for {short_digest(record.get('digest'))}, not {short_digest(digest)}: probe again"
    return None


def _tested(record: dict[str, Any], candidate: Candidate) -> str | None:
    """None when the record tested the candidate's bytes; else why not."""
    named = record.get("manifest_digest")
    if named:
        if named == candidate.manifest_digest:
            return None
        return f"names manifest {short_digest(named)}, not the candidate {short_digest(candidate.manifest_digest)}"
    image = record.get("image_id")
    if image and candidate.config_digest and image == candidate.config_digest:
        return None  # probed locally before the push: the same config, so the same layers
    return (
        f"tested image {short_digest(image)}, not the candidate {short_digest(candidate.manifest_digest)} "
        f"(config {short_digest(candidate.config_digest)}): probe it again (it pulls the candidate by digest)"
    )


def short_digest(digest: object) -> str:
    """The first 12 hex digits, enough to tell two digests apart in a message."""
    return str(digest).removeprefix("sha256:")[:12] if digest else "no digest"
