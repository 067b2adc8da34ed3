"""The logs of the sandbox's base images are their owner's only (0600), like the services' logs: debootstrap
and the stand-ins' builds run apt, whose output names the proxy URLs it uses, credentials included.

No engine and no network: a stand-in debootstrap on PATH, and a stand-in client for `docker import` and
`docker build`.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from generator.sandbox import bases, rootfs
from generator.sandbox.bases import DIGEST_LABEL, SandboxBaseError, ensure_bases, plan, stand_ins
from generator.sandbox.rootfs import ROOTFS_REF

PROXY_LINE = "I: Retrieving InRelease via http://user:secret@proxy.invalid:3128"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _world_readable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o644)
    return path


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The logs folder lives under AIR_FLEET_STATE: a temporary one, never the project's."""
    monkeypatch.setenv("AIR_FLEET_STATE", str(tmp_path / "state"))
    return tmp_path / "state"


class _Images:
    """`client.images`: the images a stand-in engine has, by ref."""

    def __init__(self, found: dict[str, Any]) -> None:
        self.found = found

    def get(self, ref: str) -> Any:
        return self.found[ref]


class _Api:
    """`client.api`: an import that reads its whole stream, a build that fails at its second step."""

    def import_image(self, src: Iterator[bytes], **_: object) -> None:
        for _chunk in src:
            pass

    def build(self, **_: object) -> Iterator[dict[str, Any]]:
        yield {"stream": "Step 1/2 : FROM air-sandbox/debian:bookworm\n"}
        yield {"stream": f"Step 2/2 : RUN apt-get update\n{PROXY_LINE}\n"}
        yield {"error": "exit 100", "errorDetail": {"message": "exit 100"}}


def test_the_debootstrap_log_is_0600_and_holds_one_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An older run's 0644 log is made 0600 on open and emptied: the log is debootstrap's last run only."""
    fake = tmp_path / "bin" / "debootstrap"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho '{PROXY_LINE}'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    log = _world_readable(tmp_path / "logs" / "debian-bookworm.log", "an earlier run\n")
    with pytest.raises(SandboxBaseError, match=re.escape("debootstrap from http://mirror.invalid/debian failed")):
        rootfs._debootstrap(tmp_path / "rootfs", "http://mirror.invalid/debian", log)
    assert _mode(log) == 0o600, oct(_mode(log))
    text = log.read_text()
    assert text.startswith("$ debootstrap ") and PROXY_LINE in text and "an earlier run" not in text


def test_the_import_appends_to_the_log_and_keeps_it_0600(tmp_path: Path) -> None:
    target = tmp_path / "rootfs"
    (target / "etc").mkdir(parents=True)
    log = _world_readable(tmp_path / "logs" / "debian-bookworm.log", "$ debootstrap ...\n")
    client = SimpleNamespace(api=_Api(), images=_Images({ROOTFS_REF: SimpleNamespace(id="sha256:rootfs")}))
    assert rootfs._import(client, target, log) == "sha256:rootfs"
    assert _mode(log) == 0o600 and log.read_text().startswith("$ debootstrap ...\n")


def test_a_stand_in_build_log_is_0600(state: Path) -> None:
    scratch = next(s for s in stand_ins() if s.kind == "scratch")
    log = _world_readable(rootfs.logs_dir() / f"{scratch.slug}.log", "an earlier build\n")
    client = SimpleNamespace(api=_Api())
    with pytest.raises(SandboxBaseError, match=re.escape("build failed at Step 2/2 : RUN apt-get update: exit 100")):
        bases._build(client, plan(scratch), "sha256:digest")
    assert _mode(log) == 0o600, oct(_mode(log))
    text = log.read_text()
    assert PROXY_LINE in text and "an earlier build" not in text


def test_ensure_bases_makes_the_logs_of_earlier_runs_private(state: Path) -> None:
    """Nothing is built when all is up to date, so no log is reopened: their modes are fixed all the same."""
    scratch = next(s for s in stand_ins() if s.kind == "scratch")
    images = {
        ROOTFS_REF: SimpleNamespace(id="sha256:rootfs", labels={}),
        scratch.ref: SimpleNamespace(id="sha256:s", labels={DIGEST_LABEL: plan(scratch).digest("sha256:rootfs")}),
    }
    logs = [
        _world_readable(rootfs.logs_dir() / name, "an earlier run\n")
        for name in ("debian-bookworm.log", f"{scratch.slug}.log")
    ]
    results = ensure_bases(SimpleNamespace(images=_Images(images)), [scratch], progress=lambda _: None, registry=None)
    assert [outcome for _, outcome in results] == [bases.UP_TO_DATE]
    assert {_mode(log) for log in logs} == {0o600}
