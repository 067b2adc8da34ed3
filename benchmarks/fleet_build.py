"""Benchmark building the sandbox fleet with the real Docker engine: this builder vs the naive way.

On a copy of the sandbox matrix (10 cells) pushed to a benchmark-only repository, in one run:

  cold     every fleet image removed first, so no layer of the fleet's own Dockerfiles is cached; built
           with `run_build` (what `python -m generator --profile sandbox build -j N` does), then again the
           naive way: `docker build --no-cache` per cell directory, one after the other;
  no-op    the builder again: every cell up to date, and no docker build may start;
  pin      einops 0.8.2 -> 0.8.1 in the matrix: exactly the cells with einops may be rebuilt.

It prints figures and asserts nothing about speed. It exits 1 only when a correctness invariant breaks
(a failed build, a no-op that starts a build, a pin change that rebuilds the wrong cells, a "cold" run
that reused a cached torch layer), 2 on bad arguments or services that cannot be reached.

Cold means the classic builder has nothing to reuse: its cache is the engine's parent-image chains, which
the sandbox fleet's images (`127.0.0.1:5000/air-fleet/sandbox:*`) and earlier benchmark images share with
these builds. So before each cold run every tag of those repositories is removed, which takes their
untagged parent layers with it. The stand-in bases (`air-sandbox/*`) and anybody else's images stay.
Whether a run really was cold is read from the build logs, not assumed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
from docker import DockerClient

from benchmarks.fresh_runner import prune, record_ids, unique_ca
from benchmarks.nightly import HOST_CA, classic_dockerfile
from generator.build.builder import BuildResult
from generator.build.plain import parse
from generator.build.steps import run_build, stage_cell, write_images
from generator.compile.step import compile_first
from generator.deps.step import run_lock
from generator.engine import connect
from generator.errors import FleetError
from generator.fleet import Fleet
from generator.render.renderer import RenderedCell
from generator.results import read_record
from generator.spec.profiles import load_profile
from generator.tables import table

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_MATRIX = ROOT / "generator" / "profiles" / "sandbox.matrix.yaml"
REGISTRY = "127.0.0.1:5000"
SANDBOX_REPOSITORY = "air-fleet/sandbox"
BENCH_PREFIX = "air-fleet/bench-"  # every benchmark repository starts so: earlier runs' leftovers are found
STAND_IN_PREFIX = "air-sandbox/"
# The pin change: a pure-Python pip package, so the cells using it rebuild only their last layers.
PIN_EXT, PIN_FROM, PIN_TO = "einops", "0.8.2", "0.8.1"
PIN_LINE = "einops: {kind: pip, version: %s}"
# The classic builder's log: a step header, then either " ---> Using cache" or " ---> Running in <id>".
STEP = re.compile(r"^Step \d+/\d+ : (.*)")
NAIVE_TIMEOUT_S = 1800  # one `docker build` of one cell; a cold torch layer takes about a minute here

STARTED = time.monotonic()


class InvariantError(Exception):
    """A correctness invariant broke: the figures around it would mean nothing."""


def say(line: str) -> None:
    """Progress on stderr (the table and --json go to stdout), stamped with the run's elapsed time."""
    print(f"[{time.monotonic() - STARTED:6.0f} s] {line}", file=sys.stderr, flush=True)


# --- the benchmark's own fleet ------------------------------------------------------------------------------


def write_matrix(path: Path, repository: str, pin: str, ca: Path) -> None:
    """The sandbox matrix with another repository, einops pin and the run's own CA certificate (so no
    BuildKit cache of an earlier run serves it); a text edit, so the rest stays byte-equal."""
    text = SANDBOX_MATRIX.read_text(encoding="utf-8")
    edits = [
        (f"repository: {SANDBOX_REPOSITORY}\n", f"repository: {repository}\n"),
        (PIN_LINE % PIN_FROM, PIN_LINE % pin),
        (f"extra_ca_certificates: [{HOST_CA}]", f"extra_ca_certificates: [{HOST_CA}, {ca}]"),
    ]
    for old, new in edits:
        if text.count(old) != 1:  # the sandbox matrix changed shape: better to stop than to bench something else
            raise InvariantError(f"{SANDBOX_MATRIX}: expected exactly one {old.strip()!r}")
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")


def load(matrix: Path) -> Fleet:
    return Fleet.for_profile(load_profile("sandbox", matrix))


