"""Which images a workspace has registered, so that a re-run registers only what is new.

One JSON file per workspace profile (default `<state>/register/<profile>.json`):

    {"schema": 1, "images": {"sha256:<manifest>": {"ref", "slug", "registered_at", "cli"}}}

Keyed by the registry's manifest digest: the same bytes under the same ref are never registered twice. The
ref is kept and compared too, because the platform registers a tag: the same manifest under a new ref (a
renamed registry) is registered again, and its entry then names the new ref. Every success is written at
once (temp file, fsync, rename), under a file lock that merges with concurrent runs, so a killed run loses
nothing it finished. An unreadable ledger is an error, never silently empty (that would re-register all).
"""

from __future__ import annotations

import datetime
import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from generator import paths
from generator.atomic import write_atomic
from generator.clock import utc_stamp
from generator.release.registration.base import DIGEST, PROFILE, RegisterError, Target

SCHEMA = 1
FIELDS = ("ref", "slug", "registered_at", "cli")


@dataclass(frozen=True)
class Entry:
    ref: str
    slug: str
    registered_at: str  # UTC, ISO 8601
    cli: str


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_profile(cls, profile: str) -> Ledger:
        if not PROFILE.fullmatch(profile):
            raise RegisterError(f"workspace profile must be [A-Za-z0-9_.-] and not start with '-', got {profile!r}")
        return cls(cls.folder() / f"{profile}.json")

    @staticmethod
    def folder() -> Path:
        """Where every workspace profile's ledger is: <state>/register/."""
        return paths.state_dir() / "register"

    def entries(self) -> dict[str, Entry]:
        """Read from disk every time: another run may have added entries since."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise RegisterError(f"{self.path}: cannot read the registration ledger: {exc.strerror}") from None
        return self._parse(text)

    def done(self, target: Target) -> Entry | None:
        """The entry that makes registering `target` unnecessary: same manifest, same ref."""
        entry = self.entries().get(target.manifest_digest)
        return entry if entry is not None and entry.ref == target.ref else None

    def record(self, target: Target, cli: str, *, now: datetime.datetime | None = None) -> Entry:
        when = utc_stamp(now)
        entry = Entry(ref=target.ref, slug=target.slug, registered_at=when, cli=cli)
        with self._locked():
            entries = self.entries()
            entries[target.manifest_digest] = entry
            self._write(entries)
        return entry

    def forget(self, digest: str) -> bool:
        """Drop one digest (rotated credentials need a new registration); whether it was there."""
        with self._locked():
            entries = self.entries()
            if entries.pop(digest, None) is None:
                return False
            self._write(entries)
        return True

    def _parse(self, text: str) -> dict[str, Entry]:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise self._bad(f"not JSON ({exc})") from None
        images = doc.get("images") if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(images, dict):
            raise self._bad(f'expected {{"schema": {SCHEMA}, "images": {{...}}}}')
        return {digest: self._entry(digest, value) for digest, value in images.items()}

    def _entry(self, digest: str, value: Any) -> Entry:
        if not DIGEST.fullmatch(digest):
            raise self._bad(f"{digest!r} is not a manifest digest")
        if not isinstance(value, dict) or not all(isinstance(value.get(field), str) for field in FIELDS):
            raise self._bad(f"the entry of {digest} needs the strings {', '.join(FIELDS)}")
        return Entry(**{field: value[field] for field in FIELDS})

    def _bad(self, why: str) -> RegisterError:
        return RegisterError(f"{self.path}: not a registration ledger: {why}; move it aside to register again")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name(f"{self.path.name}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, entries: dict[str, Entry]) -> None:
        doc = {"schema": SCHEMA, "images": {digest: asdict(entries[digest]) for digest in sorted(entries)}}
        data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
        write_atomic(self.path, data, durable=True)  # on disk before anyone trusts it: a lost one re-registers
