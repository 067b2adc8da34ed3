"""Where cosign keeps an image's signatures in a registry, and in what shape (cosign's specs/SIGNATURE_SPEC.md,
"Tag-based Discovery" and "OCI Image Manifest V1"; the objects are those of its pkg/oci/static (one layer per
signature: the payload blob, the signature in the `dev.cosignproject.cosign/signature` annotation),
pkg/oci/empty (an OCI manifest with an OCI config) and pkg/oci/mutate.AppendSignatures (a new signature is
one more layer on the existing signature image; go-containerregistry's mutate.Append adds its diff ID and a
history entry to the config)).

- The tag: the signed manifest's digest with `:` made `-`, and `.sig`: `sha256-<hex>.sig`, in the SAME
  repository as the image (where `cosign verify <repo>@<digest>` looks by default).
- The manifest: schemaVersion 2, OCI image manifest; its config a small OCI image config; each layer the
  simple-signing payload (`application/vnd.dev.cosign.simplesigning.v1+json`), annotated with the base64
  signature. Several signatures are several layers of the one manifest, oldest first.
Fields are written in go-containerregistry's struct order, as cosign writes them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from generator.sign.payload import MEDIA_TYPE as PAYLOAD_TYPE

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what a history entry without a date says


def signature_tag(image_digest: str) -> str:
    """`sha256-<hex>.sig`: where cosign looks for the signatures of the manifest `image_digest`."""
    algorithm, _, hex_digest = image_digest.partition(":")
    return f"{algorithm}-{hex_digest}.sig"


def descriptor(media_type: str, data: bytes, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mediaType": media_type,
        "size": len(data),
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
    }
    if annotations:
        out["annotations"] = annotations
    return out


def signature_layer(payload: bytes, signature: str) -> dict[str, Any]:
    """One signature: the payload blob's descriptor, the base64 signature as its annotation."""
    return descriptor(PAYLOAD_TYPE, payload, {SIGNATURE_ANNOTATION: signature})


def config(layers: list[dict[str, Any]], created: str) -> bytes:
    """The signature image's config: a diff ID per layer (the payloads are uncompressed, so each diff ID is
    its digest) and a history entry each, as go-containerregistry's mutate.Append writes them."""
    document = {
        "architecture": "",
        "created": created,
        "history": [{"created": ZERO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [str(layer["digest"]) for layer in layers]},
        "config": {},
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def manifest(config_blob: bytes, layers: list[dict[str, Any]]) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config_blob),
        "layers": layers,
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Signed:
    """One signature as the registry holds it: the payload's blob digest and the base64 signature."""

    payload_digest: str
    signature: str


def signatures(manifest_body: bytes) -> tuple[list[dict[str, Any]], list[Signed]]:
    """(every layer descriptor as found, the simple-signing ones as Signed) of a signature manifest."""
    layers = [x for x in json.loads(manifest_body).get("layers") or [] if isinstance(x, dict)]
    found = [
        Signed(str(x.get("digest")), str((x.get("annotations") or {}).get(SIGNATURE_ANNOTATION) or ""))
        for x in layers
        if x.get("mediaType") == PAYLOAD_TYPE
    ]
    return layers, found
