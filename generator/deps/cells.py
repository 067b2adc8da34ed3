"""Between cells and the wheelhouse: what each cell needs locked, and the lock's answers put back in.

The lock is an input of rendering (DESIGN: "[Cell] + lock -> render"): a locked artifact carries its URL
and sha256 into wheels.json and into the content digest, so relocking a file to other bytes rebuilds
exactly the cells that COPY it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial

from generator.compile.key import compile_key
from generator.deps.lockfile import Lock
from generator.deps.pins import Locked, Request, WheelhouseError, request_for
from generator.model import Artifact, Cell
from generator.spec.knowledge import Knowledge


def torch_wheel_request(cell: Cell) -> Request:
    """torch from the wheelhouse: pip picks the file for the cell's Python on Linux x86_64."""
    return Request(project="torch", version=cell.torch, filename=None, url=None, python=cell.python)


def requests_for(cell: Cell) -> list[Request]:
    out = [request_for(a, cell.python) for a in cell.system_artifacts]
    out += [torch_wheel_request(cell)] if cell.torch_wheel is not None else []
    out += [request_for(a, cell.python) for e in cell.extensions for a in e.artifacts]
    return out


def _filled(artifact: Artifact, request: Callable[[], Request], lock: Mapping[str, Locked]) -> Artifact:
    if not lock:
        return artifact
    try:
        found = lock.get(request().key)
    except WheelhouseError:
        return artifact  # not lockable as it stands: `lock` reports why; loading the matrix must not fail
    if found is None:
        return artifact
    return replace(artifact, filename=found.filename, url=found.url, sha256=found.sha256, size=found.size)


def apply_lock(cell: Cell, whole: Lock, facts: Knowledge | None = None) -> Cell:
    """The cell with every input the lock knows filled in (files: name, URL, sha256; the base image's
    digest; with `facts`, each source build's compile key and its recorded wheel); others unchanged."""
    lock = whole.files
    base = whole.bases.get(cell.base_image)
    torch_wheel = cell.torch_wheel
    if torch_wheel is not None:
        torch_wheel = _filled(torch_wheel, lambda: torch_wheel_request(cell), lock)
    extensions = tuple(
        replace(e, artifacts=tuple(_filled(a, partial(request_for, a, cell.python), lock) for a in e.artifacts))
        for e in cell.extensions
    )
    system = tuple(_filled(a, partial(request_for, a, cell.python), lock) for a in cell.system_artifacts)
    filled = replace(
        cell,
        torch_wheel=torch_wheel,
        extensions=extensions,
        system_artifacts=system,
        base_digest=base.digest if base else None,
        closure=whole.closures.get(cell.closure_spec.key) if cell.closure_spec else None,
        torch_closure=whole.closures.get(cell.torch_closure_spec.key) if cell.torch_closure_spec else None,
    )
    return with_compiled(filled, whole, facts) if facts is not None else filled


def with_compiled(cell: Cell, whole: Lock, facts: Knowledge) -> Cell:
    """Each source build keyed (once its inputs are locked) and given the wheel the lock records for its key."""
    extensions = []
    for e in cell.extensions:
        key = compile_key(cell, e, facts) if e.compiles else None
        if key is not None:
            found = whole.compiled.get(key.id)
            wheel = (
                Artifact(found.filename, None, e.name, e.version, found.sha256, found.size, compiled=True)
                if found
                else None
            )
            e = replace(e, compile_key=key.id, wheel=wheel)
        extensions.append(e)
    return replace(cell, extensions=tuple(extensions))


def unlocked_files(cell: Cell) -> list[str]:
    """Files of the cell without a sha256 yet: what `fetch` cannot fetch."""
    return [a.filename or f"{a.project}=={a.version}" for a in cell.artifacts if a.sha256 is None or a.size is None]


def uncompiled(cell: Cell) -> list[str]:
    """Source builds of the cell without a recorded wheel: what `build` compiles (or pulls) first."""
    return [f"the compiled {e.name} wheel" for e in cell.extensions if e.compiles and e.wheel is None]


def unlocked(cell: Cell) -> list[str]:
    """Every input of the cell without a hash yet (its base image, its files): what `lock` still has to
    resolve, and what `build` refuses to build from."""
    base = [f"base image {cell.base_image}"] if cell.base_digest is None else []
    closure = ["the Python environment (torch and its dependencies)"] if cell.closure is None else []
    if cell.torch_closure_spec is not None and cell.torch_closure is None:
        closure.append("torch's own environment (its shared layer)")
    return base + closure + unlocked_files(cell) + uncompiled(cell)
