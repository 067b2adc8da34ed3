"""The SBOM of a real sandbox image on the real engine: what is inside it, as a valid CycloneDX document."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from generator.release.credentials import CredentialSource
from generator.release.distribution import Registry
from generator.release.oci import split_ref
from generator.sbom.attach import ARTIFACT_TYPE, fallback_tag, pull_sbom
from generator.sbom.step import document_path, sbom_cells
from tests.integration.sandboxcell import Built, built_cell

REPOSITORY = f"sbom-test/cell-{uuid.uuid4().hex[:8]}"
SLUG = "aws-runtime-torch2.13-einops0.8.2"
HOST = "127.0.0.1:5000"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    with built_cell(tmp_path_factory, "sbom-fleet", REPOSITORY, "runtime") as cell:
        yield cell


def _components(path: Path) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    return {str(c.get("purl", c["bom-ref"])): c for c in data["components"]}


def test_the_sbom_lists_torch_einops_and_the_bases_python3_and_validates(built: Built) -> None:
    results = built.root / "results"
    (result,) = sbom_cells(built.client, [built.rendered], results, "sandbox")
    assert result.status == "ok", result.error
    path = document_path(results, "sandbox", SLUG)
    text = path.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    found = _components(path)
    torch = found["pkg:pypi/torch@2.13.0%2Bcpu"]
    locked = {p.name: p.sha256 for p in built.rendered.cell.closure or ()}
    assert torch["hashes"] == [{"alg": "SHA-256", "content": locked["torch"]}]
    einops = found["pkg:pypi/einops@0.8.2"]
    assert einops["licenses"] == [{"license": {"id": "MIT"}}]
    assert einops["hashes"] == [{"alg": "SHA-256", "content": locked["einops"]}]
    python3 = [c for purl, c in found.items() if purl.startswith("pkg:deb/debian/python3@")]
    assert len(python3) == 1 and str(python3[0]["version"]).startswith("3.11")
    # The base's own pip is in the image but not in the lock: listed, without a hash, marked unlocked.
    pip = next(c for purl, c in found.items() if purl.startswith("pkg:pypi/pip@"))
    assert "hashes" not in pip and {"name": "air-fleet:locked", "value": "false"} in pip["properties"]
    wheel = found["file:torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"]
    assert wheel["hashes"] == [{"alg": "SHA-256", "content": locked["torch"]}]
    meta = json.loads(text)["metadata"]["component"]
    assert meta["type"] == "container" and meta["version"] == built.rendered.ref.rpartition(":")[2]
    record = json.loads((results / "sandbox" / "sbom" / f"{SLUG}.json").read_text())
    assert record["digest"] == built.rendered.digest and record["counts"]["python"] >= 12
    # The same image, the same bytes: serial number and timestamp come from the image, not the clock.
    sbom_cells(built.client, [built.rendered], results, "sandbox")
    assert path.read_text() == text


def test_the_sbom_is_attached_beside_the_pushed_image_and_pulled_back_by_its_digest(built: Built) -> None:
    registry = Registry(HOST, CredentialSource({}))
    _, repo, tag = split_ref(built.rendered.ref)  # the staging candidate
    for line in built.client.images.push(built.rendered.ref.rpartition(":")[0], tag=tag, stream=True, decode=True):
        assert "error" not in line, line
    image_digest = registry.manifest_digest(repo, tag)
    assert image_digest is not None
    try:
        assert registry.referrers(repo, image_digest) is None  # docker-registry 2.8: no referrers API
        results = built.root / "results"
        (result,) = sbom_cells(built.client, [built.rendered], results, "sandbox", registry=registry)
        assert result.status == "ok", result.error
        # Only the candidate is in the registry (nothing promoted yet): attached there, by the fallback tag.
        (attached,) = result.attached
        assert attached["via"] == fallback_tag(image_digest) == f"sha256-{image_digest.split(':')[1]}.sbom"
        assert attached["repository"] == repo and attached["image_digest"] == image_digest
        document = document_path(results, "sandbox", SLUG).read_bytes()
        assert pull_sbom(registry, repo, image_digest) == document
        artifact = json.loads(registry.manifest(repo, attached["artifact"]).body)  # type: ignore[union-attr]
        assert artifact["subject"]["digest"] == image_digest and artifact["artifactType"] == ARTIFACT_TYPE
        assert pull_sbom(registry, repo, "sha256:" + "0" * 64) is None  # another image has none
    finally:
        for reference in (fallback_tag(image_digest), image_digest):
            digest = registry.manifest_digest(repo, reference)
            if digest is not None:
                registry.delete_manifest(repo, digest)
