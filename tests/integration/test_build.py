"""The builder against the real Docker engine and registry (never mocks; in CI these run, they never skip).

One small fleet on the sandbox profile: a plain cell and an einops cell that share the torch layer, and
a cell that is broken on purpose (its pinned package does not exist). Cold build, then a no-op, then the
registry as the only copy, a tampered lock, a held run lock, and an engine that is not there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from packaging.utils import canonicalize_name

from benchmarks.fresh_runner import unique_ca
from generator.build.builder import BuildResult
from generator.build.runlock import hold
from generator.build.steps import run_build
from generator.ci.plan import manifest_exists_http
from generator.deps.step import run_lock
from generator.engine import connect
from generator.fleet import Fleet
from generator.release.pushstep import run_push
from generator.sandbox import services
from generator.sandbox.bases import ensure_bases, stand_ins
from generator.spec.profiles import load_profile
from tests.conftest import ROOT
from tests.integration.sandboxfleet import cli, sandbox_matrix

REPOSITORY = f"air-fleet/test-{uuid.uuid4().hex[:8]}"
MATRIX = sandbox_matrix(REPOSITORY, "runtime", {"plain": "", "einops": "einops==0.8.2", "broken": "six==1.17.0"})
PLAIN, EINOPS, BROKEN = (
    "aws-runtime-torch2.13",
    "aws-runtime-torch2.13-einops0.8.2",
    "aws-runtime-torch2.13-six1.17.0",
)
TAMPERED = "six"  # the broken cell: its lock says another sha256 for six than the index's file has


def tamper(lock_file: Path, slug_package: str) -> str:
    """Change one hex digit of `slug_package`'s sha256 in every closure of the lock that has it; the new hash."""
    data = json.loads(lock_file.read_text())
    changed = ""
    for pins in data["closures"].values():
        for pin in pins:
            if pin["name"] == slug_package:
                digit = pin["sha256"][0]
                pin["sha256"] = ("0" if digit != "0" else "1") + pin["sha256"][1:]
                changed = pin["sha256"]
    assert changed, f"no closure pins {slug_package}"
    lock_file.write_text(json.dumps(data))
    return changed


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A matrix on the sandbox profile in a temp dir, locked, with the engine, registry and its base up."""
    services.up(progress=lambda _: None)
    client = connect()
    wanted = [s for s in stand_ins() if s.ref.endswith("dcs-base-aws-runtime")]
    ensure_bases(client, wanted, progress=lambda _: None)
    root = tmp_path_factory.mktemp("fleet")
    (root / "matrix.yaml").write_text(MATRIX, encoding="utf-8")
    outcome = run_lock(sandbox_fleet(root), say=lambda _: None)
    # The torch wheel (resolved by pip), the base, and three Python environments (plain, einops, six).
    assert outcome.failures == [] and outcome.entries == 5
    tamper(root / "wheels.lock.json", TAMPERED)
    old = os.environ.get("AIR_FLEET_RESULTS")
    os.environ["AIR_FLEET_RESULTS"] = str(root / "results")
    yield root
    if old is None:
        os.environ.pop("AIR_FLEET_RESULTS")
    else:
        os.environ["AIR_FLEET_RESULTS"] = old
    # By tag, never by id: on a warm engine a test image can be the very image the sandbox fleet tagged.
    for image in client.images.list(name=f"127.0.0.1:5000/{REPOSITORY}"):
        for tag in image.tags:
            if tag.startswith(f"127.0.0.1:5000/{REPOSITORY}:"):
                client.images.remove(tag)
    # The broken cell's build leaves its last committed layer untagged (a retry's cache); a test leaves
    # nothing behind, or a later "cold" build would find this torch layer cached.
    log = records_of(root) / "build" / f"{BROKEN}.log"
    layers = re.findall(r"^ ---> ([0-9a-f]{12})$", log.read_text(), flags=re.MULTILINE) if log.exists() else []
    if layers:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(layers[-1])


def records_of(root: Path) -> Path:
    """This matrix's records: a folder of their own under results/sandbox/, apart from the sandbox fleet's."""
    return root / "results" / load_profile("sandbox", root / "matrix.yaml").records


def sandbox_fleet(root: Path) -> Fleet:
    return Fleet.for_profile(load_profile("sandbox", root / "matrix.yaml"))


def build(root: Path, *cells: str, jobs: int = 2) -> dict[str, BuildResult]:
    fleet = sandbox_fleet(root)
    everything = fleet.render()
    selected = [r for r in everything if not cells or r.cell.slug in cells]
    return {r.slug: r for r in run_build(fleet, selected, everything, jobs=jobs, wait=True, quiet=True)}


def test_cold_build_with_a_broken_cell_among_good_ones(project: Path) -> None:
    results = build(project)
    assert results[PLAIN].status == "built" and results[EINOPS].status == "built"
    broken = results[BROKEN]
    assert broken.status == "failed" and broken.build_started
    # One changed byte of one locked hash: the installer refuses the file (--require-hashes), the tail says so.
    assert broken.log_tail and "six" in broken.log_tail and "hash" in broken.log_tail.lower(), broken.log_tail
    client = docker.from_env()
    for slug in (PLAIN, EINOPS):
        image = client.images.get(results[slug].ref)
        assert image.labels["air-fleet.digest"] == results[slug].digest
        assert results[slug].image_id == image.id and (results[slug].size or 0) > 100_000_000
        # The einops cell really has einops, and torch imports (the smoke test's first line of business).
        out = client.containers.run(
            image.id, ["/opt/venv/bin/python", "-c", "import torch; print(torch.__version__)"], remove=True
        )
        assert out.decode().strip().startswith("2.13.0")
    records = {p.stem: json.loads(p.read_text()) for p in (records_of(project) / "build").glob("*.json")}
    assert {records[s]["status"] for s in (PLAIN, EINOPS, BROKEN)} == {"built", "failed"}
    assert records[BROKEN]["error"]


def test_the_tampered_cell_is_never_pushed(project: Path) -> None:
    """Its build record says failed: the push gate refuses it, and the registry never gets its tag."""
    fleet = sandbox_fleet(project)
    broken = next(r for r in fleet.render() if r.cell.slug == BROKEN)
    (result,) = run_push(fleet.profile.records, [broken], atomic=False, progress=lambda _: None)
    assert result.status == "refused" and "build" in (result.reason or "")
    assert not manifest_exists_http(broken.ref)


def test_the_image_holds_exactly_the_locked_environment(project: Path) -> None:
    """`pip list` in the image is the lock's closure for that cell, package for package (plus the venv's
    own pip, which the base made and nothing installs)."""
    fleet = sandbox_fleet(project)
    cell = next(c for c in fleet.cells if c.slug == EINOPS)
    assert cell.closure is not None and len(cell.closure) > 5
    ref = build(project, EINOPS)[EINOPS].ref
    out = docker.from_env().containers.run(
        ref, ["/opt/venv/bin/python", "-m", "pip", "list", "--format=json"], remove=True, network_mode="none"
    )
    installed = {(canonicalize_name(d["name"]), d["version"]) for d in json.loads(out)}
    assert installed - {d for d in installed if d[0] == "pip"} == {(p.name, p.version) for p in cell.closure}


def test_second_run_starts_no_build(project: Path) -> None:
    result = cli(project, "build", PLAIN, EINOPS)
    assert result.returncode == 0, result.stderr
    assert "up to date (local)" in result.stdout
    records = [json.loads((records_of(project) / "build" / f"{s}.json").read_text()) for s in (PLAIN, EINOPS)]
    assert [r["status"] for r in records] == ["up to date", "up to date"]
    assert not any(r["build_started"] for r in records)


def test_force_builds_a_cell_whose_image_exists(project: Path) -> None:
    """`build --force` builds even what is "up to date" (the nightly's `force` input passes it)."""
    result = cli(project, "build", "--force", PLAIN)
    assert result.returncode == 0, result.stderr
    record = json.loads((records_of(project) / "build" / f"{PLAIN}.json").read_text())
    assert (record["status"], record["build_started"]) == ("built", True)


def test_the_broken_cell_makes_the_exit_status_non_zero(project: Path) -> None:
    result = cli(project, "build")
    assert result.returncode == 1
    assert f"{BROKEN} failed:" in result.stdout and "last lines of" in result.stdout


def test_an_image_only_in_the_registry_is_up_to_date(project: Path) -> None:
    client = docker.from_env()
    ref = build(project, PLAIN)[PLAIN].ref
    for line in client.api.push(ref, stream=True, decode=True):
        assert "error" not in line, line
    client.images.remove(ref)  # the layers stay; only the tag goes: the local check must now miss
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(ref)
    again = build(project, PLAIN)[PLAIN]
    assert (again.status, again.where, again.build_started) == ("up to date", "registry", False)


def test_sha256_mismatch_is_a_hard_error(project: Path, tmp_path: Path) -> None:
    """A lock whose sha256 does not match the bytes: the cell fails, nothing bad lands in the cache."""
    tampered = tmp_path / "fleet"
    tampered.mkdir()
    good_only = MATRIX.replace("  broken: [air-fleet-no-such-package]\n", "").replace(
        "  air-fleet-no-such-package: {kind: pip, version: 1.0.0}\n", ""
    )
    (tampered / "matrix.yaml").write_text(good_only)
    lock = json.loads((project / "wheels.lock.json").read_text())
    (entry,) = lock["files"].values()
    fake = "0" * 64
    entry["sha256"] = fake
    (tampered / "wheels.lock.json").write_text(json.dumps(lock))
    results = build(tampered, PLAIN)
    assert results[PLAIN].status == "failed" and not results[PLAIN].build_started
    assert "sha256" in (results[PLAIN].error or "") and fake in (results[PLAIN].error or "")
    cache = Path(os.environ.get("AIR_FLEET_STATE", ROOT / ".cache")) / "wheelhouse" / "sha256" / fake[:2]
    assert not cache.exists() or not any(cache.rglob("*"))


def test_a_held_run_lock_waits_or_refuses(project: Path) -> None:
    lock_file = Path(os.environ.get("AIR_FLEET_STATE", ROOT / ".cache")) / "locks" / "build-sandbox.lock"
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with hold(lock_file, "test holder", progress=lambda _: None):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        refused = cli(project, "build", PLAIN, "--no-wait")
        assert refused.returncode == 2
        assert "another build of the sandbox fleet is running" in refused.stderr
        threading.Timer(3.0, release.set).start()
        started = time.monotonic()
        waited = cli(project, "build", PLAIN)
        assert waited.returncode == 0, waited.stderr
        assert "waiting for another build" in waited.stderr and time.monotonic() - started >= 2.5
    finally:
        release.set()
        thread.join()


def test_an_unreachable_engine_is_one_line_and_exit_2(project: Path) -> None:
    result = cli(project, "build", PLAIN, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot reach the Docker engine")
    assert "sandbox up" in lines[-1]


def test_ctrl_c_stops_cleanly(project: Path, tmp_path: Path) -> None:
    """SIGINT mid-build: exit 130, the cell recorded as cancelled, the engine's build stopped too."""
    # A CA certificate of this run only: its layer, and the torch install after it, are not cached.
    pem = unique_ca(tmp_path)
    root = tmp_path / "fleet"
    root.mkdir()
    both = f"/etc/ssl/certs/ca-certificates.crt, {pem}"  # the proxy's CA stays: the torch step needs the index
    (root / "matrix.yaml").write_text(MATRIX.replace("/etc/ssl/certs/ca-certificates.crt", both))
    (root / "wheels.lock.json").write_text((project / "wheels.lock.json").read_text())
    argv = [
        sys.executable,
        "-m",
        "generator",
        "--profile",
        "sandbox",
        "--matrix",
        str(root / "matrix.yaml"),
        "build",
        PLAIN,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AIR_FLEET_RESULTS": str(root / "results")}
    # A process started in the background inherits SIGINT ignored, and Python then keeps ignoring it
    # (as a terminal's Ctrl-C would not be): give the child the default disposition a shell gives it.
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # before exec: nothing else runs yet
    )
    log = records_of(root) / "build" / f"{PLAIN}.log"
    deadline = time.monotonic() + 300
    # Interrupt at the step after the unique CA (uncached), well before the torch install: with uv's cache
    # mount warm that install takes only seconds, and a signal sent during it could arrive after the
    # build had finished and tagged its image.
    started = "RUN update-ca-certificates"
    while time.monotonic() < deadline and started not in (log.read_text() if log.exists() else ""):
        time.sleep(0.2)
    assert log.exists() and started in log.read_text(), "the build never reached its CA step"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    record = json.loads(log.with_suffix(".json").read_text())
    assert record["status"] == "cancelled"
    # The CLI's process group is gone with it: no process carries the cell's tag any more (the engine's
    # BuildKit cancels a build whose client went away).
    assert not _building(record["ref"])
    client = docker.from_env()
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(record["ref"])


def _building(ref: str) -> list[int]:
    """Processes whose command line names the image: the docker CLI that builds it (`--tag REF`)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and ref.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue  # gone meanwhile
    return found
