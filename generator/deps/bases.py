"""Base images locked by digest: what a tag points at today, asked of its registry over HTTP (no engine).

A tag can point at one manifest or at a multi-platform index. For an index the lock records the index's
digest and the linux/amd64 manifest's, and the Dockerfile pins the latter (the bytes that run); when the
registry republishes the tag (security fixes), only `lock --refresh` moves the pin, and with it the
content digest of exactly the cells on that base.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from generator.deps.lockfile import DIGEST, BaseLock
from generator.release import oci
from generator.release.credentials import CredentialSource
from generator.release.registry import LOOKUP, RegistryError, asking
from generator.retry import Policy

PLATFORM = {"os": "linux", "architecture": "amd64"}
ADVICE = "the lock keeps what it had for this base; `python -m generator lock` tries again"


def resolve_base(
    ref: str,
    *,
    source: CredentialSource | None = None,
    timeout: float = 20.0,
    policy: Policy = LOOKUP,
    sleep: Callable[[float], object] | None = None,
) -> BaseLock:
    """The digests `ref` (`name:tag`) points at now; RegistryError when the registry cannot say."""
    source = CredentialSource() if source is None else source

    def once() -> BaseLock:
        answer = oci.manifest(ref, method="GET", source=source, timeout=timeout, advice=ADVICE)
        if answer.status == 404:
            raise RegistryError(ref, "no such image (404)", ADVICE)
        if not 200 <= answer.status < 300:
            raise oci.unexpected(ref, answer, "GET", ADVICE)
        # The digest is the sha256 of the manifest's bytes; registries also say it in a header.
        digest = "sha256:" + hashlib.sha256(answer.body).hexdigest()
        if answer.digest and answer.digest != digest:
            raise RegistryError(ref, f"the registry says {answer.digest}, its bytes hash to {digest}", ADVICE)
        if answer.media_type not in oci.INDEX_TYPES:
            return BaseLock(digest=digest, index=None)
        return BaseLock(digest=_platform_manifest(ref, answer.body), index=digest)

    return asking(ref, once, policy=policy) if sleep is None else asking(ref, once, policy=policy, sleep=sleep)


def _platform_manifest(ref: str, body: bytes) -> str:
    """The linux/amd64 entry of a multi-platform index."""
    try:
        entries = json.loads(body)["manifests"]
        found = [
            e["digest"]
            for e in entries
            if all(e.get("platform", {}).get(k) == v for k, v in PLATFORM.items())
            and not e.get("platform", {}).get("variant")
        ]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RegistryError(ref, "its index is not a JSON list of manifests", ADVICE) from None
    if len(found) != 1 or not isinstance(found[0], str) or not DIGEST.fullmatch(found[0]):
        raise RegistryError(ref, f"its index has {len(found)} linux/amd64 manifests, not one", ADVICE)
    return found[0]
