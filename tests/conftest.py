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


def _swap(text: str, old: str, new: str) -> str:
    assert old in text, f"MINIMAL changed: {old!r} not found"
    return text.replace(old, new, 1)


def build_matrix(
    *torch: str,
    cloud: str = "aws",
    variant: str = "runtime",
    accelerators: str = "GPU_1xA10",
    base: str | None = None,
    python: str | None = None,
    stack: str | None = None,
    extra: str = "",
) -> str:
    """MINIMAL with its lines swapped: `torch` rows as flow mappings, `stack` a comma-separated extension list."""
    text = _swap(MINIMAL, "clouds: [aws]", f"clouds: [{cloud}]")
    text = _swap(text, "variants: [runtime]", f"variants: [{variant}]")
    text = _swap(text, "accelerators: [GPU_1xA10]", f"accelerators: [{accelerators}]")
    if torch:
        text = _swap(text, "  - {version: 2.6.0}\n", "".join(f"  - {row}\n" for row in torch))
    head = (f'python: "{python}"\n' if python is not None else "") + (f"bases: [{base}]\n" if base else "")
    text = _swap(text, "schema: 1\n", f"schema: 1\n{head}")
    if stack is not None:
        text += f"stacks: {{s: [{stack}]}}\n"
    return text + extra


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


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m generator ARGS` as a subprocess, the way users and CI run it; `env` adds variables."""
    return subprocess.run(
        [sys.executable, "-m", "generator", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **(env or {})},
    )
