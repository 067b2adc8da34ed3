"""`prune` against the real registry, through the CLI: a release repository of the test's own seeded with
dated aliases (tiny real images, one manifest each), a staging repository with an old and a new
candidate, and a registration ledger. The dry run lists exactly the expired tags; --yes deletes exactly
those (with their manifests' other tags, SBOM and signatures), and everything kept is still there."""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path

import pytest

from generator.release.credentials import CredentialSource
from generator.release.distribution import Registry
from generator.sandbox import services
from generator.sbom.attach import attach_sbom, fallback_tag
from generator.sign.layout import signature_tag
from generator.sign.store import append
from tests.conftest import run_cli
from tests.integration.registryimages import MANIFEST, empty, tiny_image

HOST = "127.0.0.1:5000"
RUN = uuid.uuid4().hex[:8]
RELEASE, STAGING = f"sbom-test/prune-{RUN}", f"sbom-test/prune-{RUN}-staging"
SLUG = "aws-runtime-torch2.13"
MATRIX = f"""\
schema: 1
python: "3.11"
registry: {{host: {HOST}, repository: {RELEASE}, staging: {STAGING}}}
clouds: [aws]
variants: [runtime]
accelerators: [GPU_1xA10]
torch:
  - {{version: 2.13.0, torchvision: none, torchaudio: none}}
"""
TODAY = datetime.datetime.now(datetime.UTC).date()


def _image(registry: Registry, repo: str, name: str, created: datetime.date) -> tuple[bytes, str]:
    return tiny_image(registry, repo, f"{RUN} {name}".encode(), f"{created}T00:00:00Z")


def _day(days_ago: int) -> str:
    return f"{SLUG}-{TODAY - datetime.timedelta(days=days_ago):%Y%m%d}"


@pytest.fixture
def seeded(tmp_path: Path) -> dict[str, object]:
    services.up(progress=lambda _: None)
    registry = Registry(HOST, CredentialSource({}))
    digests: dict[str, str] = {}

    def put(repo: str, name: str, tags: list[str], created: datetime.date = TODAY) -> str:
        body, digest = _image(registry, repo, name, created)
        for tag in tags:
            registry.put_manifest(repo, tag, body, MANIFEST)
        digests[name] = digest
        return digest

    put(RELEASE, "m0", [SLUG, _day(0), _day(70)])  # the moving alias; an old alias on the same manifest
    put(RELEASE, "m1", [_day(40), f"{SLUG}-{'1' * 12}"])  # among the newest 2
    put(RELEASE, "m4", [_day(45)])  # registered
    put(RELEASE, "m2", [_day(50), f"{SLUG}-{'2' * 12}"])  # expired, with its immutable tag
    m3 = put(RELEASE, "m3", [_day(60)])  # expired, with an SBOM attached and a signature
    attach_sbom(registry, RELEASE, m3, b'{"bomFormat": "CycloneDX"}', "m3.cdx.json")
    append(registry, RELEASE, m3, b'{"critical": {}}', "c2ln", f"{TODAY}T00:00:00Z")  # its bytes do not matter here
    put(STAGING, "old", [f"{SLUG}-{'a' * 12}"], TODAY - datetime.timedelta(days=90))
    put(STAGING, "new", [f"{SLUG}-{'b' * 12}"])
    (tmp_path / "matrix.yaml").write_text(MATRIX, encoding="utf-8")
    (tmp_path / "state" / "register").mkdir(parents=True)
    ledger = {"schema": 1, "images": {digests["m4"]: {"ref": "r", "slug": SLUG, "registered_at": "x", "cli": "air"}}}
    (tmp_path / "state" / "register" / "ws.json").write_text(json.dumps(ledger))
    return {"registry": registry, "digests": digests, "root": tmp_path}


def _prune(root: Path, *extra: str) -> dict[str, object]:
    env = {"AIR_FLEET_STATE": str(root / "state"), "AIR_FLEET_RESULTS": str(root / "results")}
    args = ("--profile", "sandbox", "--matrix", str(root / "matrix.yaml"), "prune", "--days", "30", "--keep", "2")
    done = run_cli(*args, *extra, "--json", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_dry_run_lists_exactly_the_expired_and_yes_deletes_exactly_those(seeded: dict[str, object]) -> None:
    registry, digests, root = seeded["registry"], seeded["digests"], seeded["root"]
    assert isinstance(registry, Registry) and isinstance(digests, dict) and isinstance(root, Path)
    sbom_tag, sig_tag = fallback_tag(digests["m3"]), signature_tag(digests["m3"])
    before = {repo: set(registry.tags(repo)) for repo in (RELEASE, STAGING)}
    try:
        planned = _prune(root)
        doomed = {(d["repo"], d["tag"]) for d in planned["delete"]}  # type: ignore[attr-defined]
        assert doomed == {
            (RELEASE, _day(50)),
            (RELEASE, _day(60)),
            (RELEASE, sbom_tag),
            (RELEASE, sig_tag),
            (STAGING, f"{SLUG}-{'a' * 12}"),
        }
        assert {k["tag"] for k in planned["kept"]} == {_day(45), _day(70)}  # type: ignore[attr-defined]
        assert {repo: set(registry.tags(repo)) for repo in (RELEASE, STAGING)} == before  # a dry run deletes nothing

        _prune(root, "--yes")
        gone = {
            _day(50),
            f"{SLUG}-{'2' * 12}",
            _day(60),
            sbom_tag,
            sig_tag,
        }  # m2's immutable tag goes with its manifest
        assert set(registry.tags(RELEASE)) == before[RELEASE] - gone
        assert set(registry.tags(STAGING)) == before[STAGING] - {f"{SLUG}-{'a' * 12}"}
        assert registry.manifest_digest(RELEASE, SLUG) == digests["m0"]
        assert _prune(root)["delete"] == []  # a second run finds nothing more
    finally:
        empty(registry, RELEASE, STAGING)
