"""Expand a Matrix into its Cells, in matrix order, each with a stable slug.

Order: clouds x variants x bases x torch rows x stacks (each as written in the file), minus `exclude`,
then `include` entries in file order. `overrides` apply afterwards, later ones winning.
"""

from __future__ import annotations

from dataclasses import replace
from fnmatch import fnmatchcase
from itertools import product

from packaging.version import Version

from generator.errors import MatrixError
from generator.model import Artifact, Cell, ClosureSpec, Extension, Matrix, Origin, Selector, TorchRow
from generator.resolve.checks import needs_efa_block
from generator.resolve.extensions import TorchBuild, resolve
from generator.spec.knowledge import Knowledge, knowledge, minor


def slug_for(
    cloud: str, variant: str, base: str, torch: str, extensions: tuple[Extension, ...], index: str = "pypi"
) -> str:
    """`aws-runtime-torch2.6-flash-attn2.7.4.post1`; scratch cells say so: `aws-runtime-scratch-torch2.7`;
    a torch from a CUDA index names it: `aws-devel-torch2.8-cu129-apex`."""
    parts = [cloud, variant]
    if base != "databricks":
        parts.append(base)
    parts.append(f"torch{minor(torch)}")
    if index != "pypi":
        parts.append(index)
    for ext in extensions:
        # A source archive's version is a commit: the stack name is identity enough, the digest pins it.
        # Unresolved extensions (the cell FAILs anyway) also show their name alone.
        parts.append(ext.name if ext.kind == "source" or ext.problem else f"{ext.name}{ext.version}")
    return "-".join(parts).lower()


def _values(cloud: str, variant: str, base: str, torch: str, stack: str) -> dict[str, str]:
    return {"cloud": cloud, "variant": variant, "base": base, "torch": torch, "stack": stack}


def matches(selector: Selector, values: dict[str, str]) -> bool:
    return all(any(fnmatchcase(values[key], p) for p in pats) for key, pats in selector.patterns)


def expand(matrix: Matrix, facts: Knowledge | None = None, torch_from: str = "index") -> list[Cell]:
    """All cells of the matrix; raises MatrixError for rules that match nothing and slug collisions."""
    facts = facts or knowledge()
    combos: list[tuple[dict[str, str], Origin]] = []
    used_excludes: set[int] = set()
    for cloud, variant, base, row, (stack, _) in product(
        matrix.clouds, matrix.variants, matrix.bases, matrix.torch, matrix.stacks
    ):
        values = _values(cloud, variant, base, row.key, stack)
        hits = [i for i, sel in enumerate(matrix.exclude) if matches(sel, values)]
        if hits:
            used_excludes.update(hits)
            continue
        combos.append((values, row.origin))
    for i, sel in enumerate(matrix.exclude):
        if i not in used_excludes:
            raise MatrixError(
                "matches no cell; remove it or fix the pattern",
                file=sel.origin.file,
                line=sel.origin.line,
                key=sel.origin.key,
            )
    for inc in matrix.include:
        combos.append((_values(inc.cloud, inc.variant, inc.base, inc.torch, inc.stack), inc.origin))

    if not combos:
        first = matrix.exclude[0].origin if matrix.exclude else Origin(matrix.file, None, "")
        raise MatrixError(
            "the matrix expands to no cells (every combination is excluded)",
            file=first.file,
            line=first.line,
            key=first.key or None,
        )
    used_overrides: set[int] = set()
    cells: list[Cell] = []
    seen: dict[str, Origin] = {}
    for values, origin in combos:
        accelerators = matrix.accelerators
        for i, override in enumerate(matrix.overrides):
            if matches(override.select, values):
                accelerators = override.accelerators
                used_overrides.add(i)
        cell = build_cell(matrix, facts, len(cells) + 1, values, accelerators, origin, torch_from)
        if cell.slug in seen:
            raise MatrixError(
                f"cell {cell.slug!r} is produced twice (also by {seen[cell.slug]}); slugs must be unique",
                file=origin.file,
                line=origin.line,
                key=origin.key,
            )
        seen[cell.slug] = origin
        cells.append(cell)
    for i, override in enumerate(matrix.overrides):
        if i not in used_overrides:
            o = override.select.origin
            raise MatrixError("matches no cell; remove it or fix the pattern", file=o.file, line=o.line, key=o.key)
    return cells


def torch_build(row: TorchRow, python: str, facts: Knowledge) -> TorchBuild:
    tf = facts.torch[minor(row.version)]
    index = tf.pypi_cuda if row.index == "pypi" else row.index
    return TorchBuild(
        version=row.version,
        minor=tf.minor,
        index=index,
        from_pypi=row.index == "pypi",
        cuda=facts.index_cuda(index),
        abi=tf.abi_for(index),
        python=python,
    )


