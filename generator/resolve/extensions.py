"""Resolve each extension of a cell to the artifact that really works with the cell's torch.

Pure functions of the knowledge tables: which flash-attn wheel (by its REAL ABI, not its label), which
xformers pin, which apex source archive. When no correct artifact exists, the Extension carries a
`problem` and the cell FAILs its checks; nothing here guesses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from packaging.version import Version

from generator.model import Artifact, Extension, Origin
from generator.spec.knowledge import Knowledge


@dataclass(frozen=True)
class TorchBuild:
    """What an extension has to match: torch version, where it came from, its ABI and python."""

    version: str
    minor: str
    index: str  # CUDA build, e.g. cu124
    from_pypi: bool
    cuda: str | None  # None: a CPU build
    abi: int
    python: str

    @property
    def describe(self) -> str:
        where = "the package index default build" if self.from_pypi else f"the {self.index} index"
        return f"torch {self.version} from {where}, ABI {self.abi}"


def cp_tag(python: str) -> str:
    return "cp" + python.replace(".", "")


def resolve(
    name: str, version: str | None, build: str, kind: str, torch: TorchBuild, facts: Knowledge, origin: Origin
) -> Extension:
    if kind == "release-wheel":
        return _flash_attn(name, version, build, torch, facts, origin)
    if kind == "torch-pinned":
        return _xformers(name, version, torch, facts, origin)
    if kind == "source":
        return _source(name, version, torch, facts, origin)
    assert kind == "pip" and version is not None
    return Extension(
        name=name,
        kind="pip",
        version=version,
        build="pip",
        import_name=None,
        native_modules=(),
        artifacts=(),
        abi=None,
        abi_note="pure Python",
        problem=None,
        origin=origin,
    )


def _template(name: str, kind: str, build: str, facts: Knowledge, origin: Origin) -> Extension:
    """An unresolved extension: no artifact, no ABI; the resolvers fill in what they find."""
    ext = facts.extensions[name]
    return Extension(
        name=name,
        kind=kind,
        version="none",
        build=build,
        import_name=ext.import_name,
        native_modules=ext.native_modules,
        self_test=ext.self_test,
        artifacts=(),
        abi=None,
        abi_note="unresolved",
        problem=None,
        origin=origin,
    )


def _flash_attn(
    name: str, version: str | None, build: str, torch: TorchBuild, facts: Knowledge, origin: Origin
) -> Extension:
    base = _template(name, "release-wheel", "wheel", facts, origin)
    if build == "source":
        v = version or max(facts.flash_attn, key=Version)
        # The sdist is fetched and sha256-locked like every other artifact, never resolved at build time.
        sdist = Artifact(filename=f"flash_attn-{v}.tar.gz", url=None, project="flash-attn", version=v)
        # A FORCED build takes torch's ABI (knowledge/extensions.yaml): only FLASH_ATTENTION_FORCE_CXX11_ABI,
        # which the recipe never sets, would force 1.
        return replace(
            base,
            version=v,
            build="source",
            artifacts=(sdist,),
            abi=torch.abi,
            abi_note=(
                f"forced source build (FLASH_ATTENTION_FORCE_BUILD=TRUE): follows torch's "
                f"_GLIBCXX_USE_CXX11_ABI, so ABI {torch.abi}"
            ),
        )
    candidates = [version] if version else sorted(facts.flash_attn, key=Version, reverse=True)
    first: tuple[str, bool] | None = None
    for v in candidates:
        picked, problem, abi_related = _flash_attn_wheel(v, torch, facts)
        if picked is not None:
            wheel, abi, note = picked
            return replace(base, version=v, artifacts=(wheel,), abi=abi, abi_note=note)
        first = first or (problem, abi_related)
    assert first is not None
    shown = version or "any known release"
    return replace(base, version=version or "none", problem=f"flash-attn {shown}: {first[0]}", abi_problem=first[1])


def _flash_attn_wheel(
    version: str, torch: TorchBuild, facts: Knowledge
) -> tuple[tuple[Artifact, int, str] | None, str, bool]:
    """(wheel, its real ABI, note) or None with the reason and whether the reason is the ABI."""
    release = facts.flash_attn.get(version)
    if release is None:
        return None, "not in generator/knowledge/flash_attn.yaml", False
    if torch.minor not in release.torch_minors:
        return None, f"no release wheel for torch {torch.minor} (built for {', '.join(release.torch_minors)})", False
    if not release.supports_python(torch.minor, torch.python):
        return None, f"no {cp_tag(torch.python)} wheel for torch {torch.minor}", False
    if torch.cuda is None:
        return None, f"torch {torch.version} is a CPU build; flash-attn needs CUDA", False
    cuda_major = torch.cuda.split(".")[0]
    labels = [c for c in release.cuda_labels if c.removeprefix("cu")[:2] == cuda_major]
    if not labels:
        return None, f"no CUDA {cuda_major} build (wheels: {', '.join(release.cuda_labels)})", False
    # cu118/cu123-style labels: the newest not newer than torch's CUDA; cu12: the major only.
    fitting = [c for c in labels if len(c) <= 4 or _cuda_of_label(c) <= Version(torch.cuda)]
    cuda_label = max(fitting or labels, key=_cuda_of_label)
    # Prefer the honestly labelled wheel; accept a mislabelled one whose real ABI matches.
    for label in ("TRUE", "FALSE") if torch.abi == 1 else ("FALSE", "TRUE"):
        real = release.real_abi(torch.minor, label)
        if real != torch.abi:
            continue
        filename = facts.flash_attn_filename.format(
            version=version, cuda=cuda_label, torch=torch.minor, abi_label=label, py=cp_tag(torch.python)
        )
        url = facts.flash_attn_url.format(version=version, filename=filename.replace("+", "%2B"))
        honest = (label == "TRUE") == (real == 1)
        note = f"cxx11abi{label} wheel, built with ABI {real}" + ("" if honest else " (mislabelled)")
        return (Artifact(filename=filename, url=url, project="flash-attn", version=version), real, note), "", False
    mislabel = release.mislabelled.get(torch.minor, {})
    detail = "; ".join(f"the cxx11abi{lbl} wheel is mislabelled (really ABI {abi})" for lbl, abi in mislabel.items())
    return None, f"no wheel built with ABI {torch.abi} for {torch.describe}" + (f": {detail}" if detail else ""), True


def _cuda_of_label(label: str) -> Version:
    digits = label.removeprefix("cu")
    return Version(f"{digits[:2]}.{digits[2:] or 0}")


def _xformers(name: str, version: str | None, torch: TorchBuild, facts: Knowledge, origin: Origin) -> Extension:
    base = _template(name, "torch-pinned", "wheel", facts, origin)
    if version is None:
        matches = [v for v, p in facts.xformers_pins.items() if Version(p.torch) == Version(torch.version)]
        if not matches:
            return replace(
                base, problem=f"no xformers release pins torch {torch.version} (generator/knowledge/xformers.yaml)"
            )
        version = max(matches, key=Version)
    pin = facts.xformers_pins.get(version)
    if pin is None:
        return replace(base, version=version, problem=f"xformers {version} is not in generator/knowledge/xformers.yaml")
    if Version(pin.torch) != Version(torch.version):
        return replace(
            base,
            version=version,
            problem=f"xformers {version} pins torch=={pin.torch}, the cell has torch {torch.version}",
        )
    # Built against the package index's default torch build of that release: its ABI, and its CUDA unless
    # the wheel's own cpp_lib.json (knowledge) says otherwise.
    default = facts.torch[torch.minor]
    built_cuda = pin.cuda or facts.index_cuda(default.pypi_cuda)
    if built_cuda is None or torch.cuda is None or built_cuda.split(".")[0] != torch.cuda.split(".")[0]:
        return replace(
            base,
            version=version,
            problem=f"xformers {version} on the package index is built for CUDA {built_cuda}; "
            f"this torch is {torch.index}",
        )
    built_abi = default.abi
    how = "its cpp_lib.json" if pin.cuda else f"assumed from torch {pin.torch}'s default build, not audited"
    return replace(
        base,
        version=version,
        abi=built_abi,
        abi_note=f"built against torch {pin.torch} default build (ABI {built_abi})",
        cuda=built_cuda,
        cuda_note=f"built with CUDA {built_cuda} ({how})",
    )


def _source(name: str, version: str | None, torch: TorchBuild, facts: Knowledge, origin: Origin) -> Extension:
    """A source build: apex's pinned commit archive, or a source tree of the project's own (the sandbox's
    extension), compiled once per compile key into a wheel (generator/compile/)."""
    base = _template(name, "source", "source", facts, origin)
    recipe = facts.extensions[name].compile
    note = "source build via torch.utils.cpp_extension: takes torch's ABI flag"
    if recipe.source_dir is not None:
        # The tree is part of the project: its content hash, not a fetched file, names the source.
        return replace(base, version=version or recipe.version or "0", abi=torch.abi, abi_note=note)
    if version is None:
        return replace(base, problem=f"{name} has no prebuilt wheels: pin a source commit (`{name}: <40-hex commit>`)")
    archive = Artifact(
        filename=f"{name}-{version}.tar.gz",
        url=facts.apex.archive_url.format(ref=version),
        project=name,
        version=version,
    )
    return replace(base, version=version, artifacts=(archive,), abi=torch.abi, abi_note=note)
