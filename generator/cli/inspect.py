"""Read-only views of the matrix: list, show, check, matrix."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from generator.cli.common import print_json
from generator.fleet import Fleet
from generator.render.renderer import cell_summary
from generator.resolve.checks import FAIL, summary_table, worst
from generator.resolve.expand import select
from generator.status import Verdict
from generator.tables import table


def _extensions(cell_json: dict[str, Any]) -> str:
    return " ".join(f"{e['name']}=={e['version']}" for e in cell_json["extensions"]) or "-"


def cmd_list(fleet: Fleet, args: argparse.Namespace) -> int:
    summaries = [cell_summary(c) for c in fleet.cells]
    if args.json:
        print_json({"matrix": str(fleet.matrix.file), "cells": summaries})
        return 0
    rows = []
    for s in summaries:
        t = s["torch"]
        rows.append(
            [
                s["index"],
                s["slug"],
                s["base_image"],
                s["python"],
                s["cuda"] or "none",
                f"{t['torch']}/{t['torchvision']}/{t['torchaudio']}",
                t["index"],
                t["cxx11_abi"],
                _extensions(s),
                ",".join(a.removeprefix("GPU_") for a in s["accelerators"]),
            ]
        )
    print(
        table(
            [
                "#",
                "slug",
                "base image",
                "py",
                "cuda",
                "torch/vision/audio",
                "index",
                "abi",
                "extensions",
                "accelerators",
            ],
            rows,
        )
    )
    print(f"\n{len(rows)} cells from {fleet.matrix.file}")
    return 0


def cmd_show(fleet: Fleet, args: argparse.Namespace) -> int:
    (cell,) = select(fleet.cells, [args.cell])[:1]
    (rendered,) = fleet.render([cell])
    info = {
        **cell_summary(cell),
        "digest": rendered.digest,
        "tag": rendered.tag,
        "ref": rendered.release_ref,
        "candidate": rendered.ref,
        "status": rendered.status,
        "checks": [{"id": c.id, "title": c.title, "status": c.status, "detail": c.detail} for c in rendered.checks],
        "wheels": [
            {"filename": a.filename, "url": a.url, "sha256": a.sha256} for e in cell.extensions for a in e.artifacts
        ],
    }
    if args.json:
        print_json(info)
        return 0
    t = info["torch"]
    print(f"cell {cell.index}: {cell.slug}  [{rendered.status}]")
    print(f"  base       {cell.base_image} ({cell.base}, {cell.variant}); CUDA {cell.cuda}; Python {cell.python}")
    print(
        f"  torch      {t['torch']} / torchvision {t['torchvision']} / torchaudio {t['torchaudio']} "
        f"from {t['index']} (CUDA {t['cuda']}, C++11 ABI {t['cxx11_abi']}, NCCL {t['nccl']})"
    )
    for e in cell.extensions:
        print(f"  extension  {e.name} {e.version} ({e.build}): {e.problem or e.abi_note}")
    for w in info["wheels"]:
        print(f"  wheel      {w['filename']}  {w['url'] or '(package index; resolved by lock)'}")
    print(f"  blessed    {', '.join(cell.accelerators)} on {cell.cloud} (host driver {cell.host_driver})")
    print(f"  image      {rendered.release_ref}  (built and tested as {rendered.ref}, then promoted)")
    print(f"  digest     {rendered.digest}\n")
    print(summary_table(list(rendered.checks)))
    return 0


def cmd_check(fleet: Fleet, args: argparse.Namespace) -> int:
    cells = select(fleet.cells, args.cells)
    results = [(c, fleet.checks(c)) for c in cells]
    counts = Counter(worst([k.status for k in checks]) for _, checks in results)
    if args.json:
        print_json(
            {
                "cells": [
                    {
                        "index": c.index,
                        "slug": c.slug,
                        "status": worst([k.status for k in checks]),
                        "checks": [k.__dict__ for k in checks],
                    }
                    for c, checks in results
                ],
                "counts": dict(counts),
            }
        )
    else:
        for cell, checks in results:
            print(f"# {cell.index} {cell.slug}: {worst([k.status for k in checks])}\n")
            print(summary_table(checks))
        print(", ".join(f"{counts.get(s, 0)} {s}" for s in Verdict) + f" of {len(cells)} cells")
    return 1 if counts.get(FAIL) else 0


def cmd_matrix(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.ci.plan import job_axes

    include = [{**job_axes(r), "status": r.status} for r in fleet.render()]
    print_json({"include": include})
    return 0
