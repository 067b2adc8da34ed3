"""A night on separate runners, simulated: every sandbox cell built as if on a fresh machine, twice.

Each cell is built and pushed as a nightly build job would on a runner of its own: before each cell there
is no local image of the run's repository and no build cache of this run; only the registry is shared.
In ONE run, side by side, into two repositories of the sandbox registry:

  classic    today's way before BuildKit (main's builder): the engine's classic builder through the SDK,
             nothing reused (a fresh runner has no layer cache), then `push`; the Dockerfile is the same
             one without its BuildKit cache mounts (`classic_dockerfile`);
  buildkit   this builder (`run_build`): BuildKit, the inline cache, the group's pushed images as cache
             sources, then the same push.

Reported per way: wall time (build + push, cells in matrix order, one at a time), torch layers built (the
`requirements-torch.txt` step ran instead of coming from a cache), bytes pushed (the compressed size of
every layer the push stream says it uploaded, as the manifest gives it), registry growth (the blobs the
run added to the registry's storage that its repository links),
and the unique content: the images' layers above their base, with the layers up to the torch layer counted
once per group (base, torch build, Python), as a registry that stored each shared layer once would hold.
The goal: one torch layer built and pushed per group, growth close to the unique content.

Every run renders its cells with a CA certificate of its own (`fresh_runner.unique_ca`), so no cache of an
earlier run can serve it. It asserts nothing about speed; it exits 1 when a build or push fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from docker import DockerClient

from benchmarks import fresh_runner
from generator.build.plain import TORCH_REQUIREMENTS
from generator.build.steps import run_build, stage_cell, write_images
from generator.deps.step import run_lock
from generator.engine import connect
from generator.errors import FleetError
from generator.fleet import Fleet
from generator.render.renderer import CACHE_DIR, CACHE_MOUNT, INSTALL, INSTALL_CACHED, RenderedCell
from generator.spec.profiles import load_profile
from generator.tables import table

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_MATRIX = ROOT / "generator" / "profiles" / "sandbox.matrix.yaml"
REGISTRY = "127.0.0.1:5000"
PREFIX = "air-fleet/bench-nightly-"
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
STARTED = time.monotonic()


def say(line: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.0f} s] {line}", file=sys.stderr, flush=True)


# --- the fleets ---------------------------------------------------------------------------------------------


def write_matrix(folder: Path, repository: str, ca: Path) -> Path:
    """The sandbox matrix with the run's repository and CA; the sandbox's lock beside it (same cells)."""
    text = SANDBOX_MATRIX.read_text(encoding="utf-8")
    for old, new in (
        ("repository: air-fleet/sandbox\n", f"repository: {repository}\n"),
        (f"extra_ca_certificates: [{HOST_CA}]", f"extra_ca_certificates: [{HOST_CA}, {ca}]"),
    ):
        if text.count(old) != 1:
            raise FleetError(f"{SANDBOX_MATRIX}: expected exactly one {old.strip()!r}")
        text = text.replace(old, new)
    folder.mkdir(parents=True)
    matrix = folder / "matrix.yaml"
    matrix.write_text(text, encoding="utf-8")
    return matrix


def load(matrix: Path) -> Fleet:
    return Fleet.for_profile(load_profile("sandbox", matrix))


def classic_dockerfile(text: str) -> str:
    """The Dockerfile as main renders it: no cache mount (the classic builder refuses `--mount`), and the
    installer told to keep no cache, so no layer carries one."""
    for installer, target in CACHE_DIR.items():
        mount = CACHE_MOUNT.format(installer=installer, target=target)
        text = text.replace(f"RUN {mount} \\\n    ", "RUN ")
        cached = INSTALL_CACHED[installer].format(python="PYTHON", cache=target)
        plain = INSTALL[installer].format(python="PYTHON")
        pattern = re.escape(cached).replace("PYTHON", r"(?P<python>\S+)")
        text = re.sub(pattern, plain.replace("PYTHON", r"\g<python>"), text)
    if "--mount=" in text:
        raise FleetError("a cache mount is left in the classic Dockerfile: classic_dockerfile is out of date")
    return text


# --- the registry's storage ----------------------------------------------------------------------------------


def registry_storage() -> Path | None:
    """Where the sandbox registry keeps its blobs: its config's rootdirectory, found from its process."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) >= 3 and argv[0].endswith(b"registry") and argv[1] == b"serve":
            config = yaml.safe_load(Path(argv[2].decode()).read_text(encoding="utf-8"))
            if str(config.get("http", {}).get("addr")) == REGISTRY:
                return Path(config["storage"]["filesystem"]["rootdirectory"]) / "docker" / "registry" / "v2"
    return None


def blobs(storage: Path) -> dict[str, int]:
    """Every blob the registry stores: digest -> size on disk."""
    found = {}
    for data in (storage / "blobs" / "sha256").glob("*/*/data"):
        found[f"sha256:{data.parent.name}"] = data.stat().st_size
    return found


