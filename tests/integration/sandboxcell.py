"""One sandbox cell of the tests' own, locked and built by the project's pipeline, in a repository of the
test's own on the sandbox registry (so nothing here touches the fleet's tags)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from generator.build.steps import run_build
from generator.deps.step import run_lock
from generator.engine import connect
from generator.fleet import Fleet
from generator.render.renderer import RenderedCell
from generator.sandbox import services
from generator.sandbox.bases import ensure_bases, stand_ins
from generator.spec.profiles import load_profile

MATRIX = """\
schema: 1
python: "3.11"
registry: {{host: 127.0.0.1:5000, repository: {repository}}}
clouds: [aws]
variants: [{variant}]
accelerators: [GPU_1xA10]
extra_ca_certificates: [/etc/ssl/certs/ca-certificates.crt]
torch:
  - {{version: 2.13.0, torchvision: none, torchaudio: none}}
stacks:
  einops: [einops]
extensions:
  einops: {{kind: pip, version: 0.8.2}}
"""


@dataclass
class Built:
    fleet: Fleet
    rendered: RenderedCell
    client: docker.DockerClient
    root: Path  # the temp folder: matrix, lock, results/


@contextmanager
def built_cell(
    root: Path, repository: str, variant: str = "runtime", also_remove: tuple[str, ...] = ()
) -> Iterator[Built]:
    """aws-<variant>, torch 2.13.0 CPU, einops 0.8.2: built (a cache hit on a warm engine), results under root.
    Afterwards `also_remove` (images made from it: a child first) and this repository's local tags are removed,
    by tag: on a warm engine every layer is a cache hit, so the image id is the sandbox fleet's too."""
    services.up(progress=lambda _: None)
    client = connect()
    ensure_bases(client, [s for s in stand_ins() if s.ref.endswith(f"dcs-base-aws-{variant}")], progress=lambda _: None)
    (root / "matrix.yaml").write_text(MATRIX.format(repository=repository, variant=variant), encoding="utf-8")
    assert run_lock(Fleet.for_profile(load_profile("sandbox", root / "matrix.yaml")), say=lambda _: None).failures == []
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
        prefix = f"127.0.0.1:5000/{repository}:"
        tags = [t for i in client.images.list(name=prefix[:-1]) for t in i.tags if t.startswith(prefix)]
        for tag in dict.fromkeys([*also_remove, *tags]):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(tag)
