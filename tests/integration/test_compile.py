"""Compile once, on the real engine and registry: the sandbox's own extension (fleet-op) for four cells.

One fleet (aws and azure, runtime and devel, the fleet-op stack) in a state folder of its own, so nothing of
an earlier run is reused: the first compile step compiles ONE wheel for the four cells, records its sha256
in the machine's lock and pushes it to the registry; the cells build with it and probe OK, the operator
called in each image; the next compile step compiles nothing (the wheelhouse has the wheel), and one without
the wheelhouse copy pulls it from the registry, the same bytes. Built on purpose against the other C++ ABI,
the wheel is refused in the builder stage, with the undefined symbol named, and nothing is recorded or pushed.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import docker
import docker.errors
import pytest

from generator.build.steps import run_build
from generator.compile.key import compile_key, wheel_ref
from generator.compile.step import COMPILED, PULLED, REUSED, Compiler, CompileReport, wanted
from generator.compile.store import in_registry
from generator.deps.cache import cache_path, cache_root
from generator.deps.lockfile import read_lock_of
from generator.deps.step import run_lock
from generator.engine import connect
from generator.fleet import Fleet
from generator.release.credentials import CredentialSource
from generator.resolve.checks import OK
from generator.results import read_record
from generator.sandbox import services
from generator.sandbox.bases import ensure_bases, stand_ins
from generator.spec.profiles import load_profile
from generator.verify.probe import probe_cells, report

REPOSITORY = f"air-fleet/test-compile-{uuid.uuid4().hex[:8]}"
MATRIX = f"""\
schema: 1
python: "3.11"
registry: {{host: 127.0.0.1:5000, repository: {REPOSITORY}}}
clouds: [aws, azure]
variants: [runtime, devel]
accelerators: [GPU_1xA10]
extra_ca_certificates: [/etc/ssl/certs/ca-certificates.crt]
torch:
  - {{version: 2.13.0, torchvision: none, torchaudio: none}}
stacks:
  plain: []
  fleet-op: [fleet-op]
