"""The values the pipeline passes along: a validated Matrix, and the Cells it expands to.

All frozen: a Cell is an immutable value, identified by its slug, numbered by its 1-based index in
matrix order (`build-1`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

CLOUDS = ("aws", "azure")
VARIANTS = ("runtime", "devel")
BASES = ("databricks", "scratch")
SELECTOR_KEYS = ("cloud", "variant", "base", "torch", "stack")


@dataclass(frozen=True)
class Origin:
    """Where in the matrix a value was written, for one-line errors."""

    file: Path
    line: int | None
    key: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}" if self.line else f"{self.file}: {self.key}"


@dataclass(frozen=True)
class ExtensionPin:
    """An extension asked for by the matrix: a version (a commit for source archives) and how to build."""

    name: str
    version: str | None  # None: pick from knowledge
    build: str  # "wheel" | "source"
    origin: Origin


@dataclass(frozen=True)
class ExtensionDecl:
    """The `extensions:` section: matrix-wide pins and generic pinned-pip packages."""

    name: str
    kind: str  # a knowledge kind, or "pip"
    version: str | None
    build: str
    origin: Origin


@dataclass(frozen=True)
class TorchRow:
    version: str
    torchvision: str
    torchaudio: str
    index: str  # "pypi" (the default build) or a CUDA index name like "cu126"
    pins: tuple[ExtensionPin, ...]
    origin: Origin

    def pin(self, extension: str) -> ExtensionPin | None:
        return next((p for p in self.pins if p.name == extension), None)

    @property
    def key(self) -> str:
        """The row's identity, what selectors and includes name: `2.8.0` for the package index's default
        build, `2.8.0+cu129` (torch's own local version label) for a build from a CUDA index."""
        return self.version if self.index == "pypi" else f"{self.version}+{self.index}"


@dataclass(frozen=True)
class Selector:
    """A partial cell description; each value is a tuple of fnmatch patterns (any may match)."""

    patterns: tuple[tuple[str, tuple[str, ...]], ...]
    origin: Origin


@dataclass(frozen=True)
class Override:
    select: Selector
    accelerators: tuple[str, ...]


@dataclass(frozen=True)
class Include:
    cloud: str
    variant: str
    base: str
    torch: str
    stack: str
    origin: Origin


SEVERITY_LEVELS = ("low", "medium", "high", "critical")  # rising; an advisory without one is "unknown"


@dataclass(frozen=True)
class Allowance:
    """An advisory the gate lets through until a date, for a reason a person wrote."""

    id: str  # the advisory's id or any of its aliases (GHSA-…, PYSEC-…, CVE-…)
    until: datetime.date  # the last day it allows; from the day after, it no longer does
    reason: str
    origin: Origin


@dataclass(frozen=True)
class VulnerabilityPolicy:
    """What known vulnerabilities of a cell's Python environment the gate refuses (`vulnerabilities:`)."""

    fail_on: str = "high"  # a severity level (refuse it and worse), or "none" (refuse nothing by severity)
    unknown: str = "fail"  # fail | pass: an advisory whose data gives no severity (the package index's)
    not_audited: str = "pass"  # fail | pass: a pinned package the data could not answer for
    allow: tuple[Allowance, ...] = ()


@dataclass(frozen=True)
class SizeAcceptance:
    """A cell allowed to be as large as `max_bytes`, whatever the threshold says, for a reason."""

    cell: str  # a slug pattern (fnmatch)
    max_bytes: int
    reason: str
    origin: Origin


@dataclass(frozen=True)
class SizePolicy:
    """How much a rebuild may grow over the cell's blessed size before the gate refuses it (`size:`)."""

    max_growth_percent: float = 10.0
    accept: tuple[SizeAcceptance, ...] = ()


@dataclass(frozen=True)
class SigningPolicy:
    """The key pair promoted images are signed with (`signing:`), paths resolved against the matrix file.
    Without one, nothing here signs: the real fleet's nightly signs keyless with cosign instead."""

    public_key: Path  # what `verify` and `register` check signatures with (SubjectPublicKeyInfo PEM)
    key: Path | None = None  # the private key (PKCS#8 PEM); only where images are signed


@dataclass(frozen=True)
class Matrix:
    file: Path
    python: str
    registry_host: str
    repository: str  # the release repository: what users pull
    staging_repository: str  # candidates, tested by digest before promotion (same host)
    clouds: tuple[str, ...]
    variants: tuple[str, ...]
    bases: tuple[str, ...]
    accelerators: tuple[str, ...]
    torch: tuple[TorchRow, ...]
    stacks: tuple[tuple[str, tuple[str, ...]], ...]
    extensions: tuple[ExtensionDecl, ...]
    exclude: tuple[Selector, ...]
    include: tuple[Include, ...]
    overrides: tuple[Override, ...]
    host_drivers: tuple[tuple[str, str], ...]
    python_origin: Origin | None = None  # where `python:` was written (None: the default)
    host_driver_origins: tuple[tuple[str, Origin], ...] = ()  # clouds whose driver the matrix overrides
    # Extra CA certificates (one PEM certificate each) for builds behind a TLS-intercepting proxy.
    ca_certificates: tuple[str, ...] = ()
    vulnerabilities: VulnerabilityPolicy = field(default_factory=VulnerabilityPolicy)
    size: SizePolicy = field(default_factory=SizePolicy)
    signing: SigningPolicy | None = None

    def stack(self, name: str) -> tuple[str, ...]:
        return dict(self.stacks)[name]

    def torch_row(self, key: str) -> TorchRow:
        return next(r for r in self.torch if r.key == key)

    def declared(self, extension: str) -> ExtensionDecl | None:
        return next((d for d in self.extensions if d.name == extension), None)


@dataclass(frozen=True)
class Artifact:
    """A file a cell's build COPYs in: fetched once, verified by sha256 once locked."""

    filename: str
    url: str | None  # None: resolved from the package index by `lock`
    project: str
    version: str
    sha256: str | None = None
    size: int | None = None  # bytes, known once locked
    # A wheel the fleet compiled itself (generator/compile/): its bytes are known only after the compile, so
    # it is recorded in the lock's `compiled` section and found in the wheelhouse, never downloaded by URL.
    compiled: bool = False


@dataclass(frozen=True)
class Pinned:
    """One distribution of a cell's Python closure, as the lock pins it."""

    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class ClosureSpec:
    """What a cell's Python closure is resolved from: the top-level requirements, the Python and platform
    of the image, and the index a CUDA build of torch comes from (None: the package index)."""

    requirements: tuple[str, ...]
    python: str
    platform: str
    index_url: str | None

    @property
    def key(self) -> str:
        """The lock's key for this closure: cells with the same inputs share one entry."""
        extra = f" --index-url {self.index_url}" if self.index_url else ""
        return f"{' '.join(self.requirements)} cp{self.python.replace('.', '')} {self.platform}{extra}"


@dataclass(frozen=True)
class Extension:
    """An extension resolved for one cell: what to install and what ABI the artifact really has."""

    name: str
    kind: str  # release-wheel | torch-pinned | source | pip
    version: str
    build: str  # wheel | source | pip
    import_name: str | None
    native_modules: tuple[str, ...]  # compiled modules the probe imports (empty: none known, or pure Python)
    artifacts: tuple[Artifact, ...]
    abi: int | None  # the ABI it was really built with; None: pure Python
    abi_note: str  # one line: how that ABI was determined
    problem: str | None  # why no correct artifact exists (the cell FAILs)
    origin: Origin
    abi_problem: bool = False  # the problem is that no artifact has torch's C++11 ABI
    # The CUDA the artifact itself was built with, where knowledge has it and it may differ from torch's
    # (xformers 0.0.31.post1: 12.8 beside torch 2.7.1's 12.6): the host driver must serve it too.
    cuda: str | None = None
    cuda_note: str = ""  # how `cuda` is known, for the check table
    # Source builds (build == "source") compile once into a wheel in a builder stage (generator/compile/):
    # the GPU architectures it carries kernels for (compute capabilities of the cell's accelerators), the
    # key of that compile once every input is locked, and the compiled wheel once the lock records it.
    archs: tuple[str, ...] = ()
    self_test: str | None = None  # `module:function` the probe calls to run the compiled operator
    compile_key: str | None = None
    wheel: Artifact | None = None

    @property
    def compiles(self) -> bool:
        return self.build == "source"

    @property
    def shipped(self) -> tuple[Artifact, ...]:
        """What a cell's build COPYs for this extension: the compiled wheel (once recorded) for a source
        build, whose source archive only the builder stage reads; the fetched files otherwise."""
        if self.compiles:
            return (self.wheel,) if self.wheel is not None else ()
        return self.artifacts


@dataclass(frozen=True)
class Cell:
    index: int
    slug: str
    cloud: str
    variant: str
    base: str
    base_image: str
    python: str
    python_path: str
    installer: str  # uv | pip
    cuda: str | None  # the base image's CUDA toolkit (None: none, the sandbox's stand-ins)
    torch: str
    torchvision: str
    torchaudio: str
    torch_index: str  # the CUDA build, e.g. cu124
    torch_from_pypi: bool
    torch_cuda: str | None  # None: a CPU build
    abi: int
    nccl: str | None
    stack: str
    extensions: tuple[Extension, ...]
    accelerators: tuple[str, ...]
    host_driver: str
    registry_host: str
    repository: str
    origin: Origin
    staging_repository: str = ""  # "" only in hand-made test cells: then <repository>-staging
    ca_certificates: tuple[str, ...] = field(default=())
    torch_wheel: Artifact | None = None  # torch_from: wheelhouse: the locked wheel the build COPYs
    # The whole Python environment the build installs, resolved and hashed by `lock` (None: not yet).
    closure_spec: ClosureSpec | None = None
    closure: tuple[Pinned, ...] | None = None
    # torch and its companions alone: installed as a layer of its own first, byte-identical across the cells
    # of one torch build (whatever else they add: xformers, einops, packages), so they share that layer.
    torch_closure_spec: ClosureSpec | None = None
    torch_closure: tuple[Pinned, ...] | None = None
    # The base image's manifest digest from the lock (None: not locked yet): FROM <base_image>@<digest>.
    base_digest: str | None = None
    # Files of the system layers the build COPYs (the EFA installer of a from-scratch AWS image).
    system_artifacts: tuple[Artifact, ...] = ()

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        """Every file the build COPYs from wheels/: system files, the torch wheel, then extensions'."""
        torch = (self.torch_wheel,) if self.torch_wheel else ()
        return (*self.system_artifacts, *torch, *(a for e in self.extensions for a in e.shipped))

    @property
    def image(self) -> str:
        """The release repository (`<host>/<repository>`): promoted images only."""
        return f"{self.registry_host}/{self.repository}"

    @property
    def staging_image(self) -> str:
        """The staging repository: every candidate as built, before it is promoted."""
        return f"{self.registry_host}/{self.staging_repository or self.repository + '-staging'}"

    @property
    def torch_minor(self) -> str:
        major, minor_, *_ = self.torch.split(".")
        return f"{major}.{minor_}"
