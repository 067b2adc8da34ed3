"""The Debian 12 rootfs under every stand-in: debootstrapped from the host's mirror, imported into the engine.

`docker import` makes it `air-sandbox/debian:bookworm` once; the folder debootstrap filled is removed
right after, and a half-made one from an interrupted run is never reused.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors

from generator import paths
from generator.sandbox.errors import SandboxBaseError
from generator.sandbox.mirror import SUITE, debian_mirror
from generator.sandbox.processes import append_private, write_private
from generator.status import Built

ROOTFS_REF = "air-sandbox/debian:bookworm"
UP_TO_DATE = Built.UP_TO_DATE
BUILT = Built.BUILT
# `docker import` gives an image with no config at all; without a PATH, `ENV PATH=/opt/venv/bin:$PATH`
# in a child Dockerfile would expand to a PATH that finds nothing.
ROOTFS_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["bash"]',
    'LABEL air-fleet.sandbox="true"',
    'LABEL org.opencontainers.image.description="Debian 12 minbase rootfs (debootstrap) under the sandbox stand-ins"',
]


def rootfs_dir() -> Path:
    return paths.state_dir() / "sandbox" / "rootfs"


def logs_dir() -> Path:
    return paths.state_dir() / "sandbox" / "logs"


def ensure_rootfs(client: docker.DockerClient, progress: Callable[[str], None]) -> str:
    """The rootfs image's id; debootstrap and import it first when the engine does not have it (the caller
    holds the lock)."""
    image = find_image(client, ROOTFS_REF)
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
    with write_private(log) as out:  # apt's proxy URLs can carry credentials (see append_private)
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
    with append_private(log) as err, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err) as tar:
        assert tar.stdout is not None
        try:
            client.api.import_image(
                src=_chunks(tar.stdout), repository=repository, tag=tag, changes=ROOTFS_CHANGES, stream_src=True
            )
        except docker.errors.APIError as exc:
            tar.kill()
            raise SandboxBaseError(f"{ROOTFS_REF}: docker import failed: {first_line(exc)}; log: {log}") from None
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


def first_line(value: object) -> str:
    """An engine error's first line, at most 300 characters: the gist of a SandboxBaseError."""
    lines = str(value).strip().splitlines()
    return lines[0][:300] if lines else type(value).__name__


def find_image(client: docker.DockerClient, ref: str) -> Any:
    """The engine's image `ref`, or None when it has none."""
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
