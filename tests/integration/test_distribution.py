"""The registry's distribution API, spoken without an engine (generator/release/distribution.py), against
the sandbox's real registry: upload, cross-repository mount, manifest PUT by the same bytes, tags,
referrers, delete."""

from __future__ import annotations

import uuid

import pytest

from generator.release.credentials import CredentialSource
from generator.release.distribution import Registry, walk_blobs
from generator.release.registry import RegistryError
from generator.sandbox import services
from tests.integration.registryimages import tiny_image

HOST = "127.0.0.1:5000"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def registry() -> Registry:
    services.up(progress=lambda _: None)
    return Registry(HOST, CredentialSource({}))


def _image(registry: Registry, repo: str, payload: bytes) -> tuple[bytes, str]:
    """A tiny OCI image (config + one layer) uploaded blob by blob; its manifest bytes and digest."""
    return tiny_image(registry, repo, payload)


def test_a_manifest_copied_across_repositories_keeps_its_digest_and_moves_no_layer(registry: Registry) -> None:
    run = uuid.uuid4().hex[:8]
    staging, release = f"dist-test/{run}/staging", f"dist-test/{run}/release"
    body, digest = _image(registry, staging, b"layer " + run.encode())
    assert registry.put_manifest(staging, "cand", body, MANIFEST) == digest
    assert registry.manifest_digest(staging, "cand") == digest
    assert registry.manifest_digest(release, "cand") is None

    ways = [registry.copy_blob(release, blob, staging) for blob in walk_blobs(body)]
    assert ways == ["mounted", "mounted"]  # linked by the registry, never read or uploaded by us
    assert registry.put_manifest(release, "v1", body, MANIFEST) == digest
    answer = registry.manifest(release, "v1")
    assert answer is not None and answer.digest == digest and answer.body == body
    assert registry.copy_blob(release, next(walk_blobs(body)), staging) == "present"
    assert sorted(registry.tags(release)) == ["v1"]


def test_a_manifest_whose_blob_is_missing_is_refused_by_name(registry: Registry) -> None:
    run = uuid.uuid4().hex[:8]
    staging, release = f"dist-test/{run}/staging", f"dist-test/{run}/release"
    body, _ = _image(registry, staging, b"only in staging " + run.encode())
    with pytest.raises(
        RegistryError, match=r"PUT manifest on 127\.0\.0\.1:5000/dist-test/.*/release failed: .*HTTP 400"
    ):
        registry.put_manifest(release, "v1", body, MANIFEST)  # its blobs were never mounted there
    assert registry.manifest_digest(release, "v1") is None


def test_delete_removes_the_manifest_and_every_tag_on_it(registry: Registry) -> None:
    repo = f"dist-test/{uuid.uuid4().hex[:8]}/prune"
    body, digest = _image(registry, repo, b"to delete")
    registry.put_manifest(repo, "a", body, MANIFEST)
    registry.put_manifest(repo, "b", body, MANIFEST)
    assert registry.delete_manifest(repo, digest) is True
    assert registry.manifest_digest(repo, "a") is None and registry.manifest_digest(repo, "b") is None
    assert registry.delete_manifest(repo, digest) is False


def test_the_sandbox_registry_has_no_referrers_api_so_the_tag_convention_is_needed(registry: Registry) -> None:
    repo = f"dist-test/{uuid.uuid4().hex[:8]}/ref"
    body, digest = _image(registry, repo, b"subject")
    registry.put_manifest(repo, "s", body, MANIFEST)
    assert registry.referrers(repo, digest) is None
    assert registry.get_blob(repo, next(walk_blobs(body))).startswith(b"{")
