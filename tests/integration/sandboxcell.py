"""One sandbox cell of a test's own, locked and built by the project's pipeline (tests/integration/
sandboxfleet.py), in a repository of the test's own on the sandbox registry (nothing touches the fleet's
tags), with its results in the test's temp folder; its local tags removed afterwards."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from generator.build.steps import run_build
from generator.engine import connect
from generator.fleet import Fleet
from generator.render.renderer import RenderedCell
from generator.spec.profiles import load_profile
from tests.integration.sandboxfleet import locked_project, sandbox_matrix


@dataclass
class Built:
    fleet: Fleet
    rendered: RenderedCell
    client: docker.DockerClient
    root: Path  # the temp folder: matrix, lock, results/


@contextmanager
def built_cell(
    factory: pytest.TempPathFactory, name: str, repository: str, variant: str, also_remove: tuple[str, ...] = ()
) -> Iterator[Built]:
    """aws-<variant>, torch 2.13.0 CPU, einops 0.8.2: built (a cache hit on a warm engine). Afterwards
    `also_remove` (images made from it: a child first) and this repository's local tags are removed, by
    tag: on a warm engine every layer is a cache hit, so the image id is the sandbox fleet's too."""
    matrix = sandbox_matrix(repository, variant, {"einops": "einops==0.8.2"})
    root = locked_project(factory, name, matrix, f"dcs-base-aws-{variant}")
    client = connect()
    fleet = Fleet.for_profile(load_profile("sandbox", root / "matrix.yaml"))  # with the lock's answers
    old = os.environ.get("AIR_FLEET_RESULTS")
    os.environ["AIR_FLEET_RESULTS"] = str(root / "results")
    try:
        everything = fleet.render()
        (result,) = run_build(fleet, everything, everything, jobs=1, wait=True, quiet=True)
        assert result.status in ("built", "up to date"), result.error
        yield Built(fleet, everything[0], client, root)
    finally:
        if old is None:
            os.environ.pop("AIR_FLEET_RESULTS", None)
        else:
            os.environ["AIR_FLEET_RESULTS"] = old
        # An image's `tags` lists all of its tags, the fleet's too: keep only this test's (both repositories).
        mine = (f"127.0.0.1:5000/{repository}:", f"127.0.0.1:5000/{repository}-staging:")
        tags = [t for i in client.images.list() for t in i.tags if t.startswith(mine)]
        for tag in dict.fromkeys([*also_remove, *tags]):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(tag)
