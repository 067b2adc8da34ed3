"""Per-cell compatibility checks: the seed's five plus Python and extension builds.

Each check is a small pure function (Cell, Knowledge) -> Check with a status and a one-line detail.
The table rendered from them is the one the seed teaches ("## Compatibility Check").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from packaging.version import Version

from generator.model import Cell, Extension
from generator.spec.knowledge import Knowledge, minor
from generator.status import Verdict

OK, WARN, FAIL, NA = Verdict.OK, Verdict.WARN, Verdict.FAIL, Verdict.NA
_RANK = {NA: 0, OK: 0, WARN: 1, FAIL: 2}


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: Verdict
    detail: str


def worst(statuses: Sequence[str]) -> Verdict:
    """The overall status: FAIL beats WARN beats OK; all N/A is N/A. Takes the words as records hold them
    too; a word that is no Verdict is a ValueError, never a silent OK."""
    verdicts = [Verdict(s) for s in statuses]
    if not verdicts:
        return NA
    top = max(verdicts, key=lambda s: _RANK[s])
    if _RANK[top] == 0:
        return OK if OK in verdicts else NA
    return top


def cuda_needs(cell: Cell) -> list[tuple[str, str]]:
    """Every CUDA release the host driver has to serve, with what brings it in: the base's toolkit (its
    full version: update releases have their own minimum), torch's CUDA, and an extension built with a
    CUDA of its own."""
    needs = [("the base's toolkit", cell.cuda)] if cell.cuda else []
    if cell.torch_cuda:
        needs.append((f"torch {cell.torch}", cell.torch_cuda))
    needs += [(f"{e.name} {e.version}", e.cuda) for e in cell.extensions if e.cuda]
    return needs


def _driver(cell: Cell, facts: Knowledge) -> Check:
    title = "CUDA toolkit vs host driver"
    needs = cuda_needs(cell)
    if not needs:
        return Check("driver", title, NA, "no CUDA in the image nor in torch (CPU only)")
    host = cell.host_driver
    unknown = [f"CUDA {cuda} ({what})" for what, cuda in needs if facts.min_driver(cuda) is None]
    if unknown:
        return Check(
            "driver", title, WARN, f"no minimum driver known for {', '.join(unknown)}; host {host} ({cell.cloud})"
        )
    what, needed, minimum = max(
        ((what, cuda, str(facts.min_driver(cuda))) for what, cuda in needs), key=lambda n: Version(n[2])
    )
    head = f"CUDA {needed} ({what}) needs ≥{minimum}; host {host} ({cell.cloud})."
    if Version(host) >= Version(minimum):
        return Check("driver", title, OK, f"{head} cuda-compat: NOT needed (host already ≥ minimum)")
    major = needed.split(".")[0]
    floor = facts.cuda_major_floor.get(major)
    if floor is not None and Version(host) >= Version(floor):
        compat = (
            "the base ships cuda-compat"
            if facts.bases[cell.base].cuda_compat
            else f"cuda-compat-{minor(needed).replace('.', '-')} needed for full features"
        )
        return Check(
            "driver",
            title,
            WARN,
            f"{head} Below minimum: minor-version compatibility only (no PTX JIT); {compat}, or pin a lower toolkit",
        )
    return Check(
        "driver",
        title,
        FAIL,
        f"{head} Below the CUDA {major} floor {floor}: will not run; pin a lower toolkit",
    )


def _torch_cuda(cell: Cell, facts: Knowledge) -> Check:
    title = "PyTorch vs CUDA"
    tf = facts.torch[cell.torch_minor]
    if not cell.torch_from_pypi and cell.torch_index not in tf.indexes:
        return Check(
            "torch-cuda",
            title,
            FAIL,
            f"torch {cell.torch_minor} has no {cell.torch_index} build (indexes: {', '.join(tf.indexes)})",
        )
    where = "default build" if cell.torch_from_pypi else "index build"
    if cell.torch_cuda is None:
        return Check("torch-cuda", title, WARN, f"torch {cell.torch} is a CPU build ({where}): GPU jobs cannot use it")
    if cell.cuda is None:
        return Check(
            "torch-cuda",
            title,
            WARN,
            f"torch {cell.torch} ships {cell.torch_index} but the base has no "
            "CUDA toolkit: it relies on torch's bundled runtime",
        )
    head = f"torch {cell.torch} ships {cell.torch_index} ({where}), image has CUDA {cell.cuda}"
    compiles = any(e.build == "source" for e in cell.extensions)
    if cell.torch_cuda.split(".")[0] != cell.cuda.split(".")[0]:
        status = FAIL if compiles else WARN
        why = "nvcc cannot build extensions for it" if compiles else "relies on torch's bundled CUDA runtime"
        return Check("torch-cuda", title, status, f"{head}: different CUDA major, {why}")
    if Version(cell.torch_cuda) > Version(cell.cuda):
        return Check("torch-cuda", title, WARN, f"{head}: torch's CUDA is newer than the toolkit")
    return Check(
        "torch-cuda",
        title,
        OK,
        f"{head}: runs via minor-version compatibility"
        if Version(cell.torch_cuda) < Version(cell.cuda)
        else f"{head}: same CUDA",
    )


def _nccl(cell: Cell, facts: Knowledge) -> Check:
    title = "NCCL"
    # Always relevant: even single-GPU accelerators run multi-node jobs (num_accelerators > 1) over NCCL.
    if cell.torch_cuda is None:
        return Check("nccl", title, NA, f"torch {cell.torch} is a CPU build: no NCCL")
    package = f"nvidia-nccl-cu{cell.torch_cuda.split('.')[0]}"
    version = f"{package} {cell.nccl}" if cell.torch_from_pypi else f"{package} of the {cell.torch_index} build"
    os_nccl = facts.bases[cell.base].os_nccl
    tail = f"; OS NCCL {os_nccl} unused" if os_nccl else ""
    return Check(
        "nccl",
        title,
        OK,
        f"torch-bundled NCCL ({version}) loads preferentially{tail}; verify with torch.cuda.nccl.version()",
    )


def network_fabrics(cell: Cell, facts: Knowledge) -> dict[str, list[str]]:
    """Blessed accelerators grouped by the fabric they have on this cell's cloud."""
    out: dict[str, list[str]] = {}
    for a in cell.accelerators:
        out.setdefault(facts.accelerators[a].fabric[cell.cloud], []).append(a)
    return out


