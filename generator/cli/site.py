"""`publish`: the compatibility page."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from generator import paths
from generator.cli.common import selected
from generator.clock import utc_stamp
from generator.fleet import Fleet
from generator.release.registration import Ledger
from generator.spec.userfiles import read_bounded

PREVIOUS_MAX_BYTES = 64 << 20  # a published page of a thousand cells is a few MiB


def _read_previous(path: Path) -> dict[str, Any]:
    from generator.site.catalogue import CatalogueError

    try:
        data = json.loads(read_bounded(path, PREVIOUS_MAX_BYTES))  # not /dev/zero, a FIFO
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read the previous page: {exc.strerror}") from None
    except ValueError as exc:
        raise CatalogueError(f"{path}: the previous page is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogueError(f"{path}: the previous page is not a JSON object")
    return data


def cmd_publish(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.site.accounting import copy_sboms
    from generator.site.catalogue import Records, carry_forward, catalogue
    from generator.site.publish import write_site

    profile = fleet.profile.records
    out = args.out if args.out is not None else paths.results_dir() / profile / "site"
    records = Records(paths.results_dir(), profile, Ledger.folder())
    stamp = utc_stamp()
    data = catalogue(selected(fleet, args.cells), records, generated_at=stamp)
    if args.previous is not None:
        data = carry_forward(data, _read_previous(args.previous))
    written = write_site(out, data)
    copy_sboms(out, data["cells"])
    n = data["counts"]
    print(
        f"{n['cells']} cells: {n['probed_ok']} probed OK ({n['probed_on_gpu']} on a GPU), {n['benchmarked']} "
        f"benchmarked, {n['pushed']} pushed to staging, {n['promoted']} promoted, {n['registered']} registered"
    )
    for path in written:
        print(f"wrote {path}")
    print(f"the page: {written[0].resolve().as_uri()}")
    return 0
