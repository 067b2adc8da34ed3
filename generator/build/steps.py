"""The on-line steps over a loaded fleet: lock, fetch, build. The CLI parses; this does the work."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from generator import paths
from generator.build.builder import Builder, BuildResult
from generator.build.runlock import fleet_lock
from generator.deps.cache import cache_path, cache_root, verified
from generator.deps.cells import unlocked, unlocked_files
from generator.deps.pins import Locked
from generator.deps.wheelhouse import fetch, stage
from generator.engine import connect
from generator.errors import FleetError
from generator.fleet import Fleet, desired_files
from generator.progress import Progress
from generator.render.renderer import RenderedCell, artifacts
from generator.render.writer import apply, plan
from generator.resolve.checks import FAIL
from generator.results import record_path, write_record
from generator.status import Built
from generator.tables import table

Say = Callable[[str], object]


# -- lock -------------------------------------------------------------------------------------------------


# -- fetch -------------------------------------------------------------------------------------------------


class NotLocked(FleetError):
    pass


def refuse_unlocked(selected: list[RenderedCell]) -> None:
    """Nothing is built from an input the lock does not pin: one line per cell, naming the inputs and
    the command that locks them (exit status 2). FAILing cells are refused anyway, for their checks."""
    lines = [
        f"{r.cell.slug}: not locked: {', '.join(missing)}"
        for r in selected
        if r.status != FAIL and (missing := unlocked(r.cell))
    ]
    if lines:
        raise NotLocked("; ".join(lines) + "; run `python -m generator lock`")


def stage_cell(rendered: RenderedCell, directory: Path) -> list[Path]:
    """Fetch (verified, cached) every file the cell COPYs and stage them into its wheels/."""
    cell = rendered.cell
    missing = unlocked_files(cell)
    if missing:
        raise NotLocked(f"{cell.slug}: not locked: {', '.join(missing)}; run `python -m generator lock`")
    files = []
    for a in artifacts(cell):
        assert a.sha256 is not None and a.size is not None  # unlocked_files() said so
        if a.compiled:  # no URL: the compile step put it in the wheelhouse (compiled, reused or pulled)
            files.append(compiled_wheel(a.filename, a.sha256, a.size))
            continue
        assert a.url is not None
        files.append(fetch(Locked(a.filename, a.url, a.sha256, a.size)))
    return stage(files, directory / "wheels")


def compiled_wheel(filename: str, sha256: str, size: int) -> Path:
    """A compiled wheel from the wheelhouse, verified; `build` compiles or pulls it before staging."""
    path = cache_path(cache_root(None), sha256, filename)
    if not verified(path, sha256, size):
        raise NotLocked(f"{filename}: the compiled wheel is not in the wheelhouse; `build` compiles or pulls it first")
    return path


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
    blocked: Mapping[str, str] | None = None,
) -> list[BuildResult]:
    """Generate, then build the selected cells; FAILing cells are reported, never built. `force` builds
    even cells whose image exists. `blocked` (slug -> why): cells that cannot be built this run (their
    compiled wheel did not compile), reported failed while the others build."""
    out = fleet.profile.images
    blocked = blocked or {}
    refuse_unlocked([r for r in selected if r.cell.slug not in blocked])
    progress = Progress(total=len(selected), quiet=quiet)
    results_dir = paths.results_dir()
    with fleet_lock("build", fleet.profile.name, wait=wait, progress=progress.note):
        ok = [r for r in everything if r.status != FAIL]
        written = write_images(ok, out)
        if written:
            progress.note(f"generate: {written} files written under {out}")
        client = connect()
        buildable = [r for r in selected if r.status != FAIL and r.cell.slug not in blocked]
        refused = [_refused(r, fleet.profile.records, results_dir) for r in selected if r.status == FAIL]
        refused += [
            _refused(r, fleet.profile.records, results_dir, blocked[r.cell.slug])
            for r in selected
            if r.status != FAIL and r.cell.slug in blocked
        ]
        builder = Builder(
            client, out, results_dir, fleet.profile.records, stage_cell, progress, jobs=jobs, force=force, fleet=ok
        )
        built = builder.run(buildable)
    by_slug = {r.slug: r for r in [*built, *refused]}
    return [by_slug[r.cell.slug] for r in selected if r.cell.slug in by_slug]


def _refused(rendered: RenderedCell, profile: str, results: Path, why: str | None = None) -> BuildResult:
    failed = [c.title for c in rendered.checks if c.status == FAIL]
    result = BuildResult(
        index=rendered.cell.index,
        slug=rendered.cell.slug,
        status=Built.FAILED,
        ref=rendered.ref,
        digest=rendered.digest,
        error=f"{why}: not built" if why else f"checks FAIL ({', '.join(failed)}): not built",
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
