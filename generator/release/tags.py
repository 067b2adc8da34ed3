"""The tags an image is pushed under: one immutable content-digest tag plus moving aliases.

- `<slug>-<12 hex>` (immutable): the content digest names exactly one build; it never moves.
- `<slug>` (moving): the newest push of the cell.
- `<slug>-<yyyymmdd>` (moving within a day): the newest push of the cell on that (UTC) date.

Pure: no clock, no I/O. The caller passes the date (the CLI passes today's UTC date), so the same inputs
give the same tags everywhere. Every tag is checked against the OCI tag grammar; a slug too long for it
is an error, never silently truncated (two cells truncated alike would share a tag).
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from generator.render.renderer import image_tag

# The OCI distribution spec's tag grammar: at most 128 characters.
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST = re.compile(r"(?:sha256:)?[0-9a-f]{64}")


@dataclass(frozen=True)
class Tags:
    immutable: str  # <slug>-<12 hex>: never moves
    aliases: tuple[str, ...]  # (<slug>, <slug>-<yyyymmdd>): moved by every push

    @property
    def all(self) -> tuple[str, ...]:
        """The immutable tag first, then the aliases: the order they are pushed in."""
        return (self.immutable, *self.aliases)


def tags_for(slug: str, digest: str, date: datetime.date) -> Tags:
    """The tags of a cell's image; ValueError if the digest is not a sha256 or a tag would not be valid."""
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise ValueError(f"not a sha256 content digest: {digest!r}")
    if not isinstance(date, datetime.date):
        raise ValueError(f"not a date: {date!r}")
    immutable = image_tag(slug, digest)
    aliases = (slug, f"{slug}-{date:%Y%m%d}")
    for tag in (immutable, *aliases):
        check_tag(tag)
    return Tags(immutable=immutable, aliases=aliases)


def check_tag(tag: str) -> str:
    """The tag itself if the OCI grammar allows it; ValueError (saying why) otherwise."""
    if not isinstance(tag, str) or not TAG.fullmatch(tag):
        why = (
            "longer than 128 characters"
            if isinstance(tag, str) and len(tag) > 128
            else "not [A-Za-z0-9_][A-Za-z0-9._-]*"
        )
        raise ValueError(f"invalid image tag {tag!r}: {why}")
    return tag
