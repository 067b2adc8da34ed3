"""Build the fleet's images with the Docker engine: skip what exists, share layers, isolate failures.

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

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
from docker import DockerClient

from generator.clock import utc_stamp
from generator.errors import FleetError
from generator.progress import Progress
from generator.release.credentials import CredentialsError, CredentialSource
from generator.release.registry import RegistryError, exists_via_engine
from generator.render.renderer import RenderedCell
from generator.results import record_path, write_record
from generator.status import Built

STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")
TAIL_LINES = 15
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
        self.cancel = threading.Event()
        self.halted: FleetError | None = None  # the registry could not answer: no further cell starts
        self._halt_lock = threading.Lock()

    # -- scheduling -------------------------------------------------------------------------------------

    def run(self, cells: list[RenderedCell]) -> list[BuildResult]:
        groups: dict[tuple[str, ...], list[RenderedCell]] = {}
        for r in cells:
            key = (r.cell.base_image, r.cell.torch, r.cell.torch_index, r.cell.python)
            groups.setdefault(key, []).append(r)
        results: dict[str, BuildResult] = {}
        followers: dict[Future[BuildResult], list[RenderedCell]] = {}
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="build")
        running: set[Future[BuildResult]] = set()
        try:
            for members in groups.values():
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
            self.client.api.close()  # closing the streams makes the engine abort the builds in flight
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

    def _halt(self, exc: RegistryError | CredentialsError) -> None:
        """Remember the first registry error: the run ends with it, and no further cell starts."""
        with self._halt_lock:
            if self.halted is None:
                if isinstance(exc, RegistryError):
                    exc = RegistryError(exc.ref, exc.why, HALT_ADVICE)
                self.halted = exc

    def _build(self, rendered: RenderedCell, result: BuildResult) -> None:
        cell = rendered.cell
        directory = self.images_dir / cell.slug
        log_path = record_path(self.results_dir, self.profile, "build", cell.slug).with_suffix(".log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        result.log = str(log_path)
        self.progress.step(cell.slug, "staging wheels")
        self.stage(rendered, directory)
        result.build_started = True
        image_id = None
        with log_path.open("w", encoding="utf-8", buffering=1) as log:  # line-buffered: `tail -f` it live
            stream = self.client.api.build(path=str(directory), tag=rendered.ref, rm=True, forcerm=True, decode=True)
            for chunk in stream:
                if self.cancel.is_set():
                    raise Cancelled
                if "stream" in chunk:
                    text = str(chunk["stream"])
                    log.write(text)
                    match = STEP.match(text)
                    if match:
                        self.progress.step(cell.slug, f"step {match[1]}/{match[2]} {match[3].strip()}")
                elif "error" in chunk:
                    log.write(f"ERROR: {chunk['error']}\n")
                    log.flush()
                    raise BuildFailed(str(chunk["error"]).strip(), _tail(log_path))
                elif "aux" in chunk and isinstance(chunk["aux"], dict):
                    image_id = chunk["aux"].get("ID", image_id)
        if image_id is None:
            raise BuildFailed("the engine reported no image", _tail(log_path))
        result.status = Built.BUILT
        self._describe(result)

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


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").rstrip("\n").splitlines()
    return "\n".join(f"    {line}" for line in text[-lines:])


def _one_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
