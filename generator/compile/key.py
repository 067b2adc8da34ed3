"""The compile key: every input a compiled wheel's bytes depend on, and the names derived from it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from generator.compile.source import tree_sha256
from generator.model import Cell, Extension
from generator.spec.knowledge import Knowledge

TAG_HEX = 16  # hex digits of the key in a tag: enough to never collide within one registry repository


@dataclass(frozen=True)
class CompileKey:
    extension: str
    version: str
    source: str  # sha256 of the pinned source archive, or of the project's own source tree
    torch: str  # the torch release and build, e.g. 2.8.0 cu129
    torch_sha256: str  # the locked torch wheel: the very build the extension links against
    python: str
    cuda: str | None  # the builder's CUDA toolkit (None: none, a CPU-only builder)
    archs: tuple[str, ...]  # compute capabilities the wheel carries kernels for
    abi: int  # torch's C++11 ABI, which torch.utils.cpp_extension passes on
    recipe: tuple[str, ...]  # build options and variables: another recipe is another wheel

    def fields(self) -> dict[str, Any]:
        data = asdict(self)
        data["archs"], data["recipe"] = list(self.archs), list(self.recipe)
        return data

    @property
    def id(self) -> str:
        blob = json.dumps(self.fields(), sort_keys=True, separators=(",", ":")).encode("utf-8")
        return "sha256:" + hashlib.sha256(blob).hexdigest()

    @property
    def tag(self) -> str:
        """The registry tag of the wheel's image: the extension, for people, and the key, for identity."""
        return f"{self.extension}-{self.id.removeprefix('sha256:')[:TAG_HEX]}"

    def describe(self) -> str:
        archs = ";".join(self.archs) or "none"
        return (
            f"{self.extension} {self.version[:12]} for torch {self.torch}, Python {self.python}, "
            f"CUDA {self.cuda or 'none'}, archs {archs}, ABI {self.abi}"
        )


def wheel_ref(cell: Cell, key: CompileKey) -> str:
    """Where the wheel's image lives: beside the fleet's images, in a `wheels` repository."""
    return f"{cell.registry_host}/{cell.repository}/wheels:{key.tag}"


def compile_key(cell: Cell, ext: Extension, facts: Knowledge) -> CompileKey | None:
    """The key of `ext`'s compile for `cell`, or None while an input is not locked yet (run `lock`)."""
    recipe = facts.extensions[ext.name].compile
    if recipe.source_dir is not None:
        source: str | None = tree_sha256(recipe.source_dir)
    else:
        source = ext.artifacts[0].sha256 if ext.artifacts else None
    torch_sha = _torch_sha256(cell)
    if source is None or torch_sha is None or cell.torch_closure is None or ext.problem:
        return None
    options = tuple(f"option {o}" for o in recipe.build_options)
    env = tuple(f"env {k}={v}" for k, v in recipe.env)
    return CompileKey(
        extension=ext.name,
        version=ext.version,
        source=source,
        torch=f"{cell.torch} {cell.torch_index}",
        torch_sha256=torch_sha,
        python=cell.python,
        cuda=cell.cuda if recipe.needs_cuda else None,
        archs=ext.archs if recipe.needs_cuda else (),
        abi=cell.abi,
        recipe=options + env,
    )


def _torch_sha256(cell: Cell) -> str | None:
    if cell.torch_wheel is not None:
        return cell.torch_wheel.sha256
    pinned = next((p for p in cell.torch_closure or () if p.name == "torch"), None)
    return pinned.sha256 if pinned else None
