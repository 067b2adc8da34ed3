"""`size`: the size gate, asked of the registry."""

from __future__ import annotations

import argparse

from generator import paths
from generator.cli.common import add_cells_command, print_json, selected
from generator.fleet import Fleet

SIZE_HELP = """\
For each cell, the compressed size of its candidate (the staging repository's immutable tag) against
its blessed image (what the release repository's alias <slug> points at: what users pull today). A
candidate that grows more than `size: max_growth_percent` (default 10) over the blessed size is refused,
unless `size: accept:` names the cell with a size at least as large, and a reason. A cell with no
blessed image yet passes: its first size is recorded. Records: results/<profile>/size/<slug>.json (both
sizes and digests, the change, the verdict), which the page shows. Needs the registry, not an engine.

examples:
  python -m generator --profile sandbox size
  python -m generator --profile sandbox size 2 --json

matrix:
  size:
    max_growth_percent: 10
    accept:
      - {cell: aws-runtime-torch2.13-einops0.8.2, max_mb: 420, reason: "einops 0.9 brings its own kernels"}

exit status: 0 every cell passes; 1 a cell is refused or has no candidate; 2 the registry cannot be reached
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_cells_command(sub, "size", "the size gate: each candidate's size against its blessed image", SIZE_HELP)


def cmd_size(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.release.credentials import CredentialSource
    from generator.release.distribution import Registry
    from generator.release.size import check_sizes

    registry = Registry(fleet.matrix.registry_host, CredentialSource())
    chosen = selected(fleet, args.cells)
    results = check_sizes(registry, chosen, fleet.matrix.size, paths.results_dir(), fleet.profile.records)
    if args.json:
        print_json({"profile": fleet.profile.name, "results": [r.record() for r in results]})
    else:
        for r in results:
            print(f"{r.slug}: {'OK' if r.ok else 'REFUSED'}: {r.why}")
    return 0 if all(r.ok for r in results) else 1
