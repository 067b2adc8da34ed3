"""BuildKit against the real engine and registry: the cross-machine proof, on two cells of one group.

Cell A (plain) is built and pushed; then everything local of it goes (its image and this test's BuildKit
cache, the installer's cache mount included): what a fresh runner has. Cell B (einops), same base, torch
build and Python, is built with A's pushed image as its cache source: its torch layer is not rebuilt
(BuildKit says CACHED, the layer is A's), and pushing B uploads no torch-layer blob (the registry has it).
On the way: A's build skips its cache source B, not pushed yet, and goes on; the cache mount holds the
downloads; the plain progress becomes progress lines. A CA certificate of this test run only keeps the
cache of every earlier build away.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker import DockerClient

from benchmarks import fresh_runner
from benchmarks.nightly import MANIFEST_TYPES, registry_get
from generator.build.builder import BuildResult
from generator.build.plain import TORCH_REQUIREMENTS
from generator.build.steps import run_build
from generator.deps.step import run_lock
from generator.engine import connect
from generator.fleet import Fleet
from generator.render.renderer import RenderedCell
from generator.sandbox import services
from generator.sandbox.bases import ensure_bases, stand_ins
from generator.spec.profiles import load_profile
from tests.integration.sandboxfleet import sandbox_matrix

REPOSITORY = f"air-fleet/test-buildkit-{uuid.uuid4().hex[:8]}"
STAGING = f"{REPOSITORY}-staging"  # where candidates (and so the build cache) are pushed
IMAGES = f"127.0.0.1:5000/{STAGING}"
PLAIN, EINOPS = "aws-runtime-torch2.13", "aws-runtime-torch2.13-einops0.8.2"


def matrix(ca: Path) -> str:
    return sandbox_matrix(REPOSITORY, "runtime", {"plain": "", "einops": "einops==0.8.2"}, (str(ca),))


class Run:
    def __init__(self, root: Path, client: DockerClient, before: set[str]) -> None:
        self.root, self.client, self.before = root, client, before
        self.fleet = Fleet.for_profile(load_profile("sandbox", root / "matrix.yaml"))
        self.cells = {r.cell.slug: r for r in self.fleet.render()}

    def build(self, slug: str) -> BuildResult:
        (result,) = run_build(self.fleet, [self.cells[slug]], list(self.cells.values()), jobs=1, wait=True)
        assert result.status == "built", (result.error, result.log_tail)
        return result


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    services.up(progress=lambda _: None)
    client = connect()
    ensure_bases(client, [s for s in stand_ins() if s.ref.endswith("dcs-base-aws-runtime")], progress=lambda _: None)
    root = tmp_path_factory.mktemp("buildkit")
    (root / "matrix.yaml").write_text(matrix(fresh_runner.unique_ca(root)), encoding="utf-8")
    load = Fleet.for_profile(load_profile("sandbox", root / "matrix.yaml"))
    assert run_lock(load, say=lambda _: None).failures == []
    before = fresh_runner.record_ids(client)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AIR_FLEET_RESULTS", str(root / "results"))
        try:
            yield Run(root, client, before)
        finally:
            fresh_runner.make_fresh(client, [IMAGES], before)  # only this test's images and cache


def config_of(cell: RenderedCell) -> tuple[dict[str, object], dict[str, object]]:
    manifest = registry_get(f"{STAGING}/manifests/{cell.tag}", MANIFEST_TYPES)
    return manifest, registry_get(f"{STAGING}/blobs/{manifest['config']['digest']}")


def torch_index(config: dict[str, object]) -> int:
    """The torch layer's place among the image's layers (history entries that made a layer)."""
    history = [h for h in config["history"] if not h.get("empty_layer")]  # type: ignore[attr-defined]
    return next(
        i
        for i, h in enumerate(history)
        if TORCH_REQUIREMENTS in h.get("created_by", "") and "install" in h["created_by"]
    )


def test_a_fresh_runner_reuses_the_torch_layer_the_registry_holds(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    plain, einops = run.cells[PLAIN], run.cells[EINOPS]

    # A: built cold. Its cache source (B) was never pushed: skipped, and the build goes on.
    a = run.build(PLAIN)
    assert a.torch_layer == "built" and str(a.builder).startswith(("docker buildx build", "DOCKER_BUILDKIT=1 docker"))
    assert a.cache_sources == [einops.ref] and a.missing_cache_sources == [einops.ref]
    log = Path(str(a.log)).read_text()
    assert log.startswith(f"# {a.builder}: ") and "--progress=plain" in log.splitlines()[0]
    # The plain output, whole. BuildKit numbers its first vertices in whichever order they start (the
    # Dockerfile and .dockerignore load at once), so the step's number is not part of the check.
    assert re.search(r"^#\d+ \[internal\] load build definition from Dockerfile", log, re.M), log[:2000]
    # The downloads went into the installer's cache mount, on the engine, not into a layer.
    mounts = [r for r in fresh_runner.cache_records(run.client) if r["Type"] == "exec.cachemount"]
    assert any("/root/.cache/uv" in r["Description"] and r["Size"] > 0 for r in mounts), mounts
    pushed_a = fresh_runner.push(run.client, a.ref)
    assert pushed_a["layers_pushed"] > 0
    manifest_a, config_a = config_of(plain)
    at = torch_index(config_a)
    torch_diff = config_a["rootfs"]["diff_ids"][at]  # type: ignore[index]

    # A fresh runner: no image of this repository, none of this run's BuildKit cache.
    tags, records = fresh_runner.make_fresh(run.client, [IMAGES], run.before)
    assert tags >= 1 and records >= 1
    assert not run.client.images.list(name=IMAGES)
    assert not [r for r in fresh_runner.cache_records(run.client) if fresh_runner.ours(r, run.before)]

    # B: the torch layer comes from A's pushed image, byte for byte.
    capsys.readouterr()
    b = run.build(EINOPS)
    progress = capsys.readouterr().err
    assert b.torch_layer == "cached" and b.cache_sources == [plain.ref] and b.missing_cache_sources == []
    assert f"{EINOPS}: step 6/9 RUN --mount=type=cache" in progress and f"{EINOPS}: step 6/9 CACHED" in progress
    assert f"{EINOPS}: step 8/9 RUN --mount=type=cache" in progress  # its own environment: built
    diff_ids = run.client.images.get(b.ref).attrs["RootFS"]["Layers"]
    assert diff_ids[: at + 1] == config_a["rootfs"]["diff_ids"][: at + 1]  # type: ignore[index]

    # Pushing B uploads no torch-layer blob: the registry has it.
    pushed_b = fresh_runner.push(run.client, b.ref)
    short = torch_diff.removeprefix("sha256:")[:12]
    assert pushed_b["statuses"][short] == "Layer already exists"
    torch_size = manifest_a["layers"][at]["size"]  # type: ignore[index]
    assert pushed_b["bytes_pushed"] < torch_size / 10, (pushed_b, torch_size)
    record = json.loads(Path(str(b.log)).with_suffix(".json").read_text())
    assert record["torch_layer"] == "cached" and record["builder"] == b.builder
