"""The disk floor `sandbox up` checks, on the real filesystem of a temporary folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from generator.sandbox import diskspace
from generator.sandbox.errors import ServiceError


def test_the_floor_defaults_and_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(diskspace.MIN_FREE_ENV, raising=False)
    assert diskspace.minimum_free() == diskspace.DEFAULT_MIN_FREE_GB
    monkeypatch.setenv(diskspace.MIN_FREE_ENV, " 12.5 ")
    assert diskspace.minimum_free() == 12.5
    for bad in ("lots", "-1"):
        monkeypatch.setenv(diskspace.MIN_FREE_ENV, bad)
        with pytest.raises(ServiceError, match=rf"^{diskspace.MIN_FREE_ENV}="):
            diskspace.minimum_free()


def test_a_store_not_made_yet_is_measured_on_its_nearest_folder(tmp_path: Path) -> None:
    found = diskspace.space("the registry's store", tmp_path / "not" / "yet")
    assert found.device == tmp_path.stat().st_dev
    assert found.free > 0


def test_one_filesystem_is_reported_once_naming_every_store_on_it(tmp_path: Path) -> None:
    stores = {"the registry's store": tmp_path / "registry", "the engine's images": tmp_path / "engine"}
    (line,) = diskspace.check(stores, 0)
    assert re.fullmatch(rf"\d+\.\d GB free for the registry's store \({tmp_path / 'registry'}\) and .*", line)
    with pytest.raises(ServiceError) as caught:
        diskspace.check(stores, 10**12)
    message = str(caught.value)
    assert message.count(" GB free for ") == 1
    assert f"the registry's store ({tmp_path / 'registry'}) and the engine's images ({tmp_path / 'engine'})" in message
