"""Judge a probe's facts: the seed's table (OK / WARN / FAIL / N/A) for one cell against its expectations.

Pure functions of a Cell, the facts JSON the payload printed (generator/verify/payload/probe.py) and the
Expectations (what this machine measured, what the image should ship, from knowledge). Nothing here runs a
container: `generator.verify.probe` does that and hands the facts over. A fact that could not be measured
here (anything about a GPU on a CPU-only machine) is N/A "not measured", never OK; facts that cannot be read
are a FAIL that says so, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

from generator.model import Cell, Extension
from generator.resolve.checks import FAIL, NA, OK, WARN, Check, needs_efa_block, needs_ib_block, network_fabrics, worst
from generator.spec.knowledge import Knowledge, minor
from generator.status import Verdict
from generator.verify.archs import judge_archs
from generator.verify.payloadrun import one_line

NOT_MEASURED = "not measured: no GPU on this machine"

Facts = Mapping[str, Any]


# -- expectations ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectations:
    """What the judge needs beyond the cell: what this machine measured, and what the image should ship."""

    gpus: bool = False  # the container was given this machine's GPUs: GPU facts were measured
    fabric: str | None = None  # "efa" | "infiniband": the network stack the image must ship; None: none
    fabric_needed: bool = False  # a blessed accelerator uses that fabric (missing: FAIL, else WARN)
    network_note: str = "no network stack expected"  # why none is expected
    min_driver: str | None = None  # the minimum host driver for torch's CUDA (None: CPU build or unknown)
    stand_in: bool = False  # built on a sandbox stand-in base (no CUDA, no base network stack)


def expectations_for(cell: Cell, facts: Knowledge, *, gpus: bool, stand_in: bool = False) -> Expectations:
    """What the cell's image must contain, from knowledge: the base's network stack and the Dockerfile's blocks.

    A sandbox stand-in base ships no EFA or rdma-core, so on one only what the generated Dockerfile itself
    installs (the scratch EFA/InfiniBand blocks) is expected.
    """
    fabric = "efa" if cell.cloud == "aws" else "infiniband"
    from_block = needs_efa_block(cell, facts) if cell.cloud == "aws" else needs_ib_block(cell)
    from_base = cell.base == "databricks" and not stand_in
    needed = fabric in network_fabrics(cell, facts)
    if from_block or from_base:
        note = ""
    elif stand_in:
        note = "the sandbox stand-in base ships no network stack"
    else:
        note = f"no {fabric} hardware on {', '.join(cell.accelerators)}: the image ships none"
    min_driver = facts.min_driver(cell.torch_cuda) if cell.torch_cuda else None
    return Expectations(
        gpus=gpus,
        fabric=fabric if (from_block or from_base) else None,
        fabric_needed=needed,
        network_note=note,
        min_driver=min_driver,
        stand_in=stand_in,
    )


# -- judging ----------------------------------------------------------------------------------------------


def _section(facts: Facts, key: str) -> dict[str, Any] | None:
    value = facts.get(key) if isinstance(facts, Mapping) else None
    return value if isinstance(value, dict) else None


def _base_version(text: object) -> str | None:
    """`2.13.0+cpu` -> `2.13.0` (local build labels do not change the release)."""
    if not isinstance(text, str):
        return None
    try:
        return Version(text).base_version if "+" in text else str(Version(text))
    except InvalidVersion:
        return text


def _torch(facts: Facts) -> tuple[dict[str, Any] | None, str]:
    """The torch section when torch imported, else None and why not."""
    torch = _section(facts, "torch")
    if torch is None:
        return None, "the probe reported no torch facts"
    if not torch.get("imported"):
        return None, f"torch does not import: {torch.get('error', 'no error reported')}"
    return torch, ""


def _driver(cell: Cell, facts: Facts, expected: Expectations) -> Check:
    title = "CUDA toolkit vs host driver"
    if not expected.gpus:
        return Check("driver", title, NA, NOT_MEASURED)
    driver = facts.get("driver")
    if not isinstance(driver, str) or not driver:
        return Check(
            "driver",
            title,
            FAIL,
            "GPUs were given but nvidia-smi reported no driver (NVIDIA_DRIVER_CAPABILITIES without utility?)",
        )
    if expected.min_driver is None:
        why = "torch is a CPU build" if cell.torch_cuda is None else f"no minimum known for CUDA {cell.torch_cuda}"
        return Check("driver", title, NA, f"driver {driver}; {why}")
    head = f"driver {driver}; torch's CUDA {cell.torch_cuda} needs ≥{expected.min_driver}"
    if Version(driver) >= Version(expected.min_driver):
        return Check("driver", title, OK, head)
    return Check("driver", title, WARN, f"{head}: below it, minor-version compatibility only (no PTX JIT)")


def _torch_cuda(cell: Cell, facts: Facts, expected: Expectations) -> Check:
    title = "PyTorch vs CUDA"
    torch, why = _torch(facts)
    if torch is None:
        return Check("torch-cuda", title, FAIL, why)
    problems = []
    if torch.get("error"):  # torch imported, then a query of it failed
        problems.append(f"torch imports, then: {torch['error']}")
    if _base_version(torch.get("version")) != cell.torch:
        problems.append(f"torch {torch.get('version')}, the cell pins {cell.torch}")
    if torch.get("cuda") != cell.torch_cuda:
        problems.append(f"torch.version.cuda {torch.get('cuda')}, the cell expects {cell.torch_cuda}")
    installed = _distributions(facts)
    for name, pin in (("torchvision", cell.torchvision), ("torchaudio", cell.torchaudio)):
        if pin and pin != "none" and _base_version(installed.get(name)) != pin:
            problems.append(f"{name} {installed.get(name, 'missing')}, the cell pins {pin}")
    if problems:
        return Check("torch-cuda", title, FAIL, "; ".join(problems))
    cuda = f"CUDA {cell.torch_cuda}" if cell.torch_cuda else "no CUDA (CPU build)"
    return Check("torch-cuda", title, OK, f"torch {torch.get('version')} with {cuda}, as the cell expects")


def _cuda(cell: Cell, facts: Facts, expected: Expectations) -> Check:
    title = "CUDA available"
    if not expected.gpus:
        return Check("cuda", title, NA, NOT_MEASURED)
    if cell.torch_cuda is None:
        return Check("cuda", title, NA, "torch is a CPU build: it cannot use the GPUs")
    torch, why = _torch(facts)
    if torch is None:
        return Check("cuda", title, FAIL, why)
    if not torch.get("cuda_available"):
        return Check("cuda", title, FAIL, "GPUs were given but torch.cuda.is_available() is False")
    devices = torch.get("devices") or []
    names = ", ".join(f"{d.get('name')} (sm {d.get('capability')})" for d in devices if isinstance(d, dict))
    return Check("cuda", title, OK, f"{torch.get('device_count')} GPU(s): {names}")


def _nccl(cell: Cell, facts: Facts, expected: Expectations) -> Check:
    title = "NCCL"
    if not expected.gpus:
        return Check("nccl", title, NA, NOT_MEASURED)
    if cell.torch_cuda is None:
        return Check("nccl", title, NA, f"torch {cell.torch} is a CPU build: no NCCL")
    torch, why = _torch(facts)
    if torch is None:
        return Check("nccl", title, FAIL, why)
    nccl = torch.get("nccl")
    if not isinstance(nccl, str) or not nccl:
        return Check("nccl", title, FAIL, f"torch.cuda.nccl.version() failed: {torch.get('nccl_note')}")
    if cell.torch_from_pypi and cell.nccl and nccl != cell.nccl:
        return Check("nccl", title, WARN, f"NCCL {nccl} loads; knowledge says nvidia-nccl-cu12 {cell.nccl}")
    return Check("nccl", title, OK, f"NCCL {nccl} (torch.cuda.nccl.version())")


def _network(cell: Cell, facts: Facts, expected: Expectations) -> Check:
    title = "EFA/RDMA"
    network = _section(facts, "network")
    if network is None:
        return Check("network", title, FAIL, "the probe reported no network facts")
    efa = _section(network, "efa") or {}
    ib = _section(network, "infiniband") or {}
    found = {
        "efa": bool(efa.get("installed") or efa.get("libfabric")) and bool(network.get("ofi_nccl")),
        "infiniband": bool(ib.get("libibverbs")),
    }
    seen = [name for name, there in found.items() if there]
    seen_text = f"found: {', '.join(seen)}" if seen else "none found"
    if expected.fabric is None:
        return Check("network", title, NA, f"{expected.network_note}; {seen_text}")
    if found.get(expected.fabric):
        libs = network.get("ofi_nccl") if expected.fabric == "efa" else ib.get("libibverbs")
        return Check("network", title, OK, f"{expected.fabric} present: {', '.join(map(str, libs or []))}")
    missing = (
        "EFA (libfabric under /opt/amazon/efa) and aws-ofi-nccl (libnccl-net*.so)"
        if expected.fabric == "efa"
        else "InfiniBand (libibverbs)"
    )
    if expected.fabric_needed:
        return Check("network", title, FAIL, f"{missing} missing, and a blessed accelerator needs it; {seen_text}")
    return Check("network", title, WARN, f"{missing} missing though the base should ship it; {seen_text}")


def _compiled(cell: Cell) -> list[Extension]:
    return [e for e in cell.extensions if e.kind != "pip"]


def _abi(cell: Cell, facts: Facts, expected: Expectations) -> Check:
    title = "CXX11 ABI (CUDA extensions)"
    torch, why = _torch(facts)
    if torch is None:
        return Check("abi", title, FAIL, why)
    if torch.get("cxx11_abi") != cell.abi:
        return Check(
            "abi", title, FAIL, f"torch reports C++11 ABI {torch.get('cxx11_abi')}, the cell expects {cell.abi}"
        )
    compiled = _compiled(cell)
    if not compiled:
        return Check("abi", title, OK, f"torch ABI {cell.abi} as expected; no compiled extensions")
    extensions = _section(facts, "extensions") or {}
    parts, statuses = [], []
    for e in compiled:
        got = extensions.get(e.name)
        if not isinstance(got, dict):
            statuses.append(FAIL)
            parts.append(f"{e.name}: not probed")
            continue
        module = ", ".join(e.native_modules) or e.import_name
        result = got.get("native") if e.native_modules else got.get("import")
        if not module:  # knowledge names nothing to load: nothing was measured
            statuses.append(NA)
            parts.append(f"{e.name}: no module to load known")
            continue
        test = got.get("self_test")
        called: dict[str, Any] = test if isinstance(test, dict) else {}
        if result == "ok" and e.self_test and called.get("result") != "ok":
            statuses.append(FAIL)
            parts.append(f"{e.name}: {module} loads, but {e.self_test}() fails: {called.get('result', 'not called')}")
            continue
        if result == "ok":
            ran = f"; {e.self_test}() runs" if e.self_test else ""
            status, kernels = _kernels(e, got)
            statuses.append(status)
            parts.append(f"{e.name}: {module} load" + ("" if len(e.native_modules) > 1 else "s") + ran + kernels)
            continue
        statuses.append(FAIL)
        hint = " (built against another C++11 ABI than torch's)" if "undefined symbol" in str(result) else ""
        if e.native_modules:  # the payload says which one: "<module>: <why>"
            module, _, result = str(result).partition(": ")
        parts.append(f"{e.name}: {module} does not load{hint}: {result}")
    return Check("abi", title, worst(statuses), f"torch ABI {cell.abi}; " + "; ".join(parts))


def _kernels(e: Extension, got: dict[str, Any]) -> tuple[Verdict, str]:
    """A compiled-here extension's GPU kernels against the architectures it was compiled for (the cell's
    accelerators): what the probe read from its modules' .nv_fatbin sections."""
    if not e.archs:  # not compiled for GPUs by the fleet (a release wheel, a CPU-only extension)
        return OK, ""
    read = got.get("archs")
    modules = read if isinstance(read, dict) else {}
    found = sorted({str(a) for archs in modules.values() if isinstance(archs, list) for a in archs})
    status, line = judge_archs(found, e.archs)
    return status, f"; {line}"