def linked(storage: Path, repository: str) -> set[str]:
    """The blobs a repository links (layers, configs, manifests)."""
    repo = storage / "repositories" / repository
    links = [*(repo / "_layers" / "sha256").glob("*"), *(repo / "_manifests" / "revisions" / "sha256").glob("*")]
    return {f"sha256:{link.name}" for link in links}


def registry_get(path: str, accept: str | None = None) -> Any:
    request = urllib.request.Request(f"http://{REGISTRY}/v2/{path}", headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - the loopback sandbox registry
        return json.loads(answer.read())


def compressed_pushed(repository: str, tag: str, statuses: dict[str, str]) -> int:
    """What the push sent over the wire: the compressed sizes of the layers the stream says were "Pushed"
    (its own byte counts are of the uncompressed layer). Layer i of the manifest is diff_ids[i] of the
    config; the stream names a layer by the first 12 hex of its diff id."""
    manifest = registry_get(f"{repository}/manifests/{tag}", MANIFEST_TYPES)
    config = registry_get(f"{repository}/blobs/{manifest['config']['digest']}")
    diff_ids = [d.removeprefix("sha256:")[:12] for d in config["rootfs"]["diff_ids"]]
    pushed = {layer for layer, status in statuses.items() if status == "Pushed"}
    return sum(int(layer["size"]) for d, layer in zip(diff_ids, manifest["layers"], strict=True) if d in pushed)


def unique_content(rendered: list[RenderedCell], repository: str, before: set[str]) -> int:
    """Bytes the images hold above their bases, each layer up to and including the torch layer counted once
    per group (what one runner building the group would push), the rest per cell; configs and manifests."""
    seen: dict[tuple[str, ...], int] = {}
    for r in rendered:
        manifest = registry_get(f"{repository}/manifests/{r.tag}", MANIFEST_TYPES)
        config = registry_get(f"{repository}/blobs/{manifest['config']['digest']}")
        history = [h for h in config.get("history", []) if not h.get("empty_layer")]
        torch_at = next(
            (
                i
                for i, h in enumerate(history)
                if TORCH_REQUIREMENTS in h.get("created_by", "") and "install" in h["created_by"]
            ),
            -1,
        )
        group = (r.cell.base_image, r.cell.torch, r.cell.torch_index, r.cell.python)
        for i, layer in enumerate(manifest["layers"]):
            if layer["digest"] in before:  # the base's
                continue
            key = (*group, str(i)) if i <= torch_at else (r.cell.slug, str(i))
            seen.setdefault(key, int(layer["size"]))
        seen[(r.cell.slug, "config")] = int(manifest["config"]["size"])
        seen[(r.cell.slug, "manifest")] = len(json.dumps(manifest))
    return sum(seen.values())


# --- the two ways -------------------------------------------------------------------------------------------


@dataclass
class Cell:
    slug: str
    seconds: float
    torch_layer_built: bool
    bytes_pushed: int
    layers_pushed: int
    layers_existing: int


@dataclass
class Way:
    name: str
    how: str
    repository: str
    cells: list[Cell] = field(default_factory=list)
    seconds: float = 0.0
    registry_growth: int | None = None
    unique_content: int | None = None

    @property
    def torch_layers_built(self) -> int:
        return sum(c.torch_layer_built for c in self.cells)

    @property
    def bytes_pushed(self) -> int:
        return sum(c.bytes_pushed for c in self.cells)


def staged(matrix: Path) -> tuple[Path, list[RenderedCell]]:
    """The cell directories generated and their wheels staged (untimed: a runner's checkout and fetch)."""
    fleet = load(matrix)
    everything = fleet.render()
    write_images(everything, fleet.profile.images)
    for r in everything:
        stage_cell(r, fleet.profile.images / r.cell.slug)
    return fleet.profile.images, everything


def build_classic(client: DockerClient, context: Path, ref: str, log: Path, tmp: Path) -> bool:
    """One cell with the classic builder, as main's builder calls it; True if the torch step ran."""
    dockerfile = tmp / "Dockerfile.classic"
    dockerfile.write_text(classic_dockerfile((context / "Dockerfile").read_text(encoding="utf-8")), encoding="utf-8")
    torch_ran = False
    in_torch = False
    with log.open("w", encoding="utf-8") as out:
        # nocache: a fresh runner has no layer cache (and this engine's other images must not serve as one)
        for chunk in client.api.build(
            path=str(context), dockerfile=str(dockerfile), tag=ref, rm=True, forcerm=True, nocache=True, decode=True
        ):
            if "error" in chunk:
                out.write(f"ERROR: {chunk['error']}\n")
                raise FleetError(f"{ref}: {chunk['error'].strip()}")
            text = str(chunk.get("stream", ""))
            out.write(text)
            if text.startswith("Step "):
                in_torch = " RUN " in text and TORCH_REQUIREMENTS in text
            elif in_torch and "Running in" in text:
                torch_ran = True
    return torch_ran


def run_way(name: str, client: DockerClient, matrix: Path, repository: str, tmp: Path, storage: Path | None) -> Way:
    images, everything = staged(matrix)
    how = "classic builder (SDK), no cache" if name == "classic" else "BuildKit, inline cache + group cache-from"
    way = Way(name, how, f"{REGISTRY}/{repository}")
    before_blobs = blobs(storage) if storage else {}
    before_records = fresh_runner.record_ids(client)
    logs = tmp / f"{name}-logs"
    logs.mkdir()
    os.environ["AIR_FLEET_RESULTS"] = str(tmp / f"{name}-results")
    fleet = load(matrix)
    say(f"{name}: {len(everything)} cells, one fresh runner each, into {way.repository}")
    for n, r in enumerate(everything, 1):
        fresh_runner.make_fresh(client, [way.repository], before_records)
        started = time.perf_counter()
        if name == "classic":
            torch_built = build_classic(client, images / r.cell.slug, r.ref, logs / f"{r.cell.slug}.log", tmp)
        else:
            (result,) = run_build(fleet, [r], everything, jobs=1, wait=True, quiet=True)
            if result.status != "built":
                raise FleetError(f"{r.cell.slug}: {result.status}: {result.error}")
            torch_built = result.torch_layer == "built"
        pushed = fresh_runner.push(client, r.ref)
        seconds = time.perf_counter() - started
        pushed["bytes_pushed"] = compressed_pushed(repository, r.tag, pushed["statuses"])
        way.cells.append(
            Cell(
                r.cell.slug,
                round(seconds, 1),
                torch_built,
                pushed["bytes_pushed"],
                pushed["layers_pushed"],
                pushed["layers_existing"],
            )
        )
        say(
            f"  [{n}/{len(everything)}] {r.cell.slug}: {seconds:.1f} s, torch layer "
            f"{'built' if torch_built else 'reused'}, {pushed['bytes_pushed'] / 1e6:.0f} MB pushed "
            f"({pushed['layers_pushed']} layers pushed, {pushed['layers_existing']} already there)"
        )
    way.seconds = round(sum(c.seconds for c in way.cells), 1)
    fresh_runner.make_fresh(client, [way.repository], before_records)
    if storage:
        after = blobs(storage)
        mine = linked(storage, repository)
        way.registry_growth = sum(
            size for digest, size in after.items() if digest not in before_blobs and digest in mine
        )
        way.unique_content = unique_content(everything, repository, set(before_blobs))
    return way


# --- the report -----------------------------------------------------------------------------------------------


def mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1e6:,.0f} MB"


