"""The CLI's push step: one locked push run per profile with today's UTC date, its summary and exit status.

Exit status 2 (a service that cannot be reached) wins over 1, so that a caller can tell a registry that is
down from cells that failed or were refused.
"""

from __future__ import annotations

import datetime

from generator.progress import to_stderr
from generator.release.push import PushCell, PushResult, push
from generator.release.pushprogress import Say
from generator.render.renderer import RenderedCell
from generator.status import Pushed
from generator.tables import table


def run_push(
    profile: str,
    selected: list[RenderedCell],
    *,
    atomic: bool,
    progress: Say = to_stderr,
    date: datetime.date | None = None,
    wait: bool = True,
) -> list[PushResult]:
    """`python -m generator push [CELL...] [--atomic]`: one push run per profile at a time, today's UTC date."""
    from generator.build.runlock import fleet_lock
    from generator.engine import connect

    with fleet_lock("push", profile, wait=wait, progress=progress):
        return push(
            [PushCell.of(r) for r in selected],
            connect(),
            profile=profile,
            atomic=atomic,
            date=date or datetime.datetime.now(datetime.UTC).date(),
            progress=progress,
        )


def summary(results: list[PushResult]) -> str:
    rows = [[r.index, r.slug, r.status, r.attempts, (r.repo_digest or "")[:19], ", ".join(r.tags)] for r in results]
    lines = [table(["#", "cell", "status", "tries", "repo digest", "tags"], rows)]
    lines += [f"{r.slug} {r.status}: {r.reason}" for r in results if r.reason]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append(", ".join(f"{n} {status}" for status, n in counts.items()))
    down = sorted({r.unreachable for r in results if r.unreachable})
    if down:
        lines.append(f"could not reach {', '.join(down)}")
    return "\n".join(lines)


def exit_status(results: list[PushResult]) -> int:
    """0 when every selected cell was pushed; 2 when a registry could not be reached; 1 otherwise."""
    if any(r.unreachable for r in results):
        return 2
    return 0 if all(r.status == Pushed.PUSHED for r in results) else 1
