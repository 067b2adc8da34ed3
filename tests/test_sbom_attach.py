"""Attaching an SBOM where the registry HAS the referrers API (the sandbox's registry has not: that path is
tests/integration/test_sbom.py): a registry stand-in that keeps manifests and blobs in memory and lists
referrers by their subject, as OCI 1.1 registries do."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from generator.release.oci import Answer
from generator.sbom.attach import ARTIFACT_TYPE, attach_sbom, pull_sbom

IMAGE = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}'
IMAGE_DIGEST = "sha256:" + hashlib.sha256(IMAGE).hexdigest()


class ReferrersRegistry:
    host = "registry.test"

    def __init__(self) -> None:
        self.manifests: dict[str, bytes] = {IMAGE_DIGEST: IMAGE}
        self.tags: dict[str, str] = {}
        self.blobs: dict[str, bytes] = {}

    def manifest(self, repo: str, reference: str) -> Answer | None:
        digest = self.tags.get(reference, reference)
        body = self.manifests.get(digest)
        return None if body is None else Answer(200, digest, "application/vnd.oci.image.manifest.v1+json", body)

    def put_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def get_blob(self, repo: str, digest: str) -> bytes:
        return self.blobs[digest]

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        self.manifests[digest] = body
        if not reference.startswith("sha256:"):
            self.tags[reference] = digest
        return digest

    def referrers(self, repo: str, digest: str) -> list[dict[str, Any]] | None:
        out = []
        for key, body in self.manifests.items():
            doc = json.loads(body)
            if (doc.get("subject") or {}).get("digest") == digest:
                out.append({"digest": key, "artifactType": doc.get("artifactType")})
        return out


def test_with_the_referrers_api_no_tag_is_written_and_the_sbom_comes_back_by_digest() -> None:
    registry = ReferrersRegistry()
    attached = attach_sbom(registry, "repo", IMAGE_DIGEST, b'{"bomFormat":"CycloneDX"}', "x.cdx.json")  # type: ignore[arg-type]
    assert attached.via == "referrers" and registry.tags == {}
    manifest = json.loads(registry.manifests[attached.digest])
    assert manifest["subject"] == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": IMAGE_DIGEST,
        "size": len(IMAGE),
    }
    assert manifest["artifactType"] == ARTIFACT_TYPE and manifest["config"]["size"] == 2
    assert pull_sbom(registry, "repo", IMAGE_DIGEST) == b'{"bomFormat":"CycloneDX"}'  # type: ignore[arg-type]
    # The same document on the same image: the same artifact, not a second one.
    again = attach_sbom(registry, "repo", IMAGE_DIGEST, b'{"bomFormat":"CycloneDX"}', "x.cdx.json")  # type: ignore[arg-type]
    assert again.digest == attached.digest and len(registry.referrers("repo", IMAGE_DIGEST) or []) == 1