def report(result: dict[str, Any]) -> str:
    ways = result["ways"]
    rows = [
        [
            w["name"],
            f"{w['seconds']:.1f}",
            w["torch_layers_built"],
            mb(w["bytes_pushed"]),
            mb(w["registry_growth"]),
            mb(w["unique_content"]),
        ]
        for w in ways
    ]
    lines = [
        f"{result['cells']} cells, {result['groups']} groups (base, torch build, Python); "
        f"registry storage: {result['storage'] or 'not found (growth not measured)'}",
        table(["way", "seconds", "torch layers built", "pushed", "registry growth", "unique content"], rows),
    ]
    if len(ways) == 2:
        old, new = ways
        if new["seconds"] and new["bytes_pushed"]:
            lines.append(
                f"classic / buildkit, same run: time {old['seconds'] / new['seconds']:.2f}x, "
                f"bytes pushed {old['bytes_pushed'] / new['bytes_pushed']:.2f}x"
                + (
                    f", registry growth {old['registry_growth'] / new['registry_growth']:.2f}x"
                    if old["registry_growth"] and new["registry_growth"]
                    else ""
                )
            )
    return "\n".join(lines)


def benchmark(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from generator.sandbox import services

    services.up(progress=lambda line: say(f"sandbox: {line}"))
    client = connect()
    storage = registry_storage()
    run = uuid.uuid4().hex[:8]
    ca = fresh_runner.unique_ca(tmp)
    ways: list[Way] = []
    for name in args.ways:
        repository = f"{PREFIX}{run}-{name}"
        matrix = write_matrix(tmp / name, repository, ca)
        outcome = run_lock(load(matrix), say=lambda _: None)
        if outcome.failures:
            raise FleetError(f"lock failed: {'; '.join(outcome.failures)}")
        ways.append(run_way(name, client, matrix, repository, tmp, storage))
    rendered = load(tmp / args.ways[0] / "matrix.yaml").render()
    groups = {(r.cell.base_image, r.cell.torch, r.cell.torch_index, r.cell.python) for r in rendered}
    return {
        "cells": len(rendered),
        "groups": len(groups),
        "storage": str(storage) if storage else None,
        "ways": [
            {**asdict(w), "torch_layers_built": w.torch_layers_built, "bytes_pushed": w.bytes_pushed} for w in ways
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.nightly",
        description="Every sandbox cell built and pushed as on a fresh runner: the classic builder vs BuildKit.",
        epilog="Progress on stderr, figures on stdout. About 15 minutes on a 2-core machine. The pushed images stay "
        "in the sandbox registry's repositories " + PREFIX + "<run>-<way>.",
    )
    parser.add_argument("--ways", nargs="+", choices=["classic", "buildkit"], default=["classic", "buildkit"])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="nightly-bench-"))
    try:
        result = benchmark(args, tmp)
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
