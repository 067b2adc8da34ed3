"""The offline half of the pipeline in one place: matrix -> cells -> checks -> rendered files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from generator.deps.cells import apply_lock
from generator.deps.lockfile import read_lock_of
from generator.errors import MatrixError
from generator.model import Cell, Matrix, Origin
from generator.render.renderer import HEADER, RenderedCell, Renderer, cell_summary
from generator.resolve.checks import FAIL, Check, check_cell
from generator.resolve.expand import expand
from generator.spec.knowledge import Knowledge, knowledge
from generator.spec.matrix import load_matrix
from generator.spec.profiles import Profile, load_profile

INDEX_FILE = "index.json"


@dataclass(frozen=True)
class Fleet:
    matrix: Matrix
    cells: list[Cell]  # with the lock's answers filled in
    facts: Knowledge
    profile: Profile
    unlocked_cells: list[Cell]  # as expanded, before the lock: what `lock` resolves

    @classmethod
    def load(cls, path: Path) -> Fleet:
        """The default profile for the matrix at `path`."""
        return cls.for_profile(load_profile("default", path))

    @classmethod
    def for_profile(cls, profile: Profile) -> Fleet:
        facts = knowledge(profile.knowledge_overlay)
        matrix = load_matrix(profile.matrix, facts)
        raw = expand(matrix, facts, torch_from=profile.torch_from)
        lock = read_lock_of(profile.lock, profile.bases_lock)
        return cls(
            matrix=matrix,
            cells=[apply_lock(c, lock, facts) for c in raw],
            facts=facts,
            profile=profile,
            unlocked_cells=raw,
        )

    def checks(self, cell: Cell) -> list[Check]:
        return check_cell(cell, self.facts)

    def render(self, cells: list[Cell] | None = None) -> list[RenderedCell]:
        renderer = Renderer(self.facts)
        return [renderer.render(cell, self.checks(cell)) for cell in (self.cells if cells is None else cells)]


def failure_error(rendered: RenderedCell, matrix: Matrix) -> MatrixError:
    """One line naming where in the matrix a FAILing cell comes from, and why it fails."""
    cell = rendered.cell
    failed = [c for c in rendered.checks if c.status == FAIL]
    origin = _blame(failed[0].id, cell, matrix)
    why = "; ".join(f"{c.title}: {c.detail}" for c in failed)
    return MatrixError(
        f"cell {cell.index} {cell.slug} FAILs its checks: {why}", file=origin.file, line=origin.line, key=origin.key
    )


def _blame(check_id: str, cell: Cell, matrix: Matrix) -> Origin:
    """The matrix line to fix for a failed check: the pin, `python:`, the driver override, or the torch row."""
    if check_id in ("abi", "builds"):
        broken = [e for e in cell.extensions if e.problem] or list(cell.extensions)
        if broken:
            return broken[0].origin
    if check_id == "python" and matrix.python_origin is not None:
        return matrix.python_origin
    if check_id == "driver":
        overridden = dict(matrix.host_driver_origins)
        if cell.cloud in overridden:
            return overridden[cell.cloud]
    return cell.origin


def desired_files(rendered: list[RenderedCell]) -> dict[str, bytes]:
    """Every generated file, relative to the images directory."""
    files: dict[str, bytes] = {}
    for r in rendered:
        for name, data in r.files.items():
            files[f"{r.cell.slug}/{name}"] = data
    index = {
        "_generated": HEADER,
        "cells": [
            {
                **cell_summary(r.cell),
                "dir": r.cell.slug,
                "digest": r.digest,
                "tag": r.tag,
                "ref": r.release_ref,
                "candidate": r.ref,
                "status": r.status,
            }
            for r in rendered
        ],
    }
    files[INDEX_FILE] = (json.dumps(index, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return files
