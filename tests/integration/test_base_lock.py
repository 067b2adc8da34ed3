"""Base images locked by digest, on the real engine and registry (no mocks; in CI these run, never skip).

Two cells on two bases that live in the sandbox registry (copies of the aws and azure runtime stand-ins
under this test's own names, so the real stand-ins are never touched). The lock pins both by digest and
the Dockerfiles say FROM name:tag@sha256. Then one base is rebuilt with one changed file and pushed under
the same tag, as Docker Hub republishes a base with security fixes: `lock --refresh` reports exactly that
base moving and exactly its cell's content digest changing; `plan` then lists exactly that cell (and
none before); `build` rebuilds exactly that one. A base missing from the lock stops `build` in one line.
"""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from generator.build.steps import NotLocked, run_build
from generator.ci.plan import http_exists, plan
from generator.deps.lockfile import Lock, read_lock, write_lock
from generator.deps.step import run_lock
from generator.engine import connect
from generator.fleet import Fleet
from generator.sandbox import services
from generator.sandbox.bases import ensure_bases, stand_ins
from generator.spec.profiles import Profile, load_profile

TOKEN = uuid.uuid4().hex[:8]
BASE = f"127.0.0.1:5000/air-fleet-test/base-{TOKEN}"
MATRIX = f"""\
schema: 1
python: "3.11"
registry: {{host: 127.0.0.1:5000, repository: air-fleet/test-base-lock-{TOKEN}}}
clouds: [aws, azure]
variants: [runtime]
accelerators: [GPU_1xA10]
extra_ca_certificates: [/etc/ssl/certs/ca-certificates.crt]
torch:
  - {{version: 2.13.0, torchvision: none, torchaudio: none}}
"""
AWS, AZURE = "aws-runtime-torch2.13", "azure-runtime-torch2.13"


@dataclass
class Setup:
    client: docker.DockerClient
    profile: Profile
    root: Path

    def fleet(self) -> Fleet:
        return Fleet.for_profile(self.profile)


def push(client: docker.DockerClient, ref: str) -> None:
    for line in client.api.push(ref, stream=True, decode=True):
        assert "error" not in line, line


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    services.up(progress=lambda _: None)
    client = connect()
    wanted = [s for s in stand_ins() if s.kind == "databricks" and s.variant == "runtime"]
    ensure_bases(client, wanted, progress=lambda _: None)
    for stand_in in wanted:  # this test's own copies: the real stand-ins are shared with every other test
        ref = f"{BASE}:dcs-base-{stand_in.cloud}-runtime"
        client.images.get(stand_in.ref).tag(ref)
        push(client, ref)
    root = tmp_path_factory.mktemp("base-lock")
    (root / "matrix.yaml").write_text(MATRIX, encoding="utf-8")
    profile = load_profile("sandbox", root / "matrix.yaml")
    overlay = json.loads(profile.knowledge_overlay or "{}")
    overlay["bases.yaml"]["bases"]["databricks"]["image"] = BASE + ":dcs-base-{cloud}-{variant}"
    profile = dataclasses.replace(
        profile, knowledge_overlay=json.dumps(overlay, sort_keys=True), bases_lock=root / "bases.lock.json"
    )
    yield Setup(client, profile, root)
    for image in client.images.list(name=BASE):
        for tag in image.tags:
            if tag.startswith(BASE):
                client.images.remove(tag)


def test_a_republished_base_moves_exactly_its_cells(setup: Setup) -> None:
    outcome = run_lock(setup.fleet(), say=lambda _: None)
    assert outcome.failures == [], outcome.failures
    locked = read_lock(setup.root / "bases.lock.json").bases
    assert set(locked) == {f"{BASE}:dcs-base-aws-runtime", f"{BASE}:dcs-base-azure-runtime"}
    fleet = setup.fleet()
    rendered = {r.cell.slug: r for r in fleet.render()}
    assert set(rendered) == {AWS, AZURE}
    for r in rendered.values():  # FROM name:tag@sha256:<the locked digest>
        digest = locked[r.cell.base_image].digest
        assert f"FROM {r.cell.base_image}@{digest}\n" in r.files["Dockerfile"].decode()
    # Both cells' images are candidates and released (any bytes will do: `plan` asks the release
    # repository for the tag only, `build` the staging one).
    for r in rendered.values():
        for ref in (r.ref, r.release_ref):
            setup.client.images.get(f"{BASE}:dcs-base-aws-runtime").tag(ref)
            push(setup.client, ref)
    assert plan(list(rendered.values()), http_exists())["include"] == []
    nothing = run_lock(fleet, say=lambda _: None, refresh=True, dry_run=True)
    assert (nothing.moved, nothing.changed_cells, nothing.failures) == ([], [], [])

    # The aws base is republished under its tag with one file changed.
    aws_base = f"{BASE}:dcs-base-aws-runtime"
    dockerfile = f"FROM {aws_base}\nRUN echo republished > /etc/air-fleet-test-marker\n"
    setup.client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=aws_base, rm=True)
    push(setup.client, aws_base)
    before = (setup.root / "bases.lock.json").read_bytes()
    dry = run_lock(setup.fleet(), say=lambda _: None, refresh=True, dry_run=True)
    assert dry.failures == []
    assert len(dry.moved) == 1 and dry.moved[0].startswith(f"base {aws_base}: {locked[aws_base].digest} -> sha256:")
    assert dry.moved[0].endswith(f"(1 cells: {AWS})")
    assert dry.changed_cells == [AWS]
    assert (setup.root / "bases.lock.json").read_bytes() == before  # a dry run writes nothing

    assert run_lock(setup.fleet(), say=lambda _: None, refresh=True).written
    fleet = setup.fleet()
    everything = fleet.render()
    assert [c["slug"] for c in plan(everything, http_exists())["include"]] == [AWS]
    results = {r.slug: r for r in run_build(fleet, everything, everything, jobs=1, wait=True, quiet=True)}
    assert (results[AWS].status, results[AWS].build_started) == ("built", True), results[AWS].error
    assert (results[AZURE].status, results[AZURE].where) == ("up to date", "registry")
    image = setup.client.images.get(results[AWS].ref)
    marker = setup.client.containers.run(image.id, ["cat", "/etc/air-fleet-test-marker"], remove=True)
    assert marker.decode().strip() == "republished"  # built FROM the republished base, by its digest


def test_build_refuses_a_base_the_lock_does_not_pin(setup: Setup) -> None:
    run_lock(setup.fleet(), say=lambda _: None)
    lock = read_lock(setup.root / "bases.lock.json")
    write_lock(setup.root / "bases.lock.json", Lock(bases={k: v for k, v in lock.bases.items() if "azure" not in k}))
    fleet = setup.fleet()
    everything = fleet.render()
    with pytest.raises(NotLocked) as refused:
        run_build(fleet, everything, everything, jobs=1, wait=True, quiet=True)
    message = str(refused.value)
    assert "\n" not in message and refused.value.exit_status == 2
    assert f"{AZURE}: not locked: base image {BASE}:dcs-base-azure-runtime" in message
    assert AWS not in message and "run `python -m generator lock`" in message
    assert "FROM " + f"{BASE}:dcs-base-azure-runtime\n" in next(
        r.files["Dockerfile"].decode() for r in everything if r.cell.slug == AZURE
    )  # unpinned until locked: never built