"""
ENV = ("AIR_FLEET_STATE", "AIR_FLEET_RESULTS")


@dataclass
class Compiled:
    root: Path
    client: docker.DockerClient
    first: CompileReport
    matrix: Path

    def fleet(self) -> Fleet:
        return Fleet.for_profile(load_profile("sandbox", self.matrix))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compiled]:
    services.up(progress=lambda _: None)  # the machine's engine and registry, in the machine's state folder
    client = connect()
    ensure_bases(client, [s for s in stand_ins() if "databricks-air" in s.ref], progress=lambda _: None)
    root = tmp_path_factory.mktemp("compile-fleet")
    (root / "matrix.yaml").write_text(MATRIX, encoding="utf-8")
    old = {name: os.environ.get(name) for name in ENV}
    # A state folder of this test's own: its wheelhouse and machine lock hold nothing compiled yet.
    os.environ["AIR_FLEET_STATE"], os.environ["AIR_FLEET_RESULTS"] = str(root / "state"), str(root / "results")
    try:
        fleet = Fleet.for_profile(load_profile("sandbox", root / "matrix.yaml"))
        assert run_lock(fleet, say=lambda _: None).failures == []
        fleet = Fleet.for_profile(load_profile("sandbox", root / "matrix.yaml"))
        first = Compiler(fleet, client, lambda _: None).run(fleet.cells)
        yield Compiled(root, client, first, root / "matrix.yaml")
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        prefix = f"127.0.0.1:5000/{REPOSITORY}"
        tags = (t for i in client.images.list() for t in i.tags if t.startswith(prefix))
        for tag in list(dict.fromkeys(tags)):
            with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
                client.images.remove(tag)


def test_one_compile_serves_every_cell_and_is_recorded(compiled: Compiled) -> None:
    first = compiled.first
    assert (first.count(COMPILED), first.count(REUSED), first.count(PULLED), first.failed) == (1, 0, 0, [])
    (result,) = first.results
    assert len(result.cells) == 4 and {s.split("-")[1] for s in result.cells} == {"runtime", "devel"}
    assert all(s.endswith("-fleet-op") for s in result.cells)
    print(f"\ncompile: {result.describe} in {result.seconds:.1f} s -> {result.wheel}")
    fleet = compiled.fleet()
    lock = read_lock_of(fleet.profile.lock, fleet.profile.bases_lock)
    entry = lock.compiled[result.key]
    assert (entry.filename, entry.sha256) == (result.wheel, result.sha256)
    assert entry.ref == f"127.0.0.1:5000/{REPOSITORY}/wheels:{result.tag}"
    assert in_registry(compiled.client, entry.ref, CredentialSource())
    summary = read_record(compiled.root / "results" / fleet.profile.records / "compile.json")
    assert summary is not None and (summary["compiled"], summary["reused"], summary["pulled"]) == (1, 0, 0)
    # Every cell now installs exactly that wheel: its content digest covers the recorded sha256.
    for cell in (c for c in fleet.cells if c.extensions):
        (ext,) = cell.extensions
        assert ext.wheel is not None and ext.wheel.sha256 == entry.sha256


def test_the_cells_build_with_the_wheel_and_its_operator_runs_in_each(compiled: Compiled) -> None:
    fleet = compiled.fleet()
    everything = [r for r in fleet.render() if r.cell.stack == "fleet-op"]
    results = run_build(fleet, everything, everything, jobs=2, wait=True, quiet=True)
    assert all(r.status in ("built", "up to date") for r in results), [r.error for r in results]
    probed = probe_cells(fleet, everything, client=compiled.client, gpus=None)
    assert all(r.status == OK for r in probed), report(probed)
    for r in probed:
        entry = r.facts["extensions"]["fleet-op"]
        assert entry["native"] == "ok" and entry["self_test"] == {"call": "fleet_op:self_test", "result": "ok"}
        abi = next(c for c in r.checks if c.id == "abi")
        assert "fleet_op:self_test() runs" in abi.detail
        # The build tools stayed in the builder (setuptools is in torch's own environment anyway).
        assert not any(d.lower().startswith(("ninja==", "psutil==")) for d in r.facts["distributions"]), r.slug


def test_a_second_run_compiles_nothing_and_another_machine_pulls_the_same_wheel(compiled: Compiled) -> None:
    fleet = compiled.fleet()
    again = Compiler(fleet, compiled.client, lambda _: None).run(fleet.cells)
    assert (again.count(COMPILED), again.count(REUSED)) == (0, 1)
    (result,) = compiled.first.results
    assert result.wheel is not None and result.sha256 is not None
    cached = cache_path(cache_root(None), result.sha256, result.wheel)
    cached.unlink()  # as on a machine whose wheelhouse never saw it
    pulled = Compiler(fleet, compiled.client, lambda _: None).run(fleet.cells)
    assert (pulled.count(COMPILED), pulled.count(PULLED)) == (0, 1)
    assert pulled.results[0].sha256 == result.sha256 and cached.is_file()


def test_a_wheel_built_against_the_wrong_cxx_abi_never_leaves_the_builder(compiled: Compiled) -> None:
    fleet = compiled.fleet()
    spec = fleet.facts.extensions["fleet-op"]
    wrong = replace(spec, compile=replace(spec.compile, env=(("FLEET_OP_FORCE_CXX11_ABI", "0"),)))
    facts = replace(fleet.facts, extensions={**fleet.facts.extensions, "fleet-op": wrong})
    bad = replace(fleet, facts=facts)
    ((key, cell, _),) = wanted(bad, bad.cells).values()
    assert key.id != compiled.first.results[0].key  # another recipe, another key
    report_ = Compiler(bad, compiled.client, lambda _: None).run(bad.cells)
    (failed,) = report_.failed
    assert failed.error is not None
    assert failed.error.startswith("compiled wheel refused: fleet_op-0.1-cp311-cp311-linux_x86_64.whl: fleet_op")
    assert "does not load against torch 2.13.0+cpu (ABI 1): " in failed.error
    assert "undefined symbol" in failed.error and "C++ ABI mismatch" in failed.error
    print(f"\nwrong-ABI compile refused: {failed.error}")
    lock = read_lock_of(fleet.profile.lock, fleet.profile.bases_lock)
    assert key.id not in lock.compiled
    assert not in_registry(compiled.client, wheel_ref(cell, key), CredentialSource())
    assert compile_key(cell, cell.extensions[0], facts) == key
    # `build` goes on without them: the cells that need that wheel fail, one line each, the others build.
    selected = bad.render()  # with the wrong recipe's key, for which the lock has no wheel
    results = run_build(bad, selected, selected, jobs=2, wait=True, quiet=True, blocked=report_.blocked())
    by_stack = {r.slug: r for r in results}
    for r in selected:
        got = by_stack[r.cell.slug]
        if r.cell.stack == "fleet-op":
            assert got.status == "failed" and got.error is not None and not got.build_started
            assert got.error.startswith(f"its fleet-op wheel did not compile ({key.tag}: compiled wheel refused")
        else:
            assert got.status in ("built", "up to date"), got.error
