"""Retention's plan, pure: which registry tags go, and which stay because something kept points at them."""

from __future__ import annotations

import datetime

from generator.release.retention import Tag, plan

TODAY = datetime.date(2026, 12, 2)
S = "aws-runtime-torch2.13"
R, ST = "team/air", "team/air-staging"


def _day(days_ago: int) -> str:
    return f"{S}-{TODAY - datetime.timedelta(days=days_ago):%Y%m%d}"


def _digest(n: int) -> str:
    return f"sha256:{n:064x}"


def test_dated_aliases_go_when_old_and_beyond_the_newest_k_unless_something_kept_points_at_them() -> None:
    release = [
        Tag(R, S, _digest(0)),  # the moving alias
        Tag(R, _day(0), _digest(0)),
        Tag(R, _day(40), _digest(1)),  # old, but among the newest 2
        Tag(R, _day(45), _digest(4)),  # old, beyond 2, registered
        Tag(R, _day(50), _digest(2)),  # old, beyond 2: goes
        Tag(R, f"{S}-{'2' * 12}", _digest(2)),  # its immutable tag keeps nothing: goes with the manifest
        Tag(R, _day(60), _digest(3)),  # goes, and its SBOM and signatures with it
        Tag(R, f"sha256-{_digest(3)[7:]}.sbom", _digest(30)),
        Tag(R, f"sha256-{_digest(3)[7:]}.sig", _digest(31)),
        Tag(R, f"sha256-{_digest(0)[7:]}.sig", _digest(32)),  # the signatures of a kept manifest stay
        Tag(R, _day(70), _digest(0)),  # old, but its manifest is the moving alias's
        Tag(R, f"{S}-20261301", _digest(5)),  # not a date: not a dated alias, someone's tag
        Tag(R, "other-cell-20200101", _digest(6)),  # not a cell of this matrix: never touched
    ]
    result = plan(release, [], [S], [_digest(4)], today=TODAY, days=30, keep=2)
    assert [(d.tag, d.digest) for d in result.delete] == [
        (_day(50), _digest(2)),
        (_day(60), _digest(3)),
        (f"sha256-{_digest(3)[7:]}.sbom", _digest(30)),
        (f"sha256-{_digest(3)[7:]}.sig", _digest(31)),
    ]
    assert "older than 30 days, not in the newest 2" in result.delete[0].why
    assert result.delete[-1].why == f"the signatures of {R}:{_day(60)}"
    assert result.manifests() == [(R, _digest(2)), (R, _digest(3)), (R, _digest(30)), (R, _digest(31))]
    spared = {s.tag: s.why for s in result.spared}
    assert set(spared) == {_day(45), _day(70)}
    assert spared[_day(45)].endswith("kept: its manifest is also registered")
    assert spared[_day(70)].endswith(f"kept: its manifest is also {R}:{S}")


def test_staging_candidates_go_by_their_creation_date_and_one_sharing_a_kept_manifest_stays() -> None:
    old = TODAY - datetime.timedelta(days=31)
    staging = [
        Tag(ST, f"{S}-{'a' * 12}", _digest(10), old),
        Tag(ST, f"{S}-{'b' * 12}", _digest(11), TODAY),
        Tag(ST, f"{S}-{'c' * 12}", _digest(0), old),  # promoted: the release alias points at it
        Tag(ST, f"{S}-{'d' * 12}", _digest(12), None),  # no creation date: never taken for old
    ]
    result = plan([Tag(R, S, _digest(0))], staging, [S], [], today=TODAY, days=30, keep=7)
    assert [d.tag for d in result.delete] == [f"{S}-{'a' * 12}"]
    assert [s.tag for s in result.spared] == [f"{S}-{'c' * 12}"]


def test_nothing_expires_with_a_long_window() -> None:
    release = [Tag(R, _day(n), _digest(n)) for n in range(0, 100, 10)]
    assert plan(release, [], [S], [], today=TODAY, days=365, keep=0).delete == ()
    assert len(plan(release, [], [S], [], today=TODAY, days=0, keep=0).delete) == 9  # today's is not older
