"""Build once, test the pushed bytes, promote by digest: the trust chain on the real engine and registry.

A two-cell sandbox fleet (plain and einops, sharing the torch layer) is built, probed and pushed as
candidates to its staging repository. Then every local image of it is deleted: probe and bench pull the
candidates by digest and start no build, promote copies them to the release repository through the
registry API with no Docker engine reachable at all and signs them, register checks the signature and
names the release by digest, and the page shows one manifest digest from staging to registration. A
FAILed probe is never promoted, and an interrupted promote leaves no alias behind on a missing manifest
and completes when run again.
The Databricks workspace behind `register` cannot exist here: the stand-in CLI of tests/fixtures/fake_cli
follows the documented contract.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from generator.engine import connect
from generator.fleet import Fleet
from generator.release.credentials import CredentialSource
from generator.release.distribution import Registry, walk_blobs
from generator.release.promote import PromoteCell, PromoteResult, promote
from generator.release.registration import Ledger
from generator.results import read_record, write_record
from generator.sbom.attach import find_sbom, pull_sbom
from generator.spec.profiles import load_profile
from tests.conftest import ROOT
from tests.integration.sandboxfleet import cli, locked_project, sandbox_matrix

HOST = "127.0.0.1:5000"
REPOSITORY = f"air-fleet/promote-{uuid.uuid4().hex[:8]}"
STAGING = f"{REPOSITORY}-staging"
MATRIX = sandbox_matrix(REPOSITORY, "runtime", {"plain": "", "einops": "einops==0.8.2"})
PLAIN, EINOPS = "aws-runtime-torch2.13", "aws-runtime-torch2.13-einops0.8.2"
FAKE_CLI = ROOT / "tests" / "fixtures" / "fake_cli"
NO_ENGINE = "unix:///nonexistent/docker.sock"


def records_of(root: Path) -> Path:
    return root / "results" / load_profile("sandbox", root / "matrix.yaml").records


def record(root: Path, step: str, slug: str) -> dict[str, object]:
    found = read_record(records_of(root) / step / f"{slug}.json")
    assert found is not None, (step, slug)
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Built, CPU-probed and pushed as candidates; then no local image of the fleet is left."""
    root = locked_project(tmp_path_factory, "promote", MATRIX, "dcs-base-aws-runtime")
    client = connect()
    for step in (["build", "-j", "2"], ["probe"], ["push", "--atomic"]):
        done = cli(root, *step)
        assert done.returncode == 0, (step, done.stdout, done.stderr)
    yield root
    # An image's `tags` lists all of its tags: on a warm engine the sandbox fleet's own candidate can be the
    # very same image, and its tag must stay.
    for image in client.images.list(name=f"{HOST}/{STAGING}"):
        for tag in image.tags:
            if tag.startswith(f"{HOST}/{STAGING}:"):
                client.images.remove(tag)


def drop_local_images(root: Path) -> None:
    """Every local tag of the fleet's candidates, and the images pulled by digest: gone from the engine."""
    client = docker.from_env()
    for image in client.images.list(name=f"{HOST}/{STAGING}"):
        # By reference, never by id: the sandbox fleet may hold the very same image under its own tags.
        for ref in [
            *(t for t in image.tags if t.startswith(f"{HOST}/{STAGING}:")),
            *(d for d in image.attrs.get("RepoDigests") or [] if d.startswith(f"{HOST}/{STAGING}@")),
        ]:
            with contextlib.suppress(docker.errors.ImageNotFound):  # its last reference went with the one before
                client.images.remove(ref)
    for slug in (PLAIN, EINOPS):
        ref = str(record(root, "build", slug)["ref"])
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(ref)


