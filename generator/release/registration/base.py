"""What registration works on: the target, what an adapter made of one CLI call, and the adapter contract."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

from generator.errors import FleetError
from generator.spec.validators import REGISTRY_HOST, REPOSITORY

# The OCI distribution spec's tag grammar (at most 128 characters).
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# A workspace profile (~/.databrickscfg section) names a file of the ledger and is an argv value: no
# path separators, no leading dash (it would read as a flag), nothing a shell or a file system treats specially.
PROFILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
# The legacy CLI's --scope/--key name an existing Databricks secret (never a secret value).
SECRET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")

# The flag that makes the legacy CLI prompt on the TTY: without one it hangs. No argv may ever carry it.
FORBIDDEN_FLAGS = frozenset({"--interactive-authenticate"})

Kind = Literal["registered", "cached", "transient", "permanent"]


class RegisterError(FleetError):
    """Registration cannot start (no CLI, a bad option, an unreadable ledger): one line, exit status 2."""


def check_ref(ref: str) -> str:
    """`host/repository:tag` or `host/repository@sha256:<64 hex>`, each part in its grammar: a ref can never
    read as a flag or carry a shell word."""
    host, slash, rest = ref.partition("/")
    repository, at, digest = rest.partition("@")
    if at:
        if not DIGEST.fullmatch(digest):
            raise ValueError(f"not a sha256 digest in {ref!r}: {digest!r}")
    else:
        repository, colon, tag = rest.rpartition(":")
        if not colon:
            raise ValueError(f"not an image reference host/repository:tag or @digest: {ref!r}")
        if not TAG.fullmatch(tag):
            raise ValueError(f"not a valid tag in {ref!r}: {tag!r}")
    if not (slash and REGISTRY_HOST.fullmatch(host) and REPOSITORY.fullmatch(repository)):
        raise ValueError(f"not an image reference host/repository:tag or @digest: {ref!r}")
    return ref


def normalise_digest(value: object) -> str | None:
    """`sha256:<64 hex>` from that form or bare hex (CLIs print either); None if it is neither."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if not text.startswith("sha256:"):
        text = f"sha256:{text}"
    return text if DIGEST.fullmatch(text) else None


@dataclass(frozen=True)
class Target:
    """One image to register: its immutable ref and the registry's manifest digest of it (the ledger key)."""

    ref: str
    manifest_digest: str
    slug: str

    def __post_init__(self) -> None:
        check_ref(self.ref)
        if not isinstance(self.manifest_digest, str) or not DIGEST.fullmatch(self.manifest_digest):
            raise ValueError(f"not a manifest digest sha256:<64 hex>: {self.manifest_digest!r}")
        if not isinstance(self.slug, str) or not self.slug:
            raise ValueError(f"empty slug for {self.ref}")


@dataclass(frozen=True)
class AdapterResult:
    """What one CLI call meant. `detail` is raw CLI text: the runner scrubs it before anyone sees it."""

    kind: Kind
    detail: str
    manifest_digest: str | None = None  # what the CLI says it registered, when it says
    image_url: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind in ("registered", "cached")


class Adapter(Protocol):
    """One registration CLI: the argv for a target, and what its exit status and output mean."""

    @property
    def name(self) -> str:
        """Which CLI this is ("air" or "databricks"): it goes into outcomes and the ledger."""
        ...

    @property
    def timeout_s(self) -> float:
        """How long one call may run before it is taken for a hang (its process group is killed)."""
        ...

    def argv(self, target: Target) -> list[str]: ...

    def parse(self, returncode: int, stdout: str, stderr: str) -> AdapterResult: ...