def needs_efa_block(cell: Cell, facts: Knowledge) -> bool:
    """Scratch images on AWS get the EFA installer only when a blessed accelerator has EFA."""
    return cell.base == "scratch" and cell.cloud == "aws" and "efa" in network_fabrics(cell, facts)


def needs_ib_block(cell: Cell) -> bool:
    """Scratch images on Azure always get the InfiniBand userspace (rdma-core), as the seed does."""
    return cell.base == "scratch" and cell.cloud == "azure"


def ships_unused_efa(cell: Cell, facts: Knowledge) -> list[str]:
    """Accelerators whose jobs need NCCL_NET_PLUGIN=none: the image has EFA, their hosts do not."""
    has_efa = (cell.cloud == "aws" and cell.base == "databricks") or needs_efa_block(cell, facts)
    if not has_efa:
        return []
    return [a for a in cell.accelerators if facts.accelerators[a].fabric[cell.cloud] != "efa"]


def _network(cell: Cell, facts: Knowledge) -> Check:
    title = "EFA/RDMA"
    fabrics = network_fabrics(cell, facts)
    net = facts.bases[cell.base].network[cell.cloud]
    if cell.cloud == "aws":
        efa_accels = fabrics.get("efa", [])
        quiet = ships_unused_efa(cell, facts)
        hush = f"; NCCL_NET_PLUGIN=none in air.yaml for {', '.join(quiet)}" if quiet else ""
        if efa_accels:
            where = "the base" if cell.base == "databricks" else "the EFA installer block"
            return Check(
                "network",
                title,
                OK,
                f"EFA {net['efa']} + aws-ofi-nccl {net['ofi_nccl']} from {where} for {', '.join(efa_accels)}{hush}",
            )
        if cell.base == "databricks":
            return Check(
                "network",
                title,
                NA,
                f"no EFA hardware on {', '.join(cell.accelerators)}; the base ships EFA anyway{hush}",
            )
        return Check(
            "network",
            title,
            NA,
            f"no EFA hardware on {', '.join(cell.accelerators)}: EFA block skipped (~600 MB saved)",
        )
    ib = fabrics.get("infiniband", [])
    source = f"rdma-core {net['rdma_core']}" + (" from the base" if cell.base == "databricks" else " (apt)")
    if ib:
        return Check("network", title, OK, f"InfiniBand via {source} for {', '.join(ib)}")
    return Check("network", title, NA, f"no InfiniBand on {', '.join(cell.accelerators)}; {source} present")


def _abi(cell: Cell, facts: Knowledge) -> Check:
    title = "CXX11 ABI (CUDA extensions)"
    compiled = [e for e in cell.extensions if e.kind != "pip"]
    if not compiled:
        return Check("abi", title, NA, "no compiled extensions")
    parts, statuses = [], []
    for e in compiled:
        if e.problem and e.abi_problem:
            statuses.append(FAIL)
            parts.append(e.problem)
        elif e.problem:
            statuses.append(NA)
            parts.append(f"{e.name}: not resolved (see Extension builds)")
        elif e.abi != cell.abi:
            statuses.append(FAIL)
            parts.append(
                f"{e.name} {e.version}: {e.abi_note}, but torch has ABI {cell.abi} (undefined symbol at import)"
            )
        else:
            statuses.append(OK)
            parts.append(f"{e.name} {e.version}: {e.abi_note} = torch ABI {cell.abi}")
    return Check("abi", title, worst(statuses), "; ".join(parts))


