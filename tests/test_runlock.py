"""Run locks: `fetch` stages into the build contexts, so it takes the lock `build` takes (build/runlock.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from generator.build.runlock import fleet_lock
from generator.cli import main
from tests.conftest import MINIMAL, WriteMatrix


@pytest.fixture
def matrix(write_matrix: WriteMatrix, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIR_FLEET_STATE", str(tmp_path / "state"))
    return write_matrix(MINIMAL)


def test_fetch_fails_at_once_with_no_wait_while_a_build_runs(matrix: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fleet_lock("build", "default"):
        assert main(["--matrix", str(matrix), "fetch", "--no-wait"]) == 2
    err = capsys.readouterr().err
    assert "another build of the default fleet is running" in err and len(err.splitlines()) == 1
    assert not (matrix.parent / "images").exists()  # nothing was written under the running build
    assert main(["--matrix", str(matrix), "fetch", "--no-wait"]) == 0  # free again


def test_fetch_waits_for_a_running_build(matrix: Path, capsys: pytest.CaptureFixture[str]) -> None:
    held, release = threading.Event(), threading.Event()

    def build() -> None:
        with fleet_lock("build", "default"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=build)
    thread.start()
    held.wait(10)
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    assert main(["--matrix", str(matrix), "fetch"]) == 0
    assert time.monotonic() - started >= 0.4
    thread.join()
    assert "waiting for another build of the default fleet to finish" in capsys.readouterr().err
