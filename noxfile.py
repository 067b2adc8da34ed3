"""nox sessions for the image fleet. `nox -l` lists them; per-cell sessions are generated from matrix.yaml.

Sessions run with the interpreter that runs nox (`python=False`): they drive the generator and, later,
the Docker engine, and need no virtualenv of their own. Use `make setup` first, then `.venv/bin/nox`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"

ROOT = Path(__file__).parent
MATRIX = ROOT / "matrix.yaml"


def _generator(session: nox.Session, *args: str) -> None:
    session.run(sys.executable, "-m", "generator", "--matrix", str(MATRIX), *args, external=True)


@nox.session(python=False)
def generate(session: nox.Session) -> None:
    """Render images/ from matrix.yaml (writes only files whose bytes change)."""
    _generator(session, "generate", *session.posargs)


@nox.session(python=False)
def check(session: nox.Session) -> None:
    """Compatibility checks for every cell; fails on any FAIL."""
    _generator(session, "check", *session.posargs)


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

        try:
            return [(c.index, c.slug) for c in Fleet.load(MATRIX).cells]
        except FleetError as exc:
            print(f"noxfile: no per-cell sessions: {exc}", file=sys.stderr)
            return []
    finally:
        sys.path.pop(0)


def _register_cell_sessions() -> None:
    for index, slug in _cells():

        def check_one(session: nox.Session, _index: int = index) -> None:
            _generator(session, "check", str(_index))

        check_one.__doc__ = f"check {slug}"
        nox.session(name=f"check-{index}", python=False, tags=["cells"])(check_one)


_register_cell_sessions()
