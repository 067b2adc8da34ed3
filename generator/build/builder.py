"""Build the fleet's images with BuildKit: skip what exists, share layers, isolate failures.

- Each build runs a docker CLI with BuildKit (`generator.build.cli`: `docker buildx build`, else Debian's
  docker 20.10 with DOCKER_BUILDKIT=1; `AIR_FLEET_BUILDER`/`AIR_FLEET_DOCKER` choose), on the same
  engine the SDK talks to (DOCKER_HOST); the SDK keeps inspect and the registry checks. What is built is
  `generator.build.spec.build_spec`, the same description `bake` writes: inline cache into the image,
  and the group's already-pushed images as cache sources, so a fresh runner reuses a torch layer the
  registry holds. Its `--progress=plain` output goes whole into the build log and, parsed
  (`generator.build.plain`), into progress lines. Ctrl-C kills every CLI's process group.

- The tag is the content digest (`<slug>-<12 hex>`): an image with that tag and digest label locally,
  or that tag in the registry, means the cell is up to date and no build starts. The registry is asked
  by `generator.release.registry`'s rule, with `generator.release.credentials`' credentials, as `plan` asks it: a 404 is
  "not there, build it"; a registry that cannot answer (401, 5xx after retries, unreachable) is never
  taken for either. That cell fails, no further cell starts, and the run ends with that RegistryError
  (exit status 2) once the builds in flight are done.
- Cells that share layers (same base image and torch build) are grouped: the first of a group builds
  alone, then the others run in parallel on its warm cache instead of racing to build the same layer.
- Every build streams its log to a file; a failing cell reports the tail of its log and the others go
  on. Each finished cell writes a JSON record under the results folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
from docker import DockerClient

from generator.build.cli import BuildCli, NoBuildKit, select
from generator.build.dockerconfig import build_env
from generator.build.plain import Event, PlainProgress
from generator.build.spec import BuildSpec, build_spec, groups
from generator.clock import utc_stamp
from generator.errors import FleetError
from generator.progress import Progress
from generator.release.credentials import CredentialsError, CredentialSource
from generator.release.registry import RegistryError, exists_via_engine
from generator.render.renderer import RenderedCell
from generator.results import record_path, write_record
from generator.status import Built

TAIL_LINES = 15
KILL_GRACE_S = 5.0  # after SIGTERM, the CLI's process group gets this long before SIGKILL
HALT_ADVICE = (
    "Nothing more was started: build neither rebuilds what the registry may hold nor skips what it may lack "
    "(fix the registry or its credentials, and run it again)"
)

Stager = Callable[[RenderedCell, Path], object]


@dataclass
class BuildResult:
    index: int
    slug: str
    status: Built
    ref: str
    digest: str
    image_id: str | None = None
    size: int | None = None
    created: str | None = None  # the image's own creation time (the engine's), also for "up to date" ones
    seconds: float = 0.0
    where: str | None = None  # for "up to date": local | registry
    log: str | None = None
    error: str | None = None
    log_tail: str | None = None  # failed builds: the last lines of the log, for the summary
    build_started: bool = False
    builder: str | None = None  # which CLI and mode built it (`generator.build.cli.BuildCli.describe`)
    torch_layer: str | None = None  # built | cached: the torch layer's step, as BuildKit reported it
    cache_sources: list[str] = field(default_factory=list)  # what the build could reuse from the registry
    missing_cache_sources: list[str] = field(default_factory=list)  # of those, not there (skipped)
    finished_at: str = field(default_factory=utc_stamp)

    def record(self) -> dict[str, Any]:
        return asdict(self)


class Cancelled(Exception):
    pass


class Halted(Exception):
    """Not started: an earlier cell found that the registry cannot answer."""


class Builder:
    def __init__(
        self,
        client: DockerClient,
        images_dir: Path,
        results_dir: Path,
        profile: str,
        stage: Stager,
        progress: Progress,
        jobs: int = 1,
        check_registry: bool = True,
        source: CredentialSource | None = None,
        force: bool = False,
        fleet: list[RenderedCell] | None = None,
        cli: BuildCli | None = None,
    ) -> None:
        self.client = client
        self.images_dir = images_dir
        self.results_dir = results_dir
        self.profile = profile
        self.stage = stage
        self.progress = progress
        self.jobs = max(1, jobs)
        self.check_registry = check_registry
        # --force: build even when an image with this digest exists (locally or in the registry), e.g. to
        # pick up a base republished under the same tag before the lock pins bases by digest.
        self.force = force
        self.source = CredentialSource() if source is None and check_registry else source
        # The whole fleet, for the groups whose pushed images are cache sources (a cell built alone still
        # reuses what the others of its group pushed); default: the cells of the run.
        self.fleet = fleet
        self._cli = cli  # chosen on the first build (a run with nothing to build needs no CLI)
        self.cancel = threading.Event()
        self.halted: FleetError | None = None  # the registry could not answer: no further cell starts
        self._halt_lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()
        self._groups: dict[str, list[RenderedCell]] = {}

    # -- scheduling -------------------------------------------------------------------------------------

    def run(self, cells: list[RenderedCell]) -> list[BuildResult]:
        for members in groups(self.fleet if self.fleet is not None else cells).values():
            for r in members:
                self._groups[r.cell.slug] = members
        results: dict[str, BuildResult] = {}
        followers: dict[Future[BuildResult], list[RenderedCell]] = {}
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="build")
        running: set[Future[BuildResult]] = set()
        try:
            for members in groups(cells).values():
                leader = pool.submit(self._one, members[0])
                followers[leader] = members[1:]
                running.add(leader)
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    result = fut.result()
                    results[result.slug] = result
                    for r in followers.pop(fut, []):
                        running.add(pool.submit(self._one, r))
        except KeyboardInterrupt:
            self.cancel.set()
            self.progress.note("interrupted: stopping builds (running ones are cancelled by the engine)")
            pool.shutdown(wait=False, cancel_futures=True)
            self._kill_all()  # the CLI's session ends with it, and the engine aborts that build
            self.client.api.close()  # and the registry checks in flight
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if self.halted is not None:
            raise self.halted
        return [results[r.cell.slug] for r in cells if r.cell.slug in results]

    # -- one cell -----------------------------------------------------------------------------------------

    def _one(self, rendered: RenderedCell) -> BuildResult:
        cell = rendered.cell
        result = BuildResult(
            index=cell.index, slug=cell.slug, status=Built.FAILED, ref=rendered.ref, digest=rendered.digest
        )
        started = time.monotonic()
        self.progress.start(cell.slug, "checking")
        try:
            if self.cancel.is_set():
                raise Cancelled
            if self.halted is not None:
                raise Halted(f"not started: {self.halted}")
            where = None if self.force else self._exists(rendered)
            if where is not None:
                result.status, result.where = Built.UP_TO_DATE, where
                if where == "local":
                    self._describe(result)
            else:
                self._build(rendered, result)
        except Cancelled:
            result.status, result.error = Built.CANCELLED, "the run was interrupted"
        except Halted as exc:
            result.status, result.error = Built.CANCELLED, str(exc)
        except NoBuildKit as exc:
            self._halt(exc)
            result.status, result.error = Built.FAILED, str(exc)
        except BuildFailed as exc:
            result.status, result.error, result.log_tail = Built.FAILED, exc.message, exc.tail
        except Exception as exc:  # one cell's failure never stops the fleet; it is reported and recorded
            if self.cancel.is_set():  # the engine's stream was closed under us on purpose
                result.status, result.error = Built.CANCELLED, "the run was interrupted"
            else:
                result.status, result.error = Built.FAILED, _one_line(exc)
        result.seconds = round(time.monotonic() - started, 2)
        outcome = result.status if result.status != Built.UP_TO_DATE else f"up to date ({result.where})"
        if result.error:
            outcome += f": {result.error}"
        self.progress.finish(cell.slug, outcome)
        write_record(record_path(self.results_dir, self.profile, "build", cell.slug), result.record())
        return result

    def _exists(self, rendered: RenderedCell) -> str | None:
        try:
            image = self.client.images.get(rendered.ref)
            if (image.labels or {}).get("air-fleet.digest") == rendered.digest:
                return "local"
        except docker.errors.ImageNotFound:
            pass
        if self.check_registry:
            assert self.source is not None  # made with check_registry
            slug = rendered.cell.slug
            try:
                if exists_via_engine(self.client, rendered.ref, self.source, say=lambda s: self.progress.step(slug, s)):
                    return "registry"
            except (RegistryError, CredentialsError) as exc:
                self._halt(exc)
                raise
        return None

    def _halt(self, exc: RegistryError | CredentialsError | NoBuildKit) -> None:
        """Remember the first registry error: the run ends with it, and no further cell starts."""
        with self._halt_lock:
            if self.halted is None:
                if isinstance(exc, RegistryError):
                    exc = RegistryError(exc.ref, exc.why, HALT_ADVICE)
                self.halted = exc

    def cli(self) -> BuildCli:
        """The docker CLI builds run with, chosen once (a progress line says which)."""
        with self._halt_lock:
            if self._cli is None:
                self._cli = select()
                self.progress.note(f"building with BuildKit: {self._cli.describe}")
            return self._cli

    def spec(self, rendered: RenderedCell) -> BuildSpec:
        group = self._groups.get(rendered.cell.slug, [rendered])
        return build_spec(rendered, self.images_dir / rendered.cell.slug, group)

    def _build(self, rendered: RenderedCell, result: BuildResult) -> None:
        cell = rendered.cell
        cli = self.cli()
        spec = self.spec(rendered)
        log_path = record_path(self.results_dir, self.profile, "build", cell.slug).with_suffix(".log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        result.log = str(log_path)
        result.builder = cli.describe
        result.cache_sources = list(spec.cache_from)
        self.progress.step(cell.slug, "staging wheels")
        self.stage(rendered, spec.context)
        result.build_started = True
        scrub = self.source.scrubber if self.source is not None else (lambda text: text)
        plain = PlainProgress()
        with (
            tempfile.TemporaryDirectory(prefix="air-fleet-build-") as tmp,
            build_env(cli.env(os.environ), self.source, [*spec.cache_from, spec.ref]) as env,
            log_path.open("w", encoding="utf-8", buffering=1) as log,  # line-buffered: `tail -f` it live
        ):
            iidfile = Path(tmp) / "iid"
            argv = cli.argv(spec, iidfile)
            log.write(f"# {cli.describe}: {' '.join(argv[1:])}\n")
            code = self._stream(cell.slug, argv, env, log, plain, scrub)
            image_id = iidfile.read_text(encoding="utf-8").strip() if iidfile.is_file() else None
        result.missing_cache_sources = plain.missing_cache_sources()
        torch = plain.torch_step()
        result.torch_layer = None if torch is None else ("cached" if torch.cached else "built")
        if code != 0:
            raise BuildFailed(plain.error() or f"{cli.describe} exited with status {code}", _tail(log_path))
        if not image_id:
            raise BuildFailed("the CLI reported no image", _tail(log_path))
        result.status = Built.BUILT
        self._describe(result)

    def _stream(
        self,
        slug: str,
        argv: list[str],
        env: dict[str, str],
        log: Any,
        plain: PlainProgress,
        scrub: Callable[[str], str],
    ) -> int:
        """Run the CLI in its own process group, its output into the log and progress; its exit status."""
        proc = subprocess.Popen(  # argv from validated values, no shell
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # its own process group: Ctrl-C kills it and whatever it started
        )
        with self._halt_lock:
            self._running.add(proc)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = scrub(raw.rstrip("\n"))
                log.write(line + "\n")
                event = plain.feed(line)
                if event is not None:
                    self._show(slug, event)
                if self.cancel.is_set():
                    raise Cancelled
            code = proc.wait()
            if self.cancel.is_set():
                raise Cancelled
            return code
        finally:
            _kill(proc)
            with self._halt_lock:
                self._running.discard(proc)

    def _show(self, slug: str, event: Event) -> None:
        """A progress line for what matters: each step, and whether it came from the cache or failed."""
        v = event.vertex
        if v.cache_import and event.kind == "error":
            self.progress.step(slug, f"cache source skipped ({v.error}): {v.name.split(' ')[-1]}")
        elif not v.is_step:
            return
        elif event.kind == "start":
            self.progress.step(slug, v.label)
        elif event.kind == "cached":
            self.progress.step(slug, f"{v.short} CACHED")
        elif event.kind == "done" and v.seconds is not None and v.seconds >= 1:
            self.progress.step(slug, f"{v.short} DONE {v.seconds:.1f}s")
        elif event.kind == "error":
            self.progress.step(slug, f"{v.short} ERROR: {v.error}")

    def _kill_all(self) -> None:
        with self._halt_lock:
            running = list(self._running)
        for proc in running:
            _kill(proc)

    def _describe(self, result: BuildResult) -> None:
        image = self.client.images.get(result.ref)
        result.image_id = image.id
        result.size = int(image.attrs.get("Size", 0))
        result.created = image.attrs.get("Created")


class BuildFailed(Exception):
    def __init__(self, message: str, tail: str) -> None:
        super().__init__(message)
        self.message = " ".join(message.splitlines())
        self.tail = tail


def _kill(proc: subprocess.Popen[str]) -> None:
    """End a CLI and its process group: SIGTERM, then SIGKILL after a grace period. Quiet if it is gone."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").rstrip("\n").splitlines()
    return "\n".join(f"    {line}" for line in text[-lines:])


def _one_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
