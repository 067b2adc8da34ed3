"""What upstream has that the fleet does not use yet: outdated."""

from __future__ import annotations

import argparse

from generator.cli.common import print_json
from generator.fleet import Fleet
from generator.upstream.index import PackageIndex
from generator.upstream.outdated import Outdated, outdated


def cmd_outdated(fleet: Fleet, args: argparse.Namespace) -> int:
    index = PackageIndex.from_pip()
    found = outdated(fleet.matrix, fleet.unlocked_cells, fleet.facts, index)
    if args.json:
        print_json({"profile": fleet.profile.name, "python": fleet.matrix.python, "index": index.url, **found.record()})
    else:
        for line in lines(found):
            print(line)
        where = f"the package index at {index.url}, Python {fleet.matrix.python}"
        if found.count:
            print(f"{found.count} proposals ({where}); {fleet.matrix.file} is not changed")
        else:
            print(f"nothing outdated ({where})")
    # Like `check`: 1 says "something to look at", for a CI step or a script.
    return 1 if found.count else 0


def lines(found: Outdated) -> list[str]:
    """One line per proposal: its category, the release, and what a person would do."""
    out = []
    for t in found.torch:
        what = f"patch of {t.minor}" if t.kind == "patch" else f"new minor {t.minor}"
        if t.kind == "minor":
            what += " (in the knowledge)" if t.known else " (NOT in the knowledge)"
        out.append(f"torch      {t.version:<9} {what}: {t.action}")
    for p in found.pins:
        also = f"; also {', '.join(p.newer[1:])}" if len(p.newer) > 1 else ""
        out.append(f"pin        {p.extension} {p.current} -> {p.newer[0]} on torch {p.row} ({p.origin}{also})")
    for k in found.knowledge:
        pins = f"pins torch {k.torch}" if k.torch else "its torch pin not given by the index"
        out.append(f"knowledge  {k.project} {k.version} ({pins}): {k.action}")
    return out
