"""Progress for long fleet work: one line per event (cell started, step, finished), with elapsed time.

Line-based on purpose: it reads the same in a terminal, a CI log and a file, and interleaves safely when
several cells build at once. Thread-safe.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def to_stderr(line: str) -> None:
    """The default `progress` callback of the pipeline steps: one flushed line on stderr (stdout is data)."""
    print(line, file=sys.stderr, flush=True)


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.started = time.monotonic()
        self._cell_started: dict[str, float] = {}
        self._last_step: dict[str, str] = {}
        self._done = 0
        self._lock = threading.Lock()

    def _emit(self, line: str) -> None:
        if not self.quiet:
            print(line, file=self.stream, flush=True)

    def note(self, message: str) -> None:
        with self._lock:
            self._emit(message)

    def start(self, slug: str, what: str) -> None:
        with self._lock:
            self._cell_started[slug] = time.monotonic()
            self._emit(f"[{self._done:>3}/{self.total}] {slug}: {what}")

    def step(self, slug: str, step: str) -> None:
        with self._lock:
            if self._last_step.get(slug) == step:
                return
            self._last_step[slug] = step
            elapsed = time.monotonic() - self._cell_started.get(slug, self.started)
            self._emit(f"[{self._done:>3}/{self.total}] {slug}: {step[:100]} ({elapsed:.0f} s)")

    def finish(self, slug: str, outcome: str) -> None:
        with self._lock:
            self._done += 1
            elapsed = time.monotonic() - self._cell_started.get(slug, self.started)
            self._emit(f"[{self._done:>3}/{self.total}] {slug}: {outcome} ({elapsed:.1f} s)")

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
