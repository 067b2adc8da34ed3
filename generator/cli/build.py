"""Building on the Docker engine: lock, fetch, build."""

from __future__ import annotations

import argparse
import sys

from generator.build.runlock import fleet_lock
from generator.build.steps import run_build, stage_cell, summary, write_images
from generator.cli.common import print_json
from generator.compile.step import compile_first
from generator.deps.step import run_lock
from generator.errors import FleetError
from generator.fleet import Fleet
from generator.progress import to_stderr
from generator.resolve.checks import FAIL
from generator.resolve.expand import select
from generator.status import BUILD_PASSED


def cmd_lock(fleet: Fleet, args: argparse.Namespace) -> int:
    outcome = run_lock(fleet, refresh=args.refresh or args.dry_run, dry_run=args.dry_run)
    for line in outcome.moved:
        print(f"moved: {line}")
    if args.refresh or args.dry_run:
        cells = ", ".join(outcome.changed_cells) or "none"
        print(f"{len(outcome.changed_cells)} cells' content digests {'would ' if args.dry_run else ''}change: {cells}")
    state = "not written (--dry-run)" if args.dry_run else "written" if outcome.written else "unchanged"
    print(f"{fleet.profile.lock}: {outcome.entries} inputs locked, {state}")
    for failure in outcome.failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if outcome.failures else 0


def cmd_fetch(fleet: Fleet, args: argparse.Namespace) -> int:
    wanted = {c.slug for c in select(fleet.cells, args.cells)}
    everything = [r for r in fleet.render() if r.status != FAIL]  # as generate: FAILing cells are not written
    rendered = [r for r in everything if r.cell.slug in wanted]
    staged = 0
    # The build's lock: fetch rewrites images/ and the build contexts' wheels/, which a running build reads.
    with fleet_lock("build", fleet.profile.name, wait=not args.no_wait, progress=to_stderr):
        write_images(everything, fleet.profile.images)
        for r in rendered:
            staged += len(stage_cell(r, fleet.profile.images / r.cell.slug))
    print(f"{len(rendered)} cells: {staged} files verified and staged under {fleet.profile.images}")
    return 0


def cmd_compile(fleet: Fleet, args: argparse.Namespace) -> int:
    _, report = compile_first(fleet, select(fleet.cells, args.cells), wait=not args.no_wait)
    if args.json:
        print_json({"profile": fleet.profile.name, "compile": report.record() if report else None})
    else:
        print(report.line() if report else "compile: no selected cell builds an extension from source")
    return 1 if report and report.failed else 0


def cmd_build(fleet: Fleet, args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise FleetError("-j must be at least 1")
    fleet, compiled = compile_first(fleet, select(fleet.cells, args.cells), wait=not args.no_wait)
    everything = fleet.render()
    wanted = {c.slug for c in select(fleet.cells, args.cells)}
    selected = [r for r in everything if r.cell.slug in wanted]
    blocked = compiled.blocked() if compiled else {}  # the other cells still build
    results = run_build(
        fleet, selected, everything, jobs=args.jobs, wait=not args.no_wait, force=args.force, blocked=blocked
    )
    if args.json:
        record = compiled.record() if compiled else None
        print_json({"profile": fleet.profile.name, "compile": record, "results": [r.record() for r in results]})
    else:
        print(summary(results))
        if compiled:  # how many compilations this run paid for, and how many it reused
            print(compiled.line())
    return 1 if blocked or any(r.status not in BUILD_PASSED for r in results) else 0
