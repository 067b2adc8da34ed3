"""The promotion gate (generator/release/gate.py): a candidate is promoted only if its probes tested it."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.release.gate import Candidate, gate, promotion_gate
from generator.results import record_path, write_record

PROFILE, SLUG = "default", "aws-devel-torch2.8"
CONTENT = "sha256:" + "c0" * 32
MANIFEST = "sha256:" + "3a" * 32
CONFIG = "sha256:" + "cf" * 32
CANDIDATE = Candidate(MANIFEST, CONFIG)


def probe(results: Path, step: str = "probe", **fields: object) -> None:
    record = {"slug": SLUG, "digest": CONTENT, "status": "OK", "manifest_digest": MANIFEST, **fields}
    write_record(record_path(results, PROFILE, step, SLUG), record)


def decide(results: Path, *, gpu: bool = False, candidate: Candidate = CANDIDATE) -> tuple[bool, str]:
    return promotion_gate(results, PROFILE, SLUG, CONTENT, candidate, needs_gpu_probe=gpu)


def test_a_probe_that_tested_the_candidate_lets_it_through(tmp_path: Path) -> None:
    probe(tmp_path)
    assert decide(tmp_path) == (True, "probe OK for 3a3a3a3a3a3a")


def test_no_probe_or_a_failed_one_or_another_build_is_refused(tmp_path: Path) -> None:
    assert decide(tmp_path) == (False, "no probe record: run `probe` first")
    probe(tmp_path, status="FAIL")
    assert decide(tmp_path) == (False, "probe FAIL")
    probe(tmp_path, digest="sha256:" + "00" * 32)
    assert decide(tmp_path)[1] == "the probe record is for 000000000000, not c0c0c0c0c0c0: probe again"


def test_a_probe_of_another_manifest_is_refused_by_name(tmp_path: Path) -> None:
    probe(tmp_path, manifest_digest="sha256:" + "99" * 32)
    ok, why = decide(tmp_path)
    assert not ok and why == "the probe record names manifest 999999999999, not the candidate 3a3a3a3a3a3a"


@pytest.mark.parametrize(("image", "ok"), [(CONFIG, True), ("sha256:" + "ee" * 32, False), (None, False)])
def test_a_local_probe_before_the_push_counts_only_for_the_same_config(
    tmp_path: Path, image: str | None, ok: bool
) -> None:
    probe(tmp_path, manifest_digest=None, image_id=image)
    assert decide(tmp_path)[0] is ok
    # An index (a multi-platform candidate) names no one config: only a record naming its digest counts.
    assert decide(tmp_path, candidate=Candidate(MANIFEST, None))[0] is False


def test_a_cuda_image_also_needs_a_gpu_probe_of_the_same_manifest(tmp_path: Path) -> None:
    probe(tmp_path)
    assert decide(tmp_path, gpu=True) == (False, "no GPU probe record: run `probe --gpus` first")
    probe(tmp_path, "gpu-probe", manifest_digest="sha256:" + "99" * 32, gpus=True)
    assert decide(tmp_path, gpu=True)[1].startswith("the GPU probe record names manifest 999999999999")
    probe(tmp_path, "gpu-probe", gpus=True, status="WARN")
    assert decide(tmp_path, gpu=True) == (True, "probe OK, GPU probe WARN for 3a3a3a3a3a3a")


def test_a_gpu_probe_alone_covers_the_push_gate_and_the_cpu_probe(tmp_path: Path) -> None:
    write_record(record_path(tmp_path, PROFILE, "build", SLUG), {"slug": SLUG, "digest": CONTENT, "status": "built"})
    probe(tmp_path, "gpu-probe", gpus=True)
    assert gate(tmp_path, PROFILE, SLUG, CONTENT) == (True, "build built, probe OK")
    assert decide(tmp_path, gpu=True)[0] is True
