"""A small fleet on the sandbox profile for the integration tests: its matrix text, and the project folder
(matrix written, inputs locked, the engine, registry and stand-in base up) that builds it for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from generator.deps.step import run_lock
from generator.engine import connect
from generator.fleet import Fleet
from generator.sandbox import services
from generator.sandbox.bases import ensure_bases, stand_ins
from generator.spec.profiles import load_profile
from tests.conftest import ROOT

HOST_CA = "/etc/ssl/certs/ca-certificates.crt"  # builds reach the package index through the host's proxy


def sandbox_matrix(repository: str, variant: str, stacks: dict[str, str], cas: tuple[str, ...] = ()) -> str:
    """One cloud (aws), one variant, torch 2.13.0+cpu, Python 3.11; `stacks`: name -> pinned pip package
    (`""` for the plain stack), each package also declared as an extension; `cas`: CA files trusted besides
    the host's bundle."""
    lines = [
        "schema: 1",
        'python: "3.11"',
        f"registry: {{host: 127.0.0.1:5000, repository: {repository}}}",
        "clouds: [aws]",
        f"variants: [{variant}]",
        "accelerators: [GPU_1xA10]",
        f"extra_ca_certificates: [{', '.join((HOST_CA, *cas))}]",
        "torch:",
        "  - {version: 2.13.0, torchvision: none, torchaudio: none}",
        "stacks:",
        *(f"  {name}: [{pin.split('==')[0]}]" if pin else f"  {name}: []" for name, pin in stacks.items()),
        "extensions:",
        *(f"  {pin.split('==')[0]}: {{kind: pip, version: {pin.split('==')[1]}}}" for pin in stacks.values() if pin),
    ]
    return "\n".join(lines) + "\n"


def locked_project(factory: pytest.TempPathFactory, name: str, matrix: str, base: str) -> Path:
    """A temp folder holding `matrix` as matrix.yaml, its inputs locked; the stand-in base whose ref ends
    with `base` (e.g. `dcs-base-aws-runtime`) built and pushed."""
    services.up(progress=lambda _: None)
    ensure_bases(connect(), [s for s in stand_ins() if s.ref.endswith(base)], progress=lambda _: None)
    root = factory.mktemp(name)
    (root / "matrix.yaml").write_text(matrix, encoding="utf-8")
    outcome = run_lock(Fleet.for_profile(load_profile("sandbox", root / "matrix.yaml")), say=lambda _: None)
    assert outcome.failures == [], outcome.failures
    return root


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m generator --profile sandbox --matrix <root>/matrix.yaml ARGS`, records under <root>/results."""
    return subprocess.run(
        [sys.executable, "-m", "generator", "--profile", "sandbox", "--matrix", str(root / "matrix.yaml"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), "AIR_FLEET_RESULTS": str(root / "results"), **(env or {})},
    )
