"""The one timestamp format of records, ledgers, lock files and logs: UTC, whole seconds, `Z`.

Why one helper: records once said local time with an offset (`+0200`) in some files and UTC `Z` in others, so
two records of one night sorted and compared wrongly, and the page showed both forms side by side.
"""

from __future__ import annotations

import datetime


def utc_stamp(now: datetime.datetime | None = None) -> str:
    """`2026-11-29T21:14:07Z`: `now` (default: this moment) in UTC."""
    when = datetime.datetime.now(datetime.UTC) if now is None else now.astimezone(datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_today() -> datetime.date:
    """Today's date in UTC: what retention and dated allowances are judged by, wherever the runner is."""
    return datetime.datetime.now(datetime.UTC).date()


def parse_day(text: str) -> datetime.date:
    """`2027-01-31` (the first ten characters of a stamp will do) as a date; ValueError when it is not one."""
    return datetime.date.fromisoformat(text[:10])


def parse_stamp(text: str) -> datetime.datetime | None:
    """An RFC 3339 stamp as the engine writes it (nanoseconds, `Z`) as an aware UTC datetime; None when it
    is not one. Python's parser takes at most microseconds."""
    head, dot, frac = text.rstrip("Z").partition(".")
    try:
        stamp = datetime.datetime.fromisoformat(head + (f".{frac[:6]}" if dot else ""))
    except ValueError:
        return None
    return stamp.replace(tzinfo=datetime.UTC)
