"""Free disk space where the sandbox writes: the engine's images and the registry's blobs.

A fleet build or the test suite writes many GB into both. When the disk fills halfway through, every
later step fails with its own ENOSPC (each test's tmp_path, the registry's uploads, pytest's own output),
and the real cause is buried under hundreds of unrelated errors. `up` checks first and fails in one line
with the figures and the way out (`sandbox clean`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from generator.sandbox.errors import ServiceError

GB = 1000**3
# Measured on 2026-12-02: a fresh clone's `CI=true .ci/run` grew the disk by 15 GB at its peak (the engine's
# images and the registry's copies, sampled every 20 s). The floor leaves room above that peak.
DEFAULT_MIN_FREE_GB = 25.0
MIN_FREE_ENV = "AIR_FLEET_MIN_FREE_GB"


@dataclass(frozen=True)
class Space:
    """Free bytes on the filesystem that holds one of the sandbox's stores."""

    store: str  # what lives there, e.g. "the engine's images (/var/lib/docker)"
    path: Path
    free: int
    device: int


def minimum_free() -> float:
    """The floor in GB: AIR_FLEET_MIN_FREE_GB when set (0 turns the check off), else the default."""
    text = os.environ.get(MIN_FREE_ENV, "").strip()
    if not text:
        return DEFAULT_MIN_FREE_GB
    try:
        value = float(text)
    except ValueError:
        raise ServiceError(f"{MIN_FREE_ENV}={text!r}: expected a number of GB (0 turns the check off)") from None
    if value < 0:
        raise ServiceError(f"{MIN_FREE_ENV}={text!r}: expected a number of GB, not below 0")
    return value


def space(store: str, path: Path) -> Space:
    """Free space for `path`, measured on its nearest existing folder (the store may not exist yet)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    stats = os.statvfs(probe)
    return Space(store, path, stats.f_bavail * stats.f_frsize, probe.stat().st_dev)


def check(stores: Mapping[str, Path], minimum_gb: float) -> list[str]:
    """One line per filesystem the stores live on ("69.9 GB free for <store> (<path>) and ...");
    raise ServiceError when one of them has less than `minimum_gb` free."""
    free: dict[int, int] = {}
    names: dict[int, list[str]] = {}
    for store, path in stores.items():
        found = space(store, path)
        free.setdefault(found.device, found.free)
        names.setdefault(found.device, []).append(f"{store} ({path})")
    lines = {device: f"{free[device] / GB:.1f} GB free for {' and '.join(names[device])}" for device in free}
    short = [lines[device] for device in free if free[device] < minimum_gb * GB]
    if short:
        raise ServiceError(
            f"not enough disk space: {'; '.join(short)}, below the {minimum_gb:g} GB a fleet build or the test "
            f"suite needs; `python -m generator sandbox clean` removes what earlier runs left in the engine and "
            f"the registry ({MIN_FREE_ENV} sets the floor, 0 turns the check off)"
        )
    return list(lines.values())
