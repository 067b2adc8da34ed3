"""Where the project keeps state it makes at run time (all ignored by git, all under the project root)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    """Run-time state: sandbox services, rootfs, wheel cache. `AIR_FLEET_STATE` moves it (tests do)."""
    return Path(os.environ.get("AIR_FLEET_STATE", ROOT / ".cache"))


def results_dir() -> Path:
    """Per-cell result records (build, later probe/push/...): JSON files a later step can read."""
    return Path(os.environ.get("AIR_FLEET_RESULTS", ROOT / "results"))
