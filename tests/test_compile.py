"""Compile once: the compile key, the builder's recipe, the lock's `compiled` section and how cells install
the recorded wheel (offline; tests/integration/test_compile.py compiles for real)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from generator.compile.key import CompileKey, compile_key, wheel_ref
from generator.compile.recipe import Recipe, builder_base, dockerfile
from generator.compile.source import tree_archive, tree_sha256
from generator.deps.cells import apply_lock, unlocked
from generator.deps.lockfile import CompiledWheel, Lock, read_lock, read_lock_of, record_compiled, write_lock
from generator.deps.pins import WheelhouseError
from generator.fleet import Fleet
from generator.model import Cell
from generator.render.renderer import Renderer
from generator.spec.knowledge import knowledge
from generator.spec.profiles import load_profile
from tests.conftest import DEFAULT_MATRIX

FLEET_OP = "generator/sandbox/fleet_op"


@pytest.fixture(scope="module")
def sandbox() -> Fleet:
    return Fleet.for_profile(load_profile("sandbox", None))


def committed(fleet: Fleet) -> Lock:
    """The sandbox's committed lock (torch's wheel and environments) without this machine's parts."""
    return read_lock(fleet.profile.lock)


def fleet_op_cells(fleet: Fleet, lock: Lock) -> list[Cell]:
    cells = [apply_lock(c, lock, fleet.facts) for c in fleet.unlocked_cells]
    return [c for c in cells if any(e.name == "fleet-op" for e in c.extensions)]


def wheel(sha: str = "a" * 64) -> CompiledWheel:
    return CompiledWheel("fleet_op-0.1-cp311-cp311-linux_x86_64.whl", sha, 35176, "127.0.0.1:5000/x/wheels:t", {})


def test_gpu_architectures_come_from_the_accelerators_in_each_tools_spelling() -> None:
    facts = knowledge()
    caps = tuple(facts.accelerators[a].compute_capability for a in ("GPU_1xA10", "GPU_1xH100", "GPU_8xH100"))
    assert caps == ("8.6", "9.0", "9.0")
    assert dict(facts.extensions["apex"].compile.arch_values(caps)) == {"TORCH_CUDA_ARCH_LIST": "8.6;9.0"}
    # flash-attn builds one kernel family per entry: sm_80 serves the A10's 8.6.
    assert dict(facts.extensions["flash-attn"].compile.arch_values(caps)) == {
        "FLASH_ATTN_CUDA_ARCHS": "80;90",
        "TORCH_CUDA_ARCH_LIST": "8.6;9.0",
    }


def test_every_cell_with_one_key_shares_it_runtime_and_devel_both_clouds(sandbox: Fleet) -> None:
    cells = fleet_op_cells(sandbox, committed(sandbox))
    assert {(c.cloud, c.variant) for c in cells} == {(a, b) for a in ("aws", "azure") for b in ("runtime", "devel")}
    keys = {compile_key(c, c.extensions[0], sandbox.facts) for c in cells}
    assert len(keys) == 1 and None not in keys
    (key,) = keys
    assert key is not None and key.source == tree_sha256(FLEET_OP) and key.archs == ()  # CPU only: no GPU kernels
    assert key.tag.startswith("fleet-op-") and len(key.tag) == len("fleet-op-") + 16
    assert wheel_ref(cells[0], key) == f"127.0.0.1:5000/air-fleet/sandbox/wheels:{key.tag}"


def test_the_key_moves_with_what_the_wheel_depends_on() -> None:
    key = CompileKey("apex", "c" * 40, "s" * 64, "2.8.0 cu129", "t" * 64, "3.12", "12.9.1", ("8.6", "9.0"), 1, ())
    assert key.id == replace(key).id  # a value: same inputs, same key
    for changed in (
        replace(key, torch_sha256="u" * 64),
        replace(key, archs=("9.0",)),
        replace(key, abi=0),
        replace(key, cuda="12.8.1"),
        replace(key, recipe=("option --cpp_ext",)),
    ):
        assert changed.id != key.id


def test_a_key_needs_its_inputs_locked(sandbox: Fleet) -> None:
    (cell, *_) = fleet_op_cells(sandbox, Lock())
    assert compile_key(cell, cell.extensions[0], sandbox.facts) is None  # torch not locked yet
    assert cell.extensions[0].compile_key is None


