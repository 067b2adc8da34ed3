"""The nightly's plan job: which cells to build, as a GitHub Actions matrix, decided by tested Python.

`plan()` takes the rendered fleet and an `exists` predicate ("is this cell's immutable tag in the
release repository?": promoted, so blessed, so nothing to do tonight) and returns

    {"include": [{index, slug, cloud, variant, base, torch, stack, digest, tag, ref, dir}, ...],
     "empty": false,          # true when there is nothing to build
     "forced": false,
     "skipped": [{index, slug, ref, reason}],     # already in the registry: nothing to do
     "refused": [{index, slug, status, reason}]}  # FAIL their checks: can never be built

**Empty matrices.** GitHub rejects a job whose `strategy.matrix` has an empty `include` ("Matrix must
define at least one vector"), and a matrix with keys other than its vectors is not a matrix. So the
workflow is given two outputs (`github_outputs()` writes them, for `$GITHUB_OUTPUT`): `matrix`, exactly
`{"include": [...]}`, and `empty`, and the build job is skipped when there is nothing to build:

    build:
      needs: plan
      if: needs.plan.outputs.empty == 'false'
      strategy:
        matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}

**The registry down.** The plan never guesses (`generator.release.registry`'s rule, which `build` follows too):
a registry that cannot be reached, refuses credentials or answers anything but 200/404 is a
RegistryError (exit status 2) naming the registry and the image, after a few tries when the trouble
may pass (5xx, 429, timeouts), so the nightly neither rebuilds the whole fleet nor skips it all on a
blip. `--force` plans every cell without asking the registry.

Two predicates answer "exists": `manifest_exists_http` (a plain HTTP HEAD on the registry's v2 API: no
Docker engine, what a plain CI runner has) and `registry_exists` (the engine's distribution inspect, as
`build` does). Both take their credentials from `generator.release.credentials`, like `push`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

from generator.errors import FleetError
from generator.release import oci
from generator.release.credentials import CredentialSource
from generator.release.registry import LOOKUP, RegistryError, asking, exists_via_engine
from generator.render.renderer import RenderedCell
from generator.resolve.checks import FAIL
from generator.retry import Policy

Exists = Callable[[RenderedCell], bool]

# GitHub runs at most 256 jobs from one matrix; past that the workflow fails at start, far from the cause.
MAX_JOBS = 256
MANIFEST_TYPES, split_ref = oci.MANIFEST_TYPES, oci.split_ref  # re-exported: the plan's callers name them here
ADVICE = (
    "Nothing planned: the plan neither rebuilds every cell nor skips them all on a registry problem "
    "(--force builds every cell without asking)"
)

__all__ = [
    "MANIFEST_TYPES",
    "MAX_JOBS",
    "RegistryError",
    "github_outputs",
    "http_exists",
    "job_axes",
    "manifest_exists_http",
    "plan",
    "registry_exists",
    "split_ref",
]

# -- the plan ------------------------------------------------------------------------------------------------


def plan(
    rendered: list[RenderedCell],
    exists: Exists,
    *,
    force: bool = False,
    only: set[str] | None = None,
    images_dir: str = "images",
) -> dict[str, Any]:
    """The cells to build, in matrix order, as a GitHub Actions matrix plus what was left out and why.

    `only`: slugs to consider (None: all). `force`: build every cell that can be built, without asking
    `exists`. FAILing cells are never built, forced or not. `exists` may raise RegistryError; it then
    propagates: no plan is better than a wrong one.
    """
    include: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for r in rendered:
        cell = r.cell
        if only is not None and cell.slug not in only:
            continue
        if r.status == FAIL:
            refused.append({"index": cell.index, "slug": cell.slug, "status": FAIL, "reason": _failures(r)})
        elif not force and exists(r):
            skipped.append({"index": cell.index, "slug": cell.slug, "ref": r.release_ref, "reason": "released"})
        else:
            include.append(_entry(r, images_dir))
    if len(include) > MAX_JOBS:
        raise FleetError(
            f"{len(include)} cells to build: a GitHub Actions matrix runs at most {MAX_JOBS} jobs; "
            "plan a subset per job (CELL patterns)"
        )
    return {"include": include, "empty": not include, "forced": force, "skipped": skipped, "refused": refused}


def job_axes(r: RenderedCell) -> dict[str, Any]:
    """What a CI job is named and keyed by: the cell's axes, its content digest and tag (also `matrix --json`)."""
    cell = r.cell
    return {
        "index": cell.index,
        "slug": cell.slug,
        "cloud": cell.cloud,
        "variant": cell.variant,
        "base": cell.base,
        "torch": cell.torch,
        "stack": cell.stack,
        "digest": r.digest,
        "tag": r.tag,
    }


def _entry(r: RenderedCell, images_dir: str) -> dict[str, Any]:
    directory = str(PurePosixPath(images_dir) / r.cell.slug)
    return {**job_axes(r), "ref": r.release_ref, "candidate": r.ref, "dir": directory}


def _failures(r: RenderedCell) -> str:
    return "; ".join(f"{c.title}: {c.detail}" for c in r.checks if c.status == FAIL)


def github_outputs(result: dict[str, Any]) -> str:
    """`$GITHUB_OUTPUT` lines: `matrix` (only `{"include": [...]}`, one line), `empty`, `count`."""
    matrix = json.dumps({"include": result["include"]}, separators=(",", ":"), ensure_ascii=False)
    empty = "true" if result["empty"] else "false"
    return f"matrix={matrix}\nempty={empty}\ncount={len(result['include'])}\n"


# -- "exists" through the Docker engine ----------------------------------------------------------------------


def registry_exists(client: Any, source: CredentialSource | None = None, *, policy: Policy = LOOKUP) -> Exists:
    """`exists` via the engine (`generator.release.registry.exists_via_engine`): 404 is False, trouble is RegistryError.

    The engine answers 404 for a tag the registry does not have and 500 when the registry cannot be
    reached or refuses; only the first means "build it".
    """
    source = CredentialSource() if source is None else source

    def exists(rendered: RenderedCell) -> bool:
        try:
            return exists_via_engine(client, rendered.release_ref, source, policy=policy)
        except RegistryError as exc:
            raise RegistryError(exc.ref, exc.why, ADVICE) from None

    return exists


# -- "exists" over plain HTTP ----------------------------------------------------------------------------------


def http_exists(*, timeout: float = 10.0, env: Mapping[str, str] | None = None, policy: Policy = LOOKUP) -> Exists:
    """`exists` via `manifest_exists_http`: for a CI runner without a Docker engine. One credential lookup
    per registry for the whole plan (a helper such as ECR's asks the cloud each time it runs)."""
    source = CredentialSource(env)
    return lambda rendered: manifest_exists_http(rendered.release_ref, timeout=timeout, source=source, policy=policy)


def manifest_exists_http(
    ref: str,
    *,
    timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
    source: CredentialSource | None = None,
    policy: Policy = LOOKUP,
    sleep: Callable[[float], object] = time.sleep,
) -> bool:
    """Whether the registry has `ref` (`host/repo:tag` or `host/repo@sha256:...`): HEAD on its manifest
    (`generator.release.oci`, which answers a 401 with the registry's credentials). 200: True. 404: False.
    Anything else, after `policy`'s tries for what may pass (408, 429, 5xx, no answer): RegistryError."""
    source = CredentialSource(env) if source is None else source

    def once() -> bool:
        return oci.head(ref, source=source, timeout=timeout, advice=ADVICE) is not None

    return asking(ref, once, policy=policy, sleep=sleep)
