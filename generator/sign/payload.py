"""The bytes a signature covers: cosign's "simple signing" payload (Red Hat's containers-signature format
with cosign's type), naming the image's repository and its manifest digest.

cosign writes it with Go's encoding/json from a struct, so the keys come in that struct's order and with
no spaces (sigstore's pkg/signature/payload: Critical{Identity{docker-reference}, Image{docker-manifest-
digest}, Type}, then Optional). A verifier never rebuilds these bytes: it checks the signature over the
bytes the registry holds and then reads the claims from them (`claims`), as cosign does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
TYPE = "cosign container image signature"


def simple_signing(reference: str, digest: str, optional: dict[str, Any] | None = None) -> bytes:
    """The payload for the manifest `digest` of `reference` (`<registry>/<repository>`, no tag)."""
    document = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": TYPE,
        },
        "optional": optional,
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Claims:
    reference: str
    digest: str
    type: str


def claims(payload: bytes) -> Claims | None:
    """What a payload says, or None when it is no simple-signing document."""
    try:
        critical = json.loads(payload)["critical"]
        return Claims(
            str(critical["identity"]["docker-reference"]),
            str(critical["image"]["docker-manifest-digest"]),
            str(critical["type"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def mismatch(payload: bytes, reference: str, digest: str) -> str | None:
    """None when the payload names this repository and digest as a cosign signature; else why not."""
    said = claims(payload)
    if said is None:
        return "its payload is not a simple-signing document"
    if said.type != TYPE:
        return f"its payload's type is {said.type!r}, not {TYPE!r}"
    if said.digest != digest:
        return f"its payload names {said.digest}, not {digest}"
    if said.reference != reference:
        return f"its payload names {said.reference}, not {reference}"
    return None
