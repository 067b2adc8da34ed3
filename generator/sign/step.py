"""Signing and verifying released images, cell by cell, with a record each (results/<profile>/sign/<slug>.json).

- **What is signed.** The manifest digest D the release repository's immutable tag `<slug>-<12 hex>` points
  to (for promote: the digest it has just promoted), never a tag: the payload names `<host>/<release>` and
  D, and the signature goes to `<release>:sha256-<hex of D>.sig` (generator/sign/layout.py).
- **Promote** signs each promoted digest once its tags are in place, unless a good signature by this key is
  already there (a re-run of the nightly adds no layer per night); `sign` always adds one more.
- **Verify** checks every signature of D (generator/sign/check.py); `register` asks the same before it
  hands a reference to a workspace, and refuses an image whose signatures are missing or bad.
- **Retries, credentials, secrets** as for push and promote: transient registry trouble is retried with
  backoff (every step here may be repeated: the append adds a layer once), a registry that never answers
  is `unreachable` (exit status 2), and every message passes the credentials' scrubber.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from generator.clock import utc_stamp
from generator.release.credentials import CredentialSource
from generator.release.distribution import Registry
from generator.release.oci import split_ref
from generator.release.registry import RegistryError, asking
from generator.results import record_path, write_record
from generator.retry import Policy
from generator.sign import keys
from generator.sign.check import Verdict, check_signatures
from generator.sign.config import SigningKeys
from generator.sign.payload import simple_signing
from generator.sign.store import append
from generator.status import Signed

if TYPE_CHECKING:
    from generator.release.promote import PromoteCell
    from generator.release.registration import Target

STEP = "sign"
POLICY = Policy(attempts=4, first_s=1.0)
ADVICE = "run `sign` again once the registry answers"
Say = Callable[[str], object]
_T = TypeVar("_T")


@dataclass
class SignResult:
    slug: str
    digest: str  # the cell's content digest
    status: str = Signed.FAILED
    reason: str | None = None
    manifest_digest: str | None = None  # D: what was signed or verified
    release_ref: str | None = None  # <host>/<release>@D
    signature_ref: str | None = None  # <host>/<release>:sha256-<hex>.sig
    signatures: list[dict[str, Any]] = field(default_factory=list)  # each: payload_digest, ok, why
    public_key: str | None = None  # the key's fingerprint (sha256 of its DER)
    at: str | None = None
    unreachable: str | None = None

    def record(self) -> dict[str, Any]:
        return asdict(self)


class Signing:
    """Sign and check images of one fleet with its keys, asking each registry with retries."""

    def __init__(
        self,
        signing_keys: SigningKeys,
        *,
        source: CredentialSource | None = None,
        say: Say = lambda _: None,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.keys, self.say, self.sleep = signing_keys, say, sleep
        self.source = CredentialSource() if source is None else source
        self._public = signing_keys.public_key()
        self.fingerprint = keys.fingerprint(self._public)

    def ask(self, what: str, call: Callable[[], _T]) -> _T:
        return asking(
            what, call, policy=POLICY, say=lambda line: self.say(self.source.scrubber.line(line)), sleep=self.sleep
        )

    def check(self, registry: Registry, repo: str, digest: str) -> Verdict:
        return self.ask(
            f"{registry.host}/{repo}@{digest}", lambda: check_signatures(registry, repo, digest, self._public)
        )

    def sign(self, registry: Registry, repo: str, digest: str, slug: str) -> str:
        """One more signature of `digest` in `repo`; the signature manifest's digest."""
        optional = {"creator": "air-fleet", "cell": slug, "timestamp": int(time.time())}
        payload = simple_signing(f"{registry.host}/{repo}", digest, optional)
        signature = keys.sign(self.keys.private_key(), payload)
        stamp = utc_stamp()
        where = f"{registry.host}/{repo}@{digest}"
        return self.ask(where, lambda: append(registry, repo, digest, payload, signature, stamp))

    def ensure(self, registry: Registry, repo: str, digest: str, slug: str) -> tuple[Verdict, bool]:
        """(the verdict after signing, whether a signature was added): none is added when the image already
        holds a good signature by this key and nothing bad."""
        before = self.check(registry, repo, digest)
        if before.ok:
            return before, False
        self.sign(registry, repo, digest, slug)
        return self.check(registry, repo, digest), True

    def outcome(self, result: SignResult, verdict: Verdict, *, signed: bool) -> SignResult:
        """`result` filled from a verdict: signed (or verified) when it is good, else invalid or unsigned."""
        result.signature_ref, result.at, result.public_key = verdict.signature_ref, utc_stamp(), self.fingerprint
        result.signatures = [asdict(c) for c in verdict.signatures]
        if verdict.ok:
            result.status, result.reason = (Signed.SIGNED if signed else Signed.VERIFIED), verdict.why
        else:
            result.status = Signed.UNSIGNED if verdict.missing else Signed.INVALID
            result.reason = self.source.scrubber.line(verdict.why)
        return result


