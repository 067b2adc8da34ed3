"""Shared fixtures: small matrices written to temp files, and the CLI run as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from generator.fleet import Fleet

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MATRIX = ROOT / "matrix.yaml"

# The smallest valid matrix: one cloud, one variant, one torch, one plain stack -> one cell.
MINIMAL = """\
schema: 1
registry: {host: registry.example.com, repository: team/air}
clouds: [aws]
variants: [runtime]
accelerators: [GPU_1xA10]
torch:
  - {version: 2.6.0}
"""

WriteMatrix = Callable[[str], Path]


@pytest.fixture
def write_matrix(tmp_path: Path) -> WriteMatrix:
    """Write matrix text (dedented) to <tmp>/matrix.yaml and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "matrix.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def load_fleet(write_matrix: WriteMatrix) -> Callable[[str], Fleet]:
    """Load matrix text into a Fleet (raises MatrixError on bad input)."""

    def load(text: str) -> Fleet:
        return Fleet.load(write_matrix(text))

    return load


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m generator ARGS` as a subprocess, the way users and CI run it."""
    return subprocess.run(
        [sys.executable, "-m", "generator", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
