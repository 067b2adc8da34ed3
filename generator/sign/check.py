"""Are an image's signatures good? Every signature in its `sha256-<hex>.sig` tag is checked against the
public key, and its payload must name this very manifest digest and repository.

Stricter than `cosign verify`, which is satisfied by any one good signature: here each one must be good.
The tag is writable by anyone who may push to the repository, so a signature our key did not make, or one
that names another image, is someone else's doing (a mistake or tampering) and is reported, never passed
over. A key that was rotated leaves the old key's signatures failing: delete that signature manifest and
sign again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from generator.release.distribution import Registry
from generator.sign import keys
from generator.sign.layout import signature_tag
from generator.sign.payload import mismatch
from generator.sign.store import fetch


@dataclass(frozen=True)
class SignatureCheck:
    payload_digest: str
    ok: bool
    why: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    why: str
    signature_ref: str  # <host>/<repo>:sha256-<hex>.sig
    signatures: list[SignatureCheck] = field(default_factory=list)
    missing: bool = False  # no signature tag at all

    def record(self) -> dict[str, Any]:
        return asdict(self)


def check_signatures(
    registry: Registry, repo: str, image_digest: str, public_key: ec.EllipticCurvePublicKey
) -> Verdict:
    """The verdict on `image_digest` in `repo`: ok only when there is at least one signature and each is good."""
    where = f"{registry.host}/{repo}:{signature_tag(image_digest)}"
    found = fetch(registry, repo, image_digest)
    if not found:
        return Verdict(
            False, f"no signature: {where} {'holds none' if found == [] else 'is not there'}", where, [], True
        )
    checks = [
        _one(f.payload_digest, f.payload, f.signature, public_key, f"{registry.host}/{repo}", image_digest)
        for f in found
    ]
    bad = [c for c in checks if not c.ok]
    if bad:
        why = "; ".join(
            f"signature {i + 1} of {len(checks)} ({c.payload_digest[:19]}): {c.why}"
            for i, c in enumerate(checks)
            if not c.ok
        )
        return Verdict(False, why, where, checks)
    return Verdict(
        True, f"{len(checks)} signature{'s' if len(checks) > 1 else ''} good for {image_digest[:19]}", where, checks
    )


def _one(
    payload_digest: str, payload: bytes, signature: str, key: ec.EllipticCurvePublicKey, reference: str, digest: str
) -> SignatureCheck:
    if not keys.verifies(key, payload, signature):
        return SignatureCheck(payload_digest, False, "not made by the configured key (or altered)")
    why = mismatch(payload, reference, digest)
    return SignatureCheck(payload_digest, why is None, why or "good")
