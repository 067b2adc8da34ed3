"""The knowledge data files (`generator/knowledge/*.yaml`) as typed, read-only values.

Facts live in data files with their sources; this module only gives them types and answers simple
questions about them (which CUDA does this torch index carry, what ABI does that build have). Every
policy decision (OK, WARN, FAIL) lives in `compat.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from packaging.version import Version

from generator.errors import KnowledgeError, MatrixError
from generator.spec.yamlsource import KeyPath, Located, format_path, load_yaml

KNOWLEDGE_DIR = Path(__file__).parent.parent / "knowledge"  # the facts: generator/knowledge/*.yaml


def _load(name: str) -> Located:
    """A knowledge file through the matrix's strict loader (duplicate keys, aliases, size refused)."""
    path = KNOWLEDGE_DIR / name
    try:
        doc = load_yaml(path)
    except MatrixError as exc:
        raise KnowledgeError(str(exc)) from None
    if not isinstance(doc.data, dict) or "source" not in doc.data:
        raise KnowledgeError(f"{path}: expected a mapping with a 'source' key")
    return doc


class _Missing(KnowledgeError, KeyError):
    """A key a knowledge file must have. A KeyError too, so that Mapping.get() still means "or this default"."""

    def __str__(self) -> str:
        return str(self.args[0])


