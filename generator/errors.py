"""Errors a user can act on: each one renders as a single line naming the file, line and key path."""

from __future__ import annotations

from pathlib import Path


class FleetError(Exception):
    """Base class: an error the CLI reports in one line and exits with status 2."""

    exit_status = 2


class MatrixError(FleetError):
    """Bad input in a matrix file: `file:line: key.path: message`."""

    def __init__(
        self, message: str, *, file: Path | str | None = None, line: int | None = None, key: str | None = None
    ) -> None:
        self.message = message
        self.file = Path(file) if file is not None else None
        self.line = line
        self.key = key
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        key = f"{self.key}: " if self.key else ""
        # Every kind of line break (\r, \u2028, ...) is folded: the error is one line whatever a key held.
        return " ".join(f"{where}{key}{self.message}".splitlines())


class KnowledgeError(FleetError):
    """A knowledge data file shipped with the generator is inconsistent (a bug in the project)."""