def _python(cell: Cell, facts: Facts, expected: Expectations) -> Check:
    title = "Python"
    python = _section(facts, "python")
    if python is None:
        return Check("python", title, FAIL, "the probe reported no Python facts")
    version, executable = str(python.get("version")), python.get("executable")
    if minor_of(version) != cell.python:
        return Check("python", title, FAIL, f"Python {version} at {executable}; the cell expects {cell.python}")
    if executable != cell.python_path:
        return Check("python", title, FAIL, f"Python {version} runs as {executable}, not {cell.python_path}")
    head = f"Python {version} at {executable}"
    dbx = _section(facts, "databricks_python")
    # From scratch, the /databricks/python/bin/python link is this project's own setup: missing is a FAIL.
    # On a Databricks base it is the base's: missing there is a WARN about the base.
    bad = FAIL if cell.base == "scratch" else WARN
    if dbx is None or not dbx.get("exists"):
        return Check("python", title, bad, f"{head}; /databricks/python/bin/python is missing")
    if dbx.get("prefix") != python.get("prefix"):
        return Check(
            "python",
            title,
            bad,
            f"{head}; /databricks/python/bin/python starts another environment "
            f"({dbx.get('prefix')}, not {python.get('prefix')}): torch is not there",
        )
    uv = _section(facts, "uv") or {}
    tail = f"; uv {str(uv.get('version')).removeprefix('uv ')}" if uv.get("version") else ""
    return Check("python", title, OK, f"{head}; /databricks/python/bin/python runs the same environment{tail}")


