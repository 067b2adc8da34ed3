"""Push the fleet's images: only cells whose build and probe passed, under their immutable tag and aliases.

- **Gate.** A cell is pushed only if its build record (`results/<profile>/build/<slug>.json`) says
  `built` or `up to date` for the cell's current digest AND its probe record
  (`results/<profile>/probe/<slug>.json`: at least `{"slug", "digest", "status"}`, status one of
  OK / WARN / FAIL / N/A) is for the same digest and did not FAIL. N/A (nothing measurable failed)
  passes; FAIL, a missing record or an unknown status does not.
- **Atomic** (`--atomic`, what the nightly uses): if any selected cell is refused by the gate, or its
  local image is missing or stale, nothing is pushed. Immutable tags are pushed first for every cell and
  the moving aliases only once all of them are in, so a failing push never moves an alias.
- **Tags** come from `generator.tags.tags_for`: `<slug>-<12 hex>` (immutable), `<slug>`, `<slug>-<yyyymmdd>`.
  An image whose `air-fleet.digest` label is not the cell's digest (a stale local tag) is never pushed.
- **Retries.** Transient registry errors (5xx, 429/toomanyrequests, connection reset/refused, timeouts)
  are retried with exponential backoff; anything else fails the cell at once.
- **Records.** `results/<profile>/push/<slug>.json` per cell: slug, digest, status, tags, repo_digest
  (the registry's manifest digest: pull `<repository>@<repo_digest>`), pushed_at, attempts, reason.
- **Credentials** are never on a command line or in a log. The engine pushes with
  `AIR_FLEET_REGISTRY_USERNAME` / `AIR_FLEET_REGISTRY_PASSWORD` from the environment when both are set,
  otherwise with what the Docker config (`$DOCKER_CONFIG/config.json`, `~/.docker/config.json`,
  credential helpers) holds for the registry. Every message that reaches a record, an exception or the
  progress output is scrubbed of those values and of anything that looks like a token.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker.auth
import docker.errors
import docker.utils
import requests.exceptions
from docker import DockerClient

from generator import paths
from generator.clock import utc_stamp
from generator.errors import FleetError
from generator.progress import to_stderr
from generator.render import RenderedCell
from generator.results import read_record, record_path, write_record
from generator.tables import table
from generator.tags import Tags, tags_for

ENV_USERNAME = "AIR_FLEET_REGISTRY_USERNAME"
ENV_PASSWORD = "AIR_FLEET_REGISTRY_PASSWORD"  # noqa: S105 - the variable's name, not a password
LABEL = "air-fleet.digest"
BUILD_PASSED = frozenset({"built", "up to date"})
PROBE_PASSED = frozenset({"OK", "WARN", "N/A"})

# Registry or network trouble that another try may not meet; anything else (denied, unauthorized, name
# invalid, no such local image) fails at once.
TRANSIENT = re.compile(
    r"\b(?:429|5\d\d)\b|too ?many ?requests|service unavailable|bad gateway|gateway time-?out"
    r"|internal server error|connection (?:reset|refused|aborted)|broken pipe|timed? ?out|timeout"
    r"|temporar(?:y|ily)|unexpected EOF|\bEOF\b",
    re.IGNORECASE,
)
TRANSIENT_STATUS = frozenset({408, 429, 502, 503, 504})
# Secret-looking values in free text: `password=...`, `"token": "..."`, `Bearer ...`, `Basic ...`.
SECRET_FIELD = re.compile(
    r"""(?ix)
    (["']?\b(?:password|passwd|secret|token|identitytoken|registrytoken|access_token|refresh_token|auth)\b["']?
     \s*[:=]\s*)
    ("[^"]*"|'[^']*'|[^\s,;&}]+)
    """
)
SECRET_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")
REDACTED = "***"
DIGEST_IN_STATUS = re.compile(r"digest: (sha256:[0-9a-f]{64})")

Say = Callable[[str], None]


# -- what is pushed ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushCell:
    slug: str
    digest: str  # the cell's content digest (sha256:...)
    repository: str  # <host>/<repository>, where the tags go
    local_ref: str  # the image as built: <repository>:<immutable tag>
    index: int = 0

    @classmethod
    def of(cls, rendered: RenderedCell) -> PushCell:
        return cls(
            slug=rendered.cell.slug,
            digest=rendered.digest,
            repository=rendered.cell.image,
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
    attempts: int = 0  # the most tries any one tag needed (1: no retry)
    pushed_at: str | None = None
    seconds: float = 0.0
    index: int = 0

    def record(self) -> dict[str, Any]:
        return asdict(self)


# -- the gate ---------------------------------------------------------------------------------------------


def gate(results: Path, profile: str, slug: str, digest: str) -> tuple[bool, str]:
    """May this cell be pushed? (ok, why) from its build and probe records, both for this very digest."""
    build = read_record(record_path(results, profile, "build", slug))
    if build is None:
        return False, "no build record: run `build` first"
    if build.get("digest") != digest:
        return False, f"the build record is for {_short(build.get('digest'))}, not {_short(digest)}: rebuild"
    if build.get("status") not in BUILD_PASSED:
        return False, f"build {build.get('status')}"
    probe = read_record(record_path(results, profile, "probe", slug))
    if probe is None:
        return False, "no probe record: run `probe` first"
    if probe.get("slug", slug) != slug or probe.get("digest") != digest:
        return False, f"the probe record is for {_short(probe.get('digest'))}, not {_short(digest)}: probe again"
    status = probe.get("status")
    if status not in PROBE_PASSED:
        return False, f"probe {status}"
    return True, f"build {build['status']}, probe {status}"


def _short(digest: object) -> str:
    return str(digest).removeprefix("sha256:")[:12] if digest else "no digest"


# -- credentials and scrubbing ----------------------------------------------------------------------------


class CredentialsError(FleetError):
    """The registry credentials in the environment are incomplete (the message never holds a value)."""


@dataclass(frozen=True)
class Credentials:
    source: str  # environment | docker config | none
    auth_config: dict[str, str] | None = field(default=None, repr=False)  # None: the SDK reads the config
    secrets: tuple[str, ...] = field(default=(), repr=False)


def credentials(client: DockerClient, repository: str, env: Mapping[str, str] | None = None) -> Credentials:
    """Credentials for the repository's registry: the environment's pair, else the Docker config's entry."""
    env = os.environ if env is None else env
    username, password = env.get(ENV_USERNAME) or "", env.get(ENV_PASSWORD) or ""
    registry, _ = docker.auth.resolve_repository_name(repository)
    if username or password:
        if not (username and password):
            raise CredentialsError(f"set both {ENV_USERNAME} and {ENV_PASSWORD}, or neither")
        auth = {"username": username, "password": password, "serveraddress": registry}
        header = docker.auth.encode_header(auth).decode("ascii")
        return Credentials("environment", auth, _variants(password, header))
    try:  # the SDK loaded the Docker config when the client was made; what it will send is what we hide
        found = docker.auth.resolve_authconfig(getattr(client.api, "_auth_configs", None) or {}, registry) or {}
    except Exception:  # a broken credential helper: the engine will say so when it pushes
        found = {}
    values = [
        str(v) for k, v in found.items() if k.lower() in {"password", "auth", "identitytoken", "registrytoken"} and v
    ]
    if found:
        values.append(docker.auth.encode_header(found).decode("ascii"))
    return Credentials("docker config" if found else "none", None, _variants(*values))


def _variants(*secrets: str) -> tuple[str, ...]:
    """Each secret as it may appear in text: raw, JSON-escaped, URL-encoded. Longest first."""
    out = set()
    for s in secrets:
        if s:
            out |= {s, json.dumps(s)[1:-1], urllib.parse.quote(s, safe=""), urllib.parse.quote_plus(s)}
    return tuple(sorted(out, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """The text with every known secret and anything secret-looking replaced by ***; one line."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    text = SECRET_SCHEME.sub(lambda m: f"{m[1]} {REDACTED}", text)
    text = SECRET_FIELD.sub(lambda m: f"{m[1]}{REDACTED}", text)
    return " ".join(text.split())


def _scrub_all(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, dict):
        return {k: _scrub_all(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_all(v, secrets) for v in value]
    return value


# -- pushing ----------------------------------------------------------------------------------------------


class PushFailed(Exception):
    def __init__(self, message: str, *, transient: bool = False, attempts: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.attempts = attempts


def transient(message: str, status: int | None = None) -> bool:
    """Is this registry error worth another try?"""
    return (status is not None and status in TRANSIENT_STATUS) or bool(TRANSIENT.search(message))


def push(
    cells: list[PushCell],
    client: DockerClient,
    *,
    profile: str,
    atomic: bool,
    date: datetime.date,
    results: Path | None = None,
    attempts: int = 4,
    backoff_s: float = 1.0,
    progress: Say = to_stderr,
    creds: Credentials | None = None,
    env: Mapping[str, str] | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> list[PushResult]:
    """Push the cells that pass the gate (all or nothing with `atomic`); one result and record per cell."""
    pusher = _Pusher(
        client,
        profile=profile,
        results=paths.results_dir() if results is None else results,
        attempts=max(1, attempts),
        backoff_s=backoff_s,
        progress=progress,
        creds=creds,
        env=env,
        sleep=sleep,
    )
    return pusher.run(cells, atomic=atomic, date=date)


class _Pusher:
    def __init__(
        self,
        client: DockerClient,
        *,
        profile: str,
        results: Path,
        attempts: int,
        backoff_s: float,
        progress: Say,
        creds: Credentials | None,
        env: Mapping[str, str] | None,
        sleep: Callable[[float], object],
    ) -> None:
        self.client = client
        self.profile = profile
        self.results = results
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.progress = progress
        self.sleep = sleep
        self.env = env
        self.creds: dict[str, Credentials] = {}
        self.given = creds
        self.secrets: tuple[str, ...] = creds.secrets if creds else ()

    def say(self, line: str) -> None:
        self.progress(scrub(line, self.secrets))

    def _creds(self, repository: str) -> Credentials:
        if self.given is not None:
            return self.given
        if repository not in self.creds:
            found = credentials(self.client, repository, self.env)
            self.creds[repository] = found
            self.secrets = tuple(sorted({*self.secrets, *found.secrets}, key=len, reverse=True))
        return self.creds[repository]

    # -- the run, in phases ---------------------------------------------------------------------------

    def run(self, cells: list[PushCell], *, atomic: bool, date: datetime.date) -> list[PushResult]:
        started = time.monotonic()
        results = {c.slug: PushResult(c.slug, c.digest, c.repository, "failed", index=c.index) for c in cells}
        tags: dict[str, Tags] = {}
        for c in cells:  # credentials first: every secret is known before any message is made
            self._creds(c.repository)
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
                results[c.slug].status, results[c.slug].reason = "refused", why
                self.say(f"{c.slug}: refused: {why}")
        if atomic and len(passed) < len(cells):
            self._hold(passed, results, "not pushed", [c for c in cells if c not in passed], "refused")
            return self._finish(cells, results, started)
        # 2. the local images: present (pulled if only the registry has them) and not stale
        ready: list[PushCell] = []
        for c in passed:
            try:
                self._prepare(c, tags[c.slug])
                ready.append(c)
            except Exception as exc:
                results[c.slug].reason = self._why(exc)
                self.say(f"{c.slug}: failed: {results[c.slug].reason}")
        if atomic and len(ready) < len(passed):
            self._hold(ready, results, "not pushed", [c for c in passed if c not in ready], "failed")
            return self._finish(cells, results, started)
        # 3. the immutable tags: content-addressed, so pushing one never moves anything
        pushed: list[PushCell] = []
        for c in ready:
            if self._push_tags(c, [tags[c.slug].immutable], results[c.slug]):
                pushed.append(c)
        if atomic and len(pushed) < len(ready):
            self._hold(pushed, results, "aliases not moved", [c for c in ready if c not in pushed], "failed to push")
            return self._finish(cells, results, started)
        # 4. the moving aliases
        for c in pushed:
            result = results[c.slug]
            if self._push_tags(c, list(tags[c.slug].aliases), result):
                result.status = "pushed"
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
            results[c.slug].status = "held"
            results[c.slug].reason = f"--atomic: {what}: {names} {why}"
            self.say(f"{c.slug}: held: {results[c.slug].reason}")

    def _finish(self, cells: list[PushCell], results: dict[str, PushResult], started: float) -> list[PushResult]:
        out = []
        for c in cells:
            result = results[c.slug]
            result.seconds = round(time.monotonic() - started, 2)
            if result.reason is not None:
                result.reason = scrub(result.reason, self.secrets)
            write_record(
                record_path(self.results, self.profile, "push", c.slug), _scrub_all(result.record(), self.secrets)
            )
            out.append(result)
        return out

    def _why(self, exc: BaseException) -> str:
        text = exc.message if isinstance(exc, PushFailed) else (str(exc).strip() or type(exc).__name__)
        if isinstance(exc, docker.errors.APIError) and exc.explanation:
            text = str(exc.explanation)
        return scrub(text, self.secrets)

    # -- one cell --------------------------------------------------------------------------------------

    def _prepare(self, cell: PushCell, tags: Tags) -> None:
        """The local image exists (pulled by its immutable ref when only the registry has it) and is this digest."""
        try:
            image = self.client.images.get(cell.local_ref)
        except docker.errors.ImageNotFound:
            repo, tag = docker.utils.parse_repository_tag(cell.local_ref)
            self.say(f"{cell.slug}: not here: pulling {cell.local_ref}")
            try:
                image = self.client.images.pull(repo, tag=tag, auth_config=self._creds(cell.repository).auth_config)
            except docker.errors.APIError as exc:
                raise PushFailed(f"no local image {cell.local_ref}, and pulling it failed: {self._why(exc)}") from None
        label = (image.labels or {}).get(LABEL)
        if label != cell.digest:
            raise PushFailed(
                f"stale image: {cell.local_ref} is labelled {LABEL}={_short(label)}, not {_short(cell.digest)}: rebuild"
            )
        image.tag(cell.repository, tags.immutable)  # a no-op when the local ref is already that

    def _push_tags(self, cell: PushCell, tags: list[str], result: PushResult) -> bool:
        for tag in tags:
            try:
                self.client.api.tag(cell.local_ref, cell.repository, tag)  # the local alias moves with the push
                self.say(f"{cell.slug}: pushing {cell.repository}:{tag}")
                repo_digest, tries = self._push_one(cell, tag)
            except Exception as exc:
                result.status = "failed"
                result.attempts = max(result.attempts, getattr(exc, "attempts", 1))
                result.reason = f"push of {cell.repository}:{tag} failed: {self._why(exc)}"
                self.say(f"{cell.slug}: failed: {result.reason}")
                return False
            result.attempts = max(result.attempts, tries)
            if result.repo_digest is None:
                result.repo_digest = repo_digest
            elif result.repo_digest != repo_digest:
                result.status = "failed"
                result.reason = f"{tag} was pushed as {repo_digest}, not {result.repo_digest} like {result.tags[0]}"
                self.say(f"{cell.slug}: failed: {result.reason}")
                return False
            result.tags.append(tag)
        return True

    def _push_one(self, cell: PushCell, tag: str) -> tuple[str, int]:
        """(repo digest, tries): one tag, retried with exponential backoff while the errors are transient."""
        for attempt in range(1, self.attempts + 1):
            try:
                return self._push_once(cell.repository, tag), attempt
            except PushFailed as exc:
                if not exc.transient or attempt == self.attempts:
                    raise PushFailed(
                        exc.message + (f" (after {attempt} tries)" if attempt > 1 else ""),
                        attempts=attempt,
                    ) from None
                delay = self.backoff_s * 2 ** (attempt - 1)
                self.say(f"{cell.slug}: {tag}: {exc.message}; try {attempt + 1}/{self.attempts} in {delay:g} s")
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _push_once(self, repository: str, tag: str) -> str:
        auth = self._creds(repository).auth_config
        digest = None
        try:
            stream = self.client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth)
            for chunk in stream:
                if not isinstance(chunk, dict):
                    continue
                detail = chunk.get("errorDetail")
                error = chunk.get("error") or (detail.get("message") if isinstance(detail, dict) else detail)
                if error:
                    message = scrub(str(error), self.secrets)
                    raise PushFailed(message, transient=transient(message))
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
                elif isinstance(chunk.get("status"), str) and digest is None:
                    found = DIGEST_IN_STATUS.search(chunk["status"])
                    digest = found[1] if found else None
        except docker.errors.APIError as exc:
            message = self._why(exc)
            raise PushFailed(message, transient=transient(message, exc.status_code)) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise PushFailed(self._why(exc), transient=True) from None
        if digest is None:  # an engine that did not say: ask the registry for the manifest's digest
            try:
                data = self.client.images.get_registry_data(f"{repository}:{tag}", auth_config=auth)
            except docker.errors.APIError as exc:
                message = self._why(exc)
                raise PushFailed(f"pushed, but no digest: {message}", transient=transient(message)) from None
            digest = str(data.id)
        return digest


def _now() -> str:
    return utc_stamp()


# -- the CLI's step ---------------------------------------------------------------------------------------


def run_push(
    profile: str,
    selected: list[RenderedCell],
    *,
    atomic: bool,
    progress: Say = to_stderr,
    date: datetime.date | None = None,
    wait: bool = True,
) -> list[PushResult]:
    """`python -m generator push [CELL...] [--atomic]`: one push run per profile at a time, today's UTC date."""
    from generator.dockerclient import connect
    from generator.runlock import hold

    lock_file = paths.state_dir() / "locks" / f"push-{profile}.lock"
    with hold(lock_file, f"push of the {profile} fleet", wait=wait, progress=progress):
        return push(
            [PushCell.of(r) for r in selected],
            connect(),
            profile=profile,
            atomic=atomic,
            date=date or datetime.datetime.now(datetime.UTC).date(),
            progress=progress,
        )


def summary(results: list[PushResult]) -> str:
    rows = [[r.index, r.slug, r.status, r.attempts, (r.repo_digest or "")[:19], ", ".join(r.tags)] for r in results]
    lines = [table(["#", "cell", "status", "tries", "repo digest", "tags"], rows)]
    lines += [f"{r.slug} {r.status}: {r.reason}" for r in results if r.reason]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append(", ".join(f"{n} {status}" for status, n in counts.items()))
    return "\n".join(lines)


def exit_status(results: list[PushResult]) -> int:
    """0 when every selected cell was pushed, 1 otherwise."""
    return 0 if all(r.status == "pushed" for r in results) else 1
