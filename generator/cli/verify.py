"""Trusting what was built: probe, bench."""

from __future__ import annotations

import argparse
import sys

from generator import paths
from generator.cli.common import print_json, selected
from generator.engine import connect
from generator.fleet import Fleet
from generator.progress import to_stderr
from generator.release.credentials import CredentialSource
from generator.resolve.checks import FAIL


def cmd_probe(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.verify.probe import probe_cells, report

    chosen = [r for r in selected(fleet, args.cells) if r.status != FAIL]  # FAILing cells are never built
    results = probe_cells(fleet, chosen, gpus=args.gpus, timeout=args.timeout, say=to_stderr)
    if args.json:
        print_json({"profile": fleet.profile.name, "results": [r.record() for r in results]})
    else:
        print(report(results))
    return 1 if any(r.status == FAIL for r in results) else 0


def cmd_bench(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.verify.bench import bench_image, load_reference, report, write_bench_record
    from generator.verify.probe import detect_gpus

    client = connect()
    gpus = detect_gpus(client) if args.gpus is None else args.gpus
    reference = load_reference()
    source = CredentialSource()
    results = []
    for r in (r for r in selected(fleet, args.cells) if r.status != FAIL):
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
            source=source,
            say=to_stderr,
        )
        write_bench_record(paths.results_dir(), fleet.profile.records, result)
        results.append(result)
    if args.json:
        print_json({"profile": fleet.profile.name, "results": [r.record() for r in results]})
    else:
        for result in results:
            print(report(result))
    return 1 if any(r.status == "error" for r in results) else 0
