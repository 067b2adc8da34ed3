"""What one cell's build is, once: context, Dockerfile, tags, build args, labels, cache, platform.

The builder turns a `BuildSpec` into a docker CLI command line (`generator.build.cli`), `bake` into a
target of docker-bake.json (`generator.ci.bake`): both read the same value, so a build on a runner and a
build in a BuildKit cluster cannot drift apart (tests/test_build_spec.py compares them).

Layer reuse across machines goes through the registry: every build writes BuildKit's inline cache into
its image (`BUILDKIT_INLINE_CACHE=1`: the cache metadata of the image's own layers rides in its config)
and reads the cache of the images already pushed for the other cells of its group (`cache_sources`).
Cells of one group share base image, torch build and Python, so their torch layer
(`requirements-torch.txt`'s install) is the same instruction on the same parent: a fresh runner finds it
in the registry, neither rebuilds nor re-pushes it (push finds the blob there). A cache source that does
not exist yet (the group's first night) costs one registry request and is skipped by BuildKit: the
build goes on without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from generator.release.tags import check_tag
from generator.render.renderer import RenderedCell

PLATFORMS = ("linux/amd64",)
CACHE_TAG_PREFIX = "buildcache-"
# BuildKit's own build argument: export the inline cache into the image. Understood by the engine's
# built-in BuildKit (docker 20.10 with DOCKER_BUILDKIT=1) and by buildx alike.
INLINE_CACHE_ARG = "BUILDKIT_INLINE_CACHE"

GroupKey = tuple[str, str, str, str]


def group_key(rendered: RenderedCell) -> GroupKey:
    """Cells that share their torch layer: same base image, torch release, torch index and Python."""
    cell = rendered.cell
    return (cell.base_image, cell.torch, cell.torch_index, cell.python)


def groups(rendered: Iterable[RenderedCell]) -> dict[GroupKey, list[RenderedCell]]:
    """The cells by group, each group and its members in matrix order."""
    out: dict[GroupKey, list[RenderedCell]] = {}
    for r in rendered:
        out.setdefault(group_key(r), []).append(r)
    return out


def cache_repository(rendered: RenderedCell) -> str:
    """The repository whose pushed images serve as build cache: the one builds are pushed to, the
    staging repository (candidates). dockerd's push skips a layer only when it knows the blob came from the
    repository it pushes to, so cache and candidates must share it."""
    return rendered.cell.staging_image


def cache_sources(rendered: RenderedCell, group: Sequence[RenderedCell]) -> tuple[str, ...]:
    """The already-pushed images a build of `rendered` reads its cache from: the immutable tags of the
    other cells of its group, in matrix order. Never its own: `--force` must really rebuild."""
    return tuple(
        f"{cache_repository(member)}:{member.tag}" for member in group if member.cell.slug != rendered.cell.slug
    )


@dataclass(frozen=True)
class CacheExport:
    """Where a build writes its cache: `inline` (into the image itself) or a registry cache image."""

    type: str  # inline | registry
    ref: str | None = None
    mode: str | None = None  # registry: min (the image's layers) | max (every stage's)

    def buildx(self) -> str:
        """The `--cache-to` value of buildx and bake."""
        parts = [f"type={self.type}"]
        if self.ref:
            parts.append(f"ref={self.ref}")
        if self.mode:
            parts.append(f"mode={self.mode}")
        return ",".join(parts)


INLINE = CacheExport("inline")


@dataclass(frozen=True)
class BuildSpec:
    slug: str
    context: Path  # the cell's directory
    dockerfile: str  # relative to the context
    ref: str  # the candidate's immutable tag: the build's only tag (aliases are promote's, in the release repository)
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    cache_from: tuple[str, ...] = ()  # image refs whose (inline or registry) cache the build may reuse
    cache_to: tuple[CacheExport, ...] = (INLINE,)
    platforms: tuple[str, ...] = PLATFORMS

    @property
    def tags(self) -> tuple[str, ...]:
        return (self.ref,)


def build_spec(
    rendered: RenderedCell,
    context: Path,
    group: Sequence[RenderedCell],
    *,
    cache_repo: str | None = None,
) -> BuildSpec:
    """The build of one cell. `group`: the cells sharing its torch layer (`groups`), itself included.

    `cache_repo` adds a registry cache (`<cache_repo>:buildcache-<slug>`, every stage's layers) to read
    and write: a BuildKit cluster's option (bake `--cache-repo`); the engine's built-in BuildKit can only
    write the inline cache, so the builder never asks for it.
    """
    cell = rendered.cell
    cache_from = cache_sources(rendered, group)
    cache_to: tuple[CacheExport, ...] = (INLINE,)
    if cache_repo is not None:
        registry_cache = f"{cache_repo}:{check_tag(CACHE_TAG_PREFIX + cell.slug)}"
        cache_from = (registry_cache, *cache_from)
        # One exporter only (older buildx take one --cache-to); the build argument still writes the inline cache.
        cache_to = (CacheExport("registry", registry_cache, "max"),)
    return BuildSpec(
        slug=cell.slug,
        context=context,
        dockerfile="Dockerfile",
        ref=rendered.ref,
        build_args={INLINE_CACHE_ARG: "1"},
        labels={
            # The Dockerfile sets cell, torch and digest itself (same values); the axes are for people
            # browsing a registry that shows labels.
            "air-fleet.cell": cell.slug,
            "air-fleet.digest": rendered.digest,
            "air-fleet.torch": cell.torch,
            "air-fleet.cloud": cell.cloud,
            "air-fleet.variant": cell.variant,
            "air-fleet.base": cell.base,
            "air-fleet.stack": cell.stack,
        },
        cache_from=cache_from,
        cache_to=cache_to,
    )
