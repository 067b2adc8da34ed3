"""Which bytes a probe or a benchmark tests: the local image when it is here, else the candidate pulled
from the staging repository BY DIGEST; and which manifest digest those bytes are.

The trust chain needs every probe and bench record to name the manifest digest it tested, because that
digest is what `promote` copies to the release repository. Two ways to know it:
- pulled: `<staging>@sha256:D`, so the engine runs exactly D (a GPU runner never builds: it pulls);
- local: the image the build made. Once pushed, the engine lists `<staging>@D` among its RepoDigests; the
  registry is asked what the candidate tag is (D) and D counts only if the image lists it. Before the
  push there is no manifest yet: the record then names only the image ID, the config digest, which fixes
  every layer's uncompressed content (rootfs.diff_ids); `promote` accepts such a record for D only when
  D's manifest names that very config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker.errors
import docker.utils
import requests.exceptions
from docker import DockerClient

from generator.errors import FleetError
from generator.release import oci
from generator.release.credentials import CredentialsError, CredentialSource
from generator.release.registry import RegistryError, asking

Say = Callable[[str], object]
LOOKUP_TIMEOUT_S = 15.0
ADVICE = "build and push the candidate first (`build`, `probe`, `push`), or run where it was built"


class NoCandidate(FleetError):
    """Neither a local image nor a candidate in the staging repository: nothing to test."""


@dataclass(frozen=True)
class Tested:
    ref: str  # what the container runs: the local tag, or <staging>@<manifest digest>
    image_id: str  # the config digest: the image's identity in the engine
    manifest_digest: str | None  # the staging manifest these bytes are (None: not pushed yet)
    pulled: bool  # True: pulled by digest from the staging repository for this test
    image: Any  # the engine's Image (labels, attrs)


def candidate_digest(ref: str, source: CredentialSource) -> str | None:
    """The manifest digest the staging tag `ref` names, or None when the registry has no such tag.
    RegistryError when the registry cannot say (after a few tries for what may pass)."""

    def once() -> str | None:
        answer = oci.head(ref, source=source, timeout=LOOKUP_TIMEOUT_S, advice=ADVICE)
        if answer is not None and not answer.digest:  # a digest is what is asked for: no header, no answer
            raise oci.unexpected(ref, answer, "HEAD", ADVICE)
        return None if answer is None else answer.digest

    return asking(ref, once)


def acquire(client: DockerClient, ref: str, source: CredentialSource, *, say: Say = lambda _: None) -> Tested:
    """The image to test for the candidate tag `ref`: local, else pulled from staging by its digest."""
    repository, _ = docker.utils.parse_repository_tag(ref)  # the engine's own reading of a reference
    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        image = None
    if image is not None:
        return Tested(ref, image.id, _pushed_as(image, ref, repository, source), False, image)
    try:
        digest = candidate_digest(ref, source)
    except (RegistryError, CredentialsError) as exc:
        raise NoCandidate(f"{ref}: not built here, and the staging repository cannot say: {exc}") from None
    if digest is None:
        raise NoCandidate(f"{ref}: not built (not local, not in the staging repository): {ADVICE}")
    pinned = f"{repository}@{digest}"
    say(f"{ref}: not here: pulling {pinned}")
    try:
        pulled = client.images.pull(pinned, auth_config=source.for_ref(repository).auth_config())
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        text = source.scrubber.line(str(getattr(exc, "explanation", None) or exc))
        raise NoCandidate(f"{pinned}: pulling the candidate failed: {text}") from None
    return Tested(pinned, pulled.id, digest, True, pulled)


def _pushed_as(image: Any, ref: str, repository: str, source: CredentialSource) -> str | None:
    """The staging manifest digest of a local image: the candidate tag's digest, if the image has it."""
    listed = {d.split("@", 1)[1] for d in image.attrs.get("RepoDigests") or [] if d.startswith(f"{repository}@")}
    if not listed:
        return None  # never pushed from (or pulled into) this engine
    try:
        digest = candidate_digest(ref, source)
    except (RegistryError, CredentialsError):
        return None  # the registry cannot say now: the record names the config digest only
    return digest if digest in listed else None
