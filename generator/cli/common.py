"""The commands of `python -m generator`, one module per stage; generator/cli/__init__.py parses and dispatches."""

from __future__ import annotations

import argparse
import json
from typing import Any

from generator.fleet import Fleet
from generator.render.renderer import RenderedCell
from generator.resolve.expand import select


def add_cells_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, description: str
) -> argparse.ArgumentParser:
    """A command over cells (`CELL...`, default all) with --json, its description printed as written."""
    s = sub.add_parser(
        name, help=summary, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    s.add_argument("cells", nargs="*", metavar="CELL", help="indexes, slugs or slug patterns (default: all)")
    s.add_argument("--json", action="store_true", help="print the records as JSON")
    return s


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def selected(fleet: Fleet, cells: list[str]) -> list[RenderedCell]:
    """The rendered cells named by indexes, slugs or patterns (all when none), in matrix order."""
    wanted = {c.slug for c in select(fleet.cells, cells)}
    return [r for r in fleet.render() if r.cell.slug in wanted]
