"""`python -m generator`: the command line (options, help, exit statuses); the commands are in generator/cli/."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from generator import __version__
from generator.cli import audit as audit_cli
from generator.cli import prune as prune_cli
from generator.cli import sbom as sbom_cli
from generator.cli import sign as sign_cli
from generator.cli import size as size_cli
from generator.errors import FleetError
from generator.fleet import Fleet
from generator.spec.profiles import available, load_profile

EPILOG = """\
examples:
  python -m generator list                      every cell, numbered in matrix order
  python -m generator show 3                    one cell in full (by number or slug)
  python -m generator check 'aws-*'             compatibility tables; exit 1 if any FAIL
  python -m generator matrix --json             GitHub Actions matrix ({"include": [...]})
  python -m generator generate                  write images/ (only files whose bytes change)
  python -m generator generate --check          exit 1 listing what is stale, write nothing
  python -m generator schema                    write docs/matrix.schema.json (editors complete matrix.yaml)
  python -m generator --matrix other.yaml list  use another matrix file
  python -m generator outdated                  newer upstream releases as proposals; exit 1 if any

  python -m generator sandbox up                start the local Docker engine and registry (installs them
                                                if missing) and build the sandbox's stand-in base images
  python -m generator sandbox clean             give back the disk earlier runs filled (images, registry)
  python -m generator --profile sandbox lock    resolve every file the cells COPY (name, URL, sha256)
  python -m generator --profile sandbox build   generate, then build what is out of date (-j N in parallel)
  python -m generator --profile sandbox build 3 'aws-*'   some cells only
  python -m generator --profile sandbox probe   run the probe in each image: the seed's table from real facts
  python -m generator --profile sandbox push --atomic   candidates to staging, only if every cell built and probed OK
  python -m generator --profile sandbox promote --atomic   copy the tested manifests to the release repository
  python -m generator --profile sandbox sbom     a CycloneDX SBOM per image, read inside it
  python -m generator --profile sandbox audit    known vulnerabilities of the locked packages, and the policy
  python -m generator --profile sandbox size     each candidate's size against its blessed image (the size gate)
  python -m generator --profile sandbox verify   every signature of the released images, against the key
  python -m generator --profile sandbox prune    expired dated aliases and candidates (--yes deletes them)
  python -m generator --profile sandbox publish  the compatibility page (HTML, Markdown, JSON) from the records

exit status: 0 ok; 1 a check FAILed, images/ is stale or a cell failed to build; 2 bad input (one line:
file:line: key: why) or a service (Docker engine, registry) that cannot be reached; 130 interrupted
"""

OUTDATED_HELP = """\
Newer upstream releases a person could adopt, as proposals; nothing is edited.
  torch      releases on the package index newer than the matrix's torch rows: a patch of a
             minor that has rows (bump those lines), or a newer minor (add a line; when
             generator/knowledge/torch.yaml does not know the minor, extend it first)
  pin        per torch row, newer flash-attn releases / xformers pins from the knowledge that
             work with that row (offline), where the row's pin is written
  knowledge  xformers releases on the package index newer than generator/knowledge/xformers.yaml
             knows (add the pin, with its source, first)
Only releases with a wheel for the matrix's Python on Linux x86_64 count. The index is pip's:
PIP_INDEX_URL, else pip's configured index-url, else pip's default.

--json prints one object:
  {"profile": str, "python": str, "index": str (no credentials), "count": int,
   "torch": [{"version", "minor", "kind": "patch"|"minor", "known": bool,
              "rows": [torch row keys it bumps], "action": str}],
   "pins": [{"row", "extension", "current", "latest", "newer": [newest first],
             "where": {"file", "line", "key"}}],
   "knowledge": [{"project", "version", "file", "torch": str|null (the torch its wheel
                  pins), "action": str}]}

