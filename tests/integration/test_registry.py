"""Asking a registry through the real Docker engine: one rule for `build` and `plan` (generator/release/registry.py).

404 is "absent"; anything else (a 401, a registry that is down, an engine that is not there) is a
RegistryError, after a few tries when it may pass. The registries in trouble are real sockets on
127.0.0.1 (tests/standins.py and a tiny HTTP server here); the engine is the real one.
"""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from generator.build.builder import Builder
from generator.engine import connect
from generator.fleet import Fleet
from generator.progress import Progress
from generator.release.credentials import CredentialSource
from generator.release.registry import RegistryError, exists_via_engine
from generator.render.renderer import RenderedCell
from generator.sandbox import services
from tests.standins import closed_port

REGISTRY = "127.0.0.1:5000"
NO_CREDENTIALS = CredentialSource({})


@pytest.fixture(scope="module")
def client() -> docker.DockerClient:
    services.up(progress=lambda _: None)
    return connect()


class _Guarded(http.server.BaseHTTPRequestHandler):
    """A registry that wants credentials for everything (and is never given any here)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _any(self) -> None:
        body = json.dumps({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}).encode()
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="air-fleet-test"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = _any


@pytest.fixture
def guarded() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Guarded)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_absent_is_false_and_a_401_is_an_error_not_absent(client: docker.DockerClient, guarded: str) -> None:
    absent = f"{REGISTRY}/air-fleet/registry-test-{uuid.uuid4().hex[:8]}:nothing"
    assert exists_via_engine(client, absent, NO_CREDENTIALS) is False
    waits: list[float] = []
    with pytest.raises(RegistryError, match="no basic auth credentials") as caught:
        exists_via_engine(client, f"{guarded}/team/air:t", NO_CREDENTIALS, sleep=waits.append)
    assert waits == [] and "after" not in str(caught.value)  # a refusal comes back the same: no retry


def test_a_registry_that_is_down_is_retried_then_an_error(client: docker.DockerClient) -> None:
    with closed_port() as address:
        waits: list[float] = []
        said: list[str] = []
        with pytest.raises(RegistryError, match=r"connection refused.*\(after 3 tries\)"):
            exists_via_engine(client, f"{address}/team/air:t", NO_CREDENTIALS, sleep=waits.append, say=said.append)
    assert len(waits) == 2 and len(said) == 2 and "try 2/3" in said[0]


def test_an_engine_that_is_not_there_is_an_error(tmp_path: Path) -> None:
    nowhere = docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41")  # no ping at start
    with pytest.raises(RegistryError, match="the Docker engine cannot be reached"):
        exists_via_engine(nowhere, f"{REGISTRY}/team/air:t", NO_CREDENTIALS)


# -- build follows the same rule --------------------------------------------------------------------------


def two_cells(tmp_path: Path, registry: str) -> list[RenderedCell]:
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        "schema: 1\n"
        f"registry: {{host: {registry}, repository: team/air}}\n"
        "clouds: [aws]\nvariants: [runtime]\naccelerators: [GPU_1xA10]\n"
        "torch:\n  - {version: 2.6.0}\n  - {version: 2.7.1}\n"
    )
    return Fleet.load(matrix).render()


class Reached(Exception):
    """The builder went on to build: the registry's answer was taken for "absent"."""


def stage(rendered: RenderedCell, directory: Path) -> None:
    raise Reached(f"staging {rendered.cell.slug}")


def builder(client: docker.DockerClient, tmp_path: Path) -> Builder:
    progress = Progress(total=2, quiet=True)
    return Builder(client, tmp_path / "images", tmp_path / "results", "default", stage, progress, source=NO_CREDENTIALS)


def test_build_takes_only_a_404_for_absent(client: docker.DockerClient, tmp_path: Path) -> None:
    cells = two_cells(tmp_path, REGISTRY)  # the real registry, which has neither
    results = builder(client, tmp_path).run(cells)
    assert [(r.status, r.error) for r in results] == [("failed", f"staging {c.cell.slug}") for c in cells]


def test_build_stops_on_a_registry_that_cannot_answer(
    client: docker.DockerClient, tmp_path: Path, guarded: str
) -> None:
    """Before: any registry error was "not there, build it", so a 401 rebuilt the whole fleet."""
    cells = two_cells(tmp_path, guarded)
    with pytest.raises(
        RegistryError, match=rf"{guarded}/team/air.*no basic auth credentials.*Nothing more was started"
    ):
        builder(client, tmp_path).run(cells)
    records = [
        json.loads((tmp_path / "results" / "default" / "build" / f"{c.cell.slug}.json").read_text()) for c in cells
    ]
    assert records[0]["status"] == "failed" and "cannot tell whether" in records[0]["error"]
    assert records[1]["status"] == "cancelled" and records[1]["error"].startswith("not started:")
    assert not any(r["build_started"] for r in records)
