"""`register`: the pushed images of a fleet, handed to the registration adapters.

A cell is registered only from its push record (same content digest, status pushed): the platform needs
the registry's manifest digest of the immutable tag, which only the push knows.
"""

from __future__ import annotations

from pathlib import Path

from generator import paths
from generator.progress import to_stderr
from generator.release.registration import FAILED, Ledger, Outcome, Target, pick_adapter, register
from generator.render.renderer import RenderedCell
from generator.results import read_record, record_path, write_record
from generator.status import Pushed

STEP = "register"


def target_for(rendered: RenderedCell, profile: str, results: Path) -> Target | str:
    """The cell's registration target, or why there is none."""
    record = read_record(record_path(results, profile, "push", rendered.cell.slug))
    if record is None:
        return "not pushed (no push record)"
    if record.get("digest") != rendered.digest:
        return "not pushed at this content digest (the push record is for another build)"
    if record.get("status") != Pushed.PUSHED or not record.get("repo_digest"):
        return f"not pushed ({record.get('status')}: {record.get('reason') or 'no repo digest'})"
    return Target(ref=rendered.ref, manifest_digest=str(record["repo_digest"]), slug=rendered.cell.slug)


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
) -> list[Outcome]:
    results = paths.results_dir()
    outcomes: list[Outcome] = []
    targets: list[Target] = []
    for rendered in selected:
        found = target_for(rendered, profile, results)
        if isinstance(found, Target):
            targets.append(found)
        else:
            outcomes.append(Outcome(rendered.cell.slug, rendered.ref, FAILED, found, 0, 0.0, "-"))
    if targets:
        adapter = pick_adapter(cli, workspace, scope=scope, key=key, timeout_minutes=timeout_minutes)
        outcomes += register(targets, adapter, Ledger.for_profile(workspace), progress=to_stderr, force=force)
    for outcome in outcomes:
        write_record(record_path(results, profile, STEP, outcome.slug), outcome.as_record())
    order = {r.cell.slug: r.cell.index for r in selected}
    return sorted(outcomes, key=lambda o: order.get(o.slug, 0))