def _python(cell: Cell, facts: Knowledge) -> Check:
    title = "Python"
    base = facts.bases[cell.base]
    if base.python != cell.python:
        return Check(
            "python",
            title,
            FAIL,
            f"{cell.base_image} ships Python {base.python} ({base.python_path}); the matrix asks for {cell.python}",
        )
    tf = facts.torch[cell.torch_minor]
    if not tf.supports_python(cell.python):
        return Check(
            "python",
            title,
            FAIL,
            f"torch {cell.torch_minor} has wheels for Python {tf.python_min}–{tf.python_max}, not {cell.python}",
        )
    return Check(
        "python",
        title,
        OK,
        f"Python {cell.python} at {base.python_path}; torch {cell.torch_minor} "
        f"wheels cover {tf.python_min}–{tf.python_max}",
    )


def _nvcc_problem(cell: Cell, facts: Knowledge) -> str | None:
    """Why a source build that insists on nvcc == torch's CUDA (apex) cannot build here, or None."""
    if cell.torch_cuda is None:
        return f"torch {cell.torch} is a CPU build: its CUDA extensions (--cuda_ext) need a CUDA torch"
    nvcc = cell.cuda
    if nvcc is None or facts.apex.nvcc_must_match_torch_cuda != "minor" or minor(nvcc) == minor(cell.torch_cuda):
        return None
    fits = [i for i in facts.torch[cell.torch_minor].indexes if facts.torch_indexes.get(i) == minor(nvcc)]
    fix = (
        f"take torch from the {fits[0]} index (`index: {fits[0]}` on the torch line)"
        if fits
        else f"no torch {cell.torch_minor} build has CUDA {minor(nvcc)}: pick a torch release that has one"
    )
    return (
        f"its setup.py refuses nvcc {minor(nvcc)} with torch built for CUDA {cell.torch_cuda} "
        f"(check_cuda_torch_binary_vs_bare_metal compares the minor too): {fix}"
    )


def _builds(cell: Cell, facts: Knowledge) -> Check:
    title = "Extension builds"
    if not cell.extensions:
        return Check("builds", title, NA, "no extensions")
    parts, statuses = [], []
    for e in cell.extensions:
        status, detail = _build_of(cell, e, facts)
        statuses.append(status)
        parts.append(detail)
    return Check("builds", title, worst(statuses), "; ".join(parts))


def _build_of(cell: Cell, e: Extension, facts: Knowledge) -> tuple[Verdict, str]:
    if e.problem:
        return FAIL, e.problem
    if e.compiles:
        return _compiled_build(cell, e, facts)
    how = {"wheel": "prebuilt wheel", "pip": "pinned package"}[e.build]
    built = ""
    if e.cuda and e.cuda != cell.torch_cuda:
        built = f", {e.cuda_note} while torch's is {cell.torch_cuda}: the host driver must serve {e.cuda}"
    return OK, f"{e.name} {e.version}: {how}{built}"


def _compiled_build(cell: Cell, e: Extension, facts: Knowledge) -> tuple[Verdict, str]:
    """A source build compiles once in a builder stage on the devel base of the cell's family (runtime cells
    included); the check says whether that builder can, and which wheel the cell installs."""
    recipe = facts.extensions[e.name].compile
    builder = facts.bases[cell.base].image_for(cell.cloud, "devel")
    if recipe.needs_cuda:
        if not facts.bases[cell.base].nvcc["devel"]:
            return FAIL, f"{e.name} compiles with nvcc: {builder} has none"
        problem = _nvcc_problem(cell, facts) if e.kind == "source" else None
        if problem:
            return FAIL, f"{e.name} {e.version}: {problem}"
    archs = f", kernels for {';'.join(e.archs)}" if recipe.needs_cuda and e.archs else ""
    where = f"compiled once in a builder stage on {builder}{archs}"
    if e.wheel is not None:
        return (
            OK,
            f"{e.name} {e.version}: {where}; installs the wheel the lock records "
            f"({e.wheel.filename}, sha256 {(e.wheel.sha256 or '')[:12]})",
        )
    if e.compile_key is not None:
        return (
            OK,
            f"{e.name} {e.version}: {where}; not compiled yet: `build` compiles (or pulls) it, records its sha256",
        )
    return OK, f"{e.name} {e.version}: {where}; its inputs are not locked yet (`lock`)"


CHECKS: tuple[Callable[[Cell, Knowledge], Check], ...] = (
    _driver,
    _torch_cuda,
    _nccl,
    _network,
    _abi,
    _python,
    _builds,
)


def check_cell(cell: Cell, facts: Knowledge) -> list[Check]:
    return [check(cell, facts) for check in CHECKS]


def summary_table(checks: list[Check]) -> str:
    """The seed's "## Compatibility Check" table in Markdown."""
    lines = ["## Compatibility Check", "", "| Check | Status | Details |", "|---|---|---|"]
    for c in checks:
        lines.append(f"| {c.title} | {c.status} | {c.detail.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
