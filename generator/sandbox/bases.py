"""Local stand-ins for the base images the fleet builds FROM, so the sandbox profile can build for real.

The real bases (databricksruntime/air, nvidia/cuda) cannot be pulled everywhere and need GPUs to mean
anything. The sandbox builds CPU-only look-alikes instead, from a real Debian 12 rootfs made here with
debootstrap and imported into the engine (`air-sandbox/debian:bookworm`, see rootfs.py), laid out like
the real bases: Python in /opt/venv with uv for the databricks ones, no Python for the nvidia/cuda ones,
the same env vars.

Cheap when nothing changed: the rootfs image is made once, and each stand-in carries a digest label over
what built it (its rendered Dockerfile, its build context, its parent's image id); a stand-in whose label
already matches is not built again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import re
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import jinja2

from generator.sandbox.errors import SandboxBaseError
from generator.sandbox.processes import make_private, write_private
from generator.sandbox.registry import DEFAULT_REGISTRY
from generator.sandbox.rootfs import BUILT, ROOTFS_REF, UP_TO_DATE, ensure_rootfs, find_image, first_line, logs_dir

# BUILT, UP_TO_DATE and SandboxBaseError are ensure_bases's outcomes and failure: callers take them from here.
__all__ = [
    "BUILD_NETWORK",
    "BUILT",
    "CA_FILE",
    "DIGEST_LABEL",
    "HOST_CA",
    "TEMPLATES",
    "UP_TO_DATE",
    "UV_VERSION",
    "BuildPlan",
    "SandboxBaseError",
    "StandIn",
    "ensure_bases",
    "plan",
    "stand_ins",
]

TEMPLATES = Path(__file__).parent / "templates"
UV_VERSION = "0.9.5"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CA_FILE = "host-ca.crt"  # its name inside a build context
DIGEST_LABEL = "air-fleet.stand-in-digest"
# The build steps (apt-get, pip) run in the host's network namespace: they need no docker0 bridge nor
# iptables NAT, which engines inside CI containers often lack or lose, and they reach the mirror and the
# index exactly as the host does. Only the project's own templates run there.
BUILD_NETWORK = "host"


@dataclass(frozen=True)
class StandIn:
    ref: str  # e.g. "air-sandbox/databricks-air:dcs-base-aws-runtime"
    stands_in_for: str  # e.g. "databricksruntime/air:dcs-base-aws-runtime"
    kind: str  # "databricks" | "scratch"
    cloud: str | None  # None for scratch
    variant: str  # runtime | devel

    @property
    def template(self) -> str:
        return f"{self.kind}.Dockerfile.j2"

    @property
    def slug(self) -> str:
        """A file name for this stand-in's log: the ref with its separators folded."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.ref)

    def published(self, registry: str = DEFAULT_REGISTRY) -> str:
        """Where the sandbox profile's cells take it FROM: the local registry, so that it has a manifest
        digest the lock can pin, as the real fleet pins Docker Hub's."""
        return f"{registry}/{self.ref}"


def stand_ins() -> list[StandIn]:
    """The six stand-ins, in the order that reuses the most build cache (see the templates)."""
    found = [
        StandIn(
            ref=f"air-sandbox/databricks-air:dcs-base-{cloud}-{variant}",
            stands_in_for=f"databricksruntime/air:dcs-base-{cloud}-{variant}",
            kind="databricks",
            cloud=cloud,
            variant=variant,
        )
        for cloud in ("aws", "azure")
        for variant in ("runtime", "devel")
    ]
    found += [
        StandIn(
            ref=f"air-sandbox/nvidia-cuda:12.9.0-{variant}-ubuntu24.04",
            stands_in_for=f"nvidia/cuda:12.9.0-{variant}-ubuntu24.04",
            kind="scratch",
            cloud=None,
            variant=variant,
        )
        for variant in ("runtime", "devel")
    ]
    return found


# --- what builds a stand-in, and its digest ---------------------------------------------------------------


@dataclass(frozen=True)
class BuildPlan:
    """A stand-in's build context: the rendered Dockerfile and the other files, by name."""

    stand_in: StandIn
    dockerfile: str
    files: dict[str, bytes] = field(default_factory=dict)

    def digest(self, parent_id: str) -> str:
        """sha256 over everything the build consumes; each part is length-framed so none can alias another."""
        sha = hashlib.sha256()
        parts = [("parent", parent_id.encode()), ("Dockerfile", self.dockerfile.encode())]
        parts += sorted(self.files.items())
        for name, data in parts:
            sha.update(f"{name}\0{len(data)}\0".encode())
            sha.update(data)
        return f"sha256:{sha.hexdigest()}"

    def write(self, context: Path) -> None:
        (context / "Dockerfile").write_text(self.dockerfile, encoding="utf-8")
        for name, data in self.files.items():
            (context / name).write_bytes(data)