def minor_of(version: str) -> str | None:
    try:
        return minor(version)
    except InvalidVersion:
        return None


def _extensions(cell: Cell, facts: Facts, expected: Expectations) -> Check:
    title = "Extensions"
    if not cell.extensions:
        return Check("extensions", title, NA, "no extensions")
    extensions = _section(facts, "extensions")
    if extensions is None:
        return Check("extensions", title, FAIL, "the probe reported no extension facts")
    parts, statuses = [], []
    for e in cell.extensions:
        got = extensions.get(e.name)
        if not isinstance(got, dict):
            statuses.append(FAIL)
            parts.append(f"{e.name}: not probed")
            continue
        version = got.get("version")
        problems = []
        if e.import_name and got.get("import") != "ok":
            problems.append(f"import {e.import_name}: {got.get('import')}")
        # A source build's pin is a commit; the installed metadata version cannot be compared with it.
        if version is None:
            problems.append("not installed")
        elif e.build != "source" and _base_version(version) != _base_version(e.version):
            problems.append(f"version {version}, pinned {e.version}")
        statuses.append(FAIL if problems else OK)
        parts.append(f"{e.name}: {'; '.join(problems)}" if problems else f"{e.name} {version}")
    return Check("extensions", title, worst(statuses), "; ".join(parts))