def uses_pin(rendered: RenderedCell) -> bool:
    return any(e.name == PIN_EXT for e in rendered.cell.extensions)


# --- the engine: services, cleaning, cache sources ----------------------------------------------------------


def ensure_sandbox(fleet: Fleet) -> DockerClient:
    """`python -m generator sandbox up`, limited to the stand-ins this fleet builds FROM (both idempotent)."""
    from generator.sandbox import services
    from generator.sandbox.bases import ensure_bases, stand_ins

    services.up(progress=lambda line: say(f"sandbox: {line}"))
    client = connect()
    bases = {c.base_image for c in fleet.cells}
    ensure_bases(
        client, [s for s in stand_ins() if s.published() in bases], progress=lambda line: say(f"sandbox: {line}")
    )
    return client


def ours(tag: str) -> bool:
    """A tag this benchmark may remove: the sandbox fleet's repository or a benchmark repository."""
    repo = tag.rsplit(":", 1)[0]
    return repo == f"{REGISTRY}/{SANDBOX_REPOSITORY}" or repo.startswith(f"{REGISTRY}/{BENCH_PREFIX}")


def remove_fleet_images(client: DockerClient) -> int:
    """Remove every tag of the sandbox fleet and benchmark repositories; returns how many.

    By tag, not by id: an image that also carries somebody else's tag only loses ours. The last tag of an
    image takes the image and its untagged parents with it (noprune is off), which is what empties the
    classic builder's cache for these Dockerfiles.
    """
    removed = 0
    for image in client.images.list():
        for tag in image.tags:
            if ours(tag):
                try:
                    client.images.remove(tag, force=True)
                    removed += 1
                except docker.errors.ImageNotFound:
                    pass  # went with an earlier tag of the same image
    return removed


@dataclass
class CacheSource:
    image: str  # short id
    tags: list[str]
    base: str  # the fleet base image it descends from


def cache_sources(client: DockerClient, bases: set[str]) -> list[CacheSource]:
    """Images left that descend from the fleet's base images: whatever the classic builder could reuse.

    Only leaves are listed (each stands for its chain). Untagged leaves are the layers of failed or
    interrupted builds of Dockerfiles FROM the stand-ins; tagged ones are somebody else's images.
    """
    images: list[dict[str, Any]] = client.api.images(all=True)
    children: dict[str, list[str]] = defaultdict(list)
    for image in images:
        if image.get("ParentId"):
            children[image["ParentId"]].append(image["Id"])
    tags = {i["Id"]: [t for t in (i.get("RepoTags") or []) if t != "<none>:<none>"] for i in images}
    # The stand-ins and everything under them are never cache sources, even if one builds FROM another.
    protected: set[str] = set()
    by_id = {i["Id"]: i for i in images}
    for image_id, image_tags in tags.items():
        if any(t.startswith(STAND_IN_PREFIX) for t in image_tags):
            walk: str | None = image_id
            while walk and walk not in protected:
                protected.add(walk)
                walk = by_id.get(walk, {}).get("ParentId") or None
    found: list[CacheSource] = []
    for base in sorted(bases):
        try:
            root = str(client.images.get(base).id)
        except docker.errors.ImageNotFound:
            continue
        stack = list(children[root])
        while stack:
            image_id = stack.pop()
            if image_id in protected:
                continue
            if children[image_id]:
                stack.extend(children[image_id])
            else:
                found.append(CacheSource(image_id.removeprefix("sha256:")[:12], tags[image_id], base))
    return found


def drop_leftovers(client: DockerClient, sources: list[CacheSource]) -> int:
    """Remove the untagged leaves (failed builds' layers); never a tagged image, never by force."""
    dropped = 0
    for source in sources:
        if source.tags:
            continue
        try:
            client.images.remove(source.image)  # noprune off: its untagged parents go too
            dropped += 1
        except docker.errors.APIError as exc:  # a container still uses it: leave it, the log check will tell
            say(f"  could not remove {source.image}: {str(exc).splitlines()[0]}")
    return dropped


