"""Canned run records for the page's tests, in the shapes the real steps write (see the integration tests
for records made by real builds and probes): build, probe, bench, push, register, and the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generator.render.renderer import RenderedCell
from generator.results import read_record, record_path, write_record
from generator.site.catalogue import Records
from generator.verify.bench import BenchResult, compare, load_reference
from tests.test_bench import H200

PROFILE = "default"
H200_OUTPUT: dict[str, Any] = H200  # the benchmark tests' canned H200 run
NO_GPU_OUTPUT: dict[str, Any] = {"schema": 1, "status": "no GPU", "reason": "torch.cuda.is_available() is False"}
# The config digest of the image the canned records tested (the push record names the same one).
IMAGE_ID = "sha256:" + "1c" * 32


def records(root: Path) -> Records:
    return Records(root / "results", PROFILE, root / "state" / "register")


def write(root: Path, step: str, slug: str, record: dict[str, Any]) -> None:
    write_record(record_path(root / "results", PROFILE, step, slug), record)


def read(root: Path, step: str, slug: str) -> dict[str, Any]:
    found = read_record(record_path(root / "results", PROFILE, step, slug))
    assert found is not None, (step, slug)
    return found


def build(root: Path, r: RenderedCell, *, digest: str | None = None, size: int = 3 * 2**30) -> None:
    write(
        root,
        "build",
        r.cell.slug,
        {
            "slug": r.cell.slug,
            "digest": digest or r.digest,
            "status": "built",
            "size": size,
            "created": "2026-11-28T03:40:00Z",
            "finished_at": "2026-11-28T03:41:00+0000",
        },
    )


def probe(root: Path, r: RenderedCell, *, status: str = "OK", gpus: bool = False, step: str = "probe") -> None:
    write(
        root,
        step,
        r.cell.slug,
        {
            "slug": r.cell.slug,
            "digest": r.digest,
            "status": status,
            "gpus": gpus,
            "error": None,
            "finished_at": "2026-11-28T03:45:00+0000",
            "checks": [{"id": "image", "title": "Image", "status": status, "detail": f"probe said {status}"}],
            "facts": {
                "python": {"version": r.cell.python},
                "torch": {"version": r.cell.torch, "devices": [{"name": "NVIDIA H200"}] if gpus else []},
                "distributions": ["torch==" + r.cell.torch, "numpy==2.1.0"],
            },
        },
    )


def bench(root: Path, r: RenderedCell, output: dict[str, Any]) -> None:
    result = BenchResult(
        r.cell.slug, r.ref, r.digest, True, False, str(output["status"]), output, compare(output, load_reference())
    )
    write(root, "bench", r.cell.slug, result.record())


def push(root: Path, r: RenderedCell, repo_digest: str) -> None:
    write(
        root,
        "push",
        r.cell.slug,
        {
            "slug": r.cell.slug,
            "digest": r.digest,
            "status": "pushed",
            "repository": r.cell.staging_image,
            "tags": [r.tag],
            "repo_digest": repo_digest,
            "image_id": IMAGE_ID,
            "pushed_at": "2026-11-28T04:00:00Z",
            "reason": None,
        },
    )


def promote(root: Path, r: RenderedCell, manifest_digest: str) -> None:
    write(
        root,
        "promote",
        r.cell.slug,
        {
            "slug": r.cell.slug,
            "digest": r.digest,
            "status": "promoted",
            "manifest_digest": manifest_digest,
            "staging_ref": f"{r.cell.staging_image}@{manifest_digest}",
            "release_ref": f"{r.cell.image}@{manifest_digest}",
            "tags": [r.tag, r.cell.slug, f"{r.cell.slug}-20261128"],
            "promoted_at": "2026-11-28T04:05:00Z",
            "reason": None,
        },
    )


def ledger(root: Path, entries: dict[str, dict[str, str]], workspace: str = "air-fleet") -> None:
    path = root / "state" / "register" / f"{workspace}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"schema": 1, "images": entries}), encoding="utf-8")


def sample(root: Path, cells: tuple[RenderedCell, ...] | list[RenderedCell]) -> None:
    """The records the page tests start from: the first cell built and probed without a GPU (its benchmark
    says "no GPU"), the second probed and benchmarked on an H200; every other cell has none."""
    build(root, cells[0])
    probe(root, cells[0])
    bench(root, cells[0], NO_GPU_OUTPUT)
    probe(root, cells[1], gpus=True, step="gpu-probe")
    bench(root, cells[1], H200_OUTPUT)
