"""The nightly's plan: which cells to build, as a GitHub Actions matrix.

`plan()` runs on the real default fleet with a fake `exists`; `manifest_exists_http` runs against the
real registry on 127.0.0.1:5000 (a 404, and a 200 for a manifest this test pushes over the plain v2 API
into a repository of its own: no Docker engine involved) and against a small in-test HTTP stub for the
paths the real one cannot show (401 with Basic or Bearer, 500, a redirect, nothing listening).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.server
import json
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from generator.ci.plan import (
    MANIFEST_TYPES,
    MAX_JOBS,
    RegistryError,
    github_outputs,
    http_exists,
    manifest_exists_http,
    plan,
    registry_exists,
    split_ref,
)
from generator.engine import connect
from generator.errors import FleetError
from generator.fleet import Fleet
from generator.release.credentials import ENV_PASSWORD, ENV_USERNAME, CredentialsError
from generator.render.renderer import RenderedCell
from generator.resolve.checks import FAIL, Check
from generator.sandbox import services
from tests.conftest import DEFAULT_MATRIX, MINIMAL
from tests.standins import closed_port, silent_server, write_helper

REGISTRY = "127.0.0.1:5000"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ENTRY_KEYS = ["index", "slug", "cloud", "variant", "base", "torch", "stack", "digest", "tag", "ref", "candidate", "dir"]


@pytest.fixture(scope="module")
def fleet() -> list[RenderedCell]:
    return Fleet.load(DEFAULT_MATRIX).render()


def failing(r: RenderedCell) -> RenderedCell:
    """The same cell, FAILing one check (what a bad pin does; tests/test_cli.py shows a real one)."""
    return dataclasses.replace(r, checks=(*r.checks, Check("abi", "CXX11 ABI", FAIL, "planted ABI mismatch")))


@dataclass
class FakeExists:
    """`exists` answering from a set of slugs, counting its calls."""

    present: set[str]
    calls: list[str] = field(default_factory=list)

    def __call__(self, rendered: RenderedCell) -> bool:
        self.calls.append(rendered.cell.slug)
        return rendered.cell.slug in self.present


# -- plan() ----------------------------------------------------------------------------------------------


def test_only_cells_missing_from_the_registry_are_planned(fleet: list[RenderedCell]) -> None:
    present = {r.cell.slug for r in fleet[::2]}
    exists = FakeExists(present)
    result = plan(fleet, exists)
    assert exists.calls == [r.cell.slug for r in fleet]  # once per cell, in matrix order
    missing = [r for r in fleet if r.cell.slug not in present]
    assert [e["slug"] for e in result["include"]] == [r.cell.slug for r in missing]
    assert [s["slug"] for s in result["skipped"]] == [r.cell.slug for r in fleet if r.cell.slug in present]
    assert all(s["reason"] == "released" for s in result["skipped"])
    assert result["empty"] is False and result["forced"] is False and result["refused"] == []
    first, r = result["include"][0], missing[0]
    assert list(first) == ENTRY_KEYS
    assert first == {
        "index": r.cell.index,
        "slug": r.cell.slug,
        "cloud": r.cell.cloud,
        "variant": r.cell.variant,
        "base": r.cell.base,
        "torch": r.cell.torch,
        "stack": r.cell.stack,
        "digest": r.digest,
        "tag": r.tag,
        "ref": r.release_ref,
        "candidate": r.ref,
        "dir": f"images/{r.cell.slug}",
    }
    json.dumps(result)  # plain JSON all the way down


def test_force_plans_everything_without_asking_and_only_narrows(fleet: list[RenderedCell]) -> None:
    exists = FakeExists({r.cell.slug for r in fleet})
    result = plan(fleet, exists, force=True)
    assert exists.calls == [] and result["forced"] is True
    assert [e["slug"] for e in result["include"]] == [r.cell.slug for r in fleet]
    only = {fleet[1].cell.slug, fleet[-1].cell.slug}
    narrowed = plan(fleet, FakeExists(set()), only=only, images_dir="build/sandbox/images")
    assert [e["slug"] for e in narrowed["include"]] == [fleet[1].cell.slug, fleet[-1].cell.slug]
    assert narrowed["include"][0]["dir"] == f"build/sandbox/images/{fleet[1].cell.slug}"


def test_failing_cells_are_refused_even_when_forced(fleet: list[RenderedCell]) -> None:
    cells = [fleet[0], failing(fleet[1]), fleet[2]]
    exists = FakeExists(set())
    for force in (False, True):
        result = plan(cells, exists, force=force)
        assert [e["slug"] for e in result["include"]] == [fleet[0].cell.slug, fleet[2].cell.slug]
        (refused,) = result["refused"]
        assert refused["slug"] == fleet[1].cell.slug and refused["status"] == FAIL
        assert "CXX11 ABI: planted ABI mismatch" in refused["reason"]
    assert fleet[1].cell.slug not in exists.calls  # a FAILing cell's registry state does not matter


def test_nothing_to_build_is_still_a_valid_plan(fleet: list[RenderedCell]) -> None:
    result = plan(fleet, FakeExists({r.cell.slug for r in fleet}))
    assert result["include"] == [] and result["empty"] is True and len(result["skipped"]) == len(fleet)
    lines = dict(line.split("=", 1) for line in github_outputs(result).splitlines())
    assert lines == {"matrix": '{"include":[]}', "empty": "true", "count": "0"}


def test_github_outputs_give_the_workflow_a_pure_matrix(fleet: list[RenderedCell]) -> None:
    result = plan(fleet[:3], FakeExists(set()))
    text = github_outputs(result)
    assert text.endswith("\n") and len(text.splitlines()) == 3  # one line each: $GITHUB_OUTPUT's key=value
    lines = dict(line.split("=", 1) for line in text.splitlines())
    assert json.loads(lines["matrix"]) == {"include": result["include"]}  # no other key: GitHub reads them all
    assert lines["empty"] == "false" and lines["count"] == "3"


def test_a_registry_problem_stops_the_plan(fleet: list[RenderedCell]) -> None:
    def down(rendered: RenderedCell) -> bool:
        raise RegistryError(rendered.ref, "down")

    with pytest.raises(RegistryError, match=fleet[0].cell.slug):
        plan(fleet, down)
    assert plan(fleet, down, force=True)["include"]  # forced: the registry is never asked


def test_more_jobs_than_github_runs_is_an_error(fleet: list[RenderedCell]) -> None:
    many = fleet * (MAX_JOBS // len(fleet) + 1)
    with pytest.raises(FleetError, match=f"at most {MAX_JOBS} jobs"):
        plan(many, FakeExists(set()))


# -- references ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("registry.example.com/ml/air:aws-1", ("registry.example.com", "ml/air", "aws-1")),
        ("127.0.0.1:5000/air-fleet/sandbox:t", ("127.0.0.1:5000", "air-fleet/sandbox", "t")),
        ("localhost:5000/a", ("localhost:5000", "a", "latest")),
        ("ubuntu:24.04", ("registry-1.docker.io", "library/ubuntu", "24.04")),
        ("docker.io/nvidia/cuda:12.9.0", ("registry-1.docker.io", "nvidia/cuda", "12.9.0")),
        (f"r.io/x@sha256:{'a' * 64}", ("r.io", "x", f"sha256:{'a' * 64}")),
    ],
)
def test_split_ref(ref: str, parts: tuple[str, str, str]) -> None:
    assert split_ref(ref) == parts


# -- the real registry -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> str:
    services.up(progress=lambda _: None)
    return REGISTRY


def _http(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body if method != "HEAD" else None, method=method)  # noqa: S310
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    with NO_PROXY.open(request, timeout=10) as response:
        return int(response.status), response.headers.get("Location", "")


def push_blob(repo: str, data: bytes) -> dict[str, Any]:
    """A blob, uploaded monolithically (POST for an upload URL, PUT with the digest): its descriptor."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, location = _http("POST", f"http://{REGISTRY}/v2/{repo}/blobs/uploads/")
    assert status == 202, status
    url = urllib.parse.urljoin(f"http://{REGISTRY}/", location)
    url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
    status, _ = _http("PUT", url, data, {"Content-Type": "application/octet-stream"})
    assert status == 201, status
    return {"digest": digest, "size": len(data)}


