"""The commands of `python -m generator`, one module per stage; generator/cli/__init__.py parses and dispatches."""

from __future__ import annotations

import json
from typing import Any

from generator.fleet import Fleet
from generator.render.renderer import RenderedCell
from generator.resolve.expand import select


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def selected(fleet: Fleet, cells: list[str]) -> list[RenderedCell]:
    """The rendered cells named by indexes, slugs or patterns (all when none), in matrix order."""
    wanted = {c.slug for c in select(fleet.cells, cells)}
    return [r for r in fleet.render() if r.cell.slug in wanted]
