"""Which key a fleet signs and verifies with: the matrix's `signing:` pair when it names one, else this
machine's own pair when the profile says `signing: machine` (the sandbox), else none: then nothing signs,
and `verify` says signing is not configured (the real fleet's nightly signs keyless with cosign, which
needs services this machine cannot reach; docs/operating.md, "Signing").

The machine's pair is made on first use in `machine_key_dir()` (the folder 0700, the private key 0600): one
folder per machine user, not per checkout, because the sandbox registry is one per machine too (every
checkout reuses the registry already answering on 127.0.0.1:5000). Were the key per checkout, a second
checkout's promote would add its own signature beside the first's, and `verify`, which wants every
signature good, would fail in both.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from generator.model import Matrix
from generator.sign import keys
from generator.spec.profiles import Profile

SIGNING_DIR_ENV = "AIR_FLEET_SIGNING_DIR"


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


def signing_keys(matrix: Matrix, profile: Profile, machine_folder: Path | None = None) -> SigningKeys | None:
    """The fleet's signing keys, or None when signing is not configured. `machine_folder`: where the
    machine's pair lives (default machine_key_dir())."""
    if matrix.signing is not None:
        return SigningKeys(
            matrix.signing.public_key, matrix.signing.key, f"the matrix's key {matrix.signing.public_key}"
        )
    if profile.signing == "machine":
        return machine_keys(machine_folder)
    return None


def machine_key_dir() -> Path:
    """`AIR_FLEET_SIGNING_DIR`, else `$XDG_CONFIG_HOME/air-fleet/signing` (by default `~/.config/...`)."""
    if os.environ.get(SIGNING_DIR_ENV):
        return Path(os.environ[SIGNING_DIR_ENV])
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "air-fleet" / "signing"


def machine_keys(folder: Path | None = None) -> SigningKeys:
    """This machine's key pair in `folder` (default machine_key_dir()), made the first time it is asked for."""
    folder = machine_key_dir() if folder is None else folder
    private, public = folder / keys.PRIVATE_NAME, folder / keys.PUBLIC_NAME
    if not private.exists():
        with contextlib.suppress(FileExistsError):  # another run made it a moment ago: use theirs
            keys.generate(folder)
    return SigningKeys(public, private, f"this machine's key {public}")
