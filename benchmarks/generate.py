"""Benchmark `python -m generator generate` on a stress fleet of 1,000+ cells.

Builds a matrix out of facts the generator already knows (so no cell FAILs its checks), then measures,
in one run, the real CLI as a subprocess and the same phases in-process:

  cold     generate into an empty directory: every file is new;
  no-op    generate again: nothing may be written and no mtime may move;
  pin      change one torch row's flash-attn pin: only the cells using that row and extension change.

It prints figures and asserts nothing about speed. It exits 1 only when a correctness invariant breaks
(a FAIL cell, a no-op that writes, a pin change that touches the wrong cells), 2 on bad arguments.

It prints only what this run measured: no figure from elsewhere is divided into a ratio. Target here:
under 2 ms per cell cold, and a no-op that writes nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from generator.fleet import INDEX_FILE, Fleet, desired_files
from generator.model import Cell
from generator.render.writer import apply, plan
from generator.resolve.checks import FAIL
from generator.spec.knowledge import knowledge

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS_PER_CELL = 2.0

# Every combination is multiplied by clouds x variants x bases x torch rows = 2 x 2 x 2 x 3 = 24 cells.
PER_STACK = 24
APEX_CELLS = 4  # apex: devel only, and only on the torch whose CUDA is nvcc's (2.8.0+cu129): 2 clouds x 2 bases
# Extension combinations the knowledge resolves for every torch row below (flash-attn and xformers wheels
# with the torch ABI); pip stacks cycle through them so requirements.txt and the wheel lists both vary.
COMBOS: tuple[tuple[str, ...], ...] = ((), ("flash-attn",), ("xformers",), ("flash-attn", "xformers"))
FIXED_STACKS: dict[str, list[str]] = {
    "plain": [],
    "flash-attn": ["flash-attn"],
    "xformers": ["xformers"],
    "fa-xf": ["flash-attn", "xformers"],
    "apex": ["apex"],
}
FIXED_CELLS = (len(FIXED_STACKS) - 1) * PER_STACK + APEX_CELLS
# The pins of the default matrix.yaml. Torch rows must be distinct minors: the slug carries major.minor.
TORCH_ROWS: list[dict[str, str]] = [
    {"version": "2.6.0", "flash-attn": "2.7.4.post1", "xformers": "0.0.29.post3"},
    {"version": "2.7.1", "flash-attn": "2.8.3", "xformers": "0.0.31.post1"},
    # From the cu129 index: apex compiles only where torch's CUDA is nvcc's (12.9), as in matrix.yaml.
    {"version": "2.8.0", "index": "cu129", "flash-attn": "2.8.3", "xformers": "0.0.32.post2"},
]
# The pin change: xformers pins one exact torch, so it has no second valid version per row; flash-attn
# 2.8.2 has honest cxx11abiTRUE wheels for torch 2.7 like 2.8.3 does.
PIN_TORCH, PIN_EXT, PIN_FROM, PIN_TO = "2.7.1", "flash-attn", "2.8.3", "2.8.2"
APEX_COMMIT = "810ffae374a2b9cb4b5c5e28eaeca7d7998fca0c"

T = TypeVar("T")
Snapshot = dict[str, tuple[int, int, int]]  # relative path -> (mtime_ns, inode, size)


class InvariantError(Exception):
    """A correctness invariant broke: the benchmark's figures would mean nothing."""


# --- the stress matrix ---------------------------------------------------------------------------------


def pip_packages_for(cells: int) -> int:
    """How many pip stacks (one package each) bring the fleet to at least `cells` cells."""
    return max(1, math.ceil((cells - FIXED_CELLS) / PER_STACK))