def test_candidates_are_in_staging_only_and_probed_by_what_was_pushed(project: Path) -> None:
    registry = Registry(HOST, CredentialSource({}))
    for slug in (PLAIN, EINOPS):
        push = record(project, "push", slug)
        assert push["status"] == "pushed" and push["repository"] == f"{HOST}/{STAGING}"
        assert isinstance(push["tags"], list) and len(push["tags"]) == 1
        assert registry.manifest_digest(STAGING, str(push["tags"][0])) == push["repo_digest"]
        assert registry.tags(REPOSITORY) == []  # users never see a candidate
        # The CPU probe ran on the local image before its push: it names the image the push pushed.
        probe = record(project, "probe", slug)
        assert probe["image_id"] == push["image_id"] and probe["manifest_digest"] is None


def test_probe_bench_and_promote_start_no_build_and_keep_one_digest(project: Path) -> None:
    drop_local_images(project)
    builds_before = {s: record(project, "build", s) for s in (PLAIN, EINOPS)}

    probe = cli(project, "probe")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    bench = cli(project, "bench", "--quick")
    assert bench.returncode == 0, bench.stdout + bench.stderr
    assert {s: record(project, "build", s) for s in (PLAIN, EINOPS)} == builds_before  # no build started
    # One cell's SBOM attached to its candidate in staging: promote must carry it to the release.
    sbom = cli(project, "sbom", "--attach", PLAIN)
    assert sbom.returncode == 0, sbom.stdout + sbom.stderr

    # promote needs no engine: the engine this process would reach is not there.
    audited = cli(project, "audit")  # the vulnerability policy promote applies reads these records
    assert audited.returncode == 0, audited.stdout + audited.stderr
    promoted = cli(project, "promote", "--atomic", "--json", env={"DOCKER_HOST": NO_ENGINE})
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    results = {r["slug"]: r for r in json.loads(promoted.stdout)["results"]}

    registry = Registry(HOST, CredentialSource({}))
    today = datetime.datetime.now(datetime.UTC).date()
    for slug in (PLAIN, EINOPS):
        staged = str(record(project, "push", slug)["repo_digest"])
        tested = record(project, "probe", slug)
        assert tested["pulled"] is True and tested["manifest_digest"] == staged
        assert tested["tested_ref"] == f"{HOST}/{STAGING}@{staged}"
        assert record(project, "bench", slug)["manifest_digest"] == staged
        r = results[slug]
        assert r["status"] == "promoted" and r["manifest_digest"] == staged
        assert r["signed"] is True, r["signature"]  # the sandbox profile signs what it promotes
        assert r["release_ref"] == f"{HOST}/{REPOSITORY}@{staged}"
        assert r["blobs"].get("copied", 0) == 0  # every blob mounted or already there: no layer moved
        immutable = str(record(project, "push", slug)["tags"][0])  # type: ignore[index]
        assert r["tags"] == [immutable, slug, f"{slug}-{today:%Y%m%d}"]
        for tag in r["tags"]:
            assert registry.manifest_digest(REPOSITORY, tag) == staged
    # The SBOM found from the released digest alone is the document read from the candidate, and the
    # release holds the very artifact staging holds; the cell without one had none to carry.
    plain = results[PLAIN]
    document = (records_of(project) / "sbom" / f"{PLAIN}.cdx.json").read_bytes()
    assert pull_sbom(registry, REPOSITORY, plain["manifest_digest"]) == document
    assert plain["sbom"] == find_sbom(registry, STAGING, plain["manifest_digest"]).digest  # type: ignore[union-attr]
    assert results[EINOPS]["sbom"] is None
    assert f"{EINOPS}: no SBOM attached in staging" in promoted.stderr + promoted.stdout

    # register names the release by digest; the page shows the chain unbroken.
    workspace = f"promote-test-{uuid.uuid4().hex[:8]}"  # a ledger of its own (the state folder holds the bases' lock)
    scenario = project / "scenario.json"
    scenario.write_text(json.dumps({"default": {"steps": ["success"]}}))
    env = {
        "PATH": f"{FAKE_CLI}:{os.environ['PATH']}",
        "FAKE_CLI_SCENARIO": str(scenario),
        "FAKE_CLI_STATE": str(project),
        "DOCKER_HOST": NO_ENGINE,
    }
    registered = cli(project, "register", "--cli", "databricks", "--workspace-profile", workspace, "--json", env=env)
    try:
        assert registered.returncode == 0, registered.stdout + registered.stderr
        published = cli(project, "publish", "--out", str(project / "site"), env=env)
    finally:
        Ledger.for_profile(workspace).path.unlink(missing_ok=True)
    calls = [json.loads(line) for line in (project / "calls.jsonl").read_text().splitlines()]
    assert sorted(c["ref"] for c in calls) == sorted(results[s]["release_ref"] for s in (PLAIN, EINOPS))
    assert published.returncode == 0, published.stderr
    page = json.loads((project / "site" / "matrix.json").read_text())
    for row in page["cells"]:
        staged = str(record(project, "push", row["slug"])["repo_digest"])
        assert row["chain"]["intact"] is True, row["chain"]
        assert {link["digest"] for link in row["chain"]["links"]} == {staged}
        assert [link["step"] for link in row["chain"]["links"]] == [
            "staging",
            "probe",
            "bench",
            "release",
            "signed",  # the sandbox signs what it promotes, with its machine key (generator/sign/)
            "registered",
        ]


