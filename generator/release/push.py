"""Push candidates: each cell whose build and CPU probe passed goes to the STAGING repository under its
immutable tag, and its manifest digest is recorded. Users never see staging: the release repository and
its moving aliases are `promote`'s (generator/release/promote.py), which copies a tested manifest by digest.

- **Gate.** A cell is pushed only if `generator.release.gate` lets it: its build and probe records passed
  for the cell's current digest.
- **Atomic** (`--atomic`): if any selected cell is refused by the gate, or its local image is missing or
  stale, nothing is pushed.
- **Tag**: `<slug>-<12 hex>` (`generator.release.tags.tags_for(...).immutable`): content-addressed, so
  pushing it never moves anything. An image whose `air-fleet.digest` label is not the cell's digest (a
  stale local tag) is never pushed.
- **Retries.** Transient registry errors (`generator.release.registry.transient`: 5xx, 429, resets, refused
  connections, timeouts, "context deadline exceeded") are retried with exponential backoff and jitter
  (`generator.retry`); anything else fails the cell at once.
- **Unreachable.** A registry that gave no answer at all through every try (refused, no such host, a
  registry that accepts and never answers) is marked `unreachable` in the records; the cells still to
  push there fail at once without a try, and the run's exit status is 2 (a service that cannot be reached).
- **Progress.** Each push stream is followed on stderr (`generator.release.pushprogress`).
- **Records.** `results/<profile>/push/<slug>.json` per cell: slug, digest, status, tags, repository (the
  staging one), repo_digest (the manifest digest: pull `<repository>@<repo_digest>`), image_id (the
  config digest: what a probe of the local image tested), pushed_at, attempts, reason, unreachable.
- **Credentials** come from `generator.release.credentials` (the environment's pair, else the Docker config and
  its credential helpers), looked up for every registry before anything is pushed (a failed lookup stops
  the run: exit status 2) and handed to the engine explicitly. They are never on a command line or in a
  log: every message that reaches a record, an exception or the progress output goes through one
  `generator.scrub.Scrubber` that knows every value found.
"""

from __future__ import annotations

import datetime
import random
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import docker.utils
import requests.exceptions
from docker import DockerClient

from generator import paths
from generator.clock import utc_stamp
from generator.progress import to_stderr
from generator.release.credentials import CredentialSource, registry_of
from generator.release.gate import gate, short_digest
from generator.release.pushprogress import PROGRESS_EVERY_S, Layers, Say
from generator.release.registry import transient, unreachable
from generator.release.tags import Tags, tags_for
from generator.render.renderer import RenderedCell
from generator.results import record_path, write_record
from generator.retry import Policy, Retrying, retry
from generator.status import Pushed

LABEL = "air-fleet.digest"
DIGEST_IN_STATUS = re.compile(r"digest: (sha256:[0-9a-f]{64})")


# -- what is pushed ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushCell:
    slug: str
    digest: str  # the cell's content digest (sha256:...)
    repository: str  # <host>/<staging repository>, where the candidate goes
    local_ref: str  # the image as built: <repository>:<immutable tag>
    index: int = 0

    @classmethod
    def of(cls, rendered: RenderedCell) -> PushCell:
        return cls(
            slug=rendered.cell.slug,
            digest=rendered.digest,
            repository=rendered.cell.staging_image,
            local_ref=rendered.ref,
            index=rendered.cell.index,
        )


@dataclass
class PushResult:
    slug: str
    digest: str
    repository: str
    status: str  # pushed | refused (gate) | failed (push) | held (--atomic: another cell kept this one back)
    reason: str | None = None
    tags: list[str] = field(default_factory=list)  # tags now in the registry for this push
    repo_digest: str | None = None  # the manifest digest: <repository>@<repo_digest> pulls exactly this
    image_id: str | None = None  # the config digest of what was pushed (the local image's ID)
    attempts: int = 0  # the most tries any one tag needed (1: no retry)
    pushed_at: str | None = None
    seconds: float = 0.0
    index: int = 0
    unreachable: str | None = None  # the registry host that gave no answer (exit status 2)

    def record(self) -> dict[str, Any]:
        return asdict(self)