def stress_matrix(packages: int, flash_attn_pin: str = PIN_FROM) -> dict[str, Any]:
    """A matrix of FIXED_CELLS + packages * PER_STACK cells, every one resolvable and OK."""
    names = [f"bench-pkg-{i:03d}" for i in range(packages)]
    stacks: dict[str, list[str]] = dict(FIXED_STACKS)
    for i, name in enumerate(names):
        stacks[f"pip-{i:03d}"] = [*COMBOS[i % len(COMBOS)], name]
    extensions: dict[str, dict[str, str]] = {"apex": {"version": APEX_COMMIT}}
    extensions.update({name: {"kind": "pip", "version": "1.0.0"} for name in names})
    rows = [dict(row) for row in TORCH_ROWS]
    for row in rows:
        if row["version"] == PIN_TORCH:
            row[PIN_EXT] = flash_attn_pin
    return {
        "schema": 1,
        "python": "3.12",
        "registry": {"host": "registry.example.com", "repository": "ml-platform/air-training"},
        "clouds": ["aws", "azure"],
        "variants": ["runtime", "devel"],
        "bases": ["databricks", "scratch"],
        "accelerators": ["GPU_1xA10", "GPU_1xH100", "GPU_8xH100"],
        "torch": rows,
        "stacks": stacks,
        "extensions": extensions,
        "exclude": [  # apex compiles with nvcc, and refuses a torch whose CUDA is not nvcc's
            {"variant": "runtime", "stack": "apex"},
            {"torch": ["2.6.0", "2.7.1"], "stack": "apex"},
        ],
        # Keeps the override path (and the no-EFA-block template branch) in the measured work.
        "overrides": [
            {"select": {"base": "scratch", "cloud": "aws", "variant": "runtime"}, "accelerators": ["GPU_1xA10"]}
        ],
    }


def write_matrix(path: Path, matrix: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(matrix, sort_keys=False), encoding="utf-8")


def pinned_slugs(cells: list[Cell]) -> set[str]:
    """Slugs of the cells the pin change must touch: that torch row AND that extension."""
    return {c.slug for c in cells if c.torch == PIN_TORCH and any(e.name == PIN_EXT for e in c.extensions)}


# --- measuring -----------------------------------------------------------------------------------------


@dataclass
class CliRun:
    wall_s: float  # subprocess wall clock: interpreter start, imports, load, render, plan, apply
    seconds: float  # what the CLI reports: render + plan + apply (it starts its clock after loading)
    written: int
    removed: int
    changes: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Phases:
    load_s: float
    render_s: float
    plan_s: float  # desired_files + plan: everything between rendering and touching the disk
    apply_s: float
    written: int
    removed: int

    @property
    def total_s(self) -> float:
        return self.load_s + self.render_s + self.plan_s + self.apply_s


