"""The `lock` step over a loaded fleet: every input of every cell (files, base images) into the lock.

Without `refresh`, what the lock already has is kept without asking anyone (a lock is a decision, not a
cache). With `refresh`, base images are asked again: a base republished under the same tag (security
fixes) moves its digest, and with it the content digest of exactly the cells on that base; the outcome
says what moved and which cells' digests change. `dry_run` reports without writing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from generator.deps.bases import resolve_base
from generator.deps.cells import apply_lock, requests_for
from generator.deps.index import pip_closure
from generator.deps.lockfile import BaseLock, Lock, read_lock_of, write_lock
from generator.deps.pins import Locked, Request, WheelhouseError
from generator.deps.wheelhouse import lock
from generator.errors import FleetError, MatrixError
from generator.fleet import Fleet
from generator.model import Cell, Pinned
from generator.progress import to_stderr
from generator.render.renderer import Renderer

Say = Callable[[str], object]


@dataclass(frozen=True)
class LockOutcome:
    entries: int
    written: bool
    failures: list[str]
    moved: list[str] = field(default_factory=list)  # one line per input whose hash moved
    changed_cells: list[str] = field(default_factory=list)  # slugs whose content digest moves with it


def run_lock(fleet: Fleet, say: Say = to_stderr, *, refresh: bool = False, dry_run: bool = False) -> LockOutcome:
    """Resolve every input of every cell into the profile's lock (files; base images' digests).

    URL files are locked one by one so one unreachable host does not hide the others; the package index's
    files go to pip together; each base image is asked of its registry. Whatever fails is listed, keeps
    what the lock had for it, and the rest is still written.
    """
    profile = fleet.profile
    previous = read_lock_of(profile.lock, profile.bases_lock)
    previous_bases = previous.bases
    failures: list[str] = []
    files = _files(fleet, previous.files, say, failures)
    bases = _bases(fleet, previous_bases, say, failures, refresh)
    closures = _closures(fleet, previous.closures, say, failures, refresh)
    new = Lock(
        files=dict(sorted(files.items())),
        bases=dict(sorted(bases.items())),
        closures=dict(sorted(closures.items())),
        compiled=previous.compiled,  # recorded by the first compile (build), never by `lock`: kept as they are
    )
    moved = _moved_bases(fleet, previous_bases, bases) + _moved_closures(fleet, previous.closures, closures)
    changed = _changed_cells(fleet, new)
    written = False
    if not dry_run:
        if profile.bases_lock is None:
            written = write_lock(profile.lock, new)
        else:
            profile.bases_lock.parent.mkdir(parents=True, exist_ok=True)
            written = write_lock(profile.lock, Lock(files=new.files, closures=new.closures))
            # One machine lock serves every matrix on the profile: keep the bases another matrix locked.
            machine = dict(sorted({**previous_bases, **new.bases}.items()))
            machine_lock = Lock(bases=machine, compiled=new.compiled)
            written = write_lock(profile.bases_lock, machine_lock) or written
    return LockOutcome(len(files) + len(bases) + len(closures), written, failures, moved, changed)


def _files(fleet: Fleet, previous: dict[str, Locked], say: Say, failures: list[str]) -> dict[str, Locked]:
    wanted: dict[str, Request] = {}
    for cell in fleet.unlocked_cells:
        try:
            for request in requests_for(cell):
                wanted.setdefault(request.key, request)
        except WheelhouseError as exc:  # e.g. an sdist with no URL: pip cannot lock it
            failures.append(f"{cell.slug}: {exc}")
    entries: dict[str, Locked] = {}
    for request in (r for r in wanted.values() if r.url is not None):
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
    return entries


def _bases(
    fleet: Fleet, previous: dict[str, BaseLock], say: Say, failures: list[str], refresh: bool
) -> dict[str, BaseLock]:
    out: dict[str, BaseLock] = {}
    # A source build compiles on the devel base of its cell's family: that base is an input too.
    builders = {
        fleet.facts.bases[c.base].image_for(c.cloud, "devel")
        for c in fleet.unlocked_cells
        if any(e.compiles for e in c.extensions)
    }
    for ref in sorted({c.base_image for c in fleet.unlocked_cells} | builders):
        if ref in previous and not refresh:
            out[ref] = previous[ref]
            continue
        try:
            out[ref] = resolve_base(ref)
            say(f"lock: {ref}: {out[ref].digest}")
        except FleetError as exc:  # a registry this machine cannot reach (Docker Hub from the sandbox)
            failures.append(str(exc))
            if ref in previous:
                out[ref] = previous[ref]
    return out


def _closures(
    fleet: Fleet, previous: dict[str, tuple[Pinned, ...]], say: Say, failures: list[str], refresh: bool
) -> dict[str, tuple[Pinned, ...]]:
    """Each distinct Python environment of the fleet, resolved WITH dependencies by pip and hashed."""
    specs = {
        spec.key: spec
        for c in fleet.unlocked_cells
        for spec in (c.closure_spec, c.torch_closure_spec)
        if spec is not None
    }
    out: dict[str, tuple[Pinned, ...]] = {}
    for key, spec in sorted(specs.items()):
        if key in previous and not refresh:
            out[key] = previous[key]
            continue
        extra = ["--index-url", spec.index_url] if spec.index_url else []
        try:
            resolved = pip_closure(list(spec.requirements), spec.python, spec.platform, extra)
            unhashed = [r.name for r in resolved if not r.sha256]
            if unhashed:
                raise WheelhouseError(f"{key}: the index gave no sha256 for {', '.join(unhashed)}")
            out[key] = tuple(Pinned(r.name, r.version, str(r.sha256)) for r in resolved)
            say(f"lock: {len(out[key])} packages for {key}")
        except WheelhouseError as exc:  # a CUDA index this machine cannot reach: the nightly resolves it
            failures.append(str(exc))
            if key in previous:
                out[key] = previous[key]
    return out


def _moved_closures(
    fleet: Fleet, before: dict[str, tuple[Pinned, ...]], after: dict[str, tuple[Pinned, ...]]
) -> list[str]:
    lines = []
    for key in sorted(after):
        old = {p.name: p for p in before.get(key, ())}
        new = {p.name: p for p in after[key]}
        changes = [
            f"{name} {old[name].version if name in old else 'absent'} -> {new[name].version if name in new else 'gone'}"
            for name in sorted(old.keys() | new.keys())
            if old.get(name) != new.get(name)
        ]
        if key in before and changes:
            cells = [c.slug for c in fleet.unlocked_cells if c.closure_spec and c.closure_spec.key == key]
            lines.append(f"python {key}: {', '.join(changes)} ({len(cells)} cells: {', '.join(cells)})")
    return lines


def _moved_bases(fleet: Fleet, before: dict[str, BaseLock], after: dict[str, BaseLock]) -> list[str]:
    lines = []
    for ref in sorted(after):
        old, new = before.get(ref), after[ref]
        if old == new:
            continue
        cells = [c.slug for c in fleet.unlocked_cells if c.base_image == ref]
        was = old.digest if old else "not locked"
        lines.append(f"base {ref}: {was} -> {new.digest} ({len(cells)} cells: {', '.join(cells)})")
    return lines


def _changed_cells(fleet: Fleet, new: Lock) -> list[str]:
    """Cells whose content digest the new lock moves (rendered both ways, nothing written). A cell that
    cannot render without the lock (its torch wheel not locked yet) has no digest before: it changes."""
    before = _digests(fleet, fleet.cells)
    after = _digests(fleet, [apply_lock(c, new, fleet.facts) for c in fleet.unlocked_cells])
    return [slug for slug, digest in after.items() if before.get(slug) != digest]


def _digests(fleet: Fleet, cells: list[Cell]) -> dict[str, str | None]:
    renderer = Renderer(fleet.facts)  # one for every cell: it reads its templates once
    out: dict[str, str | None] = {}
    for cell in cells:
        try:
            out[cell.slug] = renderer.render(cell, fleet.checks(cell)).digest
        except MatrixError:
            out[cell.slug] = None
    return out