def make_cold(client: DockerClient, bases: set[str], drop: bool, records_before: set[str]) -> dict[str, Any]:
    removed = remove_fleet_images(client)
    pruned = prune(client, records_before)  # the BuildKit cache this run made
    sources = cache_sources(client, bases)
    dropped = drop_leftovers(client, sources) if drop and sources else 0
    if dropped:
        sources = cache_sources(client, bases)
    say(
        f"cleaned: {removed} fleet/benchmark tags removed, {pruned} BuildKit cache records pruned"
        + (f", {dropped} leftover layers dropped" if dropped else "")
    )
    for s in sources:
        what = ", ".join(s.tags) if s.tags else "untagged (a failed build's layers; --drop-leftovers removes it)"
        say(f"  warning: {s.image} FROM {s.base} may serve as cache: {what}")
    return {
        "tags_removed": removed,
        "cache_records_pruned": pruned,
        "leftovers_dropped": dropped,
        "cache_sources": [asdict(s) for s in sources],
    }


# --- reading build logs -------------------------------------------------------------------------------------


def torch_layer_built(log: Path) -> bool | None:
    """Whether the torch install step ran (True) or came from the cache (False); None: no such step logged."""
    if not log.is_file():
        return None
    text = log.read_text(encoding="utf-8", errors="replace")
    if text.startswith("# "):  # the builder's BuildKit log: its first line names the CLI
        torch = parse(text).torch_step()
        return None if torch is None else not torch.cached
    in_torch = False
    for line in text.splitlines():
        step = STEP.match(line)
        if step:
            if in_torch:
                return None  # the next step began without either marker: should not happen
            # The torch layer: the locked environment's hash-checked install (torch and its dependencies), or,
            # in a cell rendered without a lock, the install of the torch wheel itself.
            in_torch = step[1].startswith("RUN ") and ("--require-hashes" in step[1] or "/wheels/torch-" in step[1])
        elif in_torch and "Using cache" in line:
            return False
        elif in_torch and "Running in" in line:
            return True
    return None


# --- the phases -------------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    how: str
    seconds: float
    cells: int
    builds_started: int
    statuses: dict[str, int]
    torch_layers_built: int | None = None  # torch install steps that ran rather than came from the cache
    cold: bool | None = None  # every base image's torch layer was built (None: not a cold phase)
    rebuilt: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # pin phase: the cells that must be rebuilt


@contextmanager
def watch(records: Path, total: int) -> Iterator[None]:
    """One progress line per finished cell, read from the builder's result records as they appear.

    The builder's own progress is a line per build step of every cell (use --verbose for it); this is
    the short version, without reaching into the builder.
    """
    seen: set[str] = set()
    stop = threading.Event()

    def poll() -> None:
        for path in sorted(records.glob("*.json")) if records.is_dir() else []:
            record = read_record(path)
            if path.name not in seen and record is not None:
                seen.add(path.name)
                say(f"  [{len(seen)}/{total}] {record['slug']}: {record['status']} ({record['seconds']} s)")

    def loop() -> None:
        while not stop.wait(1.0):
            poll()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        poll()


def build_with_builder(
    name: str, matrix: Path, results: Path, jobs: int, verbose: bool
) -> tuple[Phase, list[BuildResult], list[RenderedCell]]:
    """The CLI's `build` in-process: load, render, generate, build. Timed from loading the matrix."""
    os.environ["AIR_FLEET_RESULTS"] = str(results)  # read by run_build for records and logs
    loaded = load(matrix)
    total = len(loaded.cells)
    say(f"{name}: run_build -j {jobs} ...")
    started = time.perf_counter()
    with watch(results / loaded.profile.records / "build", total):  # another matrix: its own records folder
        fleet = load(matrix)
        fleet, _ = compile_first(fleet, fleet.cells, wait=False, say=say)  # as `build`: source builds first
        everything = fleet.render()
        out = run_build(fleet, everything, everything, jobs=jobs, wait=False, quiet=not verbose)
    seconds = time.perf_counter() - started
    statuses: dict[str, int] = defaultdict(int)
    for r in out:
        statuses[r.status] += 1
    torch = [torch_layer_built(Path(r.log)) for r in out if r.build_started and r.log]
    phase = Phase(
        name=name,
        how=f"run_build -j {jobs}",
        seconds=round(seconds, 1),
        cells=len(out),
        builds_started=sum(r.build_started for r in out),
        statuses=dict(statuses),
        torch_layers_built=sum(1 for t in torch if t),
        rebuilt=sorted(r.slug for r in out if r.build_started),
    )
    say(f"{name}: {seconds:.1f} s, {phase.builds_started} builds started")
    return phase, out, everything