def test_a_candidate_whose_probe_failed_is_never_promoted(project: Path) -> None:
    fleet = Fleet.for_profile(load_profile("sandbox", project / "matrix.yaml"))
    (einops,) = [r for r in fleet.render() if r.cell.slug == EINOPS]
    path = records_of(project) / "probe" / f"{EINOPS}.json"
    passed = json.loads(path.read_text())
    write_record(path, {**passed, "status": "FAIL"})
    try:
        results = promote(
            [PromoteCell.of(einops)],
            profile=fleet.profile.records,
            atomic=True,
            date=datetime.date(2031, 1, 2),
            results=project / "results",
            progress=lambda _: None,
        )
    finally:
        write_record(path, passed)
    (r,) = results
    assert r.status == "refused" and r.reason == "probe FAIL"
    assert Registry(HOST, CredentialSource({})).manifest_digest(REPOSITORY, f"{EINOPS}-20310102") is None


class _Interrupted(Registry):
    """The real registry, until the first moving alias: then the run is killed (Ctrl-C) mid-promote."""

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        if reference in ALIASES:
            raise KeyboardInterrupt
        return super().put_manifest(repo, reference, body, media_type)


ALIASES = {PLAIN, EINOPS, f"{PLAIN}-20320304", f"{EINOPS}-20320304"}


def test_an_interrupted_promote_moves_no_alias_and_a_rerun_completes_it(project: Path) -> None:
    registry = Registry(HOST, CredentialSource({}))
    fleet = Fleet.for_profile(load_profile("sandbox", project / "matrix.yaml"))
    cells = [PromoteCell.of(r) for r in fleet.render()]
    # A fresh release repository, so nothing from the other tests is there.
    release = f"{REPOSITORY}-rerun"
    cells = [dataclasses.replace(c, release=release) for c in cells]
    day = datetime.date(2032, 3, 4)

    def run(registry: Callable[[str], Registry] | None = None) -> list[PromoteResult]:
        profile, results = fleet.profile.records, project / "results"
        return promote(
            cells, profile=profile, atomic=True, date=day, results=results, progress=lambda _: None, registry=registry
        )

    with pytest.raises(KeyboardInterrupt):
        run(lambda host: _Interrupted(host, CredentialSource({})))
    tags = registry.tags(release)
    assert tags and not set(tags) & ALIASES  # the immutable copies landed; no alias moved
    for tag in tags:  # and what landed is whole: every blob of every manifest is in the release repository
        answer = registry.manifest(release, tag)
        assert answer is not None and all(registry.has_blob(release, b) for b in walk_blobs(answer.body))

    results = run()
    assert [r.status for r in results] == ["promoted", "promoted"]
    for r in results:
        assert r.tags[1:] == [r.slug, f"{r.slug}-20320304"]
        for tag in r.tags:
            assert registry.manifest_digest(release, tag) == r.manifest_digest
