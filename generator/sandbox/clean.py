"""`sandbox clean`: give back the disk that earlier sandbox runs filled, keeping the services usable.

Every fleet build and test run leaves images in the engine and their copies in the registry; nothing
expires them, so a machine that runs the suite day after day fills its disk. `clean` removes:

- in the engine, the images whose every tag names the sandbox registry (the cells, their candidates and
  what the tests pushed), the untagged ones, and the build cache. Images with any other tag stay, the
  stand-in bases among them (they are tagged `air-sandbox/...` too), and so does an image a container
  still uses;
- the registry's whole store, when the sandbox started that registry (it is stopped, emptied, started
  again). A registry the sandbox did not start is left alone.

The fleet's records under results/ still name digests that are gone: the next `build` plans every cell
again (they are no longer in the release repository), as on a new machine.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from generator.sandbox import diskspace, dockerd, layout, processes
from generator.sandbox import registry as local_registry
from generator.sandbox.dockerd import Engine
from generator.sandbox.errors import ServiceError
from generator.sandbox.report import Progress, first_line


@dataclass(frozen=True)
class Cleaned:
    """What `clean` removed, and the free space it left, measured before and after."""

    images: int
    registry_emptied: bool
    free_before: int
    free_after: int

    def as_json(self) -> dict[str, object]:
        return {
            "images_removed": self.images,
            "registry_emptied": self.registry_emptied,
            "free_before_bytes": self.free_before,
            "free_after_bytes": self.free_after,
        }


def clean(
    state: Path | None, registry: str, engine: Engine, progress: Progress, *, build_cache: bool = True
) -> Cleaned:
    """Remove what earlier runs left in the engine and the sandbox registry (see the module's text).

    build_cache=False keeps the engine's build cache: a test cleaning its own registry beside a running
    suite must not slow the builds after it."""
    files = layout.state_files(state)
    host, port = local_registry.parse_address(registry)
    root = dockerd.root_dir(engine)
    stores = {"registry": files.registry_data} | ({"engine": root} if root else {})
    before = _free(stores)
    with layout.locked(files):
        images = _clean_engine(engine, f"{host}:{port}", progress, build_cache)
        emptied = _empty_registry(files, host, port, progress)
    after = _free(stores)
    progress(f"disk: {before / diskspace.GB:.1f} GB free before, {after / diskspace.GB:.1f} GB after")
    return Cleaned(images, emptied, before, after)


def _free(stores: dict[str, Path]) -> int:
    """Free bytes summed over the distinct filesystems the stores live on."""
    return sum({s.device: s.free for s in (diskspace.space(name, path) for name, path in stores.items())}.values())


def _clean_engine(engine: Engine, registry: str, progress: Progress, build_cache: bool) -> int:
    try:
        client = docker.from_env(environment={"DOCKER_HOST": engine.host}, timeout=300)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        progress(f"dockerd: not answering ({first_line(exc)}); its images stay")
        return 0
    removed = 0
    try:
        for image in client.images.list():
            tags = image.tags
            if not tags or not all(tag.startswith(f"{registry}/") for tag in tags):
                continue
            try:
                # One call per tag: removing by id refuses an image that carries several tags.
                for tag in tags:
                    client.images.remove(tag, noprune=False)
                removed += 1
            except docker.errors.APIError as exc:
                progress(f"dockerd: kept {tags[0]}: {first_line(exc)}")
        pruned = client.images.prune(filters={"dangling": True}).get("ImagesDeleted") or []
        dangling = [entry for entry in pruned if "Deleted" in entry]
        cache = (client.api.prune_builds().get("SpaceReclaimed") or 0) if build_cache else 0
    except docker.errors.DockerException as exc:
        raise ServiceError(f"dockerd: cleaning its images failed: {first_line(exc)}") from None
    finally:
        client.close()
    progress(
        f"dockerd: removed {removed} image(s) tagged for {registry}, {len(dangling)} untagged image layer(s), "
        f"{cache / diskspace.GB:.1f} GB of build cache"
    )
    return removed


def _empty_registry(files: layout.StateFiles, host: str, port: int, progress: Progress) -> bool:
    current = local_registry.state(files, host, port)
    if current.running and current.pid is None:
        progress(f"registry: {current.detail} at {current.address}; its store is left alone")
        return False
    if current.pid is not None:
        processes.stop_ours("registry", files.registry_pid, "docker-registry", progress)
    shutil.rmtree(files.registry_data, ignore_errors=True)
    progress(f"registry: emptied its store {files.registry_data}")
    if current.running:
        local_registry.ensure(files, host, port, progress)
    return True
