"""Push progress: each tag's push stream from the Docker SDK followed as progress lines on stderr."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# A layer the registry has once the stream says one of these (a mount is a copy from another repository).
LAYER_DONE = re.compile(r"^(?:Pushed|Layer already exists|Mounted from\b)")
PROGRESS_EVERY_S = 10.0

Say = Callable[[str], None]


class Layers:
    """What one push stream says about its layers, turned into progress lines: layers the registry has of
    those seen, bytes sent, the cell's elapsed time. A line when a layer is done, else at most every
    `every_s` while bytes move (one line per step: it reads the same in a terminal and a CI log)."""

    def __init__(self, what: str, started: float, clock: Callable[[], float], every_s: float, say: Say) -> None:
        self.what, self.started, self.clock, self.every_s, self.say = what, started, clock, every_s, say
        self.seen: dict[str, int] = {}  # layer -> bytes pushed (the layer's size once it is done)
        self.done: set[str] = set()
        self.shown = clock()
        self.last = ""

    def update(self, chunk: dict[str, Any]) -> None:
        layer, status = chunk.get("id"), chunk.get("status")
        if not isinstance(layer, str) or not isinstance(status, str) or status.startswith(layer):
            return  # not about a layer (the closing "<tag>: digest: ..." line names the tag as its id)
        self.seen.setdefault(layer, 0)
        progress = chunk.get("progressDetail")
        if isinstance(progress, dict) and isinstance(progress.get("current"), int):
            self.seen[layer] = max(self.seen[layer], progress["current"])
        if LAYER_DONE.match(status) and layer not in self.done:
            self.done.add(layer)
            self._show()
        elif self.clock() - self.shown >= self.every_s:
            self._show()

    def finish(self) -> None:
        if self.seen:
            self._show()

    def _show(self) -> None:
        line = f"{len(self.done)}/{len(self.seen)} layers, {_bytes(sum(self.seen.values()))} pushed"
        if line == self.last:
            return
        self.last, self.shown = line, self.clock()
        self.say(f"{self.what}: {line} ({self.clock() - self.started:.0f} s)")


def _bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
