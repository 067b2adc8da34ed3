"""What the sandbox's services report: one ServiceState each, and the one-line reasons in it and in a
ServiceError, drawn from a service's log (its gist) or an exception (its first line).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ServiceState:
    """One service as `up`, `status` and `down` see it."""

    name: str  # "dockerd" | "registry"
    running: bool
    detail: str  # one line: "running (pid 123, started by the sandbox)", "stopped", or why it is not usable
    address: str | None  # "unix:///var/run/docker.sock" / "127.0.0.1:5000"
    log: Path | None  # where its output goes (None: not started by the sandbox)
    pid: int | None = None  # the process the sandbox started (None: not started by the sandbox)

    def line(self) -> str:
        """One line for humans: name, detail, address, log."""
        where = f"  at {self.address}" if self.address else ""
        log = f"  log {self.log}" if self.log else ""
        return f"{self.name:<9} {self.detail}{where}{log}"

    def as_json(self) -> dict[str, object]:
        """A JSON-ready dict (`--json`)."""
        return {
            "name": self.name,
            "running": self.running,
            "detail": self.detail,
            "address": self.address,
            "log": str(self.log) if self.log else None,
            "pid": self.pid,
        }


def gist(log: Path) -> str:
    """The most telling line of a log's last run: its last error if any, else its last line."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "no log"
    lines = [line for line in text.rpartition("\n--- ")[2].splitlines()[1:] if line.strip()]
    if not lines:
        return "no output"
    errors = [line for line in lines if re.search(r"level=(fatal|error)|\berror\b|\bfailed\b|^E: ", line, re.I)]
    line = (errors or lines)[-1]
    message = re.search(r'msg="((?:[^"\\]|\\.)*)"', line)
    found = message.group(1) if message else line.strip()
    return found[:300]


def first_line(exc: BaseException) -> str:
    """An exception's first line (at most 200 characters), or its type's name when it has no text."""
    text = str(exc).strip().split("\n")[0]
    return text[:200] if text else type(exc).__name__
