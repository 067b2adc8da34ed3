"""Promote tested candidates: copy each cell's staging manifest, the very bytes that were probed, to the
release repository through the registry's API. No rebuild, no Docker engine, no layer moved.

- **What is copied.** The manifest the candidate tag `<slug>-<12 hex>` names in the staging repository
  (digest D). Its blobs are mounted into the release repository (`generator.release.distribution`: the
  registry links what it already holds), then the same manifest bytes are PUT, so the release digest is D.
- **The gate** (`generator.release.gate.promotion_gate`): the probe records passed for the cell's content
  digest and tested D (and a GPU probe did too, where the image carries CUDA). A cell without a candidate
  is refused, as is one whose release repository already holds its immutable tag as another manifest:
  an immutable tag never moves (a rebuild of the same inputs is other bytes; prune or re-tag by hand).
- **Order.** Immutable tags first; the moving aliases (`<slug>`, `<slug>-<yyyymmdd>`) only once the
  immutable copy is in, for every selected cell with `--atomic`. An alias is a PUT of a manifest already
  in the release repository, so an interrupted promote never leaves an alias on a missing manifest, and a
  re-run finds the immutable copies done and completes the aliases.
- **Records.** `results/<profile>/promote/<slug>.json`: slug, digest (content), status, manifest_digest,
  staging_ref and release_ref (`<repository>@<D>`), tags, blobs (how each blob got there), reason,
  promoted_at, sbom (the SBOM artifact carried along), signed and signature (where signing is configured),
  unreachable. `register` takes the release reference from it.
- **The SBOM goes along.** Where `sbom --attach` attached one to the candidate in staging, it is made the
  released image's too (blobs mounted, the same artifact manifest PUT: generator/sbom/attach.carry_sbom)
  with the immutable tag, before any alias moves.
- **Signing** (`signer=`, which the CLI passes where the fleet has a key: generator/sign/): each promoted
  digest is signed once its immutable tag and aliases are in place, so a signature never names a manifest
  the release repository lacks. A cell promoted but not signed is a failure (exit status 1): register
  would refuse it.
- **Accounting** (`accounting=`, which the CLI passes): the matrix's `vulnerabilities:` policy over the
  cell's audit record and its `size:` policy over the registry; a refusal names the advisory or the growth.
- **Retries, credentials, secrets** as for push: transient trouble is retried with backoff; a registry
  that never answers is `unreachable` (exit status 2); every message goes through the credentials'
  scrubber.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from generator import paths
from generator.clock import utc_stamp
from generator.progress import to_stderr
from generator.release import oci
from generator.release.credentials import CredentialsError, CredentialSource
from generator.release.distribution import Registry, config_digest, walk_blobs
from generator.release.gate import Candidate, promotion_gate, short_digest
from generator.release.registry import RegistryError, asking
from generator.release.tags import Tags, tags_for
from generator.render.renderer import RenderedCell
from generator.results import record_path, write_record
from generator.retry import Policy
from generator.sbom.attach import carry_sbom
from generator.status import Promoted

STEP = "promote"
WRITE_POLICY = Policy(attempts=4, first_s=1.0)
ADVICE = "promote moved no alias for this cell; run it again once the registry answers"
Say = Callable[[str], object]
# The policy half of the gate for one cell: (ok, why), asked of the registry it is given.
Accounting = Callable[["PromoteCell", Registry], tuple[bool, str]]
# Signing a promoted manifest digest (generator/sign/step.py for_promote): (signed, why).
Signer = Callable[["PromoteCell", Registry, str], tuple[bool, str]]


@dataclass(frozen=True)
class PromoteCell:
    slug: str
    index: int
    digest: str  # the cell's content digest
    host: str
    staging: str  # repository paths on `host`
    release: str
    needs_gpu_probe: bool  # the image carries CUDA: a CPU probe cannot bless it alone

    @classmethod
    def of(cls, rendered: RenderedCell) -> PromoteCell:
        cell = rendered.cell
        return cls(
            slug=cell.slug,
            index=cell.index,
            digest=rendered.digest,
            host=cell.registry_host,
            staging=cell.staging_image.removeprefix(f"{cell.registry_host}/"),
            release=cell.repository,
            needs_gpu_probe=cell.cuda is not None,
        )


@dataclass
class PromoteResult:
    slug: str
    digest: str
    status: str = Promoted.FAILED
    reason: str | None = None
    manifest_digest: str | None = None
    staging_ref: str | None = None  # <host>/<staging>@<D>: what was tested
    release_ref: str | None = None  # <host>/<release>@<D>: what users pull, what `register` registers
    tags: list[str] = field(default_factory=list)  # tags in the release repository now pointing at D
    blobs: dict[str, int] = field(default_factory=dict)  # mounted / present / copied: how many of each
    promoted_at: str | None = None
    sbom: str | None = None  # the SBOM artifact carried from staging to the release repository (None: none)
    signature: str | None = None  # what signing said (signer= given): the signature tag, or why there is none
    signed: bool | None = None  # None: nothing was to sign
    seconds: float = 0.0
    index: int = 0
    unreachable: str | None = None

    def record(self) -> dict[str, Any]:
        return asdict(self)


class _Refused(Exception):
    pass


def promote(
    cells: list[PromoteCell],
    *,
    profile: str,
    atomic: bool,
    date: datetime.date,
    results: Path | None = None,
    source: CredentialSource | None = None,
    progress: Say = to_stderr,
    registry: Callable[[str], Registry] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    accounting: Accounting | None = None,
    signer: Signer | None = None,
) -> list[PromoteResult]:
    """Promote the cells whose candidates passed the gate (all or nothing with `atomic`); a record each.
    `accounting`: the policy half of the gate (known vulnerabilities, size: generator/release/accounting.py),
    asked once the probe records passed; None asks nothing more. `signer`: signs each promoted digest once
    its immutable tag and aliases are in place (generator/sign/); None signs nothing."""
    run = _Run(
        results=paths.results_dir() if results is None else results,
        profile=profile,
        source=CredentialSource() if source is None else source,
        progress=progress,
        registry=registry,
        sleep=sleep,
        accounting=accounting,
        signer=signer,
    )
    return run.all(cells, atomic=atomic, date=date)


@dataclass
class _Plan:
    cell: PromoteCell
    tags: Tags
    candidate: Candidate
    manifest: oci.Answer
    done: bool = False  # the release repository already holds the immutable tag as D

    @property
    def media_type(self) -> str:
        """What the manifest is PUT as: what staging said it is (a Docker v2 manifest if it said nothing)."""
        return self.manifest.media_type or oci.MANIFEST_TYPES[3]


class _Run:
    def __init__(
        self,
        *,
        results: Path,
        profile: str,
        source: CredentialSource,
        progress: Say,
        registry: Callable[[str], Registry] | None,
        sleep: Callable[[float], object],
        accounting: Accounting | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.results, self.profile, self.source, self.progress, self.sleep = results, profile, source, progress, sleep
        self.accounting, self.signer = accounting, signer
        self._make = registry or (lambda host: Registry(host, self.source, advice=ADVICE))
        self._registries: dict[str, Registry] = {}
        self.down: dict[str, str] = {}

    def say(self, line: str) -> None:
        self.progress(self.source.scrubber.line(line))

    def registry(self, host: str) -> Registry:
        if host not in self._registries:
            self._registries[host] = self._make(host)
        return self._registries[host]

    def ask(self, what: str, call: Callable[[], Any]) -> Any:
        """`call()`, tried again while the registry's trouble is transient."""
        return asking(what, call, policy=WRITE_POLICY, say=self.say, sleep=self.sleep)

    # -- the run, in phases -------------------------------------------------------------------------------

    def all(self, cells: list[PromoteCell], *, atomic: bool, date: datetime.date) -> list[PromoteResult]:
        started = time.monotonic()
        results = {c.slug: PromoteResult(c.slug, c.digest, index=c.index) for c in cells}
        try:
            for c in cells:  # every secret known before any message is made
                self.source.for_registry(c.host)
        except CredentialsError as exc:
            for r in results.values():
                r.reason = str(exc)
            return self._finish(cells, results, started)
        # 1. what staging holds, and the gate
        plans: list[_Plan] = []
        for c in cells:
            try:
                plans.append(self._plan(c, date, results[c.slug]))
            except _Refused as exc:
                results[c.slug].status, results[c.slug].reason = Promoted.REFUSED, str(exc)
                self.say(f"{c.slug}: refused: {exc}")
            except RegistryError as exc:
                self._failed(c, results[c.slug], exc)
        if atomic and len(plans) < len(cells):
            self._hold(plans, results, [c for c in cells if c.slug not in {p.cell.slug for p in plans}])
            return self._finish(cells, results, started)
        # 2. the immutable tags: blobs mounted, then the manifest
        copied: list[_Plan] = []
        for p in plans:
            if self._copy(p, results[p.cell.slug]):
                copied.append(p)
        if atomic and len(copied) < len(plans):
            self._hold(copied, results, [p.cell for p in plans if p not in copied], moved="aliases not moved")
            return self._finish(cells, results, started)
        # 3. the moving aliases: PUTs of a manifest the release repository already holds
        for p in copied:
            result = results[p.cell.slug]
            if self._aliases(p, result):
                result.status, result.reason, result.promoted_at = Promoted.PROMOTED, None, utc_stamp()
                self.say(f"{p.cell.slug}: promoted {result.release_ref} as {', '.join(result.tags)}")
                self._sign(p, result)
        return self._finish(cells, results, started)

    def _plan(self, c: PromoteCell, date: datetime.date, result: PromoteResult) -> _Plan:
        if c.host in self.down:
            raise RegistryError(f"{c.host}/{c.staging}", f"not tried: {self.down[c.host]}")
        try:
            tags = tags_for(c.slug, c.digest, date)
        except ValueError as exc:
            raise _Refused(str(exc)) from None
        registry = self.registry(c.host)
        manifest = self.ask(
            f"{c.host}/{c.staging}:{tags.immutable}", lambda: registry.manifest(c.staging, tags.immutable)
        )
        if manifest is None or not manifest.digest:
            raise _Refused(f"no candidate {c.host}/{c.staging}:{tags.immutable}: build and push it first")
        digest = manifest.digest
        result.manifest_digest = digest
        result.staging_ref = f"{c.host}/{c.staging}@{digest}"
        candidate = Candidate(digest, _config_digest(manifest))
        ok, why = promotion_gate(
            self.results, self.profile, c.slug, c.digest, candidate, needs_gpu_probe=c.needs_gpu_probe
        )
        if not ok:
            raise _Refused(why)
        accounting = self.accounting
        if accounting is not None:
            accounted, because = self.ask(f"{c.host}/{c.staging}", lambda: accounting(c, registry))
            if not accounted:
                raise _Refused(because)
            why = f"{why}; {because}"
        released = self.ask(
            f"{c.host}/{c.release}:{tags.immutable}", lambda: registry.manifest_digest(c.release, tags.immutable)
        )
        if released is not None and released != digest:
            raise _Refused(
                f"{c.host}/{c.release}:{tags.immutable} already holds {short_digest(released)}, not the candidate "
                f"{short_digest(digest)}: an immutable tag never moves"
            )
        self.say(f"{c.slug}: {why}")
        return _Plan(c, tags, candidate, manifest, done=released == digest)

    def _copy(self, p: _Plan, result: PromoteResult) -> bool:
        c, registry = p.cell, self.registry(p.cell.host)
        try:
            if not p.done:
                for way in self._copy_manifest(registry, c, p.manifest):
                    result.blobs[way] = result.blobs.get(way, 0) + 1
                body, media = p.manifest.body, p.media_type
                ref = f"{c.host}/{c.release}:{p.tags.immutable}"
                self.ask(ref, lambda: registry.put_manifest(c.release, p.tags.immutable, body, media))
                self.say(f"{c.slug}: {ref} = {short_digest(p.candidate.manifest_digest)} ({_ways(result.blobs)})")
            else:
                self.say(f"{c.slug}: {c.host}/{c.release}:{p.tags.immutable} already promoted")
            self._carry_sbom(p, result)
        except RegistryError as exc:
            self._failed(c, result, exc)
            return False
        result.tags.append(p.tags.immutable)
        result.release_ref = f"{c.host}/{c.release}@{p.candidate.manifest_digest}"
        return True

    def _carry_sbom(self, p: _Plan, result: PromoteResult) -> None:
        """The candidate's SBOM (`sbom --attach` after push) made the released image's too, before any alias
        moves: a consumer who pulls the release finds its SBOM from the digest alone, as in staging."""
        c, registry, digest = p.cell, self.registry(p.cell.host), p.candidate.manifest_digest
        carried = self.ask(f"{c.host}/{c.release}@{digest}", lambda: carry_sbom(registry, c.staging, c.release, digest))
        if carried is None:
            self.say(f"{c.slug}: no SBOM attached in staging: none carried (run `sbom --attach` after push)")
            return
        result.sbom = carried.digest
        self.say(f"{c.slug}: SBOM {short_digest(carried.digest)} carried ({carried.via})")

    def _copy_manifest(self, registry: Registry, c: PromoteCell, manifest: oci.Answer) -> list[str]:
        """Every blob of `manifest` made present in the release repository (an index: its children too,
        each PUT by digest before the index that names them)."""
        ways = []
        document = json.loads(manifest.body)
        if manifest.media_type in oci.INDEX_TYPES:
            for child in document.get("manifests") or []:
                digest = str(child["digest"])
                found = self.ask(digest, partial(registry.manifest, c.staging, digest))
                if found is None:
                    raise RegistryError(f"{c.host}/{c.staging}@{digest}", "the index names a missing manifest")
                ways += self._copy_manifest(registry, c, found)
                media = found.media_type or str(child.get("mediaType"))
                self.ask(digest, partial(registry.put_manifest, c.release, digest, found.body, media))
            return ways
        for blob in walk_blobs(manifest.body):
            ways.append(self.ask(blob, partial(registry.copy_blob, c.release, blob, c.staging)))
        return ways

    def _aliases(self, p: _Plan, result: PromoteResult) -> bool:
        c, registry = p.cell, self.registry(p.cell.host)
        body, media = p.manifest.body, p.media_type
        for alias in p.tags.aliases:
            try:
                self.ask(f"{c.host}/{c.release}:{alias}", partial(registry.put_manifest, c.release, alias, body, media))
            except RegistryError as exc:
                self._failed(c, result, exc)
                return False
            result.tags.append(alias)
        return True

    def _sign(self, p: _Plan, result: PromoteResult) -> None:
        """Sign the promoted digest (tags first: a signature never names a manifest the release lacks)."""
        if self.signer is None:
            return
        result.signed, why = self.signer(p.cell, self.registry(p.cell.host), p.candidate.manifest_digest)
        result.signature = self.source.scrubber.line(why)
        self.say(f"{p.cell.slug}: {'signed' if result.signed else 'NOT signed'}: {result.signature}")

    # -- outcomes ----------------------------------------------------------------------------------------

    def _failed(self, c: PromoteCell, result: PromoteResult, exc: RegistryError) -> None:
        result.status, result.reason = Promoted.FAILED, self.source.scrubber.line(str(exc))
        if "cannot be reached" in exc.why or exc.why.startswith("not tried"):
            result.unreachable = c.host
            self.down.setdefault(c.host, exc.why)
        self.say(f"{c.slug}: failed: {result.reason}")

    def _hold(
        self,
        plans: list[_Plan],
        results: dict[str, PromoteResult],
        culprits: list[PromoteCell],
        moved: str = "nothing promoted",
    ) -> None:
        names = ", ".join(c.slug for c in culprits[:3]) + (
            f" and {len(culprits) - 3} more" if len(culprits) > 3 else ""
        )
        for p in plans:
            result = results[p.cell.slug]
            result.status, result.reason = Promoted.HELD, f"--atomic: {moved}: {names} could not be promoted"
            self.say(f"{p.cell.slug}: held: {result.reason}")

    def _finish(
        self, cells: list[PromoteCell], results: dict[str, PromoteResult], started: float
    ) -> list[PromoteResult]:
        out = []
        for c in cells:
            result = results[c.slug]
            result.seconds = round(time.monotonic() - started, 2)
            record = self.source.scrubber.all(result.record())
            write_record(record_path(self.results, self.profile, STEP, c.slug), record)
            out.append(result)
        return out


def _config_digest(manifest: oci.Answer) -> str | None:
    return None if manifest.media_type in oci.INDEX_TYPES else config_digest(manifest.body)


def _ways(blobs: dict[str, int]) -> str:
    return ", ".join(f"{n} blobs {way}" for way, n in sorted(blobs.items())) or "no blobs"


def exit_status(results: list[PromoteResult]) -> int:
    """0 when every selected cell was promoted (and signed, where signing is configured); 2 when a registry
    could not be reached; 1 otherwise."""
    if any(r.unreachable for r in results):
        return 2
    return 0 if all(r.status == Promoted.PROMOTED and r.signed is not False for r in results) else 1


def summary(results: list[PromoteResult]) -> str:
    from generator.tables import table

    rows = [[r.index, r.slug, r.status, (r.manifest_digest or "")[:19], ", ".join(r.tags)] for r in results]
    lines = [table(["#", "cell", "status", "manifest", "release tags"], rows)]
    lines += [f"{r.slug} {r.status}: {r.reason}" for r in results if r.reason]
    lines += [f"{r.slug} NOT signed: {r.signature}" for r in results if r.signed is False]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append(", ".join(f"{n} {status}" for status, n in counts.items()) or "no cells")
    return "\n".join(lines)
