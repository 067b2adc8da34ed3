"""Tiny real OCI images written straight into the sandbox registry through the distribution API (no engine):
what the registry tests seed repositories with."""

from __future__ import annotations

import hashlib
import json

from generator.release.distribution import Registry

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def tiny_image(registry: Registry, repo: str, payload: bytes, created: str | None = None) -> tuple[bytes, str]:
    """A tiny OCI image (config + one layer holding `payload`) uploaded blob by blob; its manifest bytes and
    digest. `created` (RFC 3339) goes into the config, where retention reads a candidate's age."""
    fields = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    config = json.dumps({**fields, **({"created": created} if created else {})}).encode()
    document = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": registry.put_blob(repo, config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": registry.put_blob(repo, payload),
                "size": len(payload),
            }
        ],
    }
    body = json.dumps(document).encode()
    return body, "sha256:" + hashlib.sha256(body).hexdigest()


def empty(registry: Registry, *repos: str) -> None:
    """Delete every manifest of these repositories (a test's own): what a test leaves in the shared registry."""
    for repo in repos:
        for tag in registry.tags(repo):
            digest = registry.manifest_digest(repo, tag)
            if digest is not None:
                registry.delete_manifest(repo, digest)
