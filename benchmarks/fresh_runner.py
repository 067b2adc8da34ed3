"""A fresh build runner on a shared engine: no local image of a repository, no BuildKit cache of this run.

The nightly's runners share nothing but the registry. On one machine that is simulated by removing,
before each build, the local images of the run's own repository and the BuildKit cache records the run
made (and the installers' cache mounts, which only this project's Dockerfiles name), never anybody
else's: records older than the run stay. The stand-in bases stay too (a runner pulls its base anyway).

Runs must not reuse an older run's cache either, so each run renders its cells with a CA certificate of
its own (`unique_ca`): the layer that installs it, and every step after it, have cache keys no earlier
build had.

The engine's API has no "prune these records" call: `POST /build/prune` with an `id` filter removes one
record that nothing else depends on, so records go leaves first, round after round.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import docker.errors
from docker import DockerClient

CACHE_MOUNT_TARGETS = ("/root/.cache/uv", "/root/.cache/pip")  # generator.render.renderer.CACHE_DIR
PRUNE_ROUNDS = 30


def unique_ca(folder: Path) -> Path:
    """A self-signed certificate no other run has: added to a matrix's extra_ca_certificates, it gives
    every layer from the CA step on a cache key of this run only."""
    pem = folder / f"air-fleet-run-{uuid.uuid4().hex[:8]}.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "/dev/null",
            "-days",
            "1",
            "-subj",
            f"/CN=air-fleet-run-{uuid.uuid4().hex}",
            "-out",
            str(pem),
        ],
        check=True,
        capture_output=True,
    )
    return pem


def cache_records(client: DockerClient) -> list[dict[str, Any]]:
    """The engine's BuildKit cache records (`docker system df -v`'s build cache)."""
    return list(client.api.df().get("BuildCache") or [])


def ours(record: dict[str, Any], before: set[str]) -> bool:
    """A record this run made, or an installer cache mount of this project's Dockerfiles."""
    if record.get("Type") == "exec.cachemount":
        return any(target in str(record.get("Description", "")) for target in CACHE_MOUNT_TARGETS)
    return record["ID"] not in before


def prune(client: DockerClient, before: set[str]) -> int:
    """Remove the run's cache records (see `ours`), leaves first; how many went."""
    removed = 0
    for _ in range(PRUNE_ROUNDS):
        mine = [r for r in cache_records(client) if ours(r, before) and not r.get("InUse")]
        gone = 0
        for record in mine:
            answer = client.api.prune_builds(filters={"id": record["ID"]})
            gone += len(answer.get("CachesDeleted") or [])
        removed += gone
        if not gone:
            break
    return removed


def remove_images(client: DockerClient, repositories: Iterable[str]) -> int:
    """Remove every local tag of these repositories (by tag: an image also tagged by others keeps theirs)."""
    removed = 0
    for repository in repositories:
        for image in client.images.list(name=repository):
            for tag in image.tags:
                if tag.rsplit(":", 1)[0] == repository:
                    try:
                        client.images.remove(tag, force=True)
                        removed += 1
                    except docker.errors.ImageNotFound:
                        pass
    return removed


def make_fresh(client: DockerClient, repositories: Iterable[str], before: set[str]) -> tuple[int, int]:
    """What a fresh runner would have: (tags removed, cache records removed)."""
    tags = remove_images(client, repositories)
    return tags, prune(client, before)


def record_ids(client: DockerClient) -> set[str]:
    return {r["ID"] for r in cache_records(client)}


def push(client: DockerClient, ref: str) -> dict[str, Any]:
    """Push one tag with the SDK (as `push` does); what the stream said: layers pushed, already there or
    mounted, and the bytes uploaded (the largest progress seen per pushed layer)."""
    repository, tag = ref.rsplit(":", 1)
    layers: dict[str, str] = {}
    uploaded: dict[str, int] = {}
    digest = None
    for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(f"push {ref}: {chunk['error']}")
        layer, status = chunk.get("id"), str(chunk.get("status", ""))
        if layer and (status in ("Pushed", "Layer already exists") or status.startswith("Mounted from")):
            layers[str(layer)] = status
        if layer and status == "Pushing":
            current = int((chunk.get("progressDetail") or {}).get("current") or 0)
            uploaded[str(layer)] = max(uploaded.get(str(layer), 0), current)
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("Digest"):
            digest = aux["Digest"]
    pushed = [layer for layer, status in layers.items() if status == "Pushed"]
    return {
        "digest": digest,
        "layers_pushed": len(pushed),
        "layers_existing": sum(1 for s in layers.values() if s != "Pushed"),
        "bytes_pushed": sum(uploaded.get(layer, 0) for layer in pushed),
        "statuses": layers,
    }
