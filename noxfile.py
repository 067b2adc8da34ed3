"""nox sessions for the image fleet. `nox -l` lists them; per-cell sessions are generated from matrix.yaml.

Sessions run with the interpreter that runs nox (`python=False`): they drive the generator and, later,
the Docker engine, and need no virtualenv of their own. Use `make setup` first, then `.venv/bin/nox`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
# Which fleet the sessions work on: `default` (matrix.yaml, the real fleet) unless AIR_FLEET_PROFILE names
# another, e.g. `AIR_FLEET_PROFILE=sandbox nox -s build-1` on a machine without the real base images.
PROFILE = os.environ.get("AIR_FLEET_PROFILE", "default")

nox.options.default_venv_backend = "none"
# A bare `nox` only checks; building or running the whole sandbox is always asked for by name.
nox.options.sessions = ["check"]


def _generator(session: nox.Session, *args: str, profile: str = PROFILE) -> None:
    session.run(sys.executable, "-m", "generator", "--profile", profile, *args, external=True)


@nox.session(python=False)
def generate(session: nox.Session) -> None:
    """Render images/ from matrix.yaml (writes only files whose bytes change)."""
    _generator(session, "generate", *session.posargs)


@nox.session(python=False)
def check(session: nox.Session) -> None:
    """Compatibility checks for every cell; fails on any FAIL."""
    _generator(session, "check", *session.posargs)


@nox.session(python=False)
def build(session: nox.Session) -> None:
    """Build every out-of-date cell (pass `-j N` or cells after --)."""
    _generator(session, "build", *session.posargs)


@nox.session(python=False)
def probe(session: nox.Session) -> None:
    """Run the probe inside every built image and judge the real facts."""
    _generator(session, "probe", *session.posargs)


@nox.session(python=False)
def push(session: nox.Session) -> None:
    """Push every image whose build and probe passed to the staging repository, all or nothing."""
    _generator(session, "push", "--atomic", *session.posargs)


@nox.session(python=False)
def promote(session: nox.Session) -> None:
    """Copy the tested candidates to the release repository by digest, all or nothing (no engine needed)."""
    _generator(session, "promote", "--atomic", *session.posargs)


@nox.session(python=False)
def register(session: nox.Session) -> None:
    """Register the promoted images with the workspace (pass e.g. `-- --workspace-profile P`)."""
    _generator(session, "register", *session.posargs)


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """GPU benchmarks inside the built images (a GPU runner's job; without a GPU: "no GPU", no number)."""
    _generator(session, "bench", *session.posargs)


@nox.session(python=False)
def publish(session: nox.Session) -> None:
    """Write the compatibility page (HTML, Markdown, JSON) from the matrix and the run records (`-- --out DIR`)."""
    _generator(session, "publish", *session.posargs)


@nox.session(python=False)
def fleet(session: nox.Session) -> None:
    """Generate, build, probe, push, SBOM, bench, audit, promote, register, publish in order; stops at the first
    failing step."""
    steps = [["generate"], ["build"], ["probe"], ["push", "--atomic"], ["sbom", "--attach"], ["bench"], ["audit"]]
    steps.append(["promote", "--atomic"])
    steps.append(["register", *session.posargs])
    steps.append(["publish"])
    for step in steps:
        _generator(session, *step)  # session.run raises on a non-zero exit: nothing after it runs


@nox.session(python=False)
def sandbox(session: nox.Session) -> None:
    """The sandbox end to end: engine and registry up, stand-in bases, its lock (their digests), then its
    fleet built, probed, pushed to staging with its SBOM, benchmarked (no GPU here: no number), promoted
    (the SBOM carried along, signed with the machine's key) and verified, and its page published."""
    _generator(session, "sandbox", "up", profile="default")
    steps = (
        ["lock"],
        ["build"],
        ["probe"],
        ["push", "--atomic"],
        ["sbom", "--attach"],
        ["bench", "--quick"],
        ["audit"],
        ["promote", "--atomic"],
        ["verify"],
    )
    for step in (*steps, ["publish"]):
        _generator(session, *step, profile="sandbox")


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff, mypy and hadolint over the generated Dockerfiles."""
    session.run("make", "--no-print-directory", "lint", external=True)


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """The test suite (pass pytest arguments after --)."""
    session.run(sys.executable, "-m", "pytest", *session.posargs, external=True)


def _cells() -> list[tuple[int, str]]:
    """(index, slug) of every cell; none when the matrix cannot be read (the error shows in `check`)."""
    sys.path.insert(0, str(ROOT))
    try:
        from generator.errors import FleetError
        from generator.fleet import Fleet
        from generator.spec.profiles import load_profile

        try:
            return [(c.index, c.slug) for c in Fleet.for_profile(load_profile(PROFILE)).cells]
        except FleetError as exc:
            print(f"noxfile: no per-cell sessions: {exc}", file=sys.stderr)
            return []
    finally:
        sys.path.pop(0)


def _register_cell_sessions() -> None:
    for index, slug in _cells():

        def check_one(session: nox.Session, _index: int = index) -> None:
            _generator(session, "check", str(_index))

        def build_one(session: nox.Session, _index: int = index) -> None:
            _generator(session, "build", str(_index), *session.posargs)

        def probe_one(session: nox.Session, _index: int = index) -> None:
            _generator(session, "probe", str(_index), *session.posargs)

        def bench_one(session: nox.Session, _index: int = index) -> None:
            _generator(session, "bench", str(_index), *session.posargs)

        def push_one(session: nox.Session, _index: int = index) -> None:
            _generator(session, "push", str(_index), *session.posargs)

        def promote_one(session: nox.Session, _index: int = index) -> None:
            _generator(session, "audit", str(_index))  # the vulnerability policy promote applies reads it
            _generator(session, "promote", str(_index), *session.posargs)

        def register_one(session: nox.Session, _index: int = index) -> None:
            _generator(session, "register", str(_index), *session.posargs)

        verbs = (
            ("check", check_one),
            ("build", build_one),
            ("probe", probe_one),
            ("bench", bench_one),
            ("push", push_one),
            ("promote", promote_one),
            ("register", register_one),
        )
        for verb, func in verbs:
            func.__doc__ = f"{verb} {slug}"
            nox.session(name=f"{verb}-{index}", python=False, tags=["cells", verb])(func)


_register_cell_sessions()
