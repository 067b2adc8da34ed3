"""Local stand-ins for the base images the fleet builds FROM, so the sandbox profile can build for real.

The real bases (databricksruntime/air, nvidia/cuda) cannot be pulled everywhere and need GPUs to mean
anything. The sandbox builds CPU-only look-alikes instead, from a real Debian 12 rootfs made here with
debootstrap and imported into the engine (`air-sandbox/debian:bookworm`), laid out like the real bases:
Python in /opt/venv with uv for the databricks ones, no Python for the nvidia/cuda ones, the same env vars.

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
import shutil
import subprocess
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

from generator import paths
from generator.errors import FleetError

TEMPLATES = Path(__file__).parent / "templates"
ROOTFS_REF = "air-sandbox/debian:bookworm"
SUITE = "bookworm"
UV_VERSION = "0.9.5"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
APT_DIR = Path("/etc/apt")
CA_FILE = "host-ca.crt"  # its name inside a build context
DIGEST_LABEL = "air-fleet.stand-in-digest"
# The build steps (apt-get, pip) run in the host's network namespace: they need no docker0 bridge nor
# iptables NAT, which engines inside CI containers often lack or lose, and they reach the mirror and the
# index exactly as the host does. Only the project's own templates run there.
BUILD_NETWORK = "host"
UP_TO_DATE = "up to date"
BUILT = "built"
# `docker import` gives an image with no config at all; without a PATH, `ENV PATH=/opt/venv/bin:$PATH`
# in a child Dockerfile would expand to a PATH that finds nothing.
ROOTFS_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["bash"]',
    'LABEL air-fleet.sandbox="true"',
    'LABEL org.opencontainers.image.description="Debian 12 minbase rootfs (debootstrap) under the sandbox stand-ins"',
]


class SandboxBaseError(FleetError):
    """A sandbox base image could not be made: one line saying which, why, and where the log is."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.splitlines()))


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


# --- the Debian mirror, read from the host's apt configuration ----------------------------------------------


def debian_mirror(apt_dir: Path = APT_DIR, suite: str = SUITE) -> str:
    """The first http(s) mirror the host's apt uses for `suite`: deb822 `.sources` first, then one-line lists.

    Read at run time, never written down: the rootfs and every apt-get in the stand-ins then use the
    mirror this machine is known to reach.
    """
    for source in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for uri in _deb822_uris(source.read_text(encoding="utf-8", errors="replace"), suite):
            return uri
    lists = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for source in lists:
        if source.is_file():
            for uri in _one_line_uris(source.read_text(encoding="utf-8", errors="replace"), suite):
                return uri
    raise SandboxBaseError(
        f"no Debian mirror for suite {suite!r} in {apt_dir}/sources.list.d/*.sources or {apt_dir}/sources.list: "
        "debootstrap needs one (add a `deb` source for it to the host's apt configuration)"
    )


def _deb822_uris(text: str, suite: str) -> Iterator[str]:
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields = _deb822_fields(stanza)
        enabled = fields.get("enabled", "yes").lower() != "no"
        if enabled and "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            yield from (uri for uri in fields.get("uris", "").split() if _is_http(uri))


def _deb822_fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0] in " \t" and key:  # a continuation line
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def _one_line_uris(text: str, suite: str) -> Iterator[str]:
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()  # drop comments and [options]
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite and _is_http(words[1]):
            yield words[1]


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


# --- the rootfs image -----------------------------------------------------------------------------------------


def rootfs_dir() -> Path:
    return paths.state_dir() / "sandbox" / "rootfs"


def logs_dir() -> Path:
    return paths.state_dir() / "sandbox" / "logs"


def _ensure_rootfs(client: docker.DockerClient, progress: Callable[[str], None]) -> str:
    """The rootfs image's id; debootstrap and import it first when the engine does not have it (the caller
    holds the lock)."""
    image = _image(client, ROOTFS_REF)
    if image is not None:
        progress(f"{ROOTFS_REF}: {UP_TO_DATE}")
        return str(image.id)
    start = time.monotonic()
    target = rootfs_dir()
    log = logs_dir() / "debian-bookworm.log"
    _remove_rootfs(target)  # a half-made one from an interrupted run is never reused
    try:
        _debootstrap(target, debian_mirror(), log)
        _slim(target)
        image_id = _import(client, target, log)
    finally:
        _remove_rootfs(target)  # 275 MB that the image now holds
    progress(f"{ROOTFS_REF}: {BUILT} in {time.monotonic() - start:.0f} s")
    return image_id