class _Tracked(Mapping[str, Any]):
    """A knowledge file's mapping that says `file:line: key.path` when a key is missing or a value has the
    wrong type, instead of a KeyError traceback. Nested mappings come back tracked too."""

    def __init__(self, doc: Located, data: dict[str, Any], path: KeyPath = ()) -> None:
        self._doc, self._data, self._path = doc, data, path

    def _where(self, path: KeyPath) -> str:
        line = self._doc.line(path)
        return f"{self._doc.file}{f':{line}' if line else ''}: {format_path(path) or '(top)'}"

    def __getitem__(self, key: str) -> Any:
        if key not in self._data:
            raise _Missing(f"{self._where(self._path)}: missing key {key!r}")
        value = self._data[key]
        return _Tracked(self._doc, value, (*self._path, key)) if isinstance(value, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def int(self, key: str) -> int:
        value = self[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise KnowledgeError(f"{self._where((*self._path, key))}: expected a whole number, got {value!r}")
        return value


def minor(version: Version | str) -> str:
    """`2.6.0` -> `2.6`."""
    v = Version(str(version))
    return f"{v.major}.{v.minor}"


@dataclass(frozen=True)
class TorchFacts:
    minor: str
    pypi_cuda: str
    indexes: tuple[str, ...]
    nccl: str | None  # None: a CPU build, no NCCL
    abi: int
    abi_by_index: dict[str, int]
    python_min: str
    python_max: str
    torchvision_minor: str
    torchaudio_minor: str

    def abi_for(self, index: str) -> int:
        return self.abi_by_index.get(index, self.abi)

    def supports_python(self, python: str) -> bool:
        return Version(self.python_min) <= Version(python) <= Version(self.python_max)


@dataclass(frozen=True)
class FlashAttnRelease:
    version: str
    cuda_labels: tuple[str, ...]
    torch_minors: tuple[str, ...]
    python_min: str
    python_max: str
    python_max_by_torch: dict[str, str]
    mislabelled: dict[str, dict[str, int]]

    def real_abi(self, torch_minor: str, label: str) -> int:
        """The ABI a wheel labelled `cxx11abi{label}` for `torch_minor` was really built with."""
        return self.mislabelled.get(torch_minor, {}).get(label, 1 if label == "TRUE" else 0)

    def supports_python(self, torch_minor: str, python: str) -> bool:
        top = self.python_max_by_torch.get(torch_minor, self.python_max)
        return Version(self.python_min) <= Version(python) <= Version(top)


@dataclass(frozen=True)
class Accelerator:
    name: str
    gpus_per_node: int
    gpu: str
    compute_capability: str
    fabric: dict[str, str]  # cloud -> none | efa | infiniband


@dataclass(frozen=True)
class BaseFacts:
    name: str
    image: str
    python: str
    python_path: str
    installer: str
    cuda: str | None  # None: no CUDA toolkit in the image (the sandbox's CPU-only stand-ins)
    os_nccl: str | None
    cuda_compat: bool
    nvcc: dict[str, bool]
    network: dict[str, dict[str, str]]

    def image_for(self, cloud: str, variant: str) -> str:
        return self.image.format(cloud=cloud, variant=variant)


@dataclass(frozen=True)
class CompileFacts:
    """How a source build compiles in the builder stage (extensions.yaml `compile`)."""

    build_options: tuple[str, ...] = ()  # PEP 517 build options that reach setup.py's argv
    env: tuple[tuple[str, str], ...] = ()  # fixed variables of the build
    arch_env: tuple[tuple[str, str], ...] = ()  # variable -> per-capability format, e.g. "{major}.{minor}"
    source_dir: str | None = None  # a source tree inside the project (the sandbox's own extension)
    version: str | None = None  # the version of that tree (a source archive is pinned by commit instead)
    needs_cuda: bool = True

    def arch_values(self, capabilities: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        """Each architecture variable's value for these compute capabilities (`8.6;9.0`, `80;90`)."""
        out = []
        for name, fmt in self.arch_env:
            values: list[str] = []
            for cap in capabilities:
                major, _, minor_ = cap.partition(".")
                value = fmt.format(major=major, minor=minor_ or "0")
                if value not in values:
                    values.append(value)
            out.append((name, ";".join(values)))
        return tuple(out)


@dataclass(frozen=True)
class ExtensionFacts:
    name: str
    kind: str
    import_name: str
    native_modules: tuple[str, ...]  # what the probe imports to prove the compiled part loads
    compiled: bool
    compile: CompileFacts = CompileFacts()
    self_test: str | None = None  # `module:function` the probe calls to run the compiled operator


@dataclass(frozen=True)
class XformersPin:
    torch: str  # the exact torch release the wheel's metadata requires
    cuda: str | None  # the CUDA the wheel was built with (its cpp_lib.json); None: not audited


@dataclass(frozen=True)
class ApexFacts:
    archive_url: str
    build_options: tuple[str, ...]  # PEP 517 build options that reach setup.py's argv
    nvcc_must_match_torch_cuda: str  # "minor": nvcc's major.minor must equal torch.version.cuda's


@dataclass(frozen=True)
class Knowledge:
    cuda_min_driver: dict[str, str]
    cuda_major_floor: dict[str, str]
    host_drivers: dict[str, str]
    accelerators: dict[str, Accelerator]
    bases: dict[str, BaseFacts]
    torch_indexes: dict[str, str | None]  # index -> its CUDA version; None: the cpu index
    torch_index_url: str
    torch: dict[str, TorchFacts]
    flash_attn: dict[str, FlashAttnRelease]
    flash_attn_url: str
    flash_attn_filename: str
    flash_attn_companions: dict[str, str]
    xformers_pins: dict[str, XformersPin]
    apex: ApexFacts
    extensions: dict[str, ExtensionFacts]
    # apt packages a base lacks for compiling in the builder stage (the sandbox's stand-ins: Python's headers)
    compile_packages: dict[str, tuple[str, ...]]
    build_tools: dict[str, str]
    build_max_jobs: int
    sources: dict[str, str]

    @property
    def clouds(self) -> tuple[str, ...]:
        return tuple(self.host_drivers)

    def min_driver(self, cuda: str) -> str | None:
        """The minimum host driver for a CUDA toolkit release (`12.9.1`) or a bare minor (`12.8`: its GA).

        Update releases have their own minimum: the newest listed release of the same major.minor that
        is not newer than `cuda` gives it. None: nothing known for that minor.
        """
        wanted = Version(cuda)
        known = {Version(v): driver for v, driver in self.cuda_min_driver.items()}
        candidates = [v for v in known if v.release[:2] == wanted.release[:2] and v <= wanted]
        return known[max(candidates)] if candidates else None

    def index_cuda(self, index: str) -> str | None:
        return self.torch_indexes[index]


def _compile_facts(c: Mapping[str, Any]) -> CompileFacts:
    return CompileFacts(
        build_options=tuple(str(o) for o in c.get("build_options", [])),
        env=tuple(sorted((str(k), str(v)) for k, v in c.get("env", {}).items())),
        arch_env=tuple(sorted((str(k), str(v)) for k, v in c.get("arch_env", {}).items())),
        source_dir=None if c.get("source_dir") is None else str(c["source_dir"]),
        version=None if c.get("version") is None else str(c["version"]),
        needs_cuda=bool(c.get("needs_cuda", True)),
    )


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`overlay` over `base`: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@cache
def knowledge(overlay_json: str | None = None) -> Knowledge:
    """Every knowledge file, loaded once per process (and per profile overlay).

    `overlay_json` (a JSON string, so the cache can key on it) maps file names to fragments merged over
    them: a profile's own facts, e.g. the sandbox's stand-in bases and its CPU torch.
    """
    docs = {path.name: _load(path.name) for path in sorted(KNOWLEDGE_DIR.glob("*.yaml"))}
    data = {name: dict(doc.data) for name, doc in docs.items()}
    for name, fragment in (json.loads(overlay_json) if overlay_json else {}).items():
        if name not in data:
            raise KnowledgeError(f"profile overlay names an unknown knowledge file {name!r}")
        data[name] = deep_merge(data[name], fragment)
    files = {name: _Tracked(docs[name], value) for name, value in data.items()}
    drivers, hosts, accel = files["cuda_drivers.yaml"], files["host_drivers.yaml"], files["accelerators.yaml"]
    bases, torch, fa = files["bases.yaml"], files["torch.yaml"], files["flash_attn.yaml"]
    xf, apex, ext = files["xformers.yaml"], files["apex.yaml"], files["extensions.yaml"]
    tools = files["build_tools.yaml"]
    return Knowledge(
        cuda_min_driver={str(k): str(v) for k, v in drivers["minimum_driver"].items()},
        cuda_major_floor={str(k): str(v) for k, v in drivers["major_floor"].items()},
        host_drivers={str(k): str(v) for k, v in hosts["drivers"].items()},
        accelerators={
            name: Accelerator(
                name=name,
                gpus_per_node=a.int("gpus_per_node"),
                gpu=str(a["gpu"]),
                compute_capability=str(a["compute_capability"]),
                fabric={str(c): str(f) for c, f in a["fabric"].items()},
            )
            for name, a in accel["accelerators"].items()
        },
        bases={
            name: BaseFacts(
                name=name,
                image=b["image"],
                python=str(b["python"]),
                python_path=b["python_path"],
                installer=b["installer"],
                cuda=None if b["cuda"] is None else str(b["cuda"]),
                os_nccl=b["os_nccl"],
                cuda_compat=bool(b["cuda_compat"]),
                nvcc=dict(b["nvcc"]),
                network={c: {k: str(v) for k, v in n.items()} for c, n in b["network"].items()},
            )
            for name, b in bases["bases"].items()
        },
        torch_indexes={str(k): None if v is None else str(v) for k, v in torch["indexes"].items()},
        torch_index_url=str(torch["index_url"]),
        torch={
            str(m): TorchFacts(
                minor=str(m),
                pypi_cuda=t["pypi_cuda"],
                indexes=tuple(t["indexes"]),
                nccl=None if t["nccl"] is None else str(t["nccl"]),
                abi=t.int("abi"),
                abi_by_index={str(k): t["abi_by_index"].int(k) for k in t.get("abi_by_index", {})},
                python_min=str(t["python"][0]),
                python_max=str(t["python"][1]),
                torchvision_minor=str(t["torchvision"]),
                torchaudio_minor=str(t["torchaudio"]),
            )
            for m, t in torch["releases"].items()
        },
        flash_attn={
            str(v): FlashAttnRelease(
                version=str(v),
                cuda_labels=tuple(r["cuda"]),
                torch_minors=tuple(str(t) for t in r["torch"]),
                python_min=str(r["python"][0]),
                python_max=str(r["python"][1]),
                python_max_by_torch={str(k): str(p) for k, p in r.get("python_max_by_torch", {}).items()},
                mislabelled={str(k): {str(lbl): m.int(lbl) for lbl in m} for k, m in r.get("mislabelled", {}).items()},
            )
            for v, r in fa["releases"].items()
        },
        flash_attn_url=fa["url"],
        flash_attn_filename=fa["filename"],
        flash_attn_companions={str(k): str(v) for k, v in fa["companions"].items()},
        xformers_pins={
            str(k): XformersPin(torch=str(p["torch"]), cuda=None if p.get("cuda") is None else str(p["cuda"]))
            for k, p in xf["pins"].items()
        },
        apex=ApexFacts(
            archive_url=str(apex["archive_url"]),
            build_options=tuple(str(o) for o in ext["extensions"]["apex"]["compile"]["build_options"]),
            nvcc_must_match_torch_cuda=str(apex["nvcc_must_match_torch_cuda"]),
        ),
        extensions={
            name: ExtensionFacts(
                name=name,
                kind=e["kind"],
                import_name=e["import"],
                native_modules=tuple(str(m) for m in e.get("native_modules", [])),
                compiled=bool(e["compiled"]),
                compile=_compile_facts(e.get("compile", {})),
                self_test=None if e.get("self_test") is None else str(e["self_test"]),
            )
            for name, e in ext["extensions"].items()
        },
        compile_packages={
            name: tuple(str(p) for p in b.get("compile_packages", [])) for name, b in bases["bases"].items()
        },
        build_tools={str(k): str(v) for k, v in tools["packages"].items()},
        build_max_jobs=tools.int("max_jobs"),
        sources={name: str(f["source"]) for name, f in files.items()},
    )
