"""The benchmark payload in a real image with real torch, on a machine without a GPU: it says so, and
reports no number (never a zero, never a made-up figure). The GPU paths need a GPU runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from generator.sandbox import services
from tests.conftest import ROOT


def _cli(*args: str, results: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "generator", "--profile", "sandbox", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), "AIR_FLEET_RESULTS": str(results)},
    )


def test_bench_without_a_gpu_reports_no_number(tmp_path: Path) -> None:
    services.up(progress=lambda _: None)
    locked = _cli("lock", results=tmp_path)  # the stand-in bases' digests on this machine: build refuses without
    assert locked.returncode == 0, locked.stderr
    built = _cli("build", "1", results=tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    done = _cli("bench", "1", "--quick", "--no-gpus", "--json", results=tmp_path)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)["results"]
    assert result["status"] == "no GPU" and result["error"] is None
    assert result["output"]["torch"].startswith("2.13.0") and result["output"]["results"] == {}
    assert result["rows"] and all(row["value"] is None and row["fraction"] is None for row in result["rows"])
    record = json.loads((tmp_path / "sandbox" / "bench" / f"{result['slug']}.json").read_text())
    assert record["digest"] == result["digest"] and record["status"] == "no GPU"
