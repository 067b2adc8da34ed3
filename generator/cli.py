"""`python -m generator`: list, show, check and generate the image fleet described by matrix.yaml."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from generator import __version__, paths
from generator.compat import FAIL, summary_table, worst
from generator.dockerclient import connect
from generator.errors import FleetError
from generator.expand import select
from generator.fleet import Fleet, desired_files, failure_error
from generator.paths import ROOT
from generator.pipeline import run_build, run_lock, stage_cell, summary, write_images
from generator.profiles import available, load_profile
from generator.progress import to_stderr
from generator.render import RenderedCell, cell_summary
from generator.tables import table
from generator.writer import Change, apply, plan

EPILOG = """\
examples:
  python -m generator list                      every cell, numbered in matrix order
  python -m generator show 3                    one cell in full (by number or slug)
  python -m generator check 'aws-*'             compatibility tables; exit 1 if any FAIL
  python -m generator matrix --json             GitHub Actions matrix ({"include": [...]})
  python -m generator generate                  write images/ (only files whose bytes change)
  python -m generator generate --check          exit 1 listing what is stale, write nothing
  python -m generator --matrix other.yaml list  use another matrix file

  python -m generator sandbox up                start the local Docker engine and registry (installs them
                                                if missing) and build the sandbox's stand-in base images
  python -m generator --profile sandbox lock    resolve every file the cells COPY (name, URL, sha256)
  python -m generator --profile sandbox build   generate, then build what is out of date (-j N in parallel)
  python -m generator --profile sandbox build 3 'aws-*'   some cells only
  python -m generator --profile sandbox probe   run the probe in each image: the seed's table from real facts
  python -m generator --profile sandbox push --atomic   push only if every selected cell built and probed OK
  python -m generator --profile sandbox publish  the compatibility page (HTML, Markdown, JSON) from the records