def run_cli(matrix: Path, out: Path, *extra: str) -> CliRun:
    argv = [sys.executable, "-m", "generator", "--matrix", str(matrix), "generate", "--out", str(out), "--json"]
    started = time.perf_counter()
    proc = subprocess.run([*argv, *extra], cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise InvariantError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    return CliRun(wall, float(data["seconds"]), int(data["written"]), int(data["removed"]), list(data["changes"]))


def cli_startup() -> float:
    """Interpreter start plus importing the generator: a fixed cost of every CLI run, whatever the fleet."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "generator", "--version"], cwd=ROOT, capture_output=True, check=True)
    return time.perf_counter() - started


def run_phases(matrix: Path, out: Path) -> Phases:
    """What cmd_generate does, phase by phase, with the knowledge cache cleared as a fresh process has it."""
    knowledge.cache_clear()
    t0 = time.perf_counter()
    fleet = Fleet.load(matrix)
    t1 = time.perf_counter()
    rendered = fleet.render()
    t2 = time.perf_counter()
    if any(r.status == FAIL for r in rendered):
        raise InvariantError("a cell FAILs its checks in-process although `check` passed")
    desired = desired_files(rendered)
    changes = plan(out, desired)
    t3 = time.perf_counter()
    apply(changes, out, desired)
    t4 = time.perf_counter()
    writes = sum(1 for c in changes if c.action == "write")
    return Phases(t1 - t0, t2 - t1, t3 - t2, t4 - t3, writes, len(changes) - writes)


def snapshot(out: Path) -> Snapshot:
    """Every file under `out` with what a rewrite changes: an atomic replace gets a new inode and mtime."""
    snap: Snapshot = {}
    for dirpath, _, filenames in os.walk(out):
        for name in filenames:
            path = Path(dirpath) / name
            st = path.stat()
            snap[path.relative_to(out).as_posix()] = (st.st_mtime_ns, st.st_ino, st.st_size)
    return snap


def touched(before: Snapshot, after: Snapshot) -> tuple[set[str], set[str]]:
    """(cell dirs with a new or rewritten file, cell dirs that lost files); top-level files are left out."""
    written = {rel for rel, st in after.items() if before.get(rel) != st}
    gone = set(before) - set(after)
    return ({r.split("/", 1)[0] for r in written if "/" in r}, {r.split("/", 1)[0] for r in gone if "/" in r})


def source_stamp() -> tuple[int, int]:
    """(file count, newest mtime) of the generator's sources: this run's CLI and in-process code must agree."""
    files = [p for p in (ROOT / "generator").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return len(files), max((p.stat().st_mtime_ns for p in files), default=0)


def repeated(n: int, fn: Callable[[], T]) -> list[T]:
    """`n` results of `fn`: one run on a shared 2-core machine is noise, the median of a few is a figure."""
    return [fn() for _ in range(n)]


def require(ok: bool, message: str) -> None:
    if not ok:
        raise InvariantError(message)


# --- the benchmark -------------------------------------------------------------------------------------


def check_fleet(matrix: Path) -> dict[str, int]:
    """`check` before generating: generate refuses FAIL cells, and a benchmark of a refusal is no benchmark."""
    argv = [sys.executable, "-m", "generator", "--matrix", str(matrix), "check", "--json"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if not proc.stdout.strip():
        raise InvariantError(f"`check` printed nothing (exit {proc.returncode}): {proc.stderr.strip()}")
    counts = {k: int(v) for k, v in json.loads(proc.stdout)["counts"].items()}
    if counts.get(FAIL) or proc.returncode != 0:
        raise InvariantError(f"`check` reports FAIL cells in the stress matrix: {counts}")
    return counts


def benchmark(target_cells: int, repeat: int, work: Path) -> dict[str, Any]:
    packages = pip_packages_for(target_cells)
    matrix = work / "matrix.yaml"
    write_matrix(matrix, stress_matrix(packages))
    counts = check_fleet(matrix)

    knowledge.cache_clear()
    cells = Fleet.load(matrix).cells
    n = len(cells)
    startup = statistics.median(repeated(repeat, cli_startup))

    # Cold: a fresh empty directory each time; the last one stays for the no-op and pin-change runs.
    cold_cli: list[CliRun] = []
    for i in range(repeat):
        cold_cli.append(run_cli(matrix, work / f"cli-cold-{i}"))
    cold_phases = [run_phases(matrix, work / f"phases-cold-{i}") for i in range(repeat)]
    out = work / f"cli-cold-{repeat - 1}"
    first = snapshot(out)
    files_per_cell = (len(first) - 1) / n  # index.json is the one file outside the cell directories
    for written in [r.written for r in cold_cli] + [p.written for p in cold_phases]:
        require(written == len(first), f"cold run wrote {written} files, the fleet has {len(first)}")
    require(not [r for r in first if r.endswith(".tmp")], "temporary files left behind by atomic writes")

    # No-op: the same matrix again must write nothing and leave every mtime and inode as it was.
    noop_cli = repeated(repeat, lambda: run_cli(matrix, out))
    noop_phases = repeated(repeat, lambda: run_phases(matrix, out))
    for written, removed in [(r.written, r.removed) for r in noop_cli] + [(p.written, p.removed) for p in noop_phases]:
        require(written == 0 and removed == 0, f"no-op wrote {written} and removed {removed} files")
    require(snapshot(out) == first, "no-op regenerate changed an mtime, inode or size")

    # Pin change through the CLI; the revert in-process times the same kind of change phase by phase.
    old_slugs = pinned_slugs(cells)
    write_matrix(matrix, stress_matrix(packages, PIN_TO))
    knowledge.cache_clear()
    new_slugs = pinned_slugs(Fleet.load(matrix).cells)
    pin_cli = run_cli(matrix, out)
    pinned = snapshot(out)
    verify_pin_change(first, pinned, old_slugs, new_slugs, pin_cli.written, pin_cli.removed)
    write_matrix(matrix, stress_matrix(packages))
    pin_phases = run_phases(matrix, out)
    reverted = snapshot(out)
    verify_pin_change(pinned, reverted, new_slugs, old_slugs, pin_phases.written, pin_phases.removed)
    require(set(reverted) == set(first), "the revert did not restore the original file set")
    stale = run_cli(matrix, out, "--check")
    require(not stale.changes, f"`generate --check` finds {len(stale.changes)} stale files after the revert")

    cold_wall = statistics.median(r.wall_s for r in cold_cli)
    cold_ms = 1000 * cold_wall / n
    return {
        "cells": n,
        "pip_packages": packages,
        "files_per_cell": files_per_cell,
        "files": len(first),
        "check": counts,
        "cli_startup_s": startup,
        "runs": {
            "cold": summarise(cold_cli, cold_phases, n),
            "noop": summarise(noop_cli, noop_phases, n),
            "pin_change": summarise([pin_cli], [pin_phases], n),
        },
        "pin_change": {
            "change": f"torch {PIN_TORCH} {PIN_EXT} {PIN_FROM} -> {PIN_TO}",
            "expected_cells": len(new_slugs),
            "dirs_written": len(new_slugs),
            "dirs_removed": len(old_slugs),
            "untouched_cells": n - len(new_slugs),
        },
        "target": {
            "cold_ms_per_cell": cold_ms,
            "cold_ms_per_cell_best": 1000 * min(r.wall_s for r in cold_cli) / n,
            "target_ms_per_cell": TARGET_MS_PER_CELL,
            "cold_target_met": cold_ms < TARGET_MS_PER_CELL,
            "noop_writes_nothing": True,  # an InvariantError would have stopped the run otherwise
        },
    }


def verify_pin_change(
    before: Snapshot,
    after: Snapshot,
    old: set[str],
    new: set[str],
    written: int,
    removed: int,
) -> None:
    """The slug carries the pin, so a pin change renames its cells: new dirs written, old dirs removed."""
    require(len(old) == len(new) > 0, f"the pin change should rename cells one for one: {len(old)} -> {len(new)}")
    dirs_written, dirs_gone = touched(before, after)
    require(dirs_written == new, f"written dirs differ from the expected cells: {sorted(dirs_written ^ new)[:5]}")
    require(dirs_gone == old, f"removed dirs differ from the expected cells: {sorted(dirs_gone ^ old)[:5]}")
    expected = sum(1 for r in after if r.split("/", 1)[0] in new) + 1  # + index.json, which lists the slugs
    require(written == expected, f"{written} files written for {len(new)} cells, expected {expected}")
    require(removed == len(old), f"{removed} removals for {len(old)} renamed cells")
    require(before[INDEX_FILE] != after[INDEX_FILE], "index.json was not rewritten although cells were renamed")
    untouched = {r for r in before if r.split("/", 1)[0] not in old | {INDEX_FILE}}
    require(all(before[r] == after.get(r) for r in untouched), "a file of an unaffected cell was rewritten")


def summarise(cli: list[CliRun], phases: list[Phases], cells: int) -> dict[str, Any]:
    def med(values: Sequence[float]) -> float:
        return statistics.median(values)

    wall = med([r.wall_s for r in cli])
    return {
        "repeats": len(cli),
        "cli_wall_s": wall,
        # The best run: on a shared disk the slowest runs measure the neighbours, the fastest our own cost.
        "cli_wall_best_s": min(r.wall_s for r in cli),
        "cli_seconds": med([r.seconds for r in cli]),
        "written": cli[0].written,
        "removed": cli[0].removed,
        "ms_per_cell_wall": 1000 * wall / cells,
        "ms_per_cell_cli": 1000 * med([r.seconds for r in cli]) / cells,
        "phases_s": {
            "load": med([p.load_s for p in phases]),
            "render": med([p.render_s for p in phases]),
            "plan": med([p.plan_s for p in phases]),
            "apply": med([p.apply_s for p in phases]),
            "total": med([p.total_s for p in phases]),
        },
    }


# --- the report ----------------------------------------------------------------------------------------


def report(r: dict[str, Any]) -> str:
    runs = r["runs"]
    pin = r["pin_change"]
    target = r["target"]
    lines = [
        f"stress fleet: {r['cells']} cells ({r['pip_packages']} pip packages), {r['files']} files "
        f"({r['files_per_cell']:g} per cell + {INDEX_FILE})",
        f"check: {', '.join(f'{v} {k}' for k, v in sorted(r['check'].items()))}; "
        f"CLI start-up (interpreter + imports): {1000 * r['cli_startup_s']:.0f} ms",
        "",
        "CLI subprocess (`generate --json`), median of n; wall = whole process, best = fastest run,",
        "cli = the seconds the CLI reports itself (from argument parsing on, interpreter start-up excluded)",
    ]
    head = ["run", "n", "wall s", "best s", "cli s", "written", "removed", "ms/cell wall", "ms/cell cli"]
    rows = [
        [
            name,
            str(x["repeats"]),
            f"{x['cli_wall_s']:.3f}",
            f"{x['cli_wall_best_s']:.3f}",
            f"{x['cli_seconds']:.3f}",
            str(x["written"]),
            str(x["removed"]),
            f"{x['ms_per_cell_wall']:.3f}",
            f"{x['ms_per_cell_cli']:.3f}",
        ]
        for name, x in (("cold", runs["cold"]), ("no-op", runs["noop"]), ("pin change", runs["pin_change"]))
    ]
    lines += table(head, rows)
    lines += ["", "in-process phases, ms (median; knowledge cache cleared per run as in a fresh process)"]
    head = ["run", "load+expand", "render", "plan", "apply", "total", "ms/cell"]
    rows = []
    for name, x in (("cold", runs["cold"]), ("no-op", runs["noop"]), ("pin revert", runs["pin_change"])):
        p = x["phases_s"]
        ms = [f"{1000 * p[k]:.0f}" for k in ("load", "render", "plan", "apply", "total")]
        rows.append([name, *ms, f"{1000 * p['total'] / r['cells']:.3f}"])
    lines += table(head, rows)
    lines += [
        "",
        f"pin change ({pin['change']}): {pin['expected_cells']} cells use that row and extension;",
        f"  {pin['dirs_written']} dirs written under new slugs, {pin['dirs_removed']} old dirs removed "
        "(the slug carries the pin),",
        f"  {pin['untouched_cells']} cells untouched (mtimes and inodes checked): as expected, forward and back",
        "no-op: 0 files written, every mtime and inode unchanged",
        "",
        f"cold: {target['cold_ms_per_cell']:.3f} ms per cell end to end (best run: "
        f"{target['cold_ms_per_cell_best']:.3f}), {r['files_per_cell']:g} files per cell, median wall incl. "
        "interpreter start-up",
        f"target: < {target['target_ms_per_cell']:g} ms/cell cold: "
        f"{'met' if target['cold_target_met'] else 'NOT met'}; "
        f"no-op writes nothing: {'met' if target['noop_writes_nothing'] else 'NOT met'}",
    ]
    return "\n".join(lines)


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def fmt(row: list[str]) -> str:
        # First column left-aligned (names), figures right-aligned so digits line up.
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    return [fmt(head), "  ".join("-" * w for w in widths), *(fmt(row) for row in rows)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.generate",
        description=(
            "Time `python -m generator generate` on a stress fleet built from known facts: cold into an "
            "empty directory, a no-op regenerate, and one pin change. Prints figures; exits 1 only when a "
            "correctness invariant breaks (a FAIL cell, a no-op that writes, a pin change touching the wrong "
            "cells). Speed is reported, never asserted."
        ),
        epilog=(
            "examples:\n"
            "  .venv/bin/python -m benchmarks.generate              about 1,000 cells, table\n"
            "  .venv/bin/python -m benchmarks.generate --cells 5000 --json\n"
            "  .venv/bin/python -m benchmarks.generate --tmp /dev/shm   CPU cost only, no disk noise\n\n"
            f"The fleet is {FIXED_CELLS} cells of fixed stacks plus {PER_STACK} per pip stack, so --cells is "
            f"rounded up (at least {FIXED_CELLS + PER_STACK})."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cells", type=int, default=1000, metavar="N", help="approximate fleet size (default: 1000)")
    parser.add_argument("--repeat", type=int, default=3, metavar="K", help="runs per measurement, median (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument(
        "--tmp",
        type=Path,
        default=None,
        metavar="DIR",
        help="where to make the scratch directory (default: the system temp dir); "
        "/dev/shm takes the disk out of the figures",
    )
    args = parser.parse_args(argv)
    if args.cells < 1 or args.repeat < 1:
        parser.error("--cells and --repeat must be positive")
    stamp = source_stamp()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-", dir=args.tmp) as tmp:
        try:
            result = benchmark(args.cells, args.repeat, Path(tmp))
        except InvariantError as exc:
            # An edit to generator/ mid-run makes the subprocesses render with other code than the
            # in-process runs (and than the earlier subprocesses): say so rather than blame the generator.
            moved = source_stamp() != stamp
            hint = " (generator/ changed during the run: rerun before trusting this)" if moved else ""
            print(f"invariant broken: {exc}{hint}", file=sys.stderr)
            return 1
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
