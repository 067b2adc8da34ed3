"""Register targets one after another: never interactive, bounded in time, retried only when worth it.

Each CLI call runs through `generator.childproc.run_bounded`: stdin on /dev/null, no controlling terminal,
its own process group killed whole when the call outlives its timeout. A transient failure or a hang is
retried with exponential backoff and jitter (`generator.retry`) up to `attempts` calls; a permanent one
fails its target at once; the other targets go on either way. Every success is in the ledger before the
next target starts. All CLI text is scrubbed of secrets (`generator.scrub`) before it reaches an
Outcome or a progress line.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from generator.childproc import run_bounded
from generator.release.credentials import scrubber_for
from generator.release.registration.base import FORBIDDEN_FLAGS, Adapter, AdapterResult, Target
from generator.release.registration.ledger import Ledger
from generator.retry import Policy, Retrying, retry
from generator.scrub import Scrubber
from generator.status import Registered

REGISTERED, CACHED, ALREADY, FAILED = Registered.REGISTERED, Registered.CACHED, Registered.ALREADY, Registered.FAILED
MAX_DETAIL = 600  # characters of CLI text kept in an outcome: the reason, not the whole log
MAX_BACKOFF_S = 300.0

__all__ = ["ALREADY", "CACHED", "FAILED", "REGISTERED", "Outcome", "register"]


@dataclass(frozen=True)
class Outcome:
    slug: str
    ref: str
    status: str  # registered | cached | already registered | failed
    detail: str  # scrubbed, one line
    attempts: int  # CLI calls made (0: the ledger had it, or it was refused before any call)
    seconds: float
    cli: str  # the adapter that called (for "already registered": the one that registered it)

    @property
    def failed(self) -> bool:
        return self.status == FAILED

    def as_record(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 1)}


@dataclass(frozen=True)
class _Run:
    adapter: Adapter
    ledger: Ledger
    scrub: Scrubber
    env: Mapping[str, str]
    policy: Policy
    timeout_s: float
    progress: Callable[[str], None]
    sleep: Callable[[float], object]
    draw: Callable[[], float]

    def say(self, line: str) -> None:
        self.progress(self.scrub(line))

    def clean(self, text: str) -> str:
        # Scrub before cutting: a cut could leave half a secret that no longer matches.
        line = self.scrub.line(text)
        return line if len(line) <= MAX_DETAIL else f"{line[: MAX_DETAIL - 1]}…"


def register(
    targets: list[Target],
    adapter: Adapter,
    ledger: Ledger,
    *,
    attempts: int = 3,
    backoff_s: float = 5.0,
    call_timeout_s: float | None = None,
    progress: Callable[[str], None] = print,
    env: Mapping[str, str] | None = None,
    force: bool = False,
    sleep: Callable[[float], object] = time.sleep,
    draw: Callable[[], float] = random.random,
) -> list[Outcome]:
    """Register each target not yet in the ledger (all of them with `force`, e.g. after rotated credentials).

    `env` is the CLI's whole environment (default: this process's): Databricks auth (DATABRICKS_*) and
    DOCKER_CONFIG reach the CLI there, never in argv. `call_timeout_s` defaults to the adapter's. The
    wait before retry n is `backoff_s * 2**(n-1)` (at most MAX_BACKOFF_S) less a random part of it.
    `sleep` and `draw` are there for tests.
    """
    if attempts < 1 or backoff_s < 0:
        raise ValueError(f"attempts must be >= 1 and backoff_s >= 0, got {attempts} and {backoff_s}")
    env = dict(os.environ if env is None else env)
    timeout_s = adapter.timeout_s if call_timeout_s is None else call_timeout_s
    policy = Policy(attempts=attempts, first_s=backoff_s, max_s=MAX_BACKOFF_S)
    run = _Run(adapter, ledger, scrubber_for(env), env, policy, timeout_s, progress, sleep, draw)
    outcomes = []
    for target in targets:
        outcome = _register_one(run, target, force=force)
        tail = f": {outcome.detail}" if outcome.failed else ""
        calls = f"{outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''}"
        run.say(f"{target.slug}: {outcome.status} ({calls}, {outcome.seconds:.1f} s){tail}")
        outcomes.append(outcome)
    return outcomes


def _register_one(run: _Run, target: Target, *, force: bool) -> Outcome:
    started = time.monotonic()

    def outcome(status: str, detail: str, attempts: int, cli: str = run.adapter.name) -> Outcome:
        return Outcome(target.slug, target.ref, status, detail, attempts, time.monotonic() - started, cli)

    entry = None if force else run.ledger.done(target)
    if entry is not None:
        return outcome(ALREADY, f"registered {entry.registered_at} by {entry.cli}", 0, entry.cli)
    refusal = _refusal(run, run.adapter.argv(target))
    if refusal:
        return outcome(FAILED, refusal, 0)
    attempts, calls = run.policy.attempts, 0

    def once() -> AdapterResult:
        nonlocal calls
        calls += 1
        run.say(f"{target.slug}: registering {target.ref} with {run.adapter.name} (attempt {calls}/{attempts})")
        result = _trust(_call(run, target), target)
        if result.kind == "transient":
            raise _Transient(result)
        return result

    def again(r: Retrying) -> None:
        detail = run.clean(str(r.error))
        run.say(f"{target.slug}: attempt {r.failed}/{attempts} failed (transient): {detail}; retry in {r.delay:.1f} s")

    try:
        result = retry(
            once,
            policy=run.policy,
            transient=lambda e: isinstance(e, _Transient),
            on_retry=again,
            sleep=run.sleep,
            draw=run.draw,
        )
    except _Transient as exc:
        return outcome(FAILED, f"gave up after {calls} attempts: {run.clean(str(exc))}", calls)
    detail = run.clean(result.detail)
    if result.ok:
        return outcome(result.kind, detail + _record(run, target), calls)
    return outcome(FAILED, detail, calls)


class _Transient(Exception):
    """A call another may not meet (its CLI said so, or it hung): the result rides along."""

    def __init__(self, result: AdapterResult) -> None:
        super().__init__(result.detail)
        self.result = result


def _refusal(run: _Run, argv: list[str]) -> str | None:
    """Why this argv must not run: a flag that prompts on the TTY, or a secret where `ps` shows it."""
    if FORBIDDEN_FLAGS & set(argv):
        return f"refused: argv carries {', '.join(sorted(FORBIDDEN_FLAGS & set(argv)))} (it prompts and hangs)"
    if any(run.scrub.leaks(arg) for arg in argv):
        return "refused: argv would carry a secret value (credentials go in the environment or the Docker config)"
    return None


def _call(run: _Run, target: Target) -> AdapterResult:
    argv = run.adapter.argv(target)
    try:
        done = run_bounded(argv, run.env, run.timeout_s)
    except OSError as exc:
        return AdapterResult("permanent", f"cannot run {argv[0]}: {exc.strerror or exc}")
    if done.returncode is None:
        return AdapterResult("transient", f"no answer within {run.timeout_s:g} s: killed with its process group")
    return run.adapter.parse(done.returncode, done.stdout, done.stderr)


def _trust(result: AdapterResult, target: Target) -> AdapterResult:
    """A success about another manifest or image is not this target's: fail it rather than record it."""
    if not result.ok:
        return result
    if result.manifest_digest is not None and result.manifest_digest != target.manifest_digest:
        return AdapterResult(
            "permanent",
            f"the CLI registered manifest {result.manifest_digest}, expected {target.manifest_digest} "
            "(did the tag move?): not recorded",
        )
    url = result.image_url
    if url is not None and url.removeprefix("https://").removeprefix("http://") != target.ref:
        return AdapterResult("permanent", f"the CLI registered {url}, not {target.ref}: not recorded")
    return result


def _record(run: _Run, target: Target) -> str:
    # The image is registered either way; a ledger that cannot be written costs only a re-registration later.
    try:
        run.ledger.record(target, run.adapter.name)
    except OSError as exc:
        return f"; NOT recorded in the ledger {run.ledger.path}: {exc.strerror or exc}"
    return ""
