"""Every timestamp the project writes into a record, ledger, lock file or log is UTC with `Z` (generator/clock.py).

Records once mixed local time with an offset (build, probe, bench, the run lock, the sandbox logs) and UTC `Z`
(push, register, the page); the tests run in a non-UTC zone so that a local time cannot pass for UTC.
"""

from __future__ import annotations

import datetime
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from generator.build.builder import BuildResult
from generator.build.runlock import hold
from generator.clock import utc_stamp
from generator.release.registration.base import Target
from generator.release.registration.ledger import Ledger
from generator.sandbox import processes
from generator.status import Built
from generator.verify.bench import BenchResult
from generator.verify.probe import ProbeResult

UTC_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
GENERATOR = Path(__file__).resolve().parents[1] / "generator"


@pytest.fixture(autouse=True)
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Kathmandu")  # +05:45: neither the hour nor the minute matches UTC
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _near_now(stamp: str) -> bool:
    assert UTC_Z.fullmatch(stamp), stamp
    when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return abs((datetime.datetime.now(datetime.UTC) - when).total_seconds()) < 60


def test_utc_stamp_converts_to_utc() -> None:
    nepal = datetime.timezone(datetime.timedelta(hours=5, minutes=45))
    assert utc_stamp(datetime.datetime(2026, 11, 30, 3, 0, 7, 999, tzinfo=nepal)) == "2026-11-29T21:15:07Z"
    assert _near_now(utc_stamp())


def test_build_probe_and_bench_records_say_utc() -> None:
    build = BuildResult(1, "s", Built.BUILT, "r", "d")
    probe = ProbeResult(1, "s", "r", "d", "OK", [], {}, gpus=False)
    bench = BenchResult("s", "r", "d", False, True, "no GPU", {}, [])
    for record in (build.record(), probe.record(), bench.record()):
        assert _near_now(record["finished_at"])


def test_the_run_lock_says_since_when_in_utc(tmp_path: Path) -> None:
    lock = tmp_path / "build.lock"
    with hold(lock, "test"):
        assert _near_now(json.loads(lock.read_text())["since"])


def test_the_ledger_converts_a_given_time_to_utc(tmp_path: Path) -> None:
    nepal = datetime.timezone(datetime.timedelta(hours=5, minutes=45))
    target = Target(f"registry.example.com/team/air:s-{'0' * 12}", "sha256:" + "1" * 64, "s")
    entry = Ledger(tmp_path / "ws.json").record(
        target, "databricks", now=datetime.datetime(2026, 1, 1, 5, 45, tzinfo=nepal)
    )
    assert entry.registered_at == "2026-01-01T00:00:00Z"


def test_the_sandbox_logs_stamp_each_start_in_utc(tmp_path: Path) -> None:
    log = tmp_path / "dockerd.log"
    pid = processes.spawn([sys.executable, "-c", "pass"], log, tmp_path / "dockerd.pid")
    processes.CHILDREN.pop(pid).wait(timeout=30)
    assert _near_now(log.read_text().split()[1])


def test_no_other_module_formats_a_timestamp() -> None:
    """One helper: a new record writer that formats its own time would bring the mixture back."""
    found = [
        f"{path.relative_to(GENERATOR)}:{n}"
        for path in sorted(GENERATOR.rglob("*.py"))
        if path.name != "clock.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "%H:%M:%S" in line or "isoformat(" in line
    ]
    assert found == []