def test_the_source_tree_archive_is_reproducible() -> None:
    first = tree_archive(FLEET_OP)
    tree_archive.cache_clear()
    assert tree_archive(FLEET_OP) == first
    with pytest.raises(ValueError, match="not a directory inside the project"):
        tree_archive("../outside")


def test_the_builder_recipe_for_apex_in_both_installers_spellings() -> None:
    fleet = Fleet.load(DEFAULT_MATRIX)
    for slug, option in (
        ("aws-runtime-torch2.8-cu129-apex", "-C--build-option=--cpp_ext -C--build-option=--cuda_ext"),
        (
            "azure-devel-scratch-torch2.8-cu129-apex",
            "--config-settings=--build-option=--cpp_ext --config-settings=--build-option=--cuda_ext",
        ),
    ):
        cell = next(c for c in fleet.cells if c.slug == slug)
        ext = cell.extensions[0]
        key = CompileKey("apex", ext.version, "s" * 64, "2.8.0 cu129", "t" * 64, "3.12", cell.cuda, ext.archs, 1, ())
        text = dockerfile(Recipe(key, cell, ext, builder_base(cell, fleet.facts), None), fleet.facts)
        assert f"FROM {builder_base(cell, fleet.facts)} AS build" in text and "-devel" in text  # runtime: devel builder
        assert option in text  # apex at the pinned commit reads its argv only (knowledge/apex.yaml)
        assert "APEX_CPP_EXT" not in text and 'TORCH_CUDA_ARCH_LIST="8.6;9.0"' in text
        assert "setuptools==84.2.1" in text and "ninja==1.13.2" in text  # build tools pinned, in the builder only
        assert "check_wheel.py" in text and "FROM scratch AS wheel" in text


def test_the_lock_keeps_compiled_wheels_and_refuses_bad_entries(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    write_lock(path, Lock(compiled={"sha256:" + "1" * 64: wheel()}))
    assert read_lock(path).compiled == {"sha256:" + "1" * 64: wheel()}
    data = json.loads(path.read_text())
    data["compiled"]["sha256:" + "1" * 64]["filename"] = "../escape.whl"
    path.write_text(json.dumps(data))
    with pytest.raises(WheelhouseError, match=r"compiled\.sha256:1+: '\.\./escape\.whl': not a plain file name"):
        read_lock(path)


def test_compiled_wheels_are_recorded_where_the_profile_keeps_machine_inputs(tmp_path: Path) -> None:
    committed_lock, machine = tmp_path / "lock.json", tmp_path / "machine.json"
    write_lock(committed_lock, Lock())
    assert record_compiled(committed_lock, machine, {"sha256:" + "1" * 64: wheel()})
    assert not record_compiled(committed_lock, machine, {"sha256:" + "1" * 64: wheel()})  # unchanged: not written
    assert read_lock(committed_lock).compiled == {}
    assert read_lock_of(committed_lock, machine).compiled == {"sha256:" + "1" * 64: wheel()}


def test_the_cell_installs_the_recorded_wheel_and_its_digest_follows_its_sha256(sandbox: Fleet) -> None:
    base = committed(sandbox)
    (cell, *_) = fleet_op_cells(sandbox, base)
    assert unlocked(cell) == [f"base image {cell.base_image}", "the compiled fleet-op wheel"]
    key = cell.extensions[0].compile_key
    assert key is not None
    renderer = Renderer(sandbox.facts)
    digests = []
    for sha in ("a" * 64, "b" * 64):
        (locked, *_) = fleet_op_cells(sandbox, replace(base, compiled={key: wheel(sha)}))
        assert "the compiled fleet-op wheel" not in unlocked(locked)
        rendered = renderer.render(locked, sandbox.checks(locked))
        text = rendered.files["Dockerfile"].decode()
        assert f'echo "{sha}  /tmp/fleet/wheels/fleet_op-0.1-cp311-cp311-linux_x86_64.whl" | sha256sum' in text
        assert "--no-deps /tmp/fleet/wheels/fleet_op-0.1-cp311-cp311-linux_x86_64.whl" in text
        assert "--no-build-isolation" not in text and "python3-dev" not in text  # nothing of the build ships
        builds = next(c for c in rendered.checks if c.id == "builds")
        recorded = f"installs the wheel the lock records (fleet_op-0.1-cp311-cp311-linux_x86_64.whl, sha256 {sha[:12]})"
        assert recorded in builds.detail
        digests.append(rendered.digest)
    assert digests[0] != digests[1]  # another compile of the same key would be another image