def _debootstrap(target: Path, mirror: str, log: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise SandboxBaseError(f"{ROOTFS_REF}: debootstrap is not installed (apt-get install debootstrap)")
    target.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = ["debootstrap", "--variant=minbase", "--include=ca-certificates", SUITE, str(target), mirror]
    with log.open("w", encoding="utf-8") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SandboxBaseError(f"{ROOTFS_REF}: debootstrap from {mirror} failed (exit {done.returncode}); log: {log}")


def _slim(target: Path) -> None:
    """Drop what every stand-in fetches afresh anyway (apt-get update) and the downloaded .debs."""
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb"):
        for path in target.glob(pattern):
            if path.is_file() and not path.is_symlink():
                path.unlink()


def _import(client: docker.DockerClient, target: Path, log: Path) -> str:
    """`tar -C target -c . | docker import`, streamed: the rootfs never exists as a tar file on disk."""
    repository, tag = ROOTFS_REF.rsplit(":", 1)
    # --sort=name and --numeric-owner: the same tree gives the same stream, whatever this host's users are.
    argv = ["tar", "-C", str(target), "--sort=name", "--numeric-owner", "-c", "."]
    with log.open("a", encoding="utf-8") as err, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err) as tar:
        assert tar.stdout is not None
        try:
            client.api.import_image(
                src=_chunks(tar.stdout), repository=repository, tag=tag, changes=ROOTFS_CHANGES, stream_src=True
            )
        except docker.errors.APIError as exc:
            tar.kill()
            raise SandboxBaseError(f"{ROOTFS_REF}: docker import failed: {_first_line(exc)}; log: {log}") from None
    if tar.returncode != 0:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(ROOTFS_REF)  # imported from a truncated stream: never keep it
        raise SandboxBaseError(f"{ROOTFS_REF}: tar of {target} failed (exit {tar.returncode}); log: {log}")
    return str(client.images.get(ROOTFS_REF).id)


def _chunks(stream: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


def _remove_rootfs(target: Path) -> None:
    """rm -rf, but never through a mount an interrupted debootstrap left behind (/proc, /sys, a bound /dev)."""
    if not target.exists():
        return
    for mount in _mounts_under(target):
        subprocess.run(["umount", "--lazy", str(mount)], check=False, capture_output=True)
    if left := _mounts_under(target):
        raise SandboxBaseError(f"{target}: still has mounts ({', '.join(map(str, left))}); unmount them first")
    shutil.rmtree(target)


def _mounts_under(target: Path) -> list[Path]:
    """Mount points inside `target`, deepest first (so they can be unmounted in order)."""
    root = target.resolve()
    try:
        lines = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    points = [Path(line.split()[1].replace("\\040", " ")) for line in lines if len(line.split()) > 1]
    inside = [p for p in points if p != root and p.is_relative_to(root)]
    return sorted(inside, key=lambda p: len(p.parts), reverse=True)


# --- the stand-ins ----------------------------------------------------------------------------------------------


def ensure_bases(
    client: docker.DockerClient,
    wanted: list[StandIn] | None = None,
    progress: Callable[[str], None] = print,
    *,
    templates: Path = TEMPLATES,
) -> list[tuple[StandIn, str]]:
    """Make sure each wanted stand-in (default: all six) exists and is current; build the ones that are not.

    Returns (stand-in, "built" | "up to date") in `wanted`'s order. The rootfs image is made first when
    missing. One process at a time per machine: a second one waits, then finds everything up to date.
    """
    wanted = stand_ins() if wanted is None else wanted
    with _lock():
        parent_id = _ensure_rootfs(client, progress)
        return [(stand_in, _ensure(client, plan(stand_in, templates), parent_id, progress)) for stand_in in wanted]


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
    image = _image(client, stand_in.ref)
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
    with log.open("w", encoding="utf-8") as out:
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
            raise SandboxBaseError(f"{stand_in.ref}: build failed at {step}: {_first_line(exc)}; log: {log}") from None


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
    return _first_line(detail.get("message") or chunk.get("error") or "unknown error")


def _first_line(value: object) -> str:
    lines = str(value).strip().splitlines()
    return lines[0][:300] if lines else type(value).__name__


def _image(client: docker.DockerClient, ref: str) -> Any:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
