"""`prune`: retention, listed first and done only with --yes."""

from __future__ import annotations

import argparse
import sys

from generator.cli.common import print_json, selected
from generator.clock import utc_today
from generator.fleet import Fleet

PRUNE_HELP = """\
Lists, and with --yes deletes:
  - dated aliases <slug>-<yyyymmdd> in the release repository older than --days, beyond each cell's
    newest --keep;
  - staging candidates <slug>-<12 hex> whose image was created more than --days ago;
  - with --local: local images of the profile's repositories whose tag no current cell has, and
    wheelhouse cache entries (<state>/wheelhouse) that no profile's lock names.
It never deletes a manifest that the moving alias <slug>, a kept dated alias, a registration (any
workspace's ledger under <state>/register/) or a tag it does not know still points to: the registry
deletes manifests, not tags, so such an expired tag is listed as kept, with the reason. An image's SBOM
(its sha256-<hex>.sbom tag) goes with the image. Registry deletion needs the registry's delete API on
(the sandbox registry has it: storage.delete.enabled).

examples:
  python -m generator --profile sandbox prune                   what would go (nothing is deleted)
  python -m generator --profile sandbox prune --days 14 --keep 3 --yes

exit status: 0 done (or listed); 2 the registry cannot be reached
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "prune",
        help="retention: expired dated aliases and candidates, unreferenced local images and wheelhouse files",
        description=PRUNE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--days", type=int, default=30, metavar="N", help="older than N days (default: 30)")
    s.add_argument("--keep", type=int, default=7, metavar="K", help="dated aliases kept per cell (default: 7)")
    s.add_argument("--local", action="store_true", help="also local images and wheelhouse files")
    s.add_argument("--yes", action="store_true", help="delete what is listed (default: list only)")
    s.add_argument("--json", action="store_true", help="print the plan as JSON")


def _referenced_files() -> set[str]:
    """The sha256 of every file any profile's lock names: the wheelhouse is shared by the profiles."""
    from generator.deps.lockfile import read_lock
    from generator.spec.profiles import available, load_profile

    out: set[str] = set()
    for name in available():
        lock = load_profile(name).lock
        if lock.exists():
            out.update(f.sha256 for f in read_lock(lock).files.values())
    return out


def cmd_prune(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.deps.cache import cache_root
    from generator.release.credentials import CredentialSource
    from generator.release.distribution import Registry
    from generator.release.oci import split_ref
    from generator.release.prune import (
        LocalPlan,
        apply_local,
        apply_registry,
        local_images,
        registered_digests,
        registry_plan,
        wheelhouse_orphans,
    )
    from generator.release.registration import Ledger

    if args.days < 0 or args.keep < 0:
        print("error: --days and --keep are ≥ 0", file=sys.stderr)
        return 2
    cell = fleet.cells[0]
    _, release_repo, _ = split_ref(f"{cell.image}:x")
    _, staging_repo, _ = split_ref(f"{cell.staging_image}:x")
    registry = Registry(fleet.matrix.registry_host, CredentialSource())
    today = utc_today()
    plan = registry_plan(
        registry,
        release_repo,
        staging_repo,
        {c.slug for c in fleet.cells},
        registered_digests(Ledger.folder()),
        today=today,
        days=args.days,
        keep=args.keep,
    )
    local = LocalPlan()
    client = None
    if args.local:
        from generator.engine import connect

        client = connect()
        rendered = selected(fleet, [])  # the current cells' tags: rendering needs the lock, the registry part not
        local = LocalPlan(local_images(client, rendered), wheelhouse_orphans(cache_root(None), _referenced_files()))
    if args.json:
        print_json(
            {
                "delete": [vars(d) for d in plan.delete],
                "kept": [vars(s) for s in plan.spared],
                "local_images": local.images,
                "wheelhouse": [str(p) for p in local.wheelhouse],
                "deleted": args.yes,
            }
        )
    else:
        verb = "deleting" if args.yes else "would delete"
        for d in plan.delete:
            print(f"{verb} {d.repo}:{d.tag} ({d.digest[:19]}…): {d.why}")
        for s in plan.spared:
            print(f"keeping {s.repo}:{s.tag}: {s.why}")
        for ref in local.images:
            print(f"{verb} local image {ref}")
        for path in local.wheelhouse:
            print(f"{verb} wheelhouse entry {path}")
        if not (plan.delete or local.images or local.wheelhouse):
            print("nothing to prune")
        elif not args.yes:
            print("(nothing deleted: add --yes)")
    if args.yes:
        apply_registry(registry, plan)
        if client is not None:
            apply_local(client, local)
    return 0