exit status: 0 ok; 1 a check FAILed, images/ is stale or a cell failed to build; 2 bad input (one line:
file:line: key: why) or a service (Docker engine, registry) that cannot be reached; 130 interrupted
"""


def _cells_arg(s: argparse.ArgumentParser) -> None:
    s.add_argument("cells", nargs="*", metavar="CELL", help="indexes, slugs or slug patterns (default: all)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator",
        description="Generate a fleet of GPU training images for Databricks AI Runtime from matrix.yaml.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--profile",
        default="default",
        metavar="NAME",
        help=f"default (the real fleet, ./matrix.yaml) or one of generator/profiles/: {', '.join(available())}",
    )
    p.add_argument(
        "--matrix",
        type=Path,
        default=None,
        metavar="FILE",
        help="the catalogue to read (default: the profile's; ./matrix.yaml for the default profile)",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="list every cell with its resolved versions")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("show", help="everything about one cell: versions, wheels, checks, digest")
    s.add_argument("cell", metavar="CELL", help="1-based index or slug")
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("check", help="compatibility checks per cell (exit 1 if any FAIL)")
    _cells_arg(s)
    s.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("matrix", help="the GitHub Actions matrix object for CI fan-out")
    s.add_argument("--json", action="store_true", required=True, help="print JSON (the only format)")

    s = sub.add_parser("generate", help="render images/<cell>/ for every cell")
    s.add_argument("--check", action="store_true", help="write nothing; exit 1 listing stale files")
    s.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="output directory (default: the profile's images directory, images/ for the default profile)",
    )
    s.add_argument("--json", action="store_true", help="machine-readable summary")

    sub.add_parser("lock", help="resolve every file the cells COPY into the profile's lock (name, URL, sha256)")

    s = sub.add_parser("fetch", help="download locked files into the cache (sha256-verified) and stage them")
    _cells_arg(s)

    s = sub.add_parser("build", help="generate, then build every out-of-date cell with the Docker engine")
    _cells_arg(s)
    s.add_argument("-j", "--jobs", type=int, default=2, metavar="N", help="cells built at once (default: 2)")
    s.add_argument("--no-wait", action="store_true", help="fail at once if another build holds the lock")
    s.add_argument("--json", action="store_true", help="print the result records as JSON")

    s = sub.add_parser("probe", help="run the probe inside each built image and judge the REAL facts")
    _cells_arg(s)
    s.add_argument(
        "--gpus",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask for the GPUs (default: when the engine has the NVIDIA runtime); without them GPU "
        "facts are 'not measured', never passed",
    )
    s.add_argument("--timeout", type=float, default=300, metavar="S", help="seconds per image (default: 300)")
    s.add_argument("--json", action="store_true", help="print the probe records as JSON")

    s = sub.add_parser(
        "bench",
        help="GPU benchmarks inside each built image (matmul, attention, memory, NCCL) vs a reference table",
        description="Without a GPU the benchmark says so and reports no number.",
    )
    _cells_arg(s)
    s.add_argument(
        "--gpus",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask for the GPUs (default: when the engine has the NVIDIA runtime)",
    )
    s.add_argument("--quick", action="store_true", help="small sizes and few repeats: a smoke run")
    s.add_argument("--json", action="store_true", help="print the records as JSON")

    s = sub.add_parser(
        "push",
        help="push the images whose build and probe passed (immutable digest tag, then <slug> and <slug>-<date>)",
        description="Credentials come from the Docker config (credential helpers included) or from "
        "AIR_FLEET_REGISTRY_USERNAME / AIR_FLEET_REGISTRY_PASSWORD; never from arguments, never into logs.",
    )
    _cells_arg(s)
    s.add_argument("--atomic", action="store_true", help="push nothing unless every selected cell passed")
    s.add_argument("--no-wait", action="store_true", help="fail at once if another push holds the lock")

    s = sub.add_parser(
        "register",
        help="register pushed images with a Databricks workspace (once per image: a ledger skips what is done)",
        description="Never interactive: stdin closed, no TTY, a timeout. Databricks credentials reach the CLI "
        "through its environment (DATABRICKS_*) and registry credentials through the Docker config, never argv.",
    )
    _cells_arg(s)
    s.add_argument(
        "--cli",
        choices=("databricks", "air"),
        default=None,
        help="databricks: the current Go CLI; air: the legacy one (default: whichever is on PATH)",
    )
    s.add_argument("--workspace-profile", default="DEFAULT", metavar="P", help="the CLI's -p profile")
    s.add_argument("--scope", default=None, help="legacy air only: the Databricks secret scope holding registry creds")
    s.add_argument("--key", default=None, help="legacy air only: the secret's key in that scope")
    s.add_argument("--timeout-minutes", type=int, default=60, metavar="N", help="per image (default: 60)")
    s.add_argument("--force", action="store_true", help="register again what the ledger has (rotated credentials)")
    s.add_argument("--json", action="store_true", help="print the outcomes as JSON")

    s = sub.add_parser(
        "plan",
        help="the CI matrix of cells to build: those whose digest tag is not in the registry yet",
        description="Asks the registry (HTTP, no Docker engine needed; or the engine with --via engine). A "
        "registry that cannot answer is an error, never a silent rebuild of everything.",
    )
    _cells_arg(s)
    s.add_argument("--force", action="store_true", help="every selected cell, whatever the registry has")
    s.add_argument("--via", choices=("http", "engine"), default="http", help="how to ask the registry")
    s.add_argument(
        "--github-output",
        type=Path,
        default=None,
        metavar="FILE",
        help="append matrix=, empty=, count= to this file (GitHub Actions' $GITHUB_OUTPUT)",
    )
    s.add_argument("--json", action="store_true", help="print the whole plan as JSON")

    s = sub.add_parser(
        "publish",
        help="write the compatibility-matrix page (HTML, Markdown, JSON) from the matrix and the run records",
        description="One row per cell: its checks, and what the build, probe, benchmark, push and register "
        "records say about the cell's current content digest (a record for another build is shown as stale). "
        "Needs no Docker engine: it reads results/<profile>/ and the registration ledgers.",
    )
    _cells_arg(s)
    s.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="default: results/<profile>/site (index.html, matrix.md, matrix.json)",
    )
    s.add_argument(
        "--previous",
        type=Path,
        default=None,
        metavar="JSON",
        help="the last published matrix.json: a cell with no record in this run keeps what that page knew "
        "about the same build (same content digest), marked 'as of' its date",
    )

    s = sub.add_parser("bake", help="write docker-bake.json: one target per cell, for `docker buildx bake`")
    s.add_argument("--out", type=Path, default=None, metavar="FILE", help="default: docker-bake.json (repo root)")
    s.add_argument(
        "--cache-repo",
        default=None,
        metavar="REPO",
        help="registry repository for cache-from/cache-to (default: each cell's own)",
    )
    s.add_argument("--json", action="store_true", help="also print the file")

    s = sub.add_parser("sandbox", help="the local Docker engine, registry and stand-in base images")
    s.add_argument(
        "action",
        choices=("up", "status", "down", "browser"),
        help="up: start (install if missing); down: stop; browser: install Debian's chromium if missing (the "
        "page's tests load it there) and print its path",
    )
    s.add_argument("--json", action="store_true", help="machine-readable status")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.started = time.perf_counter()  # `generate` reports seconds from here, matrix loading included
    try:
        if args.command == "sandbox":
            return cmd_sandbox(args)
        fleet = Fleet.for_profile(load_profile(args.profile, args.matrix))
        return int(COMMANDS[args.command](fleet, args))
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head` is a normal way to read a long list
        return 0


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _extensions(cell_json: dict[str, Any]) -> str:
    return " ".join(f"{e['name']}=={e['version']}" for e in cell_json["extensions"]) or "-"


def cmd_list(fleet: Fleet, args: argparse.Namespace) -> int:
    summaries = [cell_summary(c) for c in fleet.cells]
    if args.json:
        _print_json({"matrix": str(fleet.matrix.file), "cells": summaries})
        return 0
    rows = []
    for s in summaries:
        t = s["torch"]
        rows.append(
            [
                s["index"],
                s["slug"],
                s["base_image"],
                s["python"],
                s["cuda"] or "none",
                f"{t['torch']}/{t['torchvision']}/{t['torchaudio']}",
                t["index"],
                t["cxx11_abi"],
                _extensions(s),
                ",".join(a.removeprefix("GPU_") for a in s["accelerators"]),
            ]
        )
    print(
        table(
            [
                "#",
                "slug",
                "base image",
                "py",
                "cuda",
                "torch/vision/audio",
                "index",
                "abi",
                "extensions",
                "accelerators",
            ],
            rows,
        )
    )
    print(f"\n{len(rows)} cells from {fleet.matrix.file}")
    return 0


def cmd_show(fleet: Fleet, args: argparse.Namespace) -> int:
    (cell,) = select(fleet.cells, [args.cell])[:1]
    (rendered,) = fleet.render([cell])
    info = {
        **cell_summary(cell),
        "digest": rendered.digest,
        "tag": rendered.tag,
        "ref": rendered.ref,
        "status": rendered.status,
        "checks": [{"id": c.id, "title": c.title, "status": c.status, "detail": c.detail} for c in rendered.checks],
        "wheels": [
            {"filename": a.filename, "url": a.url, "sha256": a.sha256} for e in cell.extensions for a in e.artifacts
        ],
    }
    if args.json:
        _print_json(info)
        return 0
    t = info["torch"]
    print(f"cell {cell.index}: {cell.slug}  [{rendered.status}]")
    print(f"  base       {cell.base_image} ({cell.base}, {cell.variant}); CUDA {cell.cuda}; Python {cell.python}")
    print(
        f"  torch      {t['torch']} / torchvision {t['torchvision']} / torchaudio {t['torchaudio']} "
        f"from {t['index']} (CUDA {t['cuda']}, C++11 ABI {t['cxx11_abi']}, NCCL {t['nccl']})"
    )
    for e in cell.extensions:
        print(f"  extension  {e.name} {e.version} ({e.build}): {e.problem or e.abi_note}")
    for w in info["wheels"]:
        print(f"  wheel      {w['filename']}  {w['url'] or '(package index; resolved by lock)'}")
    print(f"  blessed    {', '.join(cell.accelerators)} on {cell.cloud} (host driver {cell.host_driver})")
    print(f"  image      {rendered.ref}")
    print(f"  digest     {rendered.digest}\n")
    print(summary_table(list(rendered.checks)))
    return 0


def cmd_check(fleet: Fleet, args: argparse.Namespace) -> int:
    cells = select(fleet.cells, args.cells)
    results = [(c, fleet.checks(c)) for c in cells]
    counts = Counter(worst([k.status for k in checks]) for _, checks in results)
    if args.json:
        _print_json(
            {
                "cells": [
                    {
                        "index": c.index,
                        "slug": c.slug,
                        "status": worst([k.status for k in checks]),
                        "checks": [k.__dict__ for k in checks],
                    }
                    for c, checks in results
                ],
                "counts": dict(counts),
            }
        )
    else:
        for cell, checks in results:
            print(f"# {cell.index} {cell.slug}: {worst([k.status for k in checks])}\n")
            print(summary_table(checks))
        print(", ".join(f"{counts.get(s, 0)} {s}" for s in ("OK", "WARN", "FAIL", "N/A")) + f" of {len(cells)} cells")
    return 1 if counts.get(FAIL) else 0


def cmd_matrix(fleet: Fleet, args: argparse.Namespace) -> int:
    include = [
        {
            "index": r.cell.index,
            "slug": r.cell.slug,
            "cloud": r.cell.cloud,
            "variant": r.cell.variant,
            "base": r.cell.base,
            "torch": r.cell.torch,
            "stack": r.cell.stack,
            "digest": r.digest,
            "tag": r.tag,
            "status": r.status,
        }
        for r in fleet.render()
    ]
    _print_json({"include": include})
    return 0


def cmd_generate(fleet: Fleet, args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else fleet.profile.images
    rendered = fleet.render()
    failing = [r for r in rendered if r.status == FAIL]
    if failing:  # one line per failing cell, in matrix order; nothing is written
        for r in failing:
            print(f"error: {failure_error(r, fleet.matrix)}", file=sys.stderr)
        return 2
    desired = desired_files(rendered)
    changes = plan(out, desired)
    lines = _group_changes(changes, out)  # before apply: removed directories are still there to describe
    if not args.check:
        apply(changes, out, desired)
    elapsed = time.perf_counter() - args.started
    writes = sum(1 for c in changes if c.action == "write")
    removes = len(changes) - writes
    if args.json:
        _print_json(
            {
                "out": str(out),
                "cells": len(rendered),
                "check": args.check,
                "stale": bool(changes),
                "written": 0 if args.check else writes,
                "removed": 0 if args.check else removes,
                "changes": [{"action": c.action, "path": str(c.path), "reason": c.reason} for c in changes],
                "seconds": round(elapsed, 3),
            }
        )
    else:
        for line in lines:
            print(("stale: " if args.check else "") + line)
        if args.check:
            verdict = f"{len(changes)} stale; run `python -m generator generate`" if changes else "up to date"
            print(f"{out}: {len(rendered)} cells, {verdict}")
        else:
            print(f"{out}: {len(rendered)} cells, {writes} files written, {removes} removed in {elapsed:.2f} s")
    return 1 if args.check and changes else 0


def _group_changes(changes: list[Change], out: Path) -> list[str]:
    """One line per cell directory: `images/<slug>/: new Dockerfile, cell.json ...`."""
    groups: dict[str, list[str]] = {}
    for c in changes:
        rel = c.path.relative_to(out).as_posix()
        top, _, rest = rel.partition("/")
        key = f"{out / top}/" if rest or c.path.is_dir() else str(c.path)
        label = {
            "new": "new",
            "changed": "changed",
            "cell left the matrix": "removed (cell left the matrix)",
            "no longer generated": "removed",
        }[c.reason]
        groups.setdefault(key, []).append(f"{label} {rest}" if rest else label)
    lines = []
    for key, items in groups.items():
        if len(items) > 4 and all(i.startswith("new ") for i in items):
            items = [f"new ({len(items)} files)"]
        lines.append(f"{key}: {', '.join(items)}")
    return lines


def cmd_lock(fleet: Fleet, args: argparse.Namespace) -> int:
    outcome = run_lock(fleet)
    state = "written" if outcome.written else "unchanged"
    print(f"{fleet.profile.lock}: {outcome.entries} files locked, {state}")
    for failure in outcome.failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if outcome.failures else 0


def cmd_fetch(fleet: Fleet, args: argparse.Namespace) -> int:
    wanted = {c.slug for c in select(fleet.cells, args.cells)}
    everything = [r for r in fleet.render() if r.status != FAIL]  # as generate: FAILing cells are not written
    write_images(everything, fleet.profile.images)
    rendered = [r for r in everything if r.cell.slug in wanted]
    staged = 0
    for r in rendered:
        staged += len(stage_cell(r, fleet.profile.images / r.cell.slug))
    print(f"{len(rendered)} cells: {staged} files verified and staged under {fleet.profile.images}")
    return 0


def cmd_build(fleet: Fleet, args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise FleetError("-j must be at least 1")
    everything = fleet.render()
    wanted = {c.slug for c in select(fleet.cells, args.cells)}
    selected = [r for r in everything if r.cell.slug in wanted]
    results = run_build(fleet, selected, everything, jobs=args.jobs, wait=not args.no_wait)
    if args.json:
        _print_json({"profile": fleet.profile.name, "results": [r.record() for r in results]})
    else:
        print(summary(results))
    return 1 if any(r.status != "built" and r.status != "up to date" for r in results) else 0


def _selected(fleet: Fleet, cells: list[str]) -> list[RenderedCell]:
    wanted = {c.slug for c in select(fleet.cells, cells)}
    return [r for r in fleet.render() if r.cell.slug in wanted]


def cmd_probe(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.probe import probe_cells, report

    selected = [r for r in _selected(fleet, args.cells) if r.status != FAIL]  # FAILing cells are never built
    results = probe_cells(fleet, selected, gpus=args.gpus, timeout=args.timeout, say=to_stderr)
    if args.json:
        _print_json({"profile": fleet.profile.name, "results": [r.record() for r in results]})
    else:
        print(report(results))
    return 1 if any(r.status == FAIL for r in results) else 0


def cmd_bench(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.bench import bench_image, load_reference, write_bench_record
    from generator.bench import table as bench_table
    from generator.probe import detect_gpus

    client = connect()
    gpus = detect_gpus(client) if args.gpus is None else args.gpus
    reference = load_reference()
    results = []
    for r in (r for r in _selected(fleet, args.cells) if r.status != FAIL):
        print(f"bench {r.cell.slug}: {r.ref}{' (GPUs)' if gpus else ' (no GPU)'}", file=sys.stderr, flush=True)
        result = bench_image(
            client,
            r.cell.slug,
            r.ref,
            r.digest,
            gpus=gpus,
            quick=args.quick,
            reference=reference,
            python=r.cell.python_path,
        )
        write_bench_record(paths.results_dir(), fleet.profile.name, result)
        results.append(result)
    if args.json:
        _print_json({"profile": fleet.profile.name, "results": [r.record() for r in results]})
    else:
        for result in results:
            print(f"# {result.slug}: {result.status}{f' ({result.error})' if result.error else ''}\n")
            print(bench_table(result.rows))
    return 1 if any(r.status == "error" for r in results) else 0


def cmd_push(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.push import exit_status, run_push
    from generator.push import summary as push_summary

    results = run_push(fleet.profile.name, _selected(fleet, args.cells), atomic=args.atomic, wait=not args.no_wait)
    print(push_summary(results))
    return exit_status(results)


def cmd_register(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.registering import run_register

    outcomes = run_register(
        fleet.profile.name,
        _selected(fleet, args.cells),
        cli=args.cli,
        workspace=args.workspace_profile,
        scope=args.scope,
        key=args.key,
        timeout_minutes=args.timeout_minutes,
        force=args.force,
    )
    if args.json:
        _print_json({"profile": fleet.profile.name, "outcomes": [o.as_record() for o in outcomes]})
    else:
        print(
            table(["cell", "status", "tries", "detail"], [[o.slug, o.status, o.attempts, o.detail] for o in outcomes])
        )
    return 1 if any(o.failed for o in outcomes) else 0


def _images_dir(fleet: Fleet) -> str:
    """The images directory as CI and bake see it: relative to the repository root when inside it."""
    images = fleet.profile.images.resolve()
    return images.relative_to(ROOT).as_posix() if images.is_relative_to(ROOT) else images.as_posix()


def cmd_plan(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.plan import github_outputs, http_exists, plan, registry_exists

    exists = http_exists() if args.via == "http" else registry_exists(connect())
    only = {c.slug for c in select(fleet.cells, args.cells)} if args.cells else None
    result = plan(fleet.render(), exists, force=args.force, only=only, images_dir=_images_dir(fleet))
    if args.github_output is not None:
        with args.github_output.open("a", encoding="utf-8") as fh:
            fh.write(github_outputs(result))
    if args.json:
        _print_json(result)
    else:
        for cell in result["include"]:
            print(f"build    {cell['slug']}")
        for cell in result["skipped"]:
            print(f"skip     {cell['slug']}: {cell['reason']}")
        for cell in result["refused"]:
            print(f"refused  {cell['slug']}: {cell['reason']}")
        print(
            f"{len(result['include'])} to build, {len(result['skipped'])} in the registry, "
            f"{len(result['refused'])} refused"
        )
    return 0


def _read_previous(path: Path) -> dict[str, Any]:
    from generator.catalogue import CatalogueError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read the previous page: {exc.strerror}") from None
    except ValueError as exc:
        raise CatalogueError(f"{path}: the previous page is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogueError(f"{path}: the previous page is not a JSON object")
    return data


def cmd_publish(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.catalogue import Records, carry_forward, catalogue
    from generator.publish import write_site

    profile = fleet.profile.name
    out = args.out if args.out is not None else paths.results_dir() / profile / "site"
    records = Records(paths.results_dir(), profile, paths.state_dir() / "register")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data = catalogue(_selected(fleet, args.cells), records, generated_at=stamp)
    if args.previous is not None:
        data = carry_forward(data, _read_previous(args.previous))
    written = write_site(out, data)
    n = data["counts"]
    print(
        f"{n['cells']} cells: {n['probed_ok']} probed OK ({n['probed_on_gpu']} on a GPU), {n['benchmarked']} "
        f"benchmarked, {n['pushed']} pushed, {n['registered']} registered"
    )
    for path in written:
        print(f"wrote {path}")
    print(f"the page: {written[0].resolve().as_uri()}")
    return 0


def cmd_bake(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.bake import bake_file, dumps, write_bake

    data = bake_file(fleet.render(), fleet.profile.images, cache=args.cache_repo, root=ROOT)
    out = args.out if args.out is not None else ROOT / "docker-bake.json"
    written = write_bake(out, data)
    if args.json:
        print(dumps(data), end="")
    else:
        print(f"{out}: {len(data['target'])} targets, {'written' if written else 'unchanged'}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Services first (engine, registry), then on `up` the stand-in base images the sandbox builds FROM."""
    from generator.sandbox import services
    from generator.sandbox.bases import ensure_bases

    say = (lambda line: None) if args.json else print  # with --json, progress goes nowhere
    if args.action == "browser":
        path = services.browser(progress=say)
        if args.json:
            _print_json({"chromium": path})
        else:
            print(f"chromium: {path}")
        return 0
    if args.action == "up":
        states = services.up(progress=say)
        stand_ins = [(s.ref, outcome) for s, outcome in ensure_bases(connect(), progress=say)]
    elif args.action == "status":
        states, stand_ins = services.status(), []
    else:
        states, stand_ins = services.down(progress=say), []
    if args.json:
        _print_json(
            {
                "services": [s.as_json() for s in states],
                "stand_ins": [{"ref": ref, "outcome": outcome} for ref, outcome in stand_ins],
            }
        )
    else:
        for s in states:
            print(s.line())
    return 0 if args.action == "down" or all(s.running for s in states) else 1


COMMANDS = {
    "list": cmd_list,
    "show": cmd_show,
    "check": cmd_check,
    "matrix": cmd_matrix,
    "generate": cmd_generate,
    "lock": cmd_lock,
    "fetch": cmd_fetch,
    "build": cmd_build,
    "probe": cmd_probe,
    "bench": cmd_bench,
    "push": cmd_push,
    "register": cmd_register,
    "plan": cmd_plan,
    "bake": cmd_bake,
    "publish": cmd_publish,
}
