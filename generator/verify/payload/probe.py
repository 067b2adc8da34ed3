"""Probe shipped into fleet images (the host copies it to /air-fleet-probe/probe.py before each run).

Runs INSIDE an image with the image's own Python: standard library only (torch is imported inside a try),
Python 3.8 syntax. Reports facts, never judges them: it prints ONE JSON object on stdout and exits 0
even when the facts are bad, because the host compares them with the cell's expectations
(generator/verify/probe.py). Every section catches its own errors, so one broken part of an image (a torch
that does not import, a missing nvidia-smi) never hides the others.

    python probe.py [EXPECT_JSON]   # default: expect.json beside this file (/opt/fleet/expect.json)

EXPECT_JSON is the fleet's expect.json: {"extensions": [{"name", "version", "import", "native_modules"}]};
anything else in it is ignored, and a missing or unreadable file means no extensions to import.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the payload also runs on Python 3.8, where dict[...] is not a value
    from collections.abc import Callable

    Json = dict[str, Any]

SCHEMA = 1
DATABRICKS_PYTHON = "/databricks/python/bin/python"
ENV_VARS = (
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "LD_LIBRARY_PATH",
    "FI_EFA_USE_DEVICE_RDMA",
    "NCCL_NET_PLUGIN",
    "OPENSSL_FORCE_FIPS_MODE",
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "VIRTUAL_ENV",
    "PATH",
)
# Where the network stacks put their libraries: the EFA installer under /opt/amazon, rdma-core in the
# distribution's library directories.
EFA_GLOBS = (
    "/opt/amazon/efa/lib*/libfabric.so*",
    "/usr/lib/x86_64-linux-gnu/libfabric.so*",
    "/usr/lib64/libfabric.so*",
)
OFI_NCCL_GLOBS = ("/opt/amazon/ofi-nccl/lib*/libnccl-net*.so", "/opt/amazon/ofi-nccl/lib*/*/libnccl-net*.so")
IBVERBS_GLOBS = ("/usr/lib/x86_64-linux-gnu/libibverbs.so*", "/usr/lib64/libibverbs.so*", "/usr/lib/libibverbs.so*")
NOT_MEASURED = "not measured: no GPU visible"
COMMAND_TIMEOUT_S = 30
CHILD_TIMEOUT_S = 240  # importing torch and one extension, from a cold disk


def _error(exc: BaseException) -> str:
    """One line: the exception's type and message (an undefined symbol's name is in the message)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run(argv: list[str]) -> str | None:
    """A command's stdout, or None when it is not there or fails."""
    if shutil.which(argv[0]) is None:
        return None
    done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def _found(patterns: tuple[str, ...]) -> list[str]:
    return sorted({p for pattern in patterns for p in glob.glob(pattern)})


class ChildDied(Exception):
    """A child interpreter crashed, hung or printed no JSON; `lines` holds what it said before."""

    def __init__(self, message: str, lines: list[Json]) -> None:
        super().__init__(message)
        self.lines = lines


def _child(args: list[str]) -> list[Json]:
    """Run this file again in a fresh interpreter of the image's Python; its JSON lines.

    Native code (torch, a compiled extension) can kill an interpreter outright (SIGSEGV, abort()); in a
    child, that is one recorded fact and every other section is still measured.
    """
    argv = [sys.executable, "-X", "faulthandler", os.path.abspath(__file__), *args]  # a crash prints where
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ChildDied(f"hung: no answer within {CHILD_TIMEOUT_S} s", _json_lines(exc.stdout)) from None
    lines = _json_lines(done.stdout)
    if done.returncode != 0:
        tail = " ".join(done.stderr.split()[-30:])
        raise ChildDied(f"{_death(done.returncode)}: {tail}".rstrip(": "), lines)
    return lines