def plan(stand_in: StandIn, templates: Path = TEMPLATES, ca_bundle: Path = HOST_CA) -> BuildPlan:
    """Render a stand-in's Dockerfile from its kind's template; databricks ones also need the CA bundle."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - a Dockerfile, not HTML
    )
    dockerfile = env.get_template(stand_in.template).render(
        parent=ROOTFS_REF,
        stands_in_for=stand_in.stands_in_for,
        cloud=stand_in.cloud,
        variant=stand_in.variant,
        uv_version=UV_VERSION,
        ca_file=CA_FILE,
    )
    files = {CA_FILE: _read_ca(ca_bundle)} if CA_FILE in dockerfile else {}
    return BuildPlan(stand_in, dockerfile, files)


def _read_ca(ca_bundle: Path) -> bytes:
    try:
        return ca_bundle.read_bytes()
    except OSError as exc:
        raise SandboxBaseError(
            f"cannot read the host's CA bundle {ca_bundle} ({exc.strerror}): the uv step needs it to reach the "
            "package index through the proxy"
        ) from None


def ensure_bases(
    client: docker.DockerClient,
    wanted: list[StandIn] | None = None,
    progress: Callable[[str], None] = print,
    *,
    templates: Path = TEMPLATES,
    registry: str | None = DEFAULT_REGISTRY,
) -> list[tuple[StandIn, str]]:
    """Make sure each wanted stand-in (default: all six) exists and is current; build the ones that are not,
    and push each to `registry` (None: keep them local) as `StandIn.published()`.

    Returns (stand-in, "built" | "up to date") in `wanted`'s order. The rootfs image is made first when
    missing. One process at a time per machine: a second one waits, then finds everything up to date.
    """
    wanted = stand_ins() if wanted is None else wanted
    with _lock():
        make_private(logs_dir().glob("*.log"))  # also those an older run wrote 0644 and no build rewrites now
        parent_id = ensure_rootfs(client, progress)
        done = [(stand_in, _ensure(client, plan(stand_in, templates), parent_id, progress)) for stand_in in wanted]
        if registry is not None:
            for stand_in, _ in done:
                _publish(client, stand_in, registry)
        return done


def _publish(client: docker.DockerClient, stand_in: StandIn, registry: str) -> None:
    """Tag and push the stand-in to the local registry. Always pushed: the registry answers for layers it
    has at once, and a stand-in rebuilt under the same tag must reach it (`lock --refresh` then sees it)."""
    target = stand_in.published(registry)
    image = client.images.get(stand_in.ref)
    image.tag(target)
    try:
        for line in client.api.push(target, stream=True, decode=True):
            if "error" in line:
                raise SandboxBaseError(f"{target}: push to the sandbox registry failed: {line['error']}")
    except docker.errors.APIError as exc:
        raise SandboxBaseError(f"{target}: push to the sandbox registry failed: {first_line(exc)}") from None


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    # One lock per machine, not per state dir: the images live in the one engine, and two processes with
    # different AIR_FLEET_STATE (a test run next to a CLI run) would otherwise build the same refs at once.
    lock = Path(tempfile.gettempdir()) / "air-fleet-sandbox-bases.lock"
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _ensure(client: docker.DockerClient, build: BuildPlan, parent_id: str, progress: Callable[[str], None]) -> str:
    stand_in = build.stand_in
    digest = build.digest(parent_id)
    image = find_image(client, stand_in.ref)
    if image is not None and (image.labels or {}).get(DIGEST_LABEL) == digest:
        progress(f"{stand_in.ref}: {UP_TO_DATE}")
        return UP_TO_DATE
    start = time.monotonic()
    _build(client, build, digest)
    if image is not None:
        _drop_if_dangling(client, str(image.id))
    progress(f"{stand_in.ref}: {BUILT} in {time.monotonic() - start:.0f} s")
    return BUILT


def _drop_if_dangling(client: docker.DockerClient, image_id: str) -> None:
    """Remove the stand-in this build replaced, unless something still uses it (a tag, a child, a container).

    Without this every template edit would leave a few hundred MB of untagged image behind.
    """
    with contextlib.suppress(docker.errors.APIError):
        if not client.images.get(image_id).tags:
            client.images.remove(image_id)  # the engine refuses (Conflict) while a child or container uses it


def _build(client: docker.DockerClient, build: BuildPlan, digest: str) -> None:
    """Build with the classic builder, streaming its output to the stand-in's log; a failure names its step."""
    stand_in = build.stand_in
    log = logs_dir() / f"{stand_in.slug}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    step = "before the first step"
    with write_private(log) as out:  # apt's proxy URLs can carry credentials (see append_private)
        try:
            for chunk in client.api.build(
                fileobj=_context_tar(build),
                custom_context=True,
                tag=stand_in.ref,
                labels={DIGEST_LABEL: digest},
                decode=True,
                network_mode=BUILD_NETWORK,
                rm=True,
                forcerm=True,
                pull=False,
            ):
                step = _follow(chunk, out, step)
                if "error" in chunk:
                    raise SandboxBaseError(f"{stand_in.ref}: build failed at {step}: {_error(chunk)}; log: {log}")
        except docker.errors.APIError as exc:
            out.write(f"{exc}\n")
            raise SandboxBaseError(f"{stand_in.ref}: build failed at {step}: {first_line(exc)}; log: {log}") from None


def _context_tar(build: BuildPlan) -> io.BytesIO:
    """The build context as an in-memory tar: a few hundred KB, and no directory to clean up."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        files = {"Dockerfile": build.dockerfile.encode(), **build.files}
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _follow(chunk: dict[str, Any], out: IO[str], step: str) -> str:
    """Log one decoded chunk of build output; returns the step now running (`Step 3/9 : RUN ...`)."""
    text = str(chunk.get("stream", ""))
    out.write(text)
    if "error" in chunk:
        out.write(f"ERROR: {_error(chunk)}\n")
    out.flush()
    for line in text.splitlines():
        if line.startswith("Step "):
            step = line if len(line) <= 120 else line[:117] + "..."
    return step


def _error(chunk: dict[str, Any]) -> str:
    detail = chunk.get("errorDetail") or {}
    return first_line(detail.get("message") or chunk.get("error") or "unknown error")
