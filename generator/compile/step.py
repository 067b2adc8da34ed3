"""The compile step of `build`: every compile key the selected cells need, compiled at most once.

For each key, in this order: the wheel the lock records, from the wheelhouse (`reused`); else that wheel from
the registry (`pulled`); else, when the lock records none, a wheel another machine pushed under the key's tag
(`pulled`, and recorded); else the builder stage compiles it (`compiled`): the wheel goes into the wheelhouse
and the registry, and its sha256 into the lock. The outcome per key and the counts are recorded under the
results folder (`compile/<tag>.json`, `compile.json`) for the summary and the page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from generator import paths
from generator.build.runlock import fleet_lock
from generator.clock import utc_stamp
from generator.compile.key import CompileKey, compile_key, wheel_ref
from generator.compile.recipe import Recipe, builder_base, write_context
from generator.compile.store import CompileFailed, build_wheel_image, forget, in_registry, pull, push, wheel_out_of
from generator.deps.cache import cache_path, cache_root, hash_file, verified
from generator.deps.lockfile import CompiledWheel, read_lock_of, record_compiled
from generator.deps.pins import Locked
from generator.deps.wheelhouse import fetch
from generator.engine import connect
from generator.errors import FleetError
from generator.fleet import Fleet
from generator.model import Cell
from generator.progress import to_stderr
from generator.release.credentials import CredentialSource
from generator.resolve.checks import FAIL
from generator.results import record_path, write_record

Say = Callable[[str], object]
COMPILED, REUSED, PULLED, FAILED = "compiled", "reused (wheelhouse)", "pulled (registry)", "failed"


@dataclass
class CompileResult:
    key: str
    tag: str
    extension: str
    describe: str
    outcome: str = FAILED
    wheel: str | None = None
    sha256: str | None = None
    seconds: float = 0.0
    cells: list[str] = field(default_factory=list)
    error: str | None = None
    log: str | None = None
    finished_at: str = field(default_factory=utc_stamp)


@dataclass
class CompileReport:
    results: list[CompileResult]

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def failed(self) -> list[CompileResult]:
        return [r for r in self.results if r.outcome == FAILED]

    def blocked(self) -> dict[str, str]:
        """Cells that cannot be built this run, and why: their compiled wheel did not compile."""
        return {
            slug: f"its {r.extension} wheel did not compile ({r.tag}: {r.error})"
            for r in self.failed
            for slug in r.cells
        }

    def line(self) -> str:
        return (
            f"compile: {len(self.results)} compile keys: {self.count(COMPILED)} compiled, "
            f"{self.count(REUSED)} reused from the wheelhouse, {self.count(PULLED)} pulled from the registry"
            + (f", {len(self.failed)} failed" if self.failed else "")
        )

    def record(self) -> dict[str, Any]:
        return {
            "compiled": self.count(COMPILED),
            "reused": self.count(REUSED),
            "pulled": self.count(PULLED),
            "failed": len(self.failed),
            "keys": [asdict(r) for r in self.results],
            "finished_at": utc_stamp(),
        }


def wanted(fleet: Fleet, cells: list[Cell]) -> dict[str, tuple[CompileKey, Cell, list[str]]]:
    """Each compile key the cells need: its key, its first cell (matrix order) and every cell using it."""
    out: dict[str, tuple[CompileKey, Cell, list[str]]] = {}
    for cell in cells:
        for ext in cell.extensions:
            key = compile_key(cell, ext, fleet.facts) if ext.compiles else None
            if key is None:
                continue
            entry = out.setdefault(key.id, (key, cell, []))
            entry[2].append(cell.slug)
    return out


class Compiler:
    def __init__(self, fleet: Fleet, client: Any, say: Say, source: CredentialSource | None = None) -> None:
        self.fleet = fleet
        self.client = client
        self.say = say
        self.source = source or CredentialSource()
        self.cache = cache_root(None)
        self.work = paths.state_dir() / "compile"
        self.results_dir = paths.results_dir()
        self.lock = read_lock_of(fleet.profile.lock, fleet.profile.bases_lock)

    def run(self, cells: list[Cell]) -> CompileReport:
        results, recorded = [], {}
        for key_id, (key, cell, users) in sorted(wanted(self.fleet, cells).items(), key=lambda kv: kv[1][1].index):
            result = CompileResult(
                key=key_id, tag=key.tag, extension=key.extension, describe=key.describe(), cells=users
            )
            started = time.monotonic()
            try:
                entry = self._one(key, cell, result)
                if result.outcome in (COMPILED, PULLED) and entry is not None:
                    recorded[key_id] = entry
            except FleetError as exc:
                result.outcome, result.error = FAILED, str(exc)
            result.seconds = round(time.monotonic() - started, 2)
            self.say(f"compile: {key.tag}: {result.outcome}" + (f": {result.error}" if result.error else ""))
            write_record(record_path(self.results_dir, self.fleet.profile.records, "compile", key.tag), asdict(result))
            results.append(result)
        if recorded:
            record_compiled(self.fleet.profile.lock, self.fleet.profile.bases_lock, recorded)
        report = CompileReport(results)
        write_record(self.results_dir / self.fleet.profile.records / "compile.json", report.record())
        self.say(report.line())
        return report

    def _one(self, key: CompileKey, cell: Cell, result: CompileResult) -> CompiledWheel | None:
        ref = wheel_ref(cell, key)
        known = self.lock.compiled.get(key.id)
        if known is not None:
            result.wheel, result.sha256 = known.filename, known.sha256
            if verified(cache_path(self.cache, known.sha256, known.filename), known.sha256, known.size):
                result.outcome = REUSED
                return None
            if self._pull(known.ref, known.filename, known.sha256):
                result.outcome = PULLED
                return None
            self.say(
                f"compile: {key.tag}: the recorded wheel {known.filename} is in neither the wheelhouse nor the registry"
            )
        elif in_registry(self.client, ref, self.source):
            path = self._pull(ref, None, None)
            if path is not None:
                result.outcome = PULLED
                return self._entry(key, ref, path, result)
        return self._compile(key, cell, ref, result)

    def _pull(self, ref: str, filename: str | None, sha256: str | None) -> Path | None:
        """The wheel of `ref` in the wheelhouse, checked against the lock's sha256 when there is one."""
        try:
            pull(self.client, ref, self.source)
        except Exception as exc:  # not there, or not reachable: the caller compiles instead
            self.say(f"compile: {ref}: not pulled ({' '.join(str(exc).split())[:200]})")
            return None
        try:
            return self._into_cache(wheel_out_of(self.client, ref, filename, self.work / "pulled"), sha256)
        finally:
            forget(self.client, ref)

    def _into_cache(self, path: Path, sha256: str | None) -> Path:
        actual = hash_file(path)
        if sha256 is not None and actual != sha256:
            raise CompileFailed(f"{path.name}: sha256 {actual} from the registry, the lock records {sha256}")
        final = cache_path(self.cache, actual, path.name)
        final.parent.mkdir(parents=True, exist_ok=True)
        path.chmod(0o444)
        path.replace(final)
        return final

    def _entry(self, key: CompileKey, ref: str, path: Path, result: CompileResult) -> CompiledWheel:
        sha = path.parent.name
        result.wheel, result.sha256 = path.name, sha
        return CompiledWheel(path.name, sha, path.stat().st_size, ref, key.fields())

    def _compile(self, key: CompileKey, cell: Cell, ref: str, result: CompileResult) -> CompiledWheel:
        base = builder_base(cell, self.fleet.facts)
        digest = self.lock.bases.get(base)
        ext = next(e for e in cell.extensions if e.compiles and e.name == key.extension)
        recipe = Recipe(key, cell, ext, base, digest.digest if digest else None)
        torch = [cell.torch_wheel] if cell.torch_wheel else []
        files = {}
        for a in [*torch, *ext.artifacts]:
            if a.url is None or a.sha256 is None or a.size is None:
                raise FleetError(f"{key.tag}: {a.filename or a.project} is not locked; run `python -m generator lock`")
            files[a.filename] = fetch(Locked(a.filename, a.url, a.sha256, a.size))
        context = write_context(recipe, self.fleet.facts, self.work / key.tag, files)
        log = record_path(self.results_dir, self.fleet.profile.records, "compile", key.tag).with_suffix(".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        result.log = str(log)
        self.say(f"compile: {key.tag}: compiling {key.describe()} on {base}")
        build_wheel_image(self.client, context, ref, log, lambda s: self.say(f"compile: {key.tag}: {s}"))
        path = self._into_cache(wheel_out_of(self.client, ref, None, self.work / "out"), None)
        push(self.client, ref, self.source)
        forget(self.client, ref)
        result.outcome = COMPILED
        return self._entry(key, ref, path, result)


def compile_first(
    fleet: Fleet, cells: list[Cell], *, wait: bool, say: Say = to_stderr
) -> tuple[Fleet, CompileReport | None]:
    """Compile (or reuse) every wheel `cells`' source builds need, before any of them is built: they then
    render with the recorded wheels, their digests included. The fleet as the lock now says, and the
    report (None: none of the cells compiles anything)."""
    # A cell that FAILs its checks is never built, so nothing is compiled for it either.
    needing = [
        c
        for c in cells
        if any(e.compiles and e.compile_key for e in c.extensions) and all(k.status != FAIL for k in fleet.checks(c))
    ]
    if not needing:
        return fleet, None

    def note(line: str) -> None:
        say(line)

    with fleet_lock("build", fleet.profile.name, wait=wait, progress=note):
        report = Compiler(fleet, connect(), say).run(needing)
    for r in report.failed:
        say(f"compile: {r.tag} failed: {r.error}")
    return Fleet.for_profile(fleet.profile), report