def _environment(cell: Cell, facts: Facts, expected: Expectations) -> Check:
    title = "Environment"
    env = _section(facts, "env")
    if env is None:
        return Check("env", title, FAIL, "the probe reported no environment")
    problems = []
    # The NVIDIA container runtime exposes GPUs (and nvidia-smi) only to images that ask for them.
    if not env.get("NVIDIA_VISIBLE_DEVICES"):
        problems.append("NVIDIA_VISIBLE_DEVICES unset: the container runtime exposes no GPU")
    capabilities = str(env.get("NVIDIA_DRIVER_CAPABILITIES") or "").split(",")
    if not {"compute", "utility"} <= set(capabilities) and "all" not in capabilities:
        problems.append(f"NVIDIA_DRIVER_CAPABILITIES={env.get('NVIDIA_DRIVER_CAPABILITIES')} lacks compute,utility")
    if cell.ca_certificates and not env.get("SSL_CERT_FILE"):
        problems.append("SSL_CERT_FILE unset though the image trusts extra CA certificates")
    if problems:
        return Check("env", title, WARN, "; ".join(problems))
    shown = ("NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "NCCL_NET_PLUGIN", "FI_EFA_USE_DEVICE_RDMA")
    return Check("env", title, OK, ", ".join(f"{k}={env.get(k)}" for k in shown if env.get(k) is not None))


def _probe_errors(cell: Cell, facts: Facts, expected: Expectations) -> Check | None:
    """A row only when a section of the payload failed: what it could not measure."""
    errors = facts.get("errors") if isinstance(facts, Mapping) else None
    if not errors:
        return None
    if not isinstance(errors, list):
        return Check("probe", "Probe", WARN, f"unreadable errors: {errors!r:.200}")
    parts = [f"{e.get('section')}: {e.get('error')}" if isinstance(e, dict) else str(e) for e in errors]
    return Check("probe", "Probe", WARN, "sections that failed: " + "; ".join(parts))


Judge = Callable[[Cell, Facts, Expectations], Check]
CHECKS: tuple[tuple[str, str, Judge], ...] = (
    ("driver", "CUDA toolkit vs host driver", _driver),
    ("torch-cuda", "PyTorch vs CUDA", _torch_cuda),
    ("cuda", "CUDA available", _cuda),
    ("nccl", "NCCL", _nccl),
    ("network", "EFA/RDMA", _network),
    ("abi", "CXX11 ABI (CUDA extensions)", _abi),
    ("python", "Python", _python),
    ("extensions", "Extensions", _extensions),
    ("env", "Environment", _environment),
)


def judge(cell: Cell, facts: object, expected: Expectations | None = None) -> list[Check]:
    """The seed's table from the probe's facts. Never raises: facts it cannot read are a FAIL saying so."""
    expected = expected or Expectations()
    if not isinstance(facts, Mapping):
        return [
            Check(i, title, FAIL, f"the probe reported no facts (got {type(facts).__name__})") for i, title, _ in CHECKS
        ]
    rows = []
    for check_id, title, check in CHECKS:
        try:
            rows.append(check(cell, facts, expected))
        except Exception as exc:  # malformed facts: a FAIL that says what could not be read
            rows.append(Check(check_id, title, FAIL, f"unreadable probe facts: {type(exc).__name__}: {one_line(exc)}"))
    errors = _probe_errors(cell, facts, expected)
    return [*rows, errors] if errors else rows


def _distributions(facts: Facts) -> dict[str, str]:
    """name -> version from the payload's `name==version` list; names normalised as in PEP 503."""
    out: dict[str, str] = {}
    listed = facts.get("distributions")
    for item in listed if isinstance(listed, list) else []:
        name, sep, version = str(item).partition("==")
        if sep:
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out