# -- pushing ----------------------------------------------------------------------------------------------


class PushFailed(Exception):
    def __init__(self, message: str, *, transient: bool = False, unreachable: bool = False, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.unreachable = unreachable  # no answer at all: the registry cannot be reached
        self.attempts = attempts

    @classmethod
    def of(cls, message: str) -> PushFailed:
        """A registry's complaint relayed by the engine, sorted by the shared rule (`generator.release.registry`).

        By its text: the engine answers 500 whatever went wrong, so its status says nothing."""
        return cls(message, transient=transient(message), unreachable=unreachable(message))


def push(
    cells: list[PushCell],
    client: DockerClient,
    *,
    profile: str,
    atomic: bool,
    date: datetime.date | None = None,
    results: Path | None = None,
    attempts: int = 4,
    backoff_s: float = 1.0,
    progress: Say = to_stderr,
    source: CredentialSource | None = None,
    sleep: Callable[[float], object] = time.sleep,
    draw: Callable[[], float] = random.random,
    clock: Callable[[], float] = time.monotonic,
    progress_every_s: float = PROGRESS_EVERY_S,
) -> list[PushResult]:
    """Push the cells that pass the gate (all or nothing with `atomic`); one result and record per cell.

    `source`: where credentials come from (default: this process's environment and Docker config).
    `date` only checks that the cell's tags can be made (promote gives the dated alias its date).
    `sleep`, `draw` (the jitter's random number) and `clock` are there for tests.
    """
    pusher = _Pusher(
        client,
        profile=profile,
        results=paths.results_dir() if results is None else results,
        policy=Policy(attempts=max(1, attempts), first_s=backoff_s),
        progress=progress,
        source=CredentialSource() if source is None else source,
        sleep=sleep,
        draw=draw,
        clock=clock,
        progress_every_s=progress_every_s,
    )
    return pusher.run(cells, atomic=atomic, date=date or datetime.datetime.now(datetime.UTC).date())


class _Pusher:
    def __init__(
        self,
        client: DockerClient,
        *,
        profile: str,
        results: Path,
        policy: Policy,
        progress: Say,
        source: CredentialSource,
        sleep: Callable[[float], object],
        draw: Callable[[], float],
        clock: Callable[[], float],
        progress_every_s: float,
    ) -> None:
        self.client = client
        self.profile = profile
        self.results = results
        self.policy = policy
        self.progress = progress
        self.source = source
        self.sleep = sleep
        self.draw = draw
        self.clock = clock
        self.progress_every_s = progress_every_s
        self.down: dict[str, str] = {}  # registry host -> why it could not be reached

    def say(self, line: str) -> None:
        self.progress(self.source.scrubber.line(line))

    def _auth(self, repository: str) -> dict[str, str]:
        return self.source.for_ref(repository).auth_config()

    # -- the run, in phases ---------------------------------------------------------------------------

    def run(self, cells: list[PushCell], *, atomic: bool, date: datetime.date) -> list[PushResult]:
        started = self.clock()
        results = {c.slug: PushResult(c.slug, c.digest, c.repository, Pushed.FAILED, index=c.index) for c in cells}
        tags: dict[str, Tags] = {}
        for c in cells:  # credentials first: every secret is known before any message is made
            self.source.for_ref(c.repository)
        # 1. the gate (and valid tags)
        passed: list[PushCell] = []
        for c in cells:
            ok, why = gate(self.results, self.profile, c.slug, c.digest)
            if ok:
                try:
                    tags[c.slug] = tags_for(c.slug, c.digest, date)
                except ValueError as exc:
                    ok, why = False, str(exc)
            if ok:
                passed.append(c)
            else:
                results[c.slug].status, results[c.slug].reason = Pushed.REFUSED, why
                self.say(f"{c.slug}: refused: {why}")
        if atomic and len(passed) < len(cells):
            self._hold(passed, results, "not pushed", [c for c in cells if c not in passed], Pushed.REFUSED)
            return self._finish(cells, results, started)
        # 2. the local images: present (pulled if only the registry has them) and not stale
        ready: list[PushCell] = []
        for c in passed:
            try:
                self._prepare(c, tags[c.slug], results[c.slug])
                ready.append(c)
            except Exception as exc:
                self._failed(c, results[c.slug], self._why(exc), exc)
        if atomic and len(ready) < len(passed):
            self._hold(ready, results, "not pushed", [c for c in passed if c not in ready], Pushed.FAILED)
            return self._finish(cells, results, started)
        # 3. the immutable tag: content-addressed, so pushing it never moves anything
        for c in ready:
            result = results[c.slug]
            if self._push_tags(c, [tags[c.slug].immutable], result):
                result.status = Pushed.PUSHED
                result.reason = None
                result.pushed_at = _now()
                self.say(f"{c.slug}: pushed {', '.join(result.tags)} ({result.repo_digest})")
        return self._finish(cells, results, started)

    def _hold(
        self, cells: list[PushCell], results: dict[str, PushResult], what: str, culprits: list[PushCell], why: str
    ) -> None:
        """--atomic: these cells were fine, but others were not, so they stay where they are."""
        names = ", ".join(c.slug for c in culprits[:3]) + (
            f" and {len(culprits) - 3} more" if len(culprits) > 3 else ""
        )
        for c in cells:
            results[c.slug].status = Pushed.HELD
            results[c.slug].reason = f"--atomic: {what}: {names} {why}"
            self.say(f"{c.slug}: held: {results[c.slug].reason}")

    def _failed(self, cell: PushCell, result: PushResult, reason: str, exc: BaseException) -> None:
        result.status, result.reason = Pushed.FAILED, reason
        if isinstance(exc, PushFailed) and exc.unreachable:
            host = registry_of(cell.repository)
            result.unreachable = host
            self.down.setdefault(host, exc.message)
        self.say(f"{cell.slug}: failed: {reason}")

    def _finish(self, cells: list[PushCell], results: dict[str, PushResult], started: float) -> list[PushResult]:
        scrub = self.source.scrubber
        out = []
        for c in cells:
            result = results[c.slug]
            result.seconds = round(self.clock() - started, 2)
            if result.reason is not None:
                result.reason = scrub.line(result.reason)
            write_record(record_path(self.results, self.profile, "push", c.slug), scrub.all(result.record()))
            out.append(result)
        return out

    def _why(self, exc: BaseException) -> str:
        text = exc.message if isinstance(exc, PushFailed) else (str(exc).strip() or type(exc).__name__)
        if isinstance(exc, docker.errors.APIError) and exc.explanation:
            text = str(exc.explanation)
        return self.source.scrubber.line(text)

    # -- one cell --------------------------------------------------------------------------------------

    def _prepare(self, cell: PushCell, tags: Tags, result: PushResult) -> None:
        """The local image exists (pulled by its immutable ref when only the registry has it) and is this digest."""
        try:
            image = self.client.images.get(cell.local_ref)
        except docker.errors.ImageNotFound:
            repo, tag = docker.utils.parse_repository_tag(cell.local_ref)
            self.say(f"{cell.slug}: not here: pulling {cell.local_ref}")
            try:
                image = self.client.images.pull(repo, tag=tag, auth_config=self._auth(cell.repository))
            except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
                failed = PushFailed.of(self._why(exc))
                failed.message = f"no local image {cell.local_ref}, and pulling it failed: {failed.message}"
                raise failed from None
        label = (image.labels or {}).get(LABEL)
        if label != cell.digest:
            raise PushFailed(
                f"stale image: {cell.local_ref} is labelled {LABEL}={short_digest(label)}, "
                f"not {short_digest(cell.digest)}: rebuild"
            )
        image.tag(cell.repository, tags.immutable)  # a no-op when the local ref is already that
        result.image_id = image.id

    def _push_tags(self, cell: PushCell, tags: list[str], result: PushResult) -> bool:
        host = registry_of(cell.repository)
        started = self.clock()
        for tag in tags:
            if host in self.down:  # every try would wait for the same silence: say so at once
                failed = PushFailed(f"not tried: {host} could not be reached ({self.down[host]})", unreachable=True)
                self._failed(cell, result, f"push of {cell.repository}:{tag} {failed.message}", failed)
                return False
            try:
                self.client.api.tag(cell.local_ref, cell.repository, tag)  # the local alias moves with the push
                self.say(f"{cell.slug}: pushing {cell.repository}:{tag}")
                repo_digest, tries = self._push_one(cell, tag, started)
            except Exception as exc:
                result.attempts = max(result.attempts, getattr(exc, "attempts", 1))
                self._failed(cell, result, f"push of {cell.repository}:{tag} failed: {self._why(exc)}", exc)
                return False
            result.attempts = max(result.attempts, tries)
            if result.repo_digest is None:
                result.repo_digest = repo_digest
            elif result.repo_digest != repo_digest:
                result.status = Pushed.FAILED
                result.reason = f"{tag} was pushed as {repo_digest}, not {result.repo_digest} like {result.tags[0]}"
                self.say(f"{cell.slug}: failed: {result.reason}")
                return False
            result.tags.append(tag)
        return True

    def _push_one(self, cell: PushCell, tag: str, started: float) -> tuple[str, int]:
        """(repo digest, tries): one tag, retried with backoff while the errors are transient."""
        tries = 1

        def again(r: Retrying) -> None:
            nonlocal tries
            tries = r.failed + 1
            self.say(f"{cell.slug}: {tag}: {self._why(r.error)}; try {tries}/{r.attempts} in {r.delay:.1f} s")

        try:
            digest = retry(
                lambda: self._push_once(cell, tag, started),
                policy=self.policy,
                transient=lambda exc: isinstance(exc, PushFailed) and exc.transient,
                on_retry=again,
                sleep=self.sleep,
                draw=self.draw,
            )
        except PushFailed as exc:
            exc.attempts = tries
            if tries > 1:
                exc.message += f" (after {tries} tries)"
            raise
        return digest, tries

    def _push_once(self, cell: PushCell, tag: str, started: float) -> str:
        repository = cell.repository
        auth = self._auth(repository)
        layers = Layers(f"{cell.slug}: {tag}", started, self.clock, self.progress_every_s, self.say)
        digest = None
        try:
            stream = self.client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
            for chunk in stream:
                if not isinstance(chunk, dict):
                    continue
                detail = chunk.get("errorDetail")
                error = chunk.get("error") or (detail.get("message") if isinstance(detail, dict) else detail)
                if error:
                    raise PushFailed.of(self.source.scrubber.line(str(error)))
                layers.update(chunk)
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
                elif isinstance(chunk.get("status"), str) and digest is None:
                    found = DIGEST_IN_STATUS.search(chunk["status"])
                    digest = found[1] if found else None
        except docker.errors.APIError as exc:
            raise PushFailed.of(self._why(exc)) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            # The engine itself did not answer in time (or went away): another try may find it.
            raise PushFailed(self._why(exc), transient=True) from None
        layers.finish()
        if digest is None:  # an engine that did not say: ask the registry for the manifest's digest
            try:
                data = self.client.images.get_registry_data(f"{repository}:{tag}", auth_config=auth)
            except docker.errors.APIError as exc:
                failed = PushFailed.of(self._why(exc))
                failed.message = f"pushed, but no digest: {failed.message}"
                raise failed from None
            digest = str(data.id)
        return digest


def _now() -> str:
    return utc_stamp()