def for_promote(
    signing: Signing, results: Path, profile: str
) -> Callable[[PromoteCell, Registry, str], tuple[bool, str]]:
    """What promote calls for each digest it promoted: (signed, why), with the cell's sign record written."""

    def sign(cell: PromoteCell, registry: Registry, digest: str) -> tuple[bool, str]:
        result = SignResult(cell.slug, cell.digest, manifest_digest=digest)
        result.release_ref = f"{registry.host}/{cell.release}@{digest}"
        try:
            verdict, added = signing.ensure(registry, cell.release, digest, cell.slug)
            signing.outcome(result, verdict, signed=True)
            if result.status == Signed.SIGNED and not added:
                result.reason = f"already signed: {verdict.why}"
        except RegistryError as exc:
            result.status, result.reason = Signed.FAILED, signing.source.scrubber.line(str(exc))
        write(results, profile, result, signing.source)
        return result.status == Signed.SIGNED, f"{result.reason} ({result.signature_ref})"

    return sign


def for_register(signing: Signing) -> Callable[[Target], str | None]:
    """What register asks before each image: None when its signatures are good, else one line saying why not."""
    registries: dict[str, Registry] = {}

    def refuse(target: Target) -> str | None:
        host, repo, digest = split_ref(target.ref)
        registry = registries.setdefault(host, Registry(host, signing.source, advice=ADVICE))
        try:
            verdict = signing.check(registry, repo, digest)
        except RegistryError as exc:
            return f"refused: its signature could not be checked: {signing.source.scrubber.line(str(exc))}"
        return None if verdict.ok else f"refused: signature {signing.source.scrubber.line(verdict.why)}"

    return refuse


def write(results: Path, profile: str, result: SignResult, source: CredentialSource) -> None:
    write_record(record_path(results, profile, STEP, result.slug), source.scrubber.all(result.record()))


@dataclass(frozen=True)
class Released:
    """A cell as sign and verify see it: its release repository and immutable tag on one host."""

    slug: str
    digest: str  # content digest
    host: str
    repo: str
    tag: str

    @classmethod
    def of(cls, slug: str, digest: str, release_ref: str) -> Released:
        host, repo, tag = split_ref(release_ref)
        return cls(slug, digest, host, repo, tag)


def run_cells(
    cells: list[Released],
    signing: Signing,
    *,
    results: Path,
    profile: str,
    add: bool,
    registry: Callable[[str], Registry] | None = None,
) -> list[SignResult]:
    """`sign` (add=True: one more signature each) or `verify` (add=False) for each released cell; a record each.
    The digest is what the release repository's immutable tag points to: a cell not promoted fails."""
    make = registry or (lambda host: Registry(host, signing.source, advice=ADVICE))
    registries: dict[str, Registry] = {}
    down: dict[str, str] = {}
    out = []
    for cell in cells:
        result = SignResult(cell.slug, cell.digest)
        try:
            if cell.host in down:
                raise RegistryError(f"{cell.host}/{cell.repo}", f"not tried: {down[cell.host]}")
            if cell.host not in registries:
                registries[cell.host] = make(cell.host)
            reg = registries[cell.host]
            digest = signing.ask(
                f"{cell.host}/{cell.repo}:{cell.tag}", partial(reg.manifest_digest, cell.repo, cell.tag)
            )
            if digest is None:
                result.reason = f"not promoted: {cell.host}/{cell.repo}:{cell.tag} is not in the registry"
            else:
                result.manifest_digest, result.release_ref = digest, f"{cell.host}/{cell.repo}@{digest}"
                if add:
                    signing.sign(reg, cell.repo, digest, cell.slug)
                signing.outcome(result, signing.check(reg, cell.repo, digest), signed=add)
        except RegistryError as exc:
            result.status, result.reason = Signed.FAILED, signing.source.scrubber.line(str(exc))
            if "cannot be reached" in exc.why or exc.why.startswith("not tried"):
                result.unreachable = cell.host
                down.setdefault(cell.host, exc.why)
        signing.say(f"{cell.slug}: {result.status}: {result.reason}")
        write(results, profile, result, signing.source)
        out.append(result)
    return out


def exit_status(results: list[SignResult], *, add: bool) -> int:
    """0 when every cell was signed (sign) or verified (verify); 2 a registry could not be reached; 1 otherwise."""
    if any(r.unreachable for r in results):
        return 2
    good = Signed.SIGNED if add else Signed.VERIFIED
    return 0 if all(r.status == good for r in results) else 1
