"""`generate`: render images/ (only the files whose bytes change); `schema`: the matrix's JSON Schema."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from generator.atomic import write_if_changed
from generator.cli.common import print_json
from generator.fleet import Fleet, desired_files, failure_error
from generator.paths import ROOT
from generator.render.writer import Change, apply, plan
from generator.resolve.checks import FAIL
from generator.spec.knowledge import knowledge
from generator.spec.schema import schema_text


def cmd_generate(fleet: Fleet, args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else fleet.profile.images
    rendered = fleet.render()
    failing = [r for r in rendered if r.status == FAIL]
    if failing:  # one line per failing cell, in matrix order; nothing is written
        for r in failing:
            print(f"error: {failure_error(r, fleet.matrix)}", file=sys.stderr)
        return 2
    desired = desired_files(rendered)
    changes = plan(out, desired)
    lines = _group_changes(changes, out)  # before apply: removed directories are still there to describe
    if not args.check:
        apply(changes, out, desired)
    elapsed = time.perf_counter() - args.started
    writes = sum(1 for c in changes if c.action == "write")
    removes = len(changes) - writes
    if args.json:
        print_json(
            {
                "out": str(out),
                "cells": len(rendered),
                "check": args.check,
                "stale": bool(changes),
                "written": 0 if args.check else writes,
                "removed": 0 if args.check else removes,
                "changes": [{"action": c.action, "path": str(c.path), "reason": c.reason} for c in changes],
                "seconds": round(elapsed, 3),
            }
        )
    else:
        for line in lines:
            print(("stale: " if args.check else "") + line)
        if args.check:
            verdict = f"{len(changes)} stale; run `python -m generator generate`" if changes else "up to date"
            print(f"{out}: {len(rendered)} cells, {verdict}")
        else:
            print(f"{out}: {len(rendered)} cells, {writes} files written, {removes} removed in {elapsed:.2f} s")
    return 1 if args.check and changes else 0


def _group_changes(changes: list[Change], out: Path) -> list[str]:
    """One line per cell directory: `images/<slug>/: new Dockerfile, cell.json ...`."""
    groups: dict[str, list[str]] = {}
    for c in changes:
        rel = c.path.relative_to(out).as_posix()
        top, _, rest = rel.partition("/")
        key = f"{out / top}/" if rest or c.path.is_dir() else str(c.path)
        label = {
            "new": "new",
            "changed": "changed",
            "cell left the matrix": "removed (cell left the matrix)",
            "no longer generated": "removed",
            "left by a killed run": "removed (temp file of a killed run)",
        }[c.reason]
        groups.setdefault(key, []).append(f"{label} {rest}" if rest else label)
    lines = []
    for key, items in groups.items():
        if len(items) > 4 and all(i.startswith("new ") for i in items):
            items = [f"new ({len(items)} files)"]
        lines.append(f"{key}: {', '.join(items)}")
    return lines


SCHEMA_FILE = ROOT / "docs" / "matrix.schema.json"


def cmd_schema(fleet: Fleet, args: argparse.Namespace) -> int:
    """Write (or --check) the JSON Schema editors validate matrix.yaml with, from the one key definition.

    Always under the real fleet's knowledge (generator/knowledge/), whatever the profile: the file is what
    every matrix of the repository names on its `# yaml-language-server: $schema=` line."""
    del fleet  # the schema describes matrix files, not one matrix
    out: Path = args.out if args.out is not None else SCHEMA_FILE
    text = schema_text(knowledge())
    if args.check:
        current = out.read_text(encoding="utf-8") if out.is_file() else None
        if current == text:
            print(f"{out}: up to date")
            return 0
        print(f"stale: {out}; run `python -m generator schema`")
        return 1
    print(f"{out}: " + ("written" if write_if_changed(out, text.encode("utf-8")) else "up to date"))
    return 0