exit status: 0 nothing outdated; 1 proposals; 2 the package index cannot be reached (or bad input)
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

    s = sub.add_parser(
        "schema",
        help="write docs/matrix.schema.json, the JSON Schema editors check matrix.yaml with",
        description="Generated from the same key definition the loader uses (generator/spec/schema.py). "
        "Each matrix names it on a `# yaml-language-server: $schema=...` line.",
    )
    s.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is stale")
    s.add_argument("--out", type=Path, default=None, metavar="FILE", help="default: docs/matrix.schema.json")

    s = sub.add_parser(
        "lock",
        help="lock every input of the cells: each file they COPY (name, URL, sha256), each base image's digest",
        description="Keeps what the lock has without asking anyone; --refresh asks upstream again (base images "
        "republished under the same tag) and prints what moved and which cells' content digests change.",
    )
    s.add_argument("--refresh", action="store_true", help="ask upstream again for what the lock already has")
    s.add_argument("--dry-run", action="store_true", help="refresh and report, write nothing")

    s = sub.add_parser(
        "outdated",
        help="newer upstream releases the matrix could adopt, as proposals (matrix.yaml is never edited); exit 1 "
        "if any",
        description=OUTDATED_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--json", action="store_true", help="machine-readable output (its shape: above)")

    s = sub.add_parser("fetch", help="download locked files into the cache (sha256-verified) and stage them")
    _cells_arg(s)
    s.add_argument("--no-wait", action="store_true", help="fail at once if a build (or fetch) holds the lock")

    s = sub.add_parser(
        "compile",
        help="compile each source-built extension the cells need once per compile key (or reuse the recorded "
        "wheel: wheelhouse, then registry); `build` does this first",
    )
    _cells_arg(s)
    s.add_argument("--no-wait", action="store_true", help="fail at once if a build holds the lock")
    s.add_argument("--json", action="store_true", help="print the compile record as JSON")

    s = sub.add_parser("build", help="generate, then build every out-of-date cell with the Docker engine")
    _cells_arg(s)
    s.add_argument("-j", "--jobs", type=int, default=2, metavar="N", help="cells built at once (default: 2)")
    s.add_argument("--no-wait", action="store_true", help="fail at once if another build holds the lock")
    s.add_argument(
        "--force", action="store_true", help="build even cells whose image already exists (locally or in the registry)"
    )
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
        help="push candidates: the images whose build and probe passed, to the staging repository (immutable tag)",
        description="Users never see staging: `promote` copies a candidate's tested manifest to the release "
        "repository. Credentials come from AIR_FLEET_REGISTRY_USERNAME / AIR_FLEET_REGISTRY_PASSWORD, else the "
        "Docker config (credential helpers included); never from arguments, never into logs. Exit status 2 when "
        "the registry cannot be reached.",
    )
    _cells_arg(s)
    s.add_argument("--atomic", action="store_true", help="push nothing unless every selected cell passed")
    s.add_argument("--no-wait", action="store_true", help="fail at once if another push holds the lock")
    s.add_argument("--json", action="store_true", help="print the push records as JSON (progress stays on stderr)")

    s = sub.add_parser(
        "promote",
        help="copy tested candidates from staging to the release repository by digest (no rebuild, no engine)",
        description="For each cell: the candidate tag's manifest in the staging repository (digest D) must have "
        "passed the probe (and the GPU probe, where the image carries CUDA) as D itself; its blobs are then "
        "mounted into the release repository and the same manifest bytes written under the immutable tag, and "
        "only then under the moving aliases <slug> and <slug>-<yyyymmdd>. Through the registry API: no Docker "
        "engine, no layer downloaded or uploaded. Re-running completes an interrupted promote. Credentials as for "
        "push. Exit status: 0 all promoted; 1 a cell refused or failed; 2 the registry cannot be reached.",
    )
    _cells_arg(s)
    s.add_argument("--atomic", action="store_true", help="promote nothing unless every selected cell may be")
    s.add_argument("--json", action="store_true", help="print the promote records as JSON (progress on stderr)")

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
        help="also a registry cache (mode=max) at REPO:buildcache-<slug>, for a BuildKit cluster "
        "(always: the inline cache and the group's pushed images, as the builder)",
    )
    s.add_argument("--json", action="store_true", help="also print the file")

    s = sub.add_parser("sandbox", help="the local Docker engine, registry and stand-in base images")
    s.add_argument(
        "action",
        choices=("up", "status", "down", "clean", "browser"),
        help="up: start (install if missing; fails early when the disk is nearly full); down: stop; clean: "
        "remove the images tagged for the sandbox registry, untagged images and the build cache, and empty "
        "the registry the sandbox started (the stand-in bases stay and are pushed again); browser: install "
        "Debian's chromium if missing (the page's tests load it there) and print its path",
    )
    s.add_argument("--json", action="store_true", help="machine-readable status")

    # Accounting for what was built (issue 15): each command defines its own options beside its code.
    sbom_cli.add_parser(sub)
    audit_cli.add_parser(sub)
    size_cli.add_parser(sub)
    prune_cli.add_parser(sub)
    sign_cli.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.started = time.perf_counter()  # `generate` reports seconds from here, matrix loading included
    try:
        if args.command == "sandbox":
            from generator.cli.sandbox import cmd_sandbox

            return cmd_sandbox(args)
        fleet = Fleet.for_profile(load_profile(args.profile, args.matrix))
        module = importlib.import_module(f"generator.cli.{COMMANDS[args.command]}")
        return int(getattr(module, f"cmd_{args.command}")(fleet, args))
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head` is a normal way to read a long list
        return 0


# command -> the module of generator/cli/ that runs it (as cmd_<command>). Imported on use, so that
# `list` or `check` never loads the Docker SDK.
COMMANDS = {
    "list": "inspect",
    "show": "inspect",
    "check": "inspect",
    "matrix": "inspect",
    "generate": "generate",
    "schema": "generate",
    "lock": "build",
    "outdated": "upstream",
    "fetch": "build",
    "compile": "build",
    "build": "build",
    "probe": "verify",
    "bench": "verify",
    "push": "release",
    "promote": "release",
    "register": "release",
    "plan": "ci",
    "bake": "ci",
    "publish": "site",
    "sbom": "sbom",
    "audit": "audit",
    "size": "size",
    "prune": "prune",
    "sign": "sign",
    "verify": "sign",
}
