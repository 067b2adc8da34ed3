"""The sandbox's service logs are its owner's only (0600): dockerd writes a registry's error text into its log,
and that text can echo credentials. No engine or registry is started here: `spawn` runs a stand-in program."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

from generator.sandbox import processes
from generator.sandbox.layout import StateFiles


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _spawn_and_wait(log: Path, pidfile: Path) -> None:
    pid = processes.spawn([sys.executable, "-c", "print('stand-in service')"], log, pidfile)
    assert processes.CHILDREN.pop(pid).wait(timeout=30) == 0


def test_a_new_service_log_is_0600(tmp_path: Path) -> None:
    files = StateFiles(tmp_path)
    for log, pidfile in ((files.dockerd_log, files.dockerd_pid), (files.registry_log, files.registry_pid)):
        _spawn_and_wait(log, pidfile)
        assert _mode(log) == 0o600, oct(_mode(log))
        assert "stand-in service" in log.read_text()


def test_an_existing_world_readable_log_is_made_0600_and_kept(tmp_path: Path) -> None:
    """A log an older version created 0644 keeps that mode on open(O_CREAT): the mode is fixed on every open."""
    files = StateFiles(tmp_path)
    files.dockerd_log.write_text("--- an earlier run\n")
    files.dockerd_log.chmod(0o644)
    _spawn_and_wait(files.dockerd_log, files.dockerd_pid)
    assert _mode(files.dockerd_log) == 0o600
    text = files.dockerd_log.read_text()
    assert text.startswith("--- an earlier run\n") and "stand-in service" in text  # appended, not truncated


def test_the_apt_log_is_0600_too(tmp_path: Path) -> None:
    path = tmp_path / "apt.log"
    path.write_text("old\n")
    path.chmod(0o644)
    with processes.append_private(path) as log:
        log.write(b"new\n")
    assert _mode(path) == 0o600 and path.read_text() == "old\nnew\n"


def test_up_makes_the_logs_of_running_services_private(tmp_path: Path) -> None:
    """`up` that reuses a running dockerd never reopens its log: it fixes the mode of what an older run made."""
    files = StateFiles(tmp_path)
    for log in (files.dockerd_log, files.registry_log, files.apt_log):
        log.write_text("--- an earlier run\n")
        log.chmod(0o644)
    processes.make_private(files.logs)
    assert {_mode(log) for log in (files.dockerd_log, files.registry_log, files.apt_log)} == {0o600}
