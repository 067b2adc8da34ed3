"""The status words that pass between stages, one enum each, so a misspelt status is an error, not a silent
miss. StrEnum: each member IS its string, so records (JSON), the page and comparisons with what an older
record holds keep working unchanged."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """A check's outcome: in the compatibility table, the probe's table, the gate."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    NA = "N/A"


class Built(StrEnum):
    """What `build` did with a cell (and what a sandbox stand-in base did)."""

    BUILT = "built"
    UP_TO_DATE = "up to date"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Pushed(StrEnum):
    """What `push` did with a cell."""

    PUSHED = "pushed"
    REFUSED = "refused"  # the gate: no passing build and probe record for this digest
    FAILED = "failed"
    HELD = "held"  # --atomic: another cell kept this one back


class Promoted(StrEnum):
    """What `promote` did with a candidate."""

    PROMOTED = "promoted"
    REFUSED = "refused"  # the gate: no passing probe record for this manifest, or no candidate
    FAILED = "failed"
    HELD = "held"  # --atomic: another cell kept this one back


class Signed(StrEnum):
    """What `sign` (or promote's signing) and `verify` found for a released image."""

    SIGNED = "signed"  # a signature was added (or promote found a good one already there)
    VERIFIED = "verified"  # every signature checked good against the public key
    INVALID = "invalid"  # a signature not made by the key, or naming another image
    UNSIGNED = "unsigned"  # no signature at all
    FAILED = "failed"  # not promoted, or the registry could not be asked


class Registered(StrEnum):
    """What `register` did with a pushed image."""

    REGISTERED = "registered"
    CACHED = "cached"  # the CLI said the workspace already had it
    ALREADY = "already registered"  # our ledger had it: no CLI call
    FAILED = "failed"


# The gate's rules, stated once: a build that produced the image, a probe that did not FAIL.
BUILD_PASSED = frozenset({Built.BUILT, Built.UP_TO_DATE})
PROBE_PASSED = frozenset({Verdict.OK, Verdict.WARN, Verdict.NA})
