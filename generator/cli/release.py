"""Publishing images: push, register."""

from __future__ import annotations

import argparse
import datetime
from typing import TYPE_CHECKING

from generator import paths
from generator.cli.common import print_json, selected
from generator.fleet import Fleet
from generator.tables import table

if TYPE_CHECKING:
    from generator.release.distribution import Registry
    from generator.release.promote import PromoteCell


def cmd_push(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.release.pushstep import exit_status, run_push
    from generator.release.pushstep import summary as push_summary

    results = run_push(fleet.profile.records, selected(fleet, args.cells), atomic=args.atomic, wait=not args.no_wait)
    if args.json:
        print_json({"profile": fleet.profile.name, "results": [r.record() for r in results]})
    else:
        print(push_summary(results))
    return exit_status(results)


def cmd_promote(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.release.promote import PromoteCell, exit_status, promote, summary
    from generator.resolve.checks import FAIL

    chosen = [PromoteCell.of(r) for r in selected(fleet, args.cells) if r.status != FAIL]
    today = datetime.datetime.now(datetime.UTC).date()
    from generator.release.accounting import accounting_gate

    results_dir, profile = paths.results_dir(), fleet.profile.records

    def accounting(cell: PromoteCell, registry: Registry) -> tuple[bool, str]:
        return accounting_gate(results_dir, profile, cell, fleet.matrix, registry, today)

    from generator.cli.sign import fleet_signing
    from generator.sign.step import for_promote

    signing = fleet_signing(fleet, private=True)  # a key that cannot be read stops promote before it starts
    signer = for_promote(signing, results_dir, profile) if signing is not None else None
    results = promote(chosen, profile=profile, atomic=args.atomic, date=today, accounting=accounting, signer=signer)
    if args.json:
        print_json({"profile": fleet.profile.name, "results": [r.record() for r in results]})
    else:
        print(summary(results))
    return exit_status(results)


def cmd_register(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.cli.sign import fleet_signing
    from generator.release.registration.fleet import run_register
    from generator.sign.step import for_register

    signing = fleet_signing(fleet, private=False)  # where signing is configured, nothing unsigned is registered
    outcomes = run_register(
        fleet.profile.records,
        selected(fleet, args.cells),
        cli=args.cli,
        workspace=args.workspace_profile,
        scope=args.scope,
        key=args.key,
        timeout_minutes=args.timeout_minutes,
        force=args.force,
        verify=for_register(signing) if signing is not None else None,
    )
    if args.json:
        print_json({"profile": fleet.profile.name, "outcomes": [o.as_record() for o in outcomes]})
    else:
        print(
            table(["cell", "status", "tries", "detail"], [[o.slug, o.status, o.attempts, o.detail] for o in outcomes])
        )
    return 1 if any(o.failed for o in outcomes) else 0
