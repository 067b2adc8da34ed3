"""Each cell's whole Python environment, locked with hashes (generator/resolve/expand.closure_spec,
generator/deps/lockfile.py `closures`, the render): what is resolved, how it is kept, how it is installed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from generator.deps.cells import apply_lock, unlocked
from generator.deps.lockfile import Lock, read_lock, write_lock
from generator.deps.pins import WheelhouseError
from generator.fleet import Fleet
from generator.model import Cell, Pinned
from generator.render.renderer import instructions
from tests.conftest import DEFAULT_MATRIX

SHA = "ab" * 32


def cell_of(fleet: Fleet, slug: str) -> Cell:
    return next(c for c in fleet.unlocked_cells if c.slug == slug)


def pins(*names: str) -> tuple[Pinned, ...]:
    return tuple(Pinned(name, "1.0", SHA) for name in names)


def test_the_spec_names_torch_its_companions_and_what_pip_installs() -> None:
    fleet = Fleet.load(DEFAULT_MATRIX)
    xformers = cell_of(fleet, "aws-runtime-torch2.6-xformers0.0.29.post3").closure_spec
    assert xformers is not None
    assert xformers.requirements == (
        "torch==2.6.0",
        "torchaudio==2.6.0",
        "torchvision==0.21.0",
        "xformers==0.0.29.post3",
    )
    assert (xformers.python, xformers.platform, xformers.index_url) == ("3.12", "manylinux_2_28_x86_64", None)
    # flash-attn's release wheel is a fetched file (the lock's `files`), not part of the resolved environment.
    flash = cell_of(fleet, "aws-runtime-torch2.6-flash-attn2.7.4.post1").closure_spec
    assert flash is not None and not any("flash" in r for r in flash.requirements)
    # apex compiles in a builder stage: its build tools stay there, never in the environment; torch from cu129.
    apex = cell_of(fleet, "aws-devel-torch2.8-cu129-apex").closure_spec
    assert apex is not None and not any(r.startswith(("setuptools", "ninja")) for r in apex.requirements)
    assert apex.index_url == "https://download.pytorch.org/whl/cu129"
    assert apex.key.endswith("cp312 manylinux_2_28_x86_64 --index-url https://download.pytorch.org/whl/cu129")
    # Cells with the same inputs share one environment in the lock.
    same = {c.closure_spec.key for c in fleet.unlocked_cells if c.closure_spec and c.slug.endswith("-torch2.6")}
    assert len(same) == 1


def test_a_locked_environment_is_rendered_with_hashes_and_installed_with_require_hashes() -> None:
    fleet = Fleet.load(DEFAULT_MATRIX)
    raw = cell_of(fleet, "aws-runtime-torch2.6-xformers0.0.29.post3")
    assert raw.closure_spec is not None
    assert "the Python environment (torch and its dependencies)" in unlocked(raw)
    env = pins("numpy", "torch", "xformers")
    cell = apply_lock(raw, Lock(closures={raw.closure_spec.key: env}))
    assert cell.closure == env and "the Python environment (torch and its dependencies)" not in unlocked(cell)
    (rendered,) = fleet.render([cell])
    requirements = rendered.files["requirements.txt"].decode()
    assert (
        f"xformers==1.0 --hash=sha256:{SHA}\n" in requirements and f"torch==1.0 --hash=sha256:{SHA}\n" in requirements
    )
    dockerfile = rendered.files["Dockerfile"].decode()
    assert (
        "uv pip install --python /opt/venv/bin/python --cache-dir /root/.cache/uv --link-mode=copy "
        "--require-hashes --no-deps" in dockerfile
    )
    assert "-r /tmp/fleet/requirements.txt" in dockerfile
    assert "RUN uv pip install --python /opt/venv/bin/python --no-cache --no-deps xformers==" not in dockerfile
    (unlocked_render,) = fleet.render([raw])
    assert rendered.digest != unlocked_render.digest  # the hashes are part of what the digest covers
    other = dataclasses.replace(cell, closure=(*env[:2], Pinned("xformers", "1.0", "cd" * 32)))
    assert fleet.render([other])[0].digest != rendered.digest  # one hash moved: another image


def test_closures_round_trip_and_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    lock = Lock(closures={"torch==2.6.0 cp312 manylinux_2_28_x86_64": pins("filelock", "torch")})
    write_lock(path, lock)
    assert read_lock(path) == lock
    data = json.loads(path.read_text())
    data["closures"]["torch==2.6.0 cp312 manylinux_2_28_x86_64"][1]["sha256"] = "AB" * 32
    path.write_text(json.dumps(data))
    with pytest.raises(WheelhouseError, match=r"closures\.torch==2\.6\.0 .*\[1\]: .*64 lowercase hex"):
        read_lock(path)


def test_torch_s_own_environment_is_a_layer_every_cell_of_that_torch_shares() -> None:
    """requirements-torch.txt and every instruction up to its install are the same bytes for a plain cell
    and an xformers cell of one torch build, so the builder's cache shares that multi-GB layer; the cell's
    whole environment follows in the next layer."""
    fleet = Fleet.load(DEFAULT_MATRIX)
    plain = cell_of(fleet, "aws-runtime-torch2.6")
    xformers = cell_of(fleet, "aws-runtime-torch2.6-xformers0.0.29.post3")
    assert plain.torch_closure_spec == xformers.torch_closure_spec == plain.closure_spec
    assert plain.torch_closure_spec is not None and xformers.closure_spec is not None
    lock = Lock(
        closures={
            plain.torch_closure_spec.key: pins("filelock", "torch"),
            xformers.closure_spec.key: pins("filelock", "numpy", "torch", "xformers"),
        }
    )
    rendered = fleet.render([apply_lock(plain, lock), apply_lock(xformers, lock)])
    torch_files = {r.files["requirements-torch.txt"] for r in rendered}
    assert len(torch_files) == 1 and b"xformers" not in next(iter(torch_files))
    prefixes = set()
    for r in rendered:
        dockerfile = r.files["Dockerfile"].decode()
        cut = dockerfile.index("-r /tmp/fleet/requirements-torch.txt")
        prefixes.add(instructions(dockerfile[dockerfile.index("FROM") : cut]))  # comments never bust a cache
        assert dockerfile.index("requirements-torch.txt") < dockerfile.index("COPY requirements.txt")
    assert len(prefixes) == 1, prefixes
    assert b"xformers==1.0" in rendered[1].files["requirements.txt"]