def push_manifest(repo: str, tag: str) -> str:
    """The smallest OCI image there is (a config, no layers) under `repo:tag`: its manifest digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **push_blob(repo, config.encode())},
        "layers": [],
    }
    body = json.dumps(manifest).encode()
    media = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    status, _ = _http("PUT", f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", body, media)
    assert status == 201, status
    return "sha256:" + hashlib.sha256(body).hexdigest()


def test_the_real_registry_answers_404_and_200(registry: str, write_matrix: Callable[[str], Any]) -> None:
    repo = f"air-fleet/plan-test-{uuid.uuid4().hex[:8]}"
    text = MINIMAL.replace("registry.example.com", registry).replace("team/air", repo)
    text = text.replace("  - {version: 2.6.0}\n", "  - {version: 2.6.0}\n  - {version: 2.7.1}\n")
    cells = Fleet.load(write_matrix(text)).render()
    assert len(cells) == 2
    assert manifest_exists_http(cells[0].release_ref, timeout=5) is False  # nothing pushed: a 404, not an error

    push_manifest(f"{repo}-staging", cells[0].tag)  # a candidate is not released: the plan still takes it
    assert [e["slug"] for e in plan(cells, http_exists(timeout=5))["include"]] == [c.cell.slug for c in cells]
    digest = push_manifest(repo, cells[0].tag)
    assert manifest_exists_http(cells[0].release_ref, timeout=5) is True
    assert manifest_exists_http(f"{registry}/{repo}@{digest}", timeout=5) is True
    result = plan(cells, http_exists(timeout=5))
    assert [e["slug"] for e in result["include"]] == [cells[1].cell.slug]
    assert [s["slug"] for s in result["skipped"]] == [cells[0].cell.slug]

    # The engine's answer agrees (what `build` asks), where the engine runs.
    engine_says = registry_exists(connect())
    assert engine_says(cells[0]) is True and engine_says(cells[1]) is False


# -- a stub registry for what the real one cannot show -----------------------------------------------------


class StubRegistry(http.server.ThreadingHTTPServer):
    """Answers HEAD /v2/.../manifests/... by `mode`; serves Bearer tokens at /token for `user:password`."""

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), StubHandler)
        self.mode = mode  # "basic" | "bearer" | "status:<code>" | "redirect"
        self.user, self.password, self.token = "fleet-bot", f"pw-{uuid.uuid4().hex}", uuid.uuid4().hex
        self.refresh = f"refresh-{uuid.uuid4().hex}"  # an identity token, exchanged at /token by POST
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.posts: list[tuple[str, str, str]] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class StubHandler(http.server.BaseHTTPRequestHandler):
    server: StubRegistry
    protocol_version = "HTTP/1.1"
    RESOURCE: ClassVar[str] = "/v2/team/air/manifests/"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _manifest_status(self) -> int:
        return 200 if self.path.endswith("/present") else 404

    def do_GET(self) -> None:
        stub = self.server
        stub.seen.append(("GET", self.path, dict(self.headers)))
        basic = "Basic " + base64.b64encode(f"{stub.user}:{stub.password}".encode()).decode()
        if not self.path.startswith("/token?") or self.headers.get("Authorization") != basic:
            self._reply(401)
            return
        self._reply(200, {"Content-Type": "application/json"}, json.dumps({"token": stub.token}).encode())

    def do_POST(self) -> None:
        stub = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        stub.posts.append(("POST", self.path, body))
        form = urllib.parse.parse_qs(body)
        if self.path != "/token" or form.get("refresh_token") != [stub.refresh]:
            self._reply(401)
            return
        self._reply(200, {"Content-Type": "application/json"}, json.dumps({"access_token": stub.token}).encode())

    def do_HEAD(self) -> None:
        stub = self.server
        stub.seen.append(("HEAD", self.path, dict(self.headers)))
        given = self.headers.get("Authorization", "")
        if stub.mode.startswith("status:"):
            self._reply(int(stub.mode.removeprefix("status:")))
        elif stub.mode == "redirect":
            self._reply(307, {"Location": f"http://127.0.0.1:9/{self.path}"})
        elif stub.mode == "basic":
            basic = "Basic " + base64.b64encode(f"{stub.user}:{stub.password}".encode()).decode()
            if given == basic:
                self._reply(self._manifest_status())
            else:
                self._reply(401, {"WWW-Authenticate": 'Basic realm="stub"'})
        elif given == f"Bearer {stub.token}":
            self._reply(self._manifest_status())
        else:
            realm = f"http://{stub.address}/token"
            challenge = f'Bearer realm="{realm}",service="stub",scope="repository:team/air:pull"'
            self._reply(401, {"WWW-Authenticate": challenge})


@pytest.fixture
def stub() -> Iterator[Callable[[str], StubRegistry]]:
    made: list[StubRegistry] = []

    def start(mode: str) -> StubRegistry:
        server = StubRegistry(mode)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        made.append(server)
        return server

    yield start
    for server in made:
        server.shutdown()
        server.server_close()


def creds(server: StubRegistry, password: str | None = None) -> dict[str, str]:
    return {ENV_USERNAME: server.user, ENV_PASSWORD: password or server.password}


def test_basic_credentials_answer_a_401(stub: Callable[[str], StubRegistry]) -> None:
    server = stub("basic")
    present, absent = f"{server.address}/team/air:present", f"{server.address}/team/air:absent"
    with pytest.raises(RegistryError, match=f"wants credentials: set {ENV_USERNAME} and {ENV_PASSWORD}"):
        manifest_exists_http(present, timeout=5, env={})
    assert manifest_exists_http(present, timeout=5, env=creds(server)) is True
    assert manifest_exists_http(absent, timeout=5, env=creds(server)) is False
    with pytest.raises(RegistryError, match="refused the credentials") as caught:
        manifest_exists_http(present, timeout=5, env=creds(server, "wrong"))
    assert server.password not in str(caught.value) and "wrong" not in str(caught.value)
    accept = server.seen[0][2]["Accept"]
    assert all(media in accept for media in MANIFEST_TYPES)  # an index answers too


def test_bearer_token_flow(stub: Callable[[str], StubRegistry]) -> None:
    server = stub("bearer")
    ref = f"{server.address}/team/air:present"
    assert manifest_exists_http(ref, timeout=5, env=creds(server)) is True
    assert manifest_exists_http(f"{server.address}/team/air:absent", timeout=5, env=creds(server)) is False
    token_request = next(path for method, path, _ in server.seen if method == "GET")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(token_request).query)
    assert query == {"service": ["stub"], "scope": ["repository:team/air:pull"]}
    with pytest.raises(RegistryError, match=r"token service .* answered HTTP 401"):
        manifest_exists_http(ref, timeout=5, env=creds(server, "wrong"))


@pytest.mark.parametrize(
    ("mode", "says", "tries"),
    [
        ("status:500", "HTTP 500", 3),
        ("status:503", "HTTP 503", 3),
        ("status:403", "HTTP 403", 1),
        ("redirect", "HTTP 307", 1),
    ],
)
def test_other_answers_are_errors_not_guesses(
    stub: Callable[[str], StubRegistry], mode: str, says: str, tries: int
) -> None:
    """A 5xx may pass: tried again (with backoff) before it is an error. A 403 or a redirect will not."""
    server = stub(mode)
    waits: list[float] = []
    with pytest.raises(RegistryError, match=f"{says}.*Nothing planned") as caught:
        manifest_exists_http(f"{server.address}/team/air:present", timeout=5, env={}, sleep=waits.append)
    assert len(server.seen) == tries and len(waits) == tries - 1
    assert ("after 3 tries" in str(caught.value)) is (tries == 3)


def test_a_registry_that_is_down_is_an_error() -> None:
    with closed_port() as address:
        waits: list[float] = []
        with pytest.raises(RegistryError, match=rf"{address} cannot be reached.*after 3 tries"):
            manifest_exists_http(f"{address}/team/air:t", timeout=2, env={}, sleep=waits.append)
        assert len(waits) == 2  # refused: worth another try, then an error, never "absent"


def test_a_registry_that_never_answers_is_retried_then_an_error() -> None:
    """A real socket that accepts and never says a word: each try times out, and is tried again."""
    with silent_server() as (address, accepted):
        waits: list[float] = []
        with pytest.raises(RegistryError, match=rf"{address} cannot be reached: .*timed out.*after 3 tries"):
            manifest_exists_http(f"{address}/team/air:t", timeout=0.5, env={}, sleep=waits.append)
        assert len(waits) == 2 and len(accepted) == 3


def test_credentials_come_from_the_docker_config_too(stub: Callable[[str], StubRegistry], tmp_path: Path) -> None:
    """The plan asks with what push pushes with: the Docker config, and its credential helpers."""
    server = stub("bearer")
    ref = f"{server.address}/team/air:present"
    auth = base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
    config = tmp_path / "docker"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"auths": {f"http://{server.address}/v2/": {"auth": auth}}}))
    assert manifest_exists_http(ref, timeout=5, env={"DOCKER_CONFIG": str(config)}) is True
    helper = write_helper(tmp_path / "bin", "fleet-test", {"Username": server.user, "Secret": server.password})
    (config / "config.json").write_text(json.dumps({"credHelpers": {server.address: "fleet-test"}}))
    env = {"DOCKER_CONFIG": str(config), "PATH": f"{helper.parent}:/usr/bin:/bin"}
    assert manifest_exists_http(ref, timeout=5, env=env) is True
    assert manifest_exists_http(f"{server.address}/team/air:absent", timeout=5, env=env) is False


def test_an_identity_token_is_exchanged_for_a_bearer_token(stub: Callable[[str], StubRegistry], tmp_path: Path) -> None:
    """ACR's `az acr login` leaves an identity token (a helper's `<token>` user): an OAuth2 refresh grant."""
    server = stub("bearer")
    helper = write_helper(tmp_path / "bin", "fleet-test", {"Username": "<token>", "Secret": server.refresh})
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "fleet-test"}))
    env = {"DOCKER_CONFIG": str(tmp_path), "PATH": f"{helper.parent}:/usr/bin:/bin"}
    assert manifest_exists_http(f"{server.address}/team/air:present", timeout=5, env=env) is True
    posted = [body for method, _, body in server.posts if method == "POST"]
    assert posted and urllib.parse.parse_qs(posted[0])["grant_type"] == ["refresh_token"]


def test_a_failing_credential_helper_is_an_error_not_anonymous(
    stub: Callable[[str], StubRegistry], tmp_path: Path
) -> None:
    server = stub("basic")
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {server.address: "absent-helper"}}))
    with pytest.raises(CredentialsError, match=r"docker-credential-absent-helper .* not on PATH"):
        manifest_exists_http(f"{server.address}/team/air:present", timeout=5, env={"DOCKER_CONFIG": str(tmp_path)})