def _death(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "unknown"
    return f"died of signal {-returncode} ({name})"


def _json_lines(text: str | bytes | None) -> list[Json]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out = []
    for line in (text or "").splitlines():
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                out.append(value)
    return out


def load_expect(path: str) -> list[Json]:
    """The extensions to import; tolerant of older or partial files (the host reads the errors)."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    extensions = data.get("extensions") if isinstance(data, dict) else None
    return [e for e in extensions or [] if isinstance(e, dict) and isinstance(e.get("name"), str)]


# `prefix` is the environment's real directory: a venv started through a linked directory (the Databricks
# stand-in's /databricks/python -> /opt/venv) reports the link as sys.prefix, though it is the same venv.
PREFIX = "import os, sys; print(os.path.realpath(sys.prefix))"


def python_facts() -> Json:
    return {"version": sys.version.split()[0], "executable": sys.executable, "prefix": os.path.realpath(sys.prefix)}


def databricks_python_facts() -> Json:
    """The interpreter Databricks runs, and the environment it really starts in (its sys.prefix).

    A link to a venv's bin/python alone starts the system Python without the venv's packages (Python finds
    its venv through pyvenv.cfg next to the path it was started by), so the prefix, not the link's target,
    says whether that interpreter sees torch.
    """
    path = DATABRICKS_PYTHON
    exists = os.path.exists(path)  # follows links: a dangling link is "not there"
    out: Json = {"path": path, "exists": exists, "target": os.path.realpath(path) if exists else None, "prefix": None}
    if exists:
        out["prefix"] = _run([path, "-c", PREFIX])
    return out


def uv_facts() -> Json:
    path = shutil.which("uv")
    version = _run([path, "--version"]) if path else None
    return {"path": path, "version": version}


def torch_facts() -> Json:
    """torch's facts, from a child interpreter: a torch whose native code crashes is a fact, not the end."""
    try:
        lines = _child(["--torch"])
    except ChildDied as exc:
        return {"imported": False, "error": f"the interpreter importing torch {exc}"}
    return lines[-1] if lines else {"imported": False, "error": "the interpreter importing torch said nothing"}


def _torch_here() -> Json:
    out: Json = {"imported": False}
    try:
        import torch
    except Exception as exc:  # the finding itself: an image whose torch does not import
        out["error"] = _error(exc)
        return out
    out["imported"] = True
    try:
        _torch_details(torch, out)
    except Exception as exc:  # torch imports but a query fails: what was measured stays, with the error
        out["error"] = _error(exc)
    return out


def _torch_details(torch: Any, out: Json) -> None:
    out["version"] = torch.__version__
    out["cuda"] = torch.version.cuda
    out["cxx11_abi"] = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    out["cuda_available"] = bool(torch.cuda.is_available())
    out["device_count"] = int(torch.cuda.device_count()) if out["cuda_available"] else 0
    out["devices"] = []
    out["nccl"] = None
    out["nccl_note"] = NOT_MEASURED
    if out["cuda_available"]:
        out["devices"] = [_device(torch, i) for i in range(out["device_count"])]
        try:
            version = torch.cuda.nccl.version()
            out["nccl"] = ".".join(str(p) for p in version) if isinstance(version, tuple) else str(version)
            out["nccl_note"] = "torch.cuda.nccl.version()"
        except Exception as exc:  # NCCL that does not load is a fact the host judges
            out["nccl_note"] = _error(exc)


def _device(torch: Any, index: int) -> Json:
    major, minor = torch.cuda.get_device_capability(index)
    return {"name": torch.cuda.get_device_name(index), "capability": f"{major}.{minor}"}


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _import(module: str) -> str:
    try:
        importlib.import_module(module)
    except BaseException as exc:  # an ABI mismatch shows here as ImportError: undefined symbol
        return _error(exc)
    return "ok"


def _archs(module: str) -> list[str] | None:
    """A loaded native module's kernel architectures (None: not a shared object, or no GPU code)."""
    path = getattr(sys.modules.get(module), "__file__", None)
    if not path or not path.endswith(".so"):
        return None
    try:
        return kernel_archs(path)
    except Exception:  # an unreadable ELF is no finding of its own: the module loaded
        return None


# A CUDA fatbinary (the .nv_fatbin section nvcc links into an extension): containers of entries, each entry
# one kernel image for one architecture, kind 1 PTX (compute_XY, JIT-compiled by the driver) or kind 2 a
# cubin (sm_XY). Layouts (little-endian): container {u32 magic, u16 version, u16 header_size, u64 size};
# entry {u16 kind, u16, u32 header_size, u64 size, u32, u32, u16 minor, u16 major, u32 arch, ...}; the arch
# is in the clear even when the entry's payload is compressed, so no cuobjdump is needed.
FATBIN_MAGIC = 0xBA55ED50
FATBIN_KINDS = {1: "compute", 2: "sm"}


def elf_section(path: str, wanted: str) -> bytes | None:
    """The bytes of a 64-bit little-endian ELF file's section named `wanted`, or None when it has none."""
    import struct

    with open(path, "rb") as fh:
        data = fh.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_at = headers[shstrndx][4]
    for name_off, _type, _flags, _addr, offset, size in headers:
        end = data.index(b"\0", names_at + name_off)
        if data[names_at + name_off : end].decode("ascii", "replace") == wanted:
            return data[offset : offset + size]
    return None


def fatbin_archs(blob: bytes) -> list[str]:
    """Every kernel image a fatbinary holds, as sm_XY / compute_XY, sorted, once each."""
    import struct

    found = set()
    at = 0
    while at + 16 <= len(blob):
        magic, _version, header_size, size = struct.unpack_from("<IHHQ", blob, at)
        if magic != FATBIN_MAGIC:  # containers are 8-byte aligned; padding between them
            at += 8
            continue
        entry, end = at + header_size, at + header_size + size
        while entry + 32 <= end:
            kind, _u, entry_header, entry_size = struct.unpack_from("<HHIQ", blob, entry)
            (arch,) = struct.unpack_from("<I", blob, entry + 28)
            if kind in FATBIN_KINDS:
                found.add(f"{FATBIN_KINDS[kind]}_{arch}")
            if entry_header == 0:
                break
            entry += entry_header + entry_size
        at = end
    return sorted(found)


def kernel_archs(path: str) -> list[str] | None:
    """The GPU architectures a compiled module carries kernels for; None: no .nv_fatbin (CPU code only)."""
    blob = elf_section(path, ".nv_fatbin")
    return None if blob is None else fatbin_archs(blob)


SELF_TEST = "call:"  # an --import argument that names a self test: call:module:function


def _call(target: str) -> str:
    """Call an extension's self test (`module:function`, no arguments): "ok" when it returns a true value."""
    module, _, function = target.partition(":")
    try:
        answer = getattr(importlib.import_module(module), function)()
    except BaseException as exc:  # a compiled operator that crashes in Python's reach, or a missing function
        return _error(exc)
    return "ok" if answer else f"returned {answer!r}"


def _imports_here(modules: list[str]) -> None:
    """The child's side: torch first (native modules need libtorch loaded, as in a real job), then each
    module in order, one JSON line each, flushed, so the parent knows which one a crash happened in."""
    with contextlib.suppress(Exception):  # a torch that does not import is the torch section's finding
        import torch  # noqa: F401
    for module in modules:
        result = _call(module[len(SELF_TEST) :]) if module.startswith(SELF_TEST) else _import(module)
        archs = _archs(module) if result == "ok" and not module.startswith(SELF_TEST) else None
        print(json.dumps({"module": module, "result": result, "archs": archs}), flush=True)


def extension_facts(extensions: list[Json]) -> Json:
    """Import each extension and its native modules (where a wrong C++ ABI shows), each extension in a
    child interpreter of its own: a native module that crashes the interpreter marks only its extension.
    `native` is "ok" when every native module loads, else the first failure as "<module>: <why>"."""
    out: Json = {}
    for ext in extensions:
        name = ext["name"]
        natives = [m for m in ext.get("native_modules") or [] if isinstance(m, str) and m]
        entry: Json = {"import": "n/a", "native": "n/a", "native_modules": {m: "n/a" for m in natives}}
        entry["version"] = _version(name)
        test = ext.get("self_test") if isinstance(ext.get("self_test"), str) else None
        calls = [SELF_TEST + test] if test else []
        wanted = [m for m in (ext.get("import"), *natives) if isinstance(m, str) and m] + calls
        if wanted:
            try:
                lines, missing = _child(["--import", *wanted]), "the child said nothing about it"
            except ChildDied as exc:  # it died at the first module it has no line for
                lines, missing = exc.lines, f"Crashed: the interpreter {exc}"
            results = {str(line.get("module")): str(line.get("result")) for line in lines}
            archs = {str(line.get("module")): line.get("archs") for line in lines}
            if natives:
                entry["archs"] = {m: archs.get(m) for m in natives}  # None: no GPU code in that module
            if ext.get("import"):
                entry["import"] = results.get(ext["import"], missing)
            for module in natives:
                entry["native_modules"][module] = results.get(module, missing)
            if test:  # the compiled operator called, not only loaded
                entry["self_test"] = {"call": test, "result": results.get(SELF_TEST + test, missing)}
            failed = [f"{m}: {r}" for m, r in entry["native_modules"].items() if r != "ok"]
            if natives:
                entry["native"] = failed[0] if failed else "ok"
        out[name] = entry
    return out


def network_facts() -> Json:
    return {
        "efa": {"installed": os.path.isdir("/opt/amazon/efa"), "libfabric": _found(EFA_GLOBS)},
        "ofi_nccl": _found(OFI_NCCL_GLOBS),
        "infiniband": {"libibverbs": _found(IBVERBS_GLOBS), "ibv_devinfo": shutil.which("ibv_devinfo")},
    }


def env_facts() -> Json:
    return {name: os.environ.get(name) for name in ENV_VARS}


def driver_facts() -> str | None:
    out = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return out.splitlines()[0].strip() if out else None


def distribution_facts() -> list[str]:
    """name==version of every installed distribution, sorted: an SBOM-like manifest of the environment."""
    from importlib import metadata

    seen: set[str] = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            seen.add(f"{name}=={dist.version}")
    return sorted(seen, key=str.lower)


def _section(report: Json, key: str, collect: Callable[[], Any]) -> None:
    try:
        report[key] = collect()
    except BaseException as exc:  # one section's failure is recorded and the others still run
        report[key] = None
        report["errors"].append({"section": key, "error": _error(exc), "trace": traceback.format_exc(limit=3)})


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--torch":  # a child: see _child
        print(json.dumps(_torch_here()), flush=True)
        return 0
    if len(argv) > 1 and argv[1] == "--import":
        _imports_here(argv[2:])
        return 0
    expect_path = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "expect.json")
    report: Json = {"schema": SCHEMA, "probe": os.path.abspath(__file__), "expect": expect_path, "errors": []}
    extensions: list[Json] = []
    try:
        extensions = load_expect(expect_path)
    except BaseException as exc:
        report["errors"].append({"section": "expect", "error": _error(exc)})
    _section(report, "python", python_facts)
    _section(report, "databricks_python", databricks_python_facts)
    _section(report, "uv", uv_facts)
    _section(report, "torch", torch_facts)
    _section(report, "extensions", lambda: extension_facts(extensions))
    _section(report, "network", network_facts)
    _section(report, "env", env_facts)
    _section(report, "driver", driver_facts)
    _section(report, "distributions", distribution_facts)
    # stdout carries only the JSON: torch's warnings go to stderr, and the host parses the last line.
    sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
