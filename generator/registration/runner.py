"""Register targets one after another: never interactive, bounded in time, retried only when worth it.

Each CLI call runs with stdin on /dev/null and no controlling terminal (a new session), so nothing can
prompt; in its own process group, so a call that outlives its timeout is killed with every child it
started (subprocess.run would kill only the CLI itself and could then wait forever on a child holding its
pipes). A transient failure or a hang is retried with exponential backoff up to `attempts` calls; a
permanent one fails its target at once; the other targets go on either way. Every success is in the
ledger before the next target starts. All CLI text is scrubbed of secrets before it reaches an Outcome or
a progress line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from generator.registration.base import FORBIDDEN_FLAGS, Adapter, AdapterResult, Target
from generator.registration.ledger import Ledger
from generator.secrets import Scrubber

REGISTERED, CACHED, ALREADY, FAILED = "registered", "cached", "already registered", "failed"
MAX_DETAIL = 600  # characters of CLI text kept in an outcome: the reason, not the whole log
MAX_BACKOFF_S = 300.0
DRAIN_S = 5.0  # after the kill, how long to wait for the pipes to close

__all__ = ["ALREADY", "CACHED", "FAILED", "REGISTERED", "Completed", "Outcome", "register", "run_cli"]


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
class Completed:
    returncode: int | None  # None: timed out and killed
    stdout: str
    stderr: str


def run_cli(argv: list[str], env: Mapping[str, str], timeout_s: float) -> Completed:
    """Run without stdin or TTY; on timeout (or Ctrl-C) kill the whole process group. OSError if it cannot start."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        start_new_session=True,  # own session: no controlling terminal, and a process group to kill
    )
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        out, err = _kill(proc)
        return Completed(None, _decode(out), _decode(err))
    except BaseException:  # Ctrl-C or the like: no CLI outlives the run
        _kill(proc)
        raise
    return Completed(proc.returncode, _decode(out), _decode(err))


def _kill(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    # The leader is not reaped yet, so its pid (the group id) cannot have been reused: the signal reaches
    # exactly the CLI and its children.
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # not a group leader after all: at least the CLI itself goes
            proc.kill()
    try:
        return proc.communicate(timeout=DRAIN_S)
    except subprocess.TimeoutExpired:  # something outside the group still holds the pipes: stop reading
        proc.kill()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return b"", b""


def _decode(data: bytes | None) -> str:
    return data.decode("utf-8", "replace") if data else ""


@dataclass(frozen=True)
class _Run:
    adapter: Adapter
    ledger: Ledger
    scrub: Scrubber
    env: Mapping[str, str]
    attempts: int
    backoff_s: float
    timeout_s: float
    progress: Callable[[str], None]

    def say(self, line: str) -> None:
        self.progress(self.scrub(line))

    def clean(self, text: str) -> str:
        # Scrub before cutting: a cut could leave half a secret that no longer matches.
        line = " ".join(self.scrub(text).split())
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
) -> list[Outcome]:
    """Register each target not yet in the ledger (all of them with `force`, e.g. after rotated credentials).

    `env` is the CLI's whole environment (default: this process's): Databricks auth (DATABRICKS_*) and
    DOCKER_CONFIG reach the CLI there, never in argv. `call_timeout_s` defaults to the adapter's.
    """
    if attempts < 1 or backoff_s < 0:
        raise ValueError(f"attempts must be >= 1 and backoff_s >= 0, got {attempts} and {backoff_s}")
    env = dict(os.environ if env is None else env)
    timeout_s = adapter.timeout_s if call_timeout_s is None else call_timeout_s
    run = _Run(adapter, ledger, Scrubber.from_env(env), env, attempts, backoff_s, timeout_s, progress)
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
    for attempt in range(1, run.attempts + 1):
        run.say(f"{target.slug}: registering {target.ref} with {run.adapter.name} (attempt {attempt}/{run.attempts})")
        result = _trust(_call(run, target), target)
        detail = run.clean(result.detail)
        if result.ok:
            return outcome(result.kind, detail + _record(run, target), attempt)
        if result.kind == "permanent":
            return outcome(FAILED, detail, attempt)
        if attempt == run.attempts:
            return outcome(FAILED, f"gave up after {attempt} attempts: {detail}", attempt)
        delay = min(run.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)
        run.say(f"{target.slug}: attempt {attempt}/{run.attempts} failed (transient): {detail}; retry in {delay:g} s")
        time.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns")


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
        done = run_cli(argv, run.env, run.timeout_s)
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
