"""An image's signatures in the registry, through the project's one registry client
(generator.release.distribution): appended as cosign appends them, read back by the image's digest alone.

Appending reads the `sha256-<hex>.sig` manifest, keeps every layer it has (older signatures, someone
else's too) and PUTs the manifest with one more layer: signing again never loses a signature. The same
layer is never added twice, so a retried append whose PUT landed but whose answer was lost adds nothing.
Two runs appending at the same moment can still lose one of the two layers (the tag is read, then
written), as with cosign itself; the gate job signs one image once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from generator.release.distribution import Registry, config_digest
from generator.sign.layout import OCI_MANIFEST, config, manifest, signature_layer, signature_tag, signatures


def append(registry: Registry, repo: str, image_digest: str, payload: bytes, signature: str, created: str) -> str:
    """Add one signature of the manifest `image_digest` in `repo`; the signature manifest's digest."""
    tag = signature_tag(image_digest)
    existing = registry.manifest(repo, tag)
    layers: list[dict[str, Any]] = []
    stamp = created
    if existing is not None:
        layers, _ = signatures(existing.body)
        stamp = _created(registry, repo, existing.body) or created  # the signature image's own birth
    layer = signature_layer(payload, signature)
    if layer not in layers:
        layers.append(layer)
    blob = config(layers, stamp)
    registry.put_blob(repo, payload)
    registry.put_blob(repo, blob)
    return registry.put_manifest(repo, tag, manifest(blob, layers), OCI_MANIFEST)


def _created(registry: Registry, repo: str, body: bytes) -> str | None:
    digest = config_digest(body)
    if digest is None:
        return None
    try:
        value = json.loads(registry.get_blob(repo, digest)).get("created")
    except (ValueError, AttributeError):
        return None
    return str(value) if value else None


@dataclass(frozen=True)
class Found:
    """One signature read back: its payload's bytes (checked against their digest) and its base64 signature."""

    payload_digest: str
    payload: bytes
    signature: str


def fetch(registry: Registry, repo: str, image_digest: str) -> list[Found] | None:
    """Every simple-signing signature of `image_digest` in `repo`, oldest first; None when the image has no
    signature tag at all."""
    answer = registry.manifest(repo, signature_tag(image_digest))
    if answer is None:
        return None
    _, found = signatures(answer.body)
    return [Found(s.payload_digest, registry.get_blob(repo, s.payload_digest), s.signature) for s in found]