def staged(matrix: Path) -> tuple[Path, list[RenderedCell]]:
    """The cell directories generated and their wheels staged: a ready build context for `docker build`."""
    fleet = load(matrix)
    everything = fleet.render()
    images = fleet.profile.images
    write_images(everything, images)
    for r in everything:
        stage_cell(r, images / r.cell.slug)
    return images, everything


def docker_build(directory: Path, ref: str, log: Path) -> bool:
    """`docker build --no-cache -t REF DIR` with the engine's classic builder, on the Dockerfile without its
    BuildKit cache mounts (which the classic builder refuses)."""
    dockerfile = log.with_suffix(".Dockerfile")
    dockerfile.write_text(classic_dockerfile((directory / "Dockerfile").read_text(encoding="utf-8")), encoding="utf-8")
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run(
            ["docker", "build", "--no-cache", "-f", str(dockerfile), "-t", ref, str(directory)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
            timeout=NAIVE_TIMEOUT_S,
            check=False,
        )
    return done.returncode == 0


def warm_up(matrix: Path, logs: Path, repository: str) -> None:
    """One untimed build before the timed ones, so the first timed run does not pay alone for a cold page
    cache (the 190 MB torch wheel) and a cold package-index proxy (torch's dependencies)."""
    images, everything = staged(matrix)
    first = everything[0]
    logs.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ok = docker_build(images / first.cell.slug, f"{REGISTRY}/{repository}-warm-up:{first.tag}", logs / "warm-up.log")
    say(f"warm-up: {first.cell.slug} {'built' if ok else 'FAILED'} in {time.perf_counter() - started:.1f} s (untimed)")


def build_naive(name: str, matrix: Path, logs: Path, repository: str) -> Phase:
    """`docker build --no-cache -t <tag> <dir>` per cell, in sequence.

    The directories are generated and their wheels staged first, untimed: the naive way starts from a
    ready build context. That leaves the builder's own staging and registry checks in its figure only.
    """
    images, everything = staged(matrix)
    logs.mkdir(parents=True, exist_ok=True)
    statuses: dict[str, int] = defaultdict(int)
    torch = 0
    say(f"{name}: docker build --no-cache, {len(everything)} cells in sequence ...")
    started = time.perf_counter()
    for n, r in enumerate(everything, 1):
        log = logs / f"{r.cell.slug}.log"
        one = time.perf_counter()
        status = "built" if docker_build(images / r.cell.slug, f"{REGISTRY}/{repository}:{r.tag}", log) else "failed"
        statuses[status] += 1
        torch += bool(torch_layer_built(log))
        say(f"  [{n}/{len(everything)}] {r.cell.slug}: {status} ({time.perf_counter() - one:.1f} s)")
    seconds = time.perf_counter() - started
    say(f"{name}: {seconds:.1f} s")
    return Phase(
        name=name,
        how="docker build --no-cache, sequential",
        seconds=round(seconds, 1),
        cells=len(everything),
        builds_started=len(everything),
        statuses=dict(statuses),
        torch_layers_built=torch,
        cold=True,  # --no-cache: nothing is reused by construction
        rebuilt=sorted(r.cell.slug for r in everything),
    )


# --- the run ----------------------------------------------------------------------------------------------


def cold_check(phase: Phase, results: list[BuildResult], rendered: list[RenderedCell]) -> list[str]:
    """Problems with a cold builder run: failures, and base images whose torch layer came from the cache."""
    problems = [f"{phase.name}: {r.slug} {r.status}: {r.error}" for r in results if r.status != "built"]
    base_of = {r.cell.slug: r.cell.base_image for r in rendered}
    built_fresh: dict[str, bool] = defaultdict(bool)
    for r in results:
        if r.build_started and r.log:
            built_fresh[base_of[r.slug]] |= bool(torch_layer_built(Path(r.log)))
    warm = sorted(base for base, fresh in built_fresh.items() if not fresh)
    phase.cold = not warm
    if warm:
        problems.append(
            f"{phase.name}: not cold, the torch layer came from the cache for {', '.join(warm)} "
            "(see the cache-source warnings above; --drop-leftovers removes failed builds' layers)"
        )
    return problems


@dataclass
class Run:
    phases: list[Phase] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cleaning: list[dict[str, Any]] = field(default_factory=list)


def benchmark(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    repository = f"{BENCH_PREFIX}{uuid.uuid4().hex[:8]}"
    matrix = tmp / "matrix.yaml"
    args.ca = unique_ca(tmp)
    write_matrix(matrix, repository, PIN_FROM, args.ca)
    fleet = load(matrix)
    bases = {c.base_image for c in fleet.cells}
    say(f"fleet: {len(fleet.cells)} cells on {len(bases)} base images, repository {REGISTRY}/{repository}")
    client = ensure_sandbox(fleet)
    args.records_before = record_ids(client)  # BuildKit's cache before the run: never pruned
    lock_started = time.perf_counter()
    outcome = run_lock(fleet, say=say)
    if outcome.failures:
        raise InvariantError(f"lock failed: {'; '.join(outcome.failures)}")
    say(f"lock: {outcome.entries} inputs locked in {time.perf_counter() - lock_started:.1f} s")
    run = Run()
    try:
        run_phases(args, client, matrix, repository, bases, tmp, run)
    finally:  # also on an error or ^C: several GB of benchmark images must not outlive the run
        removed = 0
        if not args.keep:
            try:
                removed = remove_fleet_images(client)
            except docker.errors.DockerException as exc:
                say(f"warning: could not remove the benchmark images: {str(exc).splitlines()[0]}")
    cold_runs = [p for p in run.phases if p.name.startswith("cold, this builder")]
    naive_runs = [p for p in run.phases if p.name == "cold, naive"]
    ratios = {p.how: round(naive_runs[0].seconds / p.seconds, 2) for p in cold_runs if naive_runs and p.seconds > 0}
    return {
        "cells": len(fleet.cells),
        "base_images": len(bases),
        "repository": f"{REGISTRY}/{repository}",
        "phases": [asdict(p) for p in run.phases],
        "naive_over_ours": ratios,
        "cleaning": run.cleaning,
        "tags_removed_at_end": removed,
        "problems": run.problems,
    }


def run_phases(
    args: argparse.Namespace, client: DockerClient, matrix: Path, repository: str, bases: set[str], tmp: Path, run: Run
) -> None:
    warm_up(matrix, tmp / "naive-logs", repository)
    for jobs in args.jobs:
        run.cleaning.append(make_cold(client, bases, args.drop_leftovers, args.records_before))
        phase, results, rendered = build_with_builder(
            f"cold, this builder (-j {jobs})", matrix, tmp / f"results-cold-j{jobs}", jobs, args.verbose
        )
        run.problems += cold_check(phase, results, rendered)
        run.phases.append(phase)

    # No-op: right after the last cold run, with its images in place.
    phase, results, _ = build_with_builder("no-op rebuild", matrix, tmp / "results-noop", args.jobs[-1], args.verbose)
    run.phases.append(phase)
    if phase.builds_started:
        run.problems.append(f"no-op: {phase.builds_started} builds started (must be 0): {', '.join(phase.rebuilt)}")
    if any(r.status != "up to date" for r in results):
        run.problems.append(f"no-op: not every cell up to date: {phase.statuses}")

    # One pin changed: only the einops cells may build; their torch layer is shared with what exists.
    write_matrix(matrix, repository, PIN_TO, args.ca)
    run_lock(load(matrix), say=say)
    phase, results, rendered = build_with_builder(
        f"{PIN_EXT} {PIN_FROM} -> {PIN_TO}", matrix, tmp / "results-pin", args.jobs[-1], args.verbose
    )
    phase.expected = sorted(r.cell.slug for r in rendered if uses_pin(r))
    run.phases.append(phase)
    if phase.rebuilt != phase.expected:
        run.problems.append(f"pin change: rebuilt {phase.rebuilt}, expected exactly {phase.expected}")
    if any(r.status != "up to date" for r in results if r.slug not in phase.expected):
        run.problems.append(f"pin change: a cell without {PIN_EXT} was not up to date: {phase.statuses}")
    run.problems += [f"pin change: {r.slug} failed: {r.error}" for r in results if r.status == "failed"]

    if not args.skip_naive:
        write_matrix(matrix, repository, PIN_FROM, args.ca)  # the same cells the cold builder runs built
        run.cleaning.append(make_cold(client, bases, args.drop_leftovers, args.records_before))
        naive = build_naive("cold, naive", matrix, tmp / "naive-logs", f"{repository}-naive")
        run.phases.append(naive)
        if naive.statuses.get("failed"):
            run.problems.append(f"naive: {naive.statuses['failed']} builds failed (logs: {tmp / 'naive-logs'}, --keep)")


def report(result: dict[str, Any]) -> str:
    rows = []
    for p in result["phases"]:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(p["statuses"].items()))
        torch = "" if p["torch_layers_built"] is None else str(p["torch_layers_built"])
        cold = {True: "yes", False: "NO", None: ""}[p["cold"]]
        rows.append([p["name"], p["how"], f"{p['seconds']:.1f}", p["builds_started"], torch, cold, statuses])
    headers = ["run", "how", "seconds", "builds started", "torch layers built", "cold", "cells"]
    lines = [f"sandbox fleet: {result['cells']} cells on {result['base_images']} base images", ""]
    lines.append(table(headers, rows))
    phases = {p["name"]: p for p in result["phases"]}
    pin = next(p for p in result["phases"] if p["name"].startswith(PIN_EXT))
    lines.append("")
    lines.append(f"pin change rebuilt {len(pin['rebuilt'])} cells: {', '.join(pin['rebuilt']) or '-'}")
    lines.append(f"  expected exactly the {PIN_EXT} cells: {', '.join(pin['expected'])}")
    for how, ratio in result["naive_over_ours"].items():
        lines.append(f"naive / this builder ({how}): {ratio:.2f}x")
    if result["tags_removed_at_end"]:
        lines.append(
            f"removed {result['tags_removed_at_end']} benchmark tags at the end; the sandbox fleet's own images "
            f"({REGISTRY}/{SANDBOX_REPOSITORY}) were removed to make the runs cold: `make fleet` rebuilds them"
        )
    lines.append("")
    if result["problems"]:
        lines += [f"INVARIANT BROKEN: {p}" for p in result["problems"]]
    else:
        noop = phases["no-op rebuild"]
        best = max(result["naive_over_ours"].items(), key=lambda kv: kv[1], default=None)
        vs = f"; cold is {best[1]:.2f}x faster than the naive way ({best[0]})" if best else ""
        lines.append(
            f"conclusion: a no-op starts no build ({noop['seconds']:.1f} s), a pin change rebuilds exactly the "
            f"{len(pin['expected'])} cells it concerns ({pin['seconds']:.1f} s){vs}."
        )
    return "\n".join(lines)


def _jobs(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of integers: {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("every value must be at least 1")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fleet_build",
        description=(
            "Build the sandbox fleet (10 cells) for real: cold with this builder vs `docker build --no-cache` "
            "per cell in sequence, a no-op rebuild, and one pin changed. Prints figures; exits 1 only when a "
            "correctness invariant breaks (a failed build, a no-op that starts a build, a pin change that "
            "rebuilds the wrong cells, a cold run that was not cold). Speed is reported, never asserted."
        ),
        epilog=(
            "examples:\n"
            "  .venv/bin/python -m benchmarks.fleet_build                full run, table (about 15 minutes)\n"
            "  .venv/bin/python -m benchmarks.fleet_build --skip-naive   builder only: cold, no-op, pin\n"
            "  .venv/bin/python -m benchmarks.fleet_build --jobs 2,1     one cold run per -j value\n"
            "  .venv/bin/python -m benchmarks.fleet_build --json 2>/dev/null\n\n"
            "It starts the sandbox (engine, registry, stand-in bases) if needed, and REMOVES the sandbox fleet's\n"
            f"images ({REGISTRY}/{SANDBOX_REPOSITORY}:*) before each cold run; `make fleet` rebuilds them.\n"
            "Progress goes to stderr, figures to stdout. The machine is noisy: compare the ratios, which come\n"
            "from one run, rather than seconds across runs."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--jobs",
        type=_jobs,
        default=[2],
        metavar="N[,N...]",
        help="cells the builder builds at once; a comma list times one cold run per value (default: 2)",
    )
    parser.add_argument("--skip-naive", action="store_true", help="skip the naive `docker build --no-cache` run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--verbose", "-v", action="store_true", help="the builder's own progress, step by step")
    parser.add_argument(
        "--drop-leftovers",
        action="store_true",
        help="also remove untagged layers of failed builds FROM the stand-ins, which would otherwise serve as "
        "cache (they are listed either way; tagged images are never removed)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's images and temp directory")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="fleet-build-bench-"))
    try:
        result = benchmark(args, tmp)
    except InvariantError as exc:
        print(f"invariant broken: {exc}", file=sys.stderr)
        return 1
    except FleetError as exc:  # an engine, registry or lock that is not there or busy: the CLI's exit 2
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
