"""The on-line steps over a loaded fleet: lock, fetch, build. The CLI parses; this does the work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from generator import paths
from generator.build.builder import Builder, BuildResult
from generator.build.runlock import fleet_lock
from generator.deps.cells import requests_for, unlocked
from generator.deps.lockfile import read_lock, write_lock
from generator.deps.pins import Locked, Request, WheelhouseError
from generator.deps.wheelhouse import fetch, lock, stage
from generator.engine import connect
from generator.errors import FleetError
from generator.fleet import Fleet, desired_files
from generator.progress import Progress, to_stderr
from generator.render.renderer import RenderedCell, artifacts
from generator.render.writer import apply, plan
from generator.resolve.checks import FAIL
from generator.results import record_path, write_record
from generator.status import Built
from generator.tables import table

Say = Callable[[str], object]


# -- lock -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockOutcome:
    entries: int
    written: bool
    failures: list[str]


def run_lock(fleet: Fleet, say: Say = to_stderr) -> LockOutcome:
    """Resolve every file of every cell into the profile's lock; keep what is already locked.

    URL files are locked one by one so one unreachable host does not hide the others; the package
    index's files go to pip together. Whatever fails is listed, and the rest is still written.
    """
    wanted: dict[str, Request] = {}
    failures: list[str] = []
    for cell in fleet.unlocked_cells:
        try:
            for request in requests_for(cell):
                wanted.setdefault(request.key, request)
        except WheelhouseError as exc:  # e.g. an sdist with no URL: pip cannot lock it
            failures.append(f"{cell.slug}: {exc}")
    path = fleet.profile.lock
    previous = read_lock(path) if path.exists() else {}
    entries: dict[str, Locked] = {}
    by_url = [r for r in wanted.values() if r.url is not None]
    for request in by_url:
        try:
            entries.update(lock([request], previous, say))
        except WheelhouseError as exc:
            failures.append(str(exc))
    index = [r for r in wanted.values() if r.url is None]
    if index:
        try:
            entries.update(lock(index, previous, say))
        except WheelhouseError as exc:
            failures.append(str(exc))
    written = write_lock(path, dict(sorted(entries.items())))
    return LockOutcome(entries=len(entries), written=written, failures=failures)


# -- fetch -------------------------------------------------------------------------------------------------


class NotLocked(FleetError):
    pass


def stage_cell(rendered: RenderedCell, directory: Path) -> list[Path]:
    """Fetch (verified, cached) every file the cell COPYs and stage them into its wheels/."""
    cell = rendered.cell
    missing = unlocked(cell)
    if missing:
        raise NotLocked(f"{cell.slug}: not locked: {', '.join(missing)}; run `python -m generator lock`")
    files = []
    for a in artifacts(cell):
        assert a.url is not None and a.sha256 is not None and a.size is not None  # unlocked() said so
        files.append(fetch(Locked(a.filename, a.url, a.sha256, a.size)))
    return stage(files, directory / "wheels")


# -- generate (as a step of build) -----------------------------------------------------------------------


def write_images(rendered: list[RenderedCell], out: Path) -> int:
    """Bring the images directory up to date (the same incremental write as `generate`): files written."""
    desired = desired_files(rendered)
    changes = plan(out, desired)
    apply(changes, out, desired)
    return sum(1 for c in changes if c.action == "write")


# -- build -------------------------------------------------------------------------------------------------


def run_build(
    fleet: Fleet,
    selected: list[RenderedCell],
    everything: list[RenderedCell],
    jobs: int,
    wait: bool,
    quiet: bool = False,
    force: bool = False,
) -> list[BuildResult]:
    """Generate, then build the selected cells; FAILing cells are reported, never built. `force` builds
    even cells whose image exists."""
    out = fleet.profile.images
    progress = Progress(total=len(selected), quiet=quiet)
    results_dir = paths.results_dir()
    with fleet_lock("build", fleet.profile.name, wait=wait, progress=progress.note):
        ok = [r for r in everything if r.status != FAIL]
        written = write_images(ok, out)
        if written:
            progress.note(f"generate: {written} files written under {out}")
        client = connect()
        buildable = [r for r in selected if r.status != FAIL]
        refused = [_refused(r, fleet.profile.records, results_dir) for r in selected if r.status == FAIL]
        builder = Builder(client, out, results_dir, fleet.profile.records, stage_cell, progress, jobs=jobs, force=force)
        built = builder.run(buildable)
    by_slug = {r.slug: r for r in [*built, *refused]}
    return [by_slug[r.cell.slug] for r in selected if r.cell.slug in by_slug]


def _refused(rendered: RenderedCell, profile: str, results: Path) -> BuildResult:
    failed = [c.title for c in rendered.checks if c.status == FAIL]
    result = BuildResult(
        index=rendered.cell.index,
        slug=rendered.cell.slug,
        status=Built.FAILED,
        ref=rendered.ref,
        digest=rendered.digest,
        error=f"checks FAIL ({', '.join(failed)}): not built",
    )
    write_record(record_path(results, profile, "build", rendered.cell.slug), result.record())
    return result


def summary(results: list[BuildResult]) -> str:
    rows = [
        [
            r.index,
            r.slug,
            r.status if r.status != Built.UP_TO_DATE else f"up to date ({r.where})",
            f"{r.seconds:.1f}",
            _mb(r.size),
            (r.image_id or "")[7:19],
        ]
        for r in results
    ]
    lines = [table(["#", "cell", "status", "seconds", "size", "image"], rows)]
    for r in results:
        if r.status == Built.FAILED:
            lines.append(f"\n{r.slug} failed: {r.error}")
            if r.log_tail:
                lines.append(f"  last lines of {r.log}:\n{r.log_tail}")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append("\n" + ", ".join(f"{n} {status}" for status, n in counts.items()))
    return "\n".join(lines)


def _mb(size: int | None) -> str:
    return "" if size is None else f"{size / 1e6:,.0f} MB"
