"""ECDSA P-256 keys and signatures, the scheme every cosign verifier supports (its signature spec): the
private key a PKCS#8 PEM file, the public key a SubjectPublicKeyInfo PEM file (what `cosign verify --key`
reads), each signature ECDSA over SHA-256 of the payload, DER-encoded, then base64 (the layer annotation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from generator.atomic import write_atomic
from generator.errors import FleetError

PRIVATE_NAME, PUBLIC_NAME = "cosign.key.pem", "cosign.pub"


class SigningKeyError(FleetError):
    """A key file that cannot be read or is not a P-256 key: one line naming the file (exit status 2)."""


def generate(folder: Path) -> tuple[Path, Path]:
    """A new key pair in `folder` (0700): the private key 0600, the public key beside it. (private, public)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    private = folder / PRIVATE_NAME
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Created 0600 before any byte is written: the key is never readable by others, not even for a moment.
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public = folder / PUBLIC_NAME
    write_atomic(public, public_pem(key.public_key()))
    return private, public


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {_why(exc)}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError(f"the signing key {path} is not an ECDSA P-256 key")
    return key


def load_public(path: Path) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SigningKeyError(f"cannot read the public key {path}: {_why(exc)}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningKeyError(f"the public key {path} is not an ECDSA P-256 key")
    return key


def sign(key: ec.EllipticCurvePrivateKey, payload: bytes) -> str:
    """The base64 of the DER ECDSA signature over SHA-256 of `payload`."""
    return base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode("ascii")


def verifies(key: ec.EllipticCurvePublicKey, payload: bytes, signature: str) -> bool:
    """Does `signature` (base64 DER) sign `payload` with this key?"""
    try:
        key.verify(base64.b64decode(signature, validate=True), payload, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """`sha256:<hex>` of the public key's DER: which key a record speaks of, without the key itself."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _why(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a PEM key (unencrypted PKCS#8 / SPKI)"
