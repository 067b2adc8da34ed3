"""Fixtures shared by the integration tests that need more than the Docker engine: a real Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import Browser, find_chromium
from tests.conftest import ROOT


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where tests leave files for people (screenshots): $AIR_FLEET_ARTIFACTS or results/test-artifacts."""
    folder = Path(os.environ.get("AIR_FLEET_ARTIFACTS", ROOT / "results" / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright. `make test` installs it (`python -m generator sandbox
    browser`), so in CI a missing browser is a failure; elsewhere the browser tests are skipped with the
    command to run."""
    executable = find_chromium()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium on PATH: `make test` installs it with `python -m generator sandbox browser`")
        pytest.skip("no chromium on PATH: run `python -m generator sandbox browser` (as root) to install it")
    with Browser(executable) as opened:
        yield opened
