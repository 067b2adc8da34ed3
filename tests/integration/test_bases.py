"""The sandbox's stand-in base images, against the real Docker engine (no mocks).

The first `ensure_bases` of a fresh engine debootstraps the rootfs and builds all six stand-ins (about
a minute and a half here); every later one reuses them. The digest tests need no engine at all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from generator.engine import DockerUnavailable, connect
from generator.sandbox import bases, rootfs
from generator.sandbox.bases import (
    BUILT,
    DIGEST_LABEL,
    UP_TO_DATE,
    UV_VERSION,
    SandboxBaseError,
    StandIn,
    ensure_bases,
    plan,
    stand_ins,
)
from generator.sandbox.mirror import debian_mirror
from generator.sandbox.rootfs import ROOTFS_REF

BY_REF = {s.ref: s for s in stand_ins()}
DATABRICKS = [s for s in stand_ins() if s.kind == "databricks"]
SCRATCH = [s for s in stand_ins() if s.kind == "scratch"]
COMMON_ENV = {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}
# Well under a cold build (a minute or more): an up-to-date pass only inspects six images.
WARM_LIMIT_S = 15.0


@dataclass
class FirstPass:
    client: Any
    results: list[tuple[StandIn, str]]
    progress: list[str]
    state: Path


@pytest.fixture(scope="module")
def client() -> Any:
    try:
        return connect()
    except DockerUnavailable as exc:
        if os.environ.get("CI"):
            raise  # CI starts the engine itself: its absence there is a failure, not a skip
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def first(client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstPass]:
    """One ensure_bases for the module (builds on a fresh engine), with run-time state in a temp dir."""
    state = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIR_FLEET_STATE", str(state))
        progress: list[str] = []
        results = ensure_bases(client, progress=progress.append)
        yield FirstPass(client, results, progress, state)


def run(client: Any, ref: str, script: str) -> str:
    """Run a shell script in a throwaway container of `ref`; its stdout (a non-zero exit raises)."""
    # Host networking, like the builds: the tests must not depend on the engine's bridge.
    out = client.containers.run(ref, ["bash", "-c", script], remove=True, network_mode="host")
    return bytes(out).decode()


def image_env(client: Any, ref: str) -> dict[str, str]:
    env = client.images.get(ref).attrs["Config"]["Env"] or []
    return dict(item.split("=", 1) for item in env)


def key_values(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


# --- building and reusing -------------------------------------------------------------------------------------


def test_first_call_makes_all_six_with_their_digest(first: FirstPass) -> None:
    assert [s.ref for s, _ in first.results] == list(BY_REF)
    assert {status for _, status in first.results} <= {BUILT, UP_TO_DATE}
    parent_id = first.client.images.get(ROOTFS_REF).id
    for stand_in, _ in first.results:
        labels = first.client.images.get(stand_in.ref).labels
        assert labels[DIGEST_LABEL] == plan(stand_in).digest(parent_id), stand_in.ref
        assert labels["air-fleet.sandbox"] == "true"
        assert labels["air-fleet.stand-in-for"] == stand_in.stands_in_for
        assert "CPU-only" in labels["org.opencontainers.image.description"]
    # One progress line for the rootfs, then one per stand-in, each saying what happened.
    assert len(first.progress) == 7
    assert all(re.fullmatch(r"\S+: (up to date|built in \d+ s)", line) for line in first.progress)
    assert not rootfs.rootfs_dir().exists() and not (first.state / "sandbox" / "rootfs").exists()


def test_second_call_builds_nothing(first: FirstPass) -> None:
    client = first.client
    before = {ref: client.images.get(ref).id for ref in BY_REF}
    # Events are filtered by whole seconds: start the window on a fresh second, so a tag from the build
    # just before this test (`sandbox up`, the fixture) can never fall inside it.
    time.sleep(1.1)
    since = int(time.time())
    start = time.monotonic()
    progress: list[str] = []
    results = ensure_bases(client, progress=progress.append)
    elapsed = time.monotonic() - start
    time.sleep(1.1)  # events are filtered by whole seconds
    until = int(time.time())
    assert [status for _, status in results] == [UP_TO_DATE] * 6
    assert progress == [f"{ref}: {UP_TO_DATE}" for ref in [ROOTFS_REF, *BY_REF]]
    assert {ref: client.images.get(ref).id for ref in BY_REF} == before
    # A build tags its image even when every step is cached, so no tag event means no build ran.
    events = client.events(since=since, until=until, filters={"type": "image", "event": "tag"}, decode=True)
    tagged = {e.get("Actor", {}).get("Attributes", {}).get("name") for e in events}
    assert not tagged & {ROOTFS_REF, *BY_REF}, tagged
    assert elapsed < WARM_LIMIT_S


def test_a_failing_step_is_one_line_naming_stand_in_step_and_log(first: FirstPass, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "scratch.Dockerfile.j2").write_text(
        "FROM {{ parent }}\nRUN echo about-to-fail && false\nLABEL never=reached\n", encoding="utf-8"
    )
    broken = StandIn("air-sandbox/test-broken:scratch-runtime", "nvidia/cuda:none", "scratch", None, "runtime")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIR_FLEET_STATE", str(tmp_path / "state"))
        with pytest.raises(SandboxBaseError) as caught:
            ensure_bases(first.client, [broken], progress=lambda _: None, templates=templates)
        log = rootfs.logs_dir() / f"{broken.slug}.log"
    message = str(caught.value)
    assert "\n" not in message
    # Step 2 of 4: the engine appends the digest label as a last step of its own.
    assert message.startswith(f"{broken.ref}: build failed at Step 2/4 : RUN echo about-to-fail && false: ")
    assert "non-zero code: 1" in message
    assert message.endswith(f"; log: {log}")
    assert "about-to-fail" in log.read_text(encoding="utf-8")
    with pytest.raises(docker.errors.ImageNotFound):
        first.client.images.get(broken.ref)


# --- what is inside -------------------------------------------------------------------------------------------

VENV_CHECK = "import os, sys; print(os.path.realpath(sys.prefix), sys.prefix != sys.base_prefix)"
PROBE = f"""
echo python=$(/opt/venv/bin/python --version)
echo uv=$(uv --version)
echo uv_path=$(command -v uv)
echo databricks=$(/databricks/python/bin/python -c '{VENV_CHECK}')
echo gcc=$(command -v gcc || echo none)
echo ca_left=$(ls /tmp/{bases.CA_FILE} 2>/dev/null || echo none)
"""


@pytest.mark.parametrize("stand_in", DATABRICKS, ids=lambda s: s.ref.rsplit(":", 1)[1])
def test_databricks_stand_in_is_laid_out_like_the_real_base(first: FirstPass, stand_in: StandIn) -> None:
    found = key_values(run(first.client, stand_in.ref, PROBE))
    assert re.fullmatch(r"Python 3\.11\.\d+", found["python"])
    assert found["uv"].startswith(f"uv {UV_VERSION}")
    assert found["uv_path"] == "/usr/local/bin/uv"
    # The Databricks path runs the venv's interpreter, with the venv's packages.
    assert found["databricks"] == "/opt/venv True"
    assert (found["gcc"] != "none") == (stand_in.variant == "devel")
    assert found["ca_left"] == "none"
    env = image_env(first.client, stand_in.ref)
    assert env.items() >= {**COMMON_ENV, "VIRTUAL_ENV": "/opt/venv", "OPENSSL_FORCE_FIPS_MODE": "0"}.items()
    assert env["PATH"].startswith("/opt/venv/bin:/usr/local/sbin:")
    assert (env.get("FI_EFA_USE_DEVICE_RDMA") == "1") == (stand_in.cloud == "aws")


def test_scratch_runtime_has_no_python_and_apt_reaches_the_hosts_mirror(first: FirstPass) -> None:
    ref = SCRATCH[0].ref
    script = (
        "command -v python3 && exit 3; cat /etc/apt/sources.list; "
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 >/dev/null 2>&1 "
        "&& echo installed=$(python3 --version)"
    )
    out = run(first.client, ref, script)
    assert f"deb {debian_mirror()} bookworm main" in out
    assert re.search(r"^installed=Python 3\.11\.\d+$", out, re.MULTILINE), out
    assert image_env(first.client, ref).items() >= COMMON_ENV.items()


def test_scratch_devel_has_a_compiler_and_still_no_python(first: FirstPass) -> None:
    ref = SCRATCH[1].ref
    found = key_values(run(first.client, ref, "echo gcc=$(command -v gcc); echo py=$(command -v python3 || echo none)"))
    assert found == {"gcc": "/usr/bin/gcc", "py": "none"}
    assert image_env(first.client, ref).items() >= COMMON_ENV.items()


def test_rootfs_image_has_a_path_for_child_dockerfiles(first: FirstPass) -> None:
    env = image_env(first.client, ROOTFS_REF)
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --- digests (no engine) ---------------------------------------------------------------------------------------


def digests(templates: Path = bases.TEMPLATES, ca: Path = bases.HOST_CA, parent: str = "sha256:p") -> dict[str, str]:
    return {s.ref: plan(s, templates, ca).digest(parent) for s in stand_ins()}


def changed(a: dict[str, str], b: dict[str, str]) -> set[str]:
    return {ref for ref in a if a[ref] != b[ref]}


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    copy = tmp_path / "templates"
    shutil.copytree(bases.TEMPLATES, copy)
    return copy


def test_digest_is_stable_and_distinct() -> None:
    once = digests()
    assert once == digests()
    assert len(set(once.values())) == 6


def test_editing_a_template_invalidates_exactly_the_stand_ins_built_from_it(templates: Path) -> None:
    before = digests(templates)
    with (templates / "scratch.Dockerfile.j2").open("a", encoding="utf-8") as f:
        f.write('LABEL edited="yes"\n')
    assert changed(before, digests(templates)) == {s.ref for s in SCRATCH}
    before = digests(templates)
    with (templates / "databricks.Dockerfile.j2").open("a", encoding="utf-8") as f:
        f.write('LABEL edited="yes"\n')
    assert changed(before, digests(templates)) == {s.ref for s in DATABRICKS}


def test_editing_the_devel_block_invalidates_only_devel(templates: Path) -> None:
    before = digests(templates)
    path = templates / "databricks.Dockerfile.j2"
    text = path.read_text(encoding="utf-8")
    assert "build-essential" in text
    path.write_text(text.replace("build-essential", "build-essential make"), encoding="utf-8")
    assert changed(before, digests(templates)) == {s.ref for s in DATABRICKS if s.variant == "devel"}


def test_parent_and_ca_bundle_are_part_of_the_digest(tmp_path: Path) -> None:
    before = digests()
    assert changed(before, digests(parent="sha256:other")) == set(BY_REF)
    ca = tmp_path / "ca.crt"
    ca.write_bytes(bases.HOST_CA.read_bytes() + b"\n")
    # Only the databricks stand-ins install from the index, so only they carry the bundle.
    assert changed(before, digests(ca=ca)) == {s.ref for s in DATABRICKS}


# --- the mirror, from apt's configuration (no engine) ----------------------------------------------------------


def write_apt(root: Path, sources: str = "", one_line: str = "") -> Path:
    (root / "sources.list.d").mkdir(parents=True)
    if sources:
        (root / "sources.list.d" / "debian.sources").write_text(sources, encoding="utf-8")
    if one_line:
        (root / "sources.list").write_text(one_line, encoding="utf-8")
    return root


def test_mirror_comes_from_the_enabled_deb822_stanza_for_bookworm(tmp_path: Path) -> None:
    sources = (
        "Types: deb\nURIs: http://disabled.invalid/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n"
        "Types: deb-src\nURIs: http://src.invalid/debian\nSuites: bookworm\n\n"
        "Types: deb\n# a comment\nURIs: http://security.invalid/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://chosen.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
    )
    apt = write_apt(tmp_path, sources=sources, one_line="deb http://later.invalid/debian bookworm main\n")
    assert debian_mirror(apt) == "http://chosen.invalid/debian"


def test_mirror_falls_back_to_one_line_sources(tmp_path: Path) -> None:
    one_line = (
        "# deb http://commented.invalid/debian bookworm main\n"
        "deb [signed-by=/k.gpg arch=amd64] http://chosen.invalid/debian bookworm main contrib\n"
    )
    assert debian_mirror(write_apt(tmp_path, one_line=one_line)) == "http://chosen.invalid/debian"


def test_no_mirror_is_a_clear_error(tmp_path: Path) -> None:
    apt = write_apt(tmp_path, one_line="deb http://other.invalid/debian trixie main\n")
    with pytest.raises(SandboxBaseError, match="no Debian mirror for suite 'bookworm'"):
        debian_mirror(apt)


def test_this_host_has_a_mirror() -> None:
    assert re.fullmatch(r"https?://\S+", debian_mirror())


# --- cleaning up a half-made rootfs ---------------------------------------------------------------------------


def test_removing_a_rootfs_unmounts_what_debootstrap_left_first(tmp_path: Path) -> None:
    target = tmp_path / "rootfs"
    (target / "proc").mkdir(parents=True)
    (target / "etc").mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(target / "proc")], capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount here: {mounted.stderr.decode().strip()}")
    (target / "proc" / "inside-a-mount").write_text("x", encoding="utf-8")
    assert rootfs._mounts_under(target) == [target.resolve() / "proc"]
    rootfs._remove_rootfs(target)
    assert not target.exists()
    assert rootfs._mounts_under(target) == []
