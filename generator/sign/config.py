"""Which key a fleet signs and verifies with: the matrix's `signing:` pair when it names one, else this
machine's own pair when the profile says `signing: machine` (the sandbox), else none: then nothing signs,
and `verify` says signing is not configured (the real fleet's nightly signs keyless with cosign, which
needs services this machine cannot reach; docs/operating.md, "Signing").

The machine's pair is made on first use under `<state>/sandbox/signing/` (the folder 0700, the private key
0600), so every sandbox run on the machine signs with one key and every check finds its public half.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from generator import paths
from generator.model import Matrix
from generator.sign import keys
from generator.spec.profiles import Profile


@dataclass(frozen=True)
class SigningKeys:
    public: Path
    private: Path | None  # None where only verifying (a machine without the private key)
    origin: str  # said in messages: whose key this is

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return keys.load_public(self.public)

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        if self.private is None:
            raise keys.SigningKeyError(f"signing: names no private key ({self.origin}): this machine can only verify")
        return keys.load_private(self.private)


def signing_keys(matrix: Matrix, profile: Profile, state: Path | None = None) -> SigningKeys | None:
    """The fleet's signing keys, or None when signing is not configured."""
    if matrix.signing is not None:
        return SigningKeys(
            matrix.signing.public_key, matrix.signing.key, f"the matrix's key {matrix.signing.public_key}"
        )
    if profile.signing == "machine":
        return machine_keys(state)
    return None


def machine_keys(state: Path | None = None) -> SigningKeys:
    """This machine's key pair, made the first time it is asked for."""
    folder = (paths.state_dir() if state is None else state) / "sandbox" / "signing"
    private, public = folder / keys.PRIVATE_NAME, folder / keys.PUBLIC_NAME
    if not private.exists():
        with contextlib.suppress(FileExistsError):  # another run made it a moment ago: use theirs
            keys.generate(folder)
    return SigningKeys(public, private, f"this machine's key {public}")
