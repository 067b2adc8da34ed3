"""The sandbox's services against the real Docker engine and the real registry: no mocks, no skips in CI.

The shared services (default state, 127.0.0.1:5000) are brought up and left up for the other integration
tests. Anything a test stops runs on a test-only port with its own temporary state folder.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

from generator.sandbox import services
from generator.sandbox.services import ServiceError, ServiceState

ROOT = Path(__file__).resolve().parents[2]
# Loopback traffic must not go through a proxy that HTTP(S)_PROXY may name.
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Sandbox:
    """The services `up` returned for one state folder and registry address, and what it printed."""

    state: Path | None
    registry: str
    states: list[ServiceState]
    lines: list[str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def by_name(states: list[ServiceState]) -> dict[str, ServiceState]:
    return {state.name: state for state in states}


def program_of(pid: int) -> str:
    return Path(f"/proc/{pid}/exe").readlink().name


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in {"Z", "X"}


@pytest.fixture(scope="module")
def shared() -> Sandbox:
    """The project's own services (default state, 127.0.0.1:5000): started or reused, never stopped here."""
    lines: list[str] = []
    states = services.up(progress=lines.append)
    return Sandbox(None, services.DEFAULT_REGISTRY, states, lines)


@pytest.fixture(scope="module")
def scratch(shared: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A registry of the tests' own on a free port, with its own state; the engine is the shared one."""
    state = tmp_path_factory.mktemp("sandbox")
    registry = f"127.0.0.1:{free_port()}"
    lines: list[str] = []
    states = services.up(state, registry, progress=lines.append)
    yield Sandbox(state, registry, states, lines)
    services.down(state, registry, progress=lambda _: None)


def test_up_brings_both_up_and_is_idempotent(shared: Sandbox) -> None:
    first = by_name(shared.states)
    assert first["dockerd"].running and first["registry"].running, shared.states
    assert first["registry"].address == "127.0.0.1:5000"
    lines: list[str] = []
    again = by_name(services.up(progress=lines.append))
    services_lines = [line for line in lines if not line.startswith("disk: ")]
    assert [line.split(":")[0] for line in services_lines] == ["dockerd", "registry"]
    assert all(" already running" in line for line in services_lines), lines
    assert any(line.startswith("disk: ") and " GB free for " in line for line in lines), lines
    for name in ("dockerd", "registry"):
        assert again[name].running
        assert again[name].pid == first[name].pid, f"{name}: a second up started a new process"
    if first["registry"].pid is not None:
        assert program_of(first["registry"].pid) == "docker-registry"


def test_up_starts_a_registry_bound_to_loopback_with_storage_in_state(scratch: Sandbox) -> None:
    assert scratch.state is not None
    registry = by_name(scratch.states)["registry"]
    assert registry.running and registry.pid is not None
    assert registry.detail == f"running (pid {registry.pid}, started by the sandbox)"
    assert program_of(registry.pid) == "docker-registry"
    assert (scratch.state / "registry.pid").read_text().strip() == str(registry.pid)
    config = (scratch.state / "registry" / "config.yml").read_text()
    assert f"addr: {scratch.registry}\n" in config
    assert f"rootdirectory: {scratch.state / 'registry' / 'data'}\n" in config
    assert [line for line in scratch.lines if not line.startswith("disk: ")][-2:] == [
        f"registry: starting on {scratch.registry}…",
        f"registry: running (pid {registry.pid}) at {scratch.registry}, storage {scratch.state / 'registry' / 'data'}",
    ]


def tiny_rootfs(marker: str) -> bytes:
    """A one-file root filesystem as a tar: enough for `docker import`, and no network needed."""
    body = f"sandbox test {marker}\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def push(client: docker.DockerClient, repository: str, tag: str) -> str:
    """Push and return the manifest digest the registry stored."""
    events = list(client.api.push(repository, tag=tag, stream=True, decode=True))
    errors = [event for event in events if "error" in event]
    assert not errors, errors
    return next(str(event["aux"]["Digest"]) for event in events if "Digest" in event.get("aux", {}))


def test_registry_round_trip(scratch: Sandbox) -> None:
    assert scratch.state is not None
    marker = uuid.uuid4().hex[:12]
    repository, tag = f"{scratch.registry}/sandbox-test/tiny", marker
    client = docker.from_env(timeout=120)
    try:
        client.api.import_image_from_data(tiny_rootfs(marker), repository=repository, tag=tag)
        image = client.images.get(f"{repository}:{tag}")
        digest = push(client, repository, tag)
        client.images.remove(f"{repository}:{tag}")
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(image.id)  # gone locally: the pull below must fetch it from the registry
        pulled = client.images.pull(f"{repository}@{digest}")
        assert pulled.id == image.id
        client.images.remove(pulled.id, force=True)
    finally:
        client.close()
    with NO_PROXY.open(f"http://{scratch.registry}/v2/sandbox-test/tiny/tags/list", timeout=5) as response:
        assert tag in json.load(response)["tags"]
    assert list((scratch.state / "registry" / "data").rglob("_manifests")), "the blobs are not in the state folder"
    # storage.delete.enabled: the registry accepts deletes (202), so a test can clean up after itself.
    delete = urllib.request.Request(
        f"http://{scratch.registry}/v2/sandbox-test/tiny/manifests/{digest}", method="DELETE"
    )
    with NO_PROXY.open(delete, timeout=5) as response:
        assert response.status == 202


def test_status_reports_both_running(scratch: Sandbox) -> None:
    assert scratch.state is not None
    states = by_name(services.status(scratch.state, scratch.registry))
    assert states["dockerd"].running and states["dockerd"].detail.startswith("running")
    registry = states["registry"]
    pid = by_name(scratch.states)["registry"].pid
    assert (registry.running, registry.pid, registry.address) == (True, pid, scratch.registry)
    assert registry.log == scratch.state / "registry.log"
    assert f"listening on {scratch.registry}" in registry.log.read_text()


def test_down_stops_the_registry_and_leaves_an_engine_it_did_not_start(shared: Sandbox, tmp_path: Path) -> None:
    registry = f"127.0.0.1:{free_port()}"
    started = by_name(services.up(tmp_path, registry, progress=lambda _: None))
    pid = started["registry"].pid
    assert pid is not None and started["dockerd"].pid is None  # the engine is the shared one, not this state's
    lines: list[str] = []
    after = by_name(services.down(tmp_path, registry, progress=lines.append))
    assert gone(pid)
    assert not (tmp_path / "registry.pid").exists()
    assert (after["registry"].running, after["registry"].detail) == (False, "stopped")
    assert after["dockerd"].running, "down stopped an engine the sandbox did not start"
    assert lines == [
        f"registry: stopping (pid {pid})…",
        f"registry: stopped (pid {pid})",
        "dockerd: left running (not started by the sandbox)",
    ]
    now = by_name(services.status(tmp_path, registry))
    assert (now["registry"].running, now["registry"].detail) == (False, "stopped")
    lines.clear()
    services.down(tmp_path, registry, progress=lines.append)
    assert lines == ["registry: not running", "dockerd: left running (not started by the sandbox)"]


def test_down_leaves_a_process_whose_pid_it_did_not_record(shared: Sandbox, tmp_path: Path) -> None:
    """A pidfile naming another program, or a registry older than the pidfile, is not the sandbox's."""
    registry = f"127.0.0.1:{free_port()}"
    config = tmp_path / "foreign.yml"
    config.write_text(
        f"version: 0.1\nstorage: {{filesystem: {{rootdirectory: {tmp_path}/data}}}}\nhttp: {{addr: {registry}}}\n"
    )
    foreign = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        state = tmp_path / "state"
        state.mkdir()
        (state / "dockerd.pid").write_text(f"{os.getpid()}\n")  # pytest itself: not a dockerd
        (state / "registry.pid").write_text(f"{foreign.pid}\n")
        future = time.time() + 60  # the file is far younger than the process: the pid is not one `up` spawned
        os.utime(state / "registry.pid", (future, future))
        lines: list[str] = []
        services.down(state, registry, progress=lines.append)
        assert foreign.poll() is None, "down stopped a registry the sandbox did not start"
        assert not any("stopping" in line for line in lines), lines
        assert not (state / "registry.pid").exists() and not (state / "dockerd.pid").exists()
    finally:
        foreign.kill()
        foreign.wait()


@pytest.fixture(params=["silent socket", "http server"])
def squatter(request: pytest.FixtureRequest) -> Iterator[str]:
    """Something that is not a registry, listening on a port: one that never answers, one that says 404."""
    if request.param == "silent socket":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            yield f"127.0.0.1:{sock.getsockname()[1]}"
        return
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_port_taken_by_something_else_is_a_clear_error(shared: Sandbox, squatter: str, tmp_path: Path) -> None:
    began = time.monotonic()
    expected = re.escape(f"{squatter} is taken by something that is not a registry")
    with pytest.raises(ServiceError, match=expected) as error:
        services.up(tmp_path, squatter, progress=lambda _: None)
    assert time.monotonic() - began < 10
    assert "\n" not in str(error.value)
    assert not (tmp_path / "registry.pid").exists()
    assert by_name(services.status(tmp_path, squatter))["registry"].running is False


@pytest.mark.parametrize("address", ["0.0.0.0:5000", "localhost:5000", "127.0.0.1:70000", "127.0.0.1"])
def test_the_registry_address_must_be_loopback(address: str, tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match=re.escape("expected 127.0.0.1:PORT")):
        services.up(tmp_path, address, progress=lambda _: None)
    assert not list(tmp_path.iterdir()), "a refused address must leave nothing behind"


def test_an_unreachable_engine_is_reported_not_raised(tmp_path: Path) -> None:
    registry = f"127.0.0.1:{free_port()}"
    code = (
        "import json; from generator.sandbox import services; "
        f"print(json.dumps([s.as_json() for s in services.status(registry={registry!r})]))"
    )
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock", "AIR_FLEET_STATE": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    dockerd, registry_state = json.loads(run.stdout)
    assert dockerd["name"] == "dockerd" and dockerd["running"] is False
    assert dockerd["detail"] == "stopped (nothing answers at unix:///nonexistent.sock)"
    assert dockerd["address"] == "unix:///nonexistent.sock"
    assert (registry_state["running"], registry_state["detail"]) == (False, "stopped")


# Starting dockerd itself is not tested with a second engine here: a second dockerd on this host (even
# with `--bridge none`) deletes the shared docker0 bridge, and every build on the main engine then fails.
# The start path runs for real in CI instead: `make test` calls `sandbox up` on a machine where nothing
# is started yet, and every integration test after it needs the engine it started.


def test_up_refuses_a_nearly_full_disk_in_one_line(
    shared: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A floor no disk here meets: the real free space of the real filesystem is measured and found short.
    monkeypatch.setenv("AIR_FLEET_MIN_FREE_GB", "1000000000")
    registry = f"127.0.0.1:{free_port()}"
    try:
        with pytest.raises(ServiceError) as caught:
            services.up(tmp_path, registry, progress=lambda _: None)
    finally:
        services.down(tmp_path, registry, progress=lambda _: None)
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(r"^not enough disk space: \d+\.\d GB free for the registry's store \(", message), message
    assert "below the 1e+09 GB" in message and "`python -m generator sandbox clean`" in message
    monkeypatch.setenv("AIR_FLEET_MIN_FREE_GB", "0")  # 0 turns the check off
    lines: list[str] = []
    try:
        assert by_name(services.up(tmp_path, registry, progress=lines.append))["registry"].running
    finally:
        services.down(tmp_path, registry, progress=lambda _: None)
    assert not any(line.startswith("disk: ") for line in lines), lines


def test_clean_empties_its_registry_and_removes_only_images_tagged_for_it(shared: Sandbox, tmp_path: Path) -> None:
    registry = f"127.0.0.1:{free_port()}"
    services.up(tmp_path, registry, progress=lambda _: None)
    marker = uuid.uuid4().hex[:12]
    client = docker.from_env(timeout=120)
    try:
        only_here, also_elsewhere = f"{registry}/sandbox-test/gone", f"{registry}/sandbox-test/kept"
        client.api.import_image_from_data(tiny_rootfs(marker), repository=only_here, tag=marker)
        client.api.import_image_from_data(tiny_rootfs(marker + "k"), repository=also_elsewhere, tag=marker)
        kept = client.images.get(f"{also_elsewhere}:{marker}")
        kept.tag(f"sandbox-test-kept-{marker}", tag="local")  # a tag outside the registry: the image stays
        push(client, only_here, marker)
        data = tmp_path / "registry" / "data"
        assert list(data.rglob("_manifests"))
        lines: list[str] = []
        cleaned = services.clean(tmp_path, registry, progress=lines.append, build_cache=False)
        assert cleaned.images == 1 and cleaned.registry_emptied, lines
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(f"{only_here}:{marker}")
        assert client.images.get(kept.id).id == kept.id
        assert not data.exists() or not list(data.rglob("_manifests")), "the registry's store was not emptied"
        assert by_name(services.status(tmp_path, registry))["registry"].running, "clean left the registry down"
        with NO_PROXY.open(f"http://{registry}/v2/_catalog", timeout=5) as response:
            assert json.load(response)["repositories"] == []
        assert lines[-1].startswith("disk: ") and " GB after" in lines[-1], lines
        client.images.remove(kept.id, force=True)
    finally:
        client.close()
        services.down(tmp_path, registry, progress=lambda _: None)


def test_clean_leaves_a_registry_it_did_not_start(shared: Sandbox, tmp_path: Path) -> None:
    # The shared registry seen from another state folder: answering, but not this state's to empty.
    lines: list[str] = []
    cleaned = services.clean(tmp_path, services.DEFAULT_REGISTRY, progress=lines.append, build_cache=False)
    assert not cleaned.registry_emptied
    assert any("its store is left alone" in line for line in lines), lines
