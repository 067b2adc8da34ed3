"""A `docker-bake.json` for teams with a BuildKit cluster: the fleet as `docker buildx bake` targets.

    python -m generator fetch                      # bake builds images/<slug>/ as is: stage wheels/ first
    docker buildx bake -f docker-bake.json --print aws-devel
    docker buildx bake -f docker-bake.json --push torch2_7

- **Targets.** One per cell that does not FAIL its checks, named after its slug with `.` made `_` (bake
  allows `[a-zA-Z0-9_-]` only). Context `images/<slug>` (relative to the repository root: run bake from
  there, it resolves contexts against its working directory), the cell's Dockerfile, `linux/amd64`.
- **The build.** Each target is `generator.build.spec.build_spec`, the description the builder turns into
  its docker command line: the same build args, labels, platform and cache (tests/test_build_spec.py).
- **Tags.** The candidate only: the immutable `<slug>-<12 hex>` in the staging repository, the tag `build`
  gives and `push` pushes. `bake --push` therefore pushes candidates, which no user pulls; the release
  repository and its moving aliases are `promote`'s alone, after the probes tested that very manifest.
- **Cache.** As the builder: the inline cache into each image (`type=inline`, and the build argument
  `BUILDKIT_INLINE_CACHE=1`), and the images of the cell's group (same base, torch build and Python) as
  `type=registry` cache sources, so the torch layer is reused across machines. `cache=` (`--cache-repo`)
  adds a registry cache per cell on `<cache>:buildcache-<slug>` (`mode=max`: every stage's layers), which
  a BuildKit cluster can write and the engine's built-in BuildKit cannot.
- **Groups.** `default` (all), `<cloud>`, `<cloud>-<variant>`, `torch<major>_<minor>`.

Pure: the document's keys are sorted when written, so the same fleet gives the same bytes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from generator.atomic import write_if_changed
from generator.build.spec import BuildSpec, GroupKey, build_spec, group_key
from generator.build.spec import groups as build_groups
from generator.errors import FleetError
from generator.release.tags import check_tag
from generator.render.renderer import RenderedCell
from generator.resolve.checks import FAIL

# buildx refuses any other character in a target or group name.
NAME = re.compile(r"[a-zA-Z0-9_-]+")


def target_name(slug: str) -> str:
    """The bake target of a cell: its slug, with the dots bake does not allow made underscores."""
    name = slug.replace(".", "_")
    if not NAME.fullmatch(name):
        raise FleetError(f"cell {slug!r}: {name!r} is not a valid bake target name ([a-zA-Z0-9_-]+)")
    return name


def torch_group(minor: str) -> str:
    """`2.7` -> `torch2_7`: a torch minor release, as a valid group name."""
    return "torch" + minor.replace(".", "_")


def groups_of(rendered: RenderedCell) -> tuple[str, ...]:
    """Every group a cell's target belongs to, `default` first."""
    cell = rendered.cell
    return ("default", cell.cloud, f"{cell.cloud}-{cell.variant}", torch_group(cell.torch_minor))


def bake_file(
    rendered: list[RenderedCell],
    images_dir: Path,
    *,
    cache: str | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """The bake document for `rendered` (FAILing cells left out: they are never built).

    `images_dir` is where the cell directories are; an absolute one is made relative to `root` (the
    repository root) when it lies under it. `cache` is the repository of the build cache (default: each
    cell's own).
    """
    base = _relative(images_dir, root)
    targets: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {"default": []}
    buildable = [r for r in rendered if r.status != FAIL]
    sharing = build_groups(buildable)
    for r in buildable:
        name = target_name(r.cell.slug)
        if name in targets:  # `a.b` and `a_b` both become `a_b`: bake would silently keep one
            raise FleetError(f"cells {targets[name]['labels']['air-fleet.cell']} and {r.cell.slug}: one bake target")
        targets[name] = _target(r, base, sharing, cache)
        for group in groups_of(r):
            groups.setdefault(group, []).append(name)
    clash = sorted(set(groups) & set(targets))
    if clash:  # bake resolves a name to a group or a target, never both
        raise FleetError(f"bake group and target share a name: {', '.join(clash)}")
    return {
        "group": {g: {"targets": names} for g, names in sorted(groups.items())},
        "target": dict(sorted(targets.items())),
    }


def _relative(images_dir: Path, root: Path | None) -> str:
    """`images_dir` as bake wants it: relative to the repository root where possible, POSIX separators."""
    if images_dir.is_absolute() and root is not None:
        try:
            return images_dir.relative_to(root).as_posix()
        except ValueError:
            pass  # outside the repository: an absolute context works as well
    return images_dir.as_posix()


def _target(
    rendered: RenderedCell,
    images_dir: str,
    sharing: dict[GroupKey, list[RenderedCell]],
    cache: str | None,
) -> dict[str, Any]:
    cell = rendered.cell
    try:
        check_tag(rendered.tag)
        spec = build_spec(rendered, Path(images_dir) / cell.slug, sharing[group_key(rendered)], cache_repo=cache)
    except ValueError as exc:
        raise FleetError(f"cell {cell.index} {cell.slug}: {exc}") from None
    return bake_target(spec, f"{images_dir}/{cell.slug}")


def bake_target(spec: BuildSpec, context: str) -> dict[str, Any]:
    """One build as a bake target; `context` as bake resolves it (relative to where bake runs)."""
    return {
        "context": context,
        "dockerfile": spec.dockerfile,
        "tags": list(spec.tags),  # the candidate's immutable tag
        "args": dict(spec.build_args),
        "labels": dict(spec.labels),
        "cache-from": [f"type=registry,ref={ref}" for ref in spec.cache_from],
        "cache-to": [export.buildx() for export in spec.cache_to],
        "platforms": list(spec.platforms),
    }


def dumps(data: dict[str, Any]) -> str:
    """The bytes `write_bake` writes (sorted keys, two-space indent, final newline): print this for `--json`."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_bake(path: Path, data: dict[str, Any]) -> bool:
    """Write the bake file if its bytes change (atomically); True if written."""
    return write_if_changed(path, dumps(data).encode("utf-8"))
