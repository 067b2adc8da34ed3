"""The SBOM beside its image in the registry, and back again by the image's digest.

Attached as an OCI artifact (image-spec 1.1): a manifest whose `artifactType` is CycloneDX JSON, whose
one layer is the document, whose config is the empty descriptor, and whose `subject` is the image's
manifest. A registry with the referrers API (`GET /v2/<repo>/referrers/<digest>`) then lists it under the
image. A registry without it (Debian's docker-registry 2.8, the sandbox's) answers that API with 404;
there the same manifest is also tagged `sha256-<hex>.sbom` (the convention cosign and oras use), so a
client that knows only the image's digest finds it. Either way the SBOM is found from the digest alone:
no tag of the image, no Docker engine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from generator.release.distribution import Registry, walk_blobs
from generator.release.oci import Answer
from generator.release.registry import RegistryError

ARTIFACT_TYPE = "application/vnd.cyclonedx+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"  # the image-spec's empty descriptor: a config that says nothing


def fallback_tag(image_digest: str) -> str:
    """`sha256-<hex>.sbom`: where a registry without the referrers API keeps the image's SBOM."""
    algorithm, _, hex_digest = image_digest.partition(":")
    return f"{algorithm}-{hex_digest}.sbom"


@dataclass(frozen=True)
class Attached:
    digest: str  # the SBOM artifact's manifest digest
    via: str  # "referrers" (the registry lists it under the image) or the fallback tag it was given
    subject: str  # the image's manifest digest


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


def artifact_manifest(document: bytes, subject: dict[str, Any], title: str) -> bytes:
    """The artifact's manifest bytes: deterministic (the same document on the same image, the same digest)."""
    layer = {**_descriptor(ARTIFACT_TYPE, document), "annotations": {"org.opencontainers.image.title": title}}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": _descriptor(EMPTY_TYPE, EMPTY),
        "layers": [layer],
        "subject": subject,
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def attach_sbom(registry: Registry, repo: str, image_digest: str, document: bytes, title: str) -> Attached:
    """Upload `document` as the SBOM of the manifest `image_digest` in `repo`; RegistryError if the image
    is not there (an SBOM for a manifest the registry lacks would refer to nothing)."""
    image = registry.manifest(repo, image_digest)
    if image is None:
        raise RegistryError(f"{registry.host}/{repo}@{image_digest}", "no such manifest to attach an SBOM to")
    subject = {"mediaType": image.media_type or OCI_MANIFEST, "digest": image_digest, "size": len(image.body)}
    registry.put_blob(repo, EMPTY)
    registry.put_blob(repo, document)
    body = artifact_manifest(document, subject, title)
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return _put_findable(registry, repo, image_digest, digest, body, OCI_MANIFEST)


def _put_findable(registry: Registry, repo: str, image_digest: str, digest: str, body: bytes, media: str) -> Attached:
    """PUT the artifact by its digest, and where the registry lacks the referrers API also under the image's
    `sha256-<hex>.sbom` tag, so it is found from the image's digest either way."""
    registry.put_manifest(repo, digest, body, media)
    if registry.referrers(repo, image_digest) is not None:
        return Attached(digest, "referrers", image_digest)
    tag = fallback_tag(image_digest)
    registry.put_manifest(repo, tag, body, media)
    return Attached(digest, tag, image_digest)


def find_sbom(registry: Registry, repo: str, image_digest: str) -> Answer | None:
    """The SBOM artifact's manifest attached to `image_digest` in `repo`, found from that digest alone: the
    referrers API where the registry has it, else the `sha256-<hex>.sbom` tag. None when there is none. A
    manifest found there whose subject is another image is not taken (a tag can be overwritten)."""
    listed = registry.referrers(repo, image_digest)
    if listed is not None:
        candidates = [str(d["digest"]) for d in listed if d.get("artifactType") == ARTIFACT_TYPE]
    else:
        candidates = [fallback_tag(image_digest)]
    for reference in candidates:
        answer = registry.manifest(repo, reference)
        if answer is None:
            continue
        manifest = json.loads(answer.body)
        if (manifest.get("subject") or {}).get("digest") != image_digest:
            continue
        if any(x.get("mediaType") == ARTIFACT_TYPE for x in manifest.get("layers") or []):
            return answer
    return None


def pull_sbom(registry: Registry, repo: str, image_digest: str) -> bytes | None:
    """The SBOM document attached to the manifest `image_digest` (find_sbom), or None when there is none."""
    answer = find_sbom(registry, repo, image_digest)
    if answer is None:
        return None
    layers = [x for x in json.loads(answer.body).get("layers") or [] if x.get("mediaType") == ARTIFACT_TYPE]
    return registry.get_blob(repo, str(layers[0]["digest"]))


def carry_sbom(registry: Registry, from_repo: str, to_repo: str, image_digest: str) -> Attached | None:
    """The SBOM of `image_digest` in `from_repo` made the SBOM of the same manifest in `to_repo`: its blobs
    mounted (no document is downloaded or uploaded) and its manifest PUT with the same bytes, so both
    repositories hold one artifact digest; tagged `sha256-<hex>.sbom` where `to_repo`'s registry lacks the
    referrers API. None when `from_repo` has no SBOM for it. Idempotent: a re-run PUTs the same bytes."""
    answer = find_sbom(registry, from_repo, image_digest)
    if answer is None:
        return None
    for blob in walk_blobs(answer.body):
        registry.copy_blob(to_repo, blob, from_repo)
    digest = answer.digest or "sha256:" + hashlib.sha256(answer.body).hexdigest()
    return _put_findable(registry, to_repo, image_digest, digest, answer.body, answer.media_type or OCI_MANIFEST)
