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
