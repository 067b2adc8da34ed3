"""BuildKit's `--progress=plain` output, read line by line into steps, their outcome and the error.

The format is the same from the engine's built-in BuildKit (docker 20.10 with DOCKER_BUILDKIT=1) and
from buildx: each vertex (a step of the build) is `#N`, first named (`#5 [2/9] RUN ...`,
`#5 [builder 2/9] RUN ...` in a multi-stage build, `#2 [internal] load .dockerignore`,
`#4 importing cache manifest from REF`), then its log lines (`#5 0.262 text`), then one outcome:
`#5 CACHED`, `#5 DONE 8.7s`, `#5 ERROR: why` or `#5 CANCELED`. Vertices interleave when steps run in
parallel; a vertex may be named again later (its lines resume). After a failure the CLI repeats the failed
step's last lines between `------` rulers and ends with the error (`executor failed running ...` from
20.10, `ERROR: failed to solve: ...` from buildx).

An error on a cache import (`importing cache manifest from REF: not found`: the source was never pushed)
is not a failed build: BuildKit goes on without that source, and the CLI exits 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

VERTEX = re.compile(r"^#(\d+) (.*)$")
# The step number is padded to the width of the count: `[stage-0  8/11]`, `[ 8/11]`.
STEP_NAME = re.compile(r"^\[(?:(?P<stage>[^\]\s]+)\s+)?\s*(?P<k>\d+)/(?P<n>\d+)\] (?P<what>.*)$")
DONE = re.compile(r"^DONE (\d+(?:\.\d+)?)s$")
LOG_LINE = re.compile(r"^\d+(?:\.\d+)? ")
CACHE_IMPORT = "importing cache manifest from "
TORCH_REQUIREMENTS = "requirements-torch.txt"


@dataclass
class Vertex:
    number: int
    name: str
    stage: str | None = None
    k: int | None = None  # `[k/n]`: the step's place in its stage; None for internal vertices
    n: int | None = None
    cached: bool = False
    done: bool = False
    seconds: float | None = None
    error: str | None = None

    @property
    def is_step(self) -> bool:
        return self.k is not None

    @property
    def short(self) -> str:
        """`step 6/9`, or `step builder 2/4` in a multi-stage build. The first stage's default name
        (`stage-0`, which BuildKit 20.10 shows once a platform is asked for) says nothing: left out."""
        where = f"{self.stage} " if self.stage and self.stage != "stage-0" else ""
        return f"step {where}{self.k}/{self.n}"

    @property
    def label(self) -> str:
        """`step 6/9 RUN ...`: the progress line's wording, as the classic builder's `Step 6/9 : RUN ...`."""
        return f"{self.short} {self.name}" if self.is_step else self.name

    @property
    def cache_import(self) -> bool:
        return self.name.startswith(CACHE_IMPORT)


@dataclass
class Event:
    """What a line changed, for a progress line: a step started, came from the cache, finished, failed."""

    kind: str  # start | cached | done | error
    vertex: Vertex


@dataclass
class PlainProgress:
    vertices: dict[int, Vertex] = field(default_factory=dict)
    trailer: list[str] = field(default_factory=list)  # lines outside any vertex: the CLI's final error

    def feed(self, line: str) -> Event | None:
        """Read one line (without its newline); the event it makes, if any."""
        match = VERTEX.match(line)
        if match is None:
            if line.strip() and set(line.strip()) != {"-"}:
                self.trailer.append(line.strip())
            return None
        number, rest = int(match[1]), match[2]
        vertex = self.vertices.get(number)
        if vertex is None:
            vertex = self.vertices[number] = _named(number, rest)
            return Event("start", vertex)
        if rest == "CACHED":
            vertex.cached = True
            return Event("cached", vertex)
        done = DONE.match(rest)
        if done:
            vertex.done, vertex.seconds = True, float(done[1])
            return Event("done", vertex)
        if rest.startswith("ERROR:") or rest == "CANCELED":
            vertex.error = rest.removeprefix("ERROR:").strip() or rest
            return Event("error", vertex)
        return None  # a log line, a digest, a transfer figure, or the vertex named again

    @property
    def steps(self) -> list[Vertex]:
        return [v for v in self.vertices.values() if v.is_step]

    def error(self) -> str | None:
        """Why the build failed: the CLI's last words, else the last failed step; cache imports never count."""
        for line in reversed(self.trailer):
            if not line.startswith(">") and not LOG_LINE.match(line):
                return line.removeprefix("ERROR:").strip()
        failed = [v for v in self.vertices.values() if v.error and not v.cache_import]
        return f"{failed[-1].label}: {failed[-1].error}" if failed else None

    def missing_cache_sources(self) -> list[str]:
        """The cache sources BuildKit could not import (not pushed yet, or unreachable): skipped, not fatal."""
        return [v.name.removeprefix(CACHE_IMPORT) for v in self.vertices.values() if v.cache_import and v.error]

    def torch_step(self) -> Vertex | None:
        """The torch layer's step: the RUN that installs `requirements-torch.txt`."""
        return next((v for v in self.steps if v.name.startswith("RUN ") and TORCH_REQUIREMENTS in v.name), None)


def _named(number: int, rest: str) -> Vertex:
    step = STEP_NAME.match(rest)
    if step is None:  # `[internal] load ...`, `importing cache manifest from ...`, `exporting to image`
        return Vertex(number, rest.removeprefix("[internal] "))
    return Vertex(number, step["what"], step["stage"], int(step["k"]), int(step["n"]))


def parse(text: str) -> PlainProgress:
    """A whole captured output, parsed (for tests and benchmarks that read a build log)."""
    progress = PlainProgress()
    for line in text.splitlines():
        progress.feed(line)
    return progress