def build_cell(
    matrix: Matrix,
    facts: Knowledge,
    index: int,
    values: dict[str, str],
    accelerators: tuple[str, ...],
    origin: Origin,
    torch_from: str = "index",
) -> Cell:
    row = matrix.torch_row(values["torch"])
    base = facts.bases[values["base"]]
    tb = torch_build(row, matrix.python, facts)
    extensions = []
    for ext_name in matrix.stack(values["stack"]):
        pin = row.pin(ext_name)
        decl = matrix.declared(ext_name)
        kind = decl.kind if decl else facts.extensions[ext_name].kind
        if pin is not None:
            version, build, ext_origin = pin.version, pin.build, pin.origin
        elif decl is not None:
            version, build, ext_origin = decl.version, decl.build, decl.origin
        else:
            version, build = None, ("source" if kind == "source" else "wheel")
            ext_origin = row.origin
        extensions.append(resolve(ext_name, version, build, kind, tb, facts, ext_origin))
    # A compiled wheel carries kernels for exactly the GPUs the cell is blessed for.
    archs = tuple(sorted({facts.accelerators[a].compute_capability for a in accelerators}, key=Version))
    exts = tuple(
        replace(e, archs=archs) if e.compiles and facts.extensions[e.name].compile.needs_cuda else e for e in extensions
    )
    cell = Cell(
        index=index,
        slug=slug_for(values["cloud"], values["variant"], values["base"], row.version, exts, row.index),
        cloud=values["cloud"],
        variant=values["variant"],
        base=values["base"],
        base_image=base.image_for(values["cloud"], values["variant"]),
        python=matrix.python,
        python_path=base.python_path,
        installer=base.installer,
        cuda=base.cuda,
        torch=row.version,
        torchvision=row.torchvision,
        torchaudio=row.torchaudio,
        torch_index=tb.index,
        torch_from_pypi=tb.from_pypi,
        torch_cuda=tb.cuda,
        abi=tb.abi,
        nccl=facts.torch[tb.minor].nccl,
        stack=values["stack"],
        extensions=exts,
        accelerators=accelerators,
        host_driver=dict(matrix.host_drivers)[values["cloud"]],
        registry_host=matrix.registry_host,
        repository=matrix.repository,
        staging_repository=matrix.staging_repository,
        origin=origin,
        ca_certificates=matrix.ca_certificates,
        # The file name is pip's choice, known once locked (generator/deps/cells.py fills it in).
        torch_wheel=Artifact(filename="", url=None, project="torch", version=row.version)
        if torch_from == "wheelhouse"
        else None,
    )
    spec = closure_spec(cell, facts)
    torch_only = closure_spec(replace(cell, extensions=()), facts)
    return replace(
        cell,
        system_artifacts=system_artifacts(cell, facts),
        closure_spec=spec,
        torch_closure_spec=torch_only,
    )


# The platform every image is: what pip resolves the closure for (wheels for an older glibc run on it too).
IMAGE_PLATFORM = "manylinux_2_28_x86_64"


def closure_spec(cell: Cell, facts: Knowledge) -> ClosureSpec:
    """The top-level requirements of the cell's Python environment: torch and its companions, the pinned
    packages, torch-pinned wheels (xformers) and flash-attn's companions. Release wheels and source archives
    (flash-attn, apex) are fetched files, hashed in the lock's `files`, not in here; a source build's tools
    stay in its builder stage (generator/compile/), never in the image."""
    reqs = [f"torch=={cell.torch}"]
    reqs += [f"{name}=={v}" for name, v in (("torchvision", cell.torchvision), ("torchaudio", cell.torchaudio))]
    reqs = [r for r in reqs if not r.endswith("==none")]
    reqs += [f"{e.name}=={e.version}" for e in cell.extensions if e.kind in ("pip", "torch-pinned") and not e.problem]
    # flash-attn's wheels are installed --no-deps; their one dependency (einops) joins the environment,
    # hashed like the rest, rather than being a fetched file of this machine's index.
    if any(e.kind == "release-wheel" and not e.problem for e in cell.extensions):
        reqs += [f"{name}=={v}" for name, v in sorted(facts.flash_attn_companions.items())]
    index = None if cell.torch_from_pypi else facts.torch_index_url.format(index=cell.torch_index)
    return ClosureSpec(tuple(sorted(reqs)), cell.python, IMAGE_PLATFORM, index)


def system_artifacts(cell: Cell, facts: Knowledge) -> tuple[Artifact, ...]:
    """The files the system layers COPY: the EFA installer where a from-scratch AWS image needs EFA."""
    if not needs_efa_block(cell, facts):
        return ()
    net = facts.bases[cell.base].network[cell.cloud]
    url = net["installer_url"].format(efa=net["efa"])
    return (Artifact(filename=url.rsplit("/", 1)[1], url=url, project="aws-efa-installer", version=net["efa"]),)


def select(cells: list[Cell], wanted: list[str]) -> list[Cell]:
    """Cells named by 1-based index or slug (fnmatch patterns allowed), in matrix order."""
    if not wanted:
        return cells
    chosen: set[int] = set()
    for w in wanted:
        if w.isdigit():
            i = int(w)
            if not 1 <= i <= len(cells):
                raise MatrixError(f"cell {w}: there are {len(cells)} cells (1..{len(cells)})")
            chosen.add(i)
            continue
        hits = [c.index for c in cells if fnmatchcase(c.slug, w)]
        if not hits:
            raise MatrixError(f"no cell matches {w!r}; `python -m generator list` shows them")
        chosen.update(hits)
    return [c for c in cells if c.index in chosen]
