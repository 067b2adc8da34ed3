"""`register`: the promoted images of a fleet, handed to the registration adapters.

A cell is registered only from its promote record (same content digest, status promoted), and by its
release reference BY DIGEST (`<release repository>@sha256:...`): the manifest that was probed,
benchmarked and promoted, which no later push or alias move can change under the workspace.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from generator import paths
from generator.progress import to_stderr
from generator.release.registration import FAILED, Ledger, Outcome, Target, pick_adapter, register
from generator.render.renderer import RenderedCell
from generator.results import read_record, record_path, write_record
from generator.status import Promoted

STEP = "register"


def target_for(rendered: RenderedCell, profile: str, results: Path) -> Target | str:
    """The cell's registration target, or why there is none."""
    record = read_record(record_path(results, profile, "promote", rendered.cell.slug))
    if record is None:
        return "not promoted (no promote record)"
    if record.get("digest") != rendered.digest:
        return "not promoted at this content digest (the promote record is for another build)"
    digest = record.get("manifest_digest")
    if record.get("status") != Promoted.PROMOTED or not digest:
        return f"not promoted ({record.get('status')}: {record.get('reason') or 'no manifest digest'})"
    return Target(ref=f"{rendered.cell.image}@{digest}", manifest_digest=str(digest), slug=rendered.cell.slug)


def run_register(
    profile: str,
    selected: list[RenderedCell],
    *,
    cli: str | None,
    workspace: str,
    scope: str | None,
    key: str | None,
    timeout_minutes: int,
    force: bool,
    verify: Callable[[Target], str | None] | None = None,
) -> list[Outcome]:
    """Register the promoted cells. `verify` (where signing is configured: generator/sign/step.py
    for_register) is asked first for each image and refuses it with the line it returns."""
    results = paths.results_dir()
    outcomes: list[Outcome] = []
    targets: list[Target] = []
    for rendered in selected:
        found = target_for(rendered, profile, results)
        if isinstance(found, Target) and verify is not None:
            found = verify(found) or found
        if isinstance(found, Target):
            targets.append(found)
        else:
            outcomes.append(Outcome(rendered.cell.slug, rendered.release_ref, FAILED, found, 0, 0.0, "-"))
    if targets:
        adapter = pick_adapter(cli, workspace, scope=scope, key=key, timeout_minutes=timeout_minutes)
        outcomes += register(targets, adapter, Ledger.for_profile(workspace), progress=to_stderr, force=force)
    for outcome in outcomes:
        write_record(record_path(results, profile, STEP, outcome.slug), outcome.as_record())
    order = {r.cell.slug: r.cell.index for r in selected}
    return sorted(outcomes, key=lambda o: order.get(o.slug, 0))
