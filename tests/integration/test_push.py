"""Push against the real Docker engine and the real registry on 127.0.0.1:5000 (no mocks; in CI these run).

Images are tiny and made in a second: a one-file tar imported as a base, then `FROM base` + the
`air-fleet.digest` label built from an in-memory Dockerfile. Build and probe records are written by the
tests, the way the build and probe steps write them. Registry trouble (503s, a denial, a registry that
wants credentials and echoes them back) comes from a small HTTP stub on 127.0.0.1 that forwards
everything else to the real registry. Every image and tag made here is removed at the end; the registry
keeps its blobs under a repository name no other test uses.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import http.server
import io
import json
import logging
import re
import tarfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest

from generator.cli import main
from generator.engine import connect
from generator.fleet import Fleet
from generator.release import push as push_mod
from generator.release.credentials import ENV_PASSWORD, ENV_USERNAME, CredentialsError, CredentialSource
from generator.release.gate import gate
from generator.release.push import PushCell, PushResult
from generator.release.pushstep import exit_status, run_push, summary
from generator.release.registry import transient, unreachable
from generator.render.renderer import RenderedCell, image_tag
from generator.results import write_record
from generator.sandbox import services
from generator.scrub import Scrubber
from generator.spec.profiles import load_profile
from tests.standins import closed_port, silent_server, write_helper

REGISTRY = "127.0.0.1:5000"
TOKEN = f"push-test-{uuid.uuid4().hex[:8]}"
BASE = f"air-fleet/{TOKEN}-base:one-file"
PROFILE = "sandbox"
DAY = datetime.date(2026, 3, 7)
SECRET = f"planted-secret-{uuid.uuid4().hex}"
# Credentials of other services, by their shape alone: a JWT, a Databricks token, a URL's password.
OTHER_SHAPES = ("c2lnbmF0dXJl", "dapi0123456789abcdef", "s3cr3tpw")
OTHER_SECRETS = (
    "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl pat dapi0123456789abcdef0123456789abcdef "
    "mirror https://robot:s3cr3tpw@mirror.example.com/v2/"
)
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- the engine, tiny images, records -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    services.up(progress=lambda _: None)
    client = connect()
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        data = f"air-fleet push test {TOKEN}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    repo, tag = BASE.split(":")
    client.api.import_image_from_data(payload.getvalue(), repository=repo, tag=tag)
    yield client
    ours = [  # tagged, and pulled by digest only (no tag, a RepoDigest)
        image
        for image in client.images.list(all=True)
        if any(TOKEN in name for name in [*image.tags, *image.attrs.get("RepoDigests", [])])
    ]
    for image in sorted(ours, key=lambda image: BASE in image.tags):  # the base after its children
        client.images.remove(image.id, force=True)


def make_image(client: docker.DockerClient, ref: str, label: str) -> str:
    """A new local image `ref` with air-fleet.digest=label, in well under a second: its id."""
    dockerfile = f"FROM {BASE}\nLABEL air-fleet.digest={label}\n".encode()
    image_id = None
    for chunk in client.api.build(fileobj=io.BytesIO(dockerfile), tag=ref, rm=True, forcerm=True, decode=True):
        assert "error" not in chunk, chunk
        if isinstance(chunk.get("aux"), dict):
            image_id = chunk["aux"]["ID"]
    assert image_id
    return str(image_id)


def new_digest() -> str:
    return "sha256:" + hashlib.sha256(uuid.uuid4().bytes).hexdigest()


def records(results: Path, slug: str, digest: str, *, build: str = "built", probe: str | None = "OK") -> None:
    write_record(results / PROFILE / "build" / f"{slug}.json", {"slug": slug, "digest": digest, "status": build})
    if probe is not None:
        write_record(results / PROFILE / "probe" / f"{slug}.json", {"slug": slug, "digest": digest, "status": probe})


def cell(
    client: docker.DockerClient,
    results: Path,
    repository: str,
    slug: str,
    *,
    probe: str | None = "OK",
    label: str | None = None,
    build_records: bool = True,
) -> PushCell:
    """A built (real image, labelled) and probed (record) cell, as build and probe leave it."""
    digest = new_digest()
    ref = f"{repository}:{image_tag(slug, digest)}"
    make_image(client, ref, label or digest)
    if build_records:
        records(results, slug, digest, probe=probe)
    return PushCell(slug=slug, digest=digest, repository=repository, local_ref=ref)


def registry_tags(name: str) -> list[str]:
    """The tags the real registry holds for a repository ([] when it never heard of it)."""
    try:
        with NO_PROXY.open(f"http://{REGISTRY}/v2/{name}/tags/list", timeout=10) as response:
            return sorted(json.load(response).get("tags") or [])
    except urllib.error.HTTPError as exc:
        assert exc.code == 404, exc
        return []


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


@dataclass
class Lines:
    lines: list[str] = field(default_factory=list)

    def __call__(self, line: str) -> None:
        self.lines.append(line)


def run(cells: list[PushCell], client: docker.DockerClient, results: Path, **kw: object) -> dict[str, PushResult]:
    kw.setdefault("atomic", False)
    kw.setdefault("progress", Lines())
    out = push_mod.push(cells, client, profile=PROFILE, date=DAY, results=results, **kw)  # type: ignore[arg-type]
    assert [r.slug for r in out] == [c.slug for c in cells]
    return {r.slug: r for r in out}


def push_record(results: Path, slug: str) -> dict[str, object]:
    data = json.loads((results / PROFILE / "push" / f"{slug}.json").read_text())
    assert isinstance(data, dict)
    return data


# -- the gate (records only) --------------------------------------------------------------------------------


def test_gate_reads_build_and_probe_records_for_the_same_digest(results: Path) -> None:
    d, other = new_digest(), new_digest()
    assert gate(results, PROFILE, "c", d) == (False, "no build record: run `build` first")
    records(results, "c", other)
    ok, why = gate(results, PROFILE, "c", d)
    assert not ok and "rebuild" in why
    records(results, "c", d, build="failed", probe=None)
    assert gate(results, PROFILE, "c", d) == (False, "build failed")
    records(results, "c", d, build="up to date", probe=None)
    (results / PROFILE / "probe" / "c.json").unlink()  # the one written with the build of `other`
    assert gate(results, PROFILE, "c", d) == (False, "no probe record: run `probe` first")
    write_record(results / PROFILE / "probe" / "c.json", {"slug": "c", "digest": other, "status": "OK"})
    ok, why = gate(results, PROFILE, "c", d)
    assert not ok and "probe again" in why
    for status, passes in [("OK", True), ("WARN", True), ("N/A", True), ("FAIL", False), ("ok", False), (None, False)]:
        write_record(results / PROFILE / "probe" / "c.json", {"slug": "c", "digest": d, "status": status})
        assert gate(results, PROFILE, "c", d)[0] is passes, status
    (results / PROFILE / "probe" / "c.json").write_text("{not json")
    assert gate(results, PROFILE, "c", d) == (False, "no probe record: run `probe` first")


def test_transient_errors_are_told_from_final_ones() -> None:
    for message in [
        "received unexpected HTTP status: 503 Service Unavailable",
        "toomanyrequests: rate limit exceeded",
        "read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer",
        "net/http: TLS handshake timeout",
        "Get http://x/v2/: dial tcp: i/o timeout",
        "502 Bad Gateway",
        "unexpected EOF",
        # What the engine says of a registry that accepts and never answers (seen here, after ~25 s):
        'Get "http://127.0.0.1:1/v2/": net/http: request canceled (Client.Timeout exceeded while awaiting headers)',
        'Get "http://127.0.0.1:1/v2/": context deadline exceeded',
    ]:
        assert transient(message), message
    for message in [
        "denied: requested access to the resource is denied",
        "unauthorized: authentication required",
        "An image does not exist locally with the tag: x",
        "name unknown: repository name not known to registry",
        "manifest invalid",
    ]:
        assert not transient(message) and not unreachable(message), message
    assert transient("whatever", 429) and not transient("whatever", 404)
    assert unreachable('Get "http://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect: connection refused')
    assert not unreachable("received unexpected HTTP status: 503 Service Unavailable")  # an answer, if a no


def test_scrub_hides_known_and_secret_looking_values() -> None:
    text = Scrubber([SECRET]).line(
        f'x {SECRET} {json.dumps(SECRET)} password=hunter2 "token": "abc.def" Authorization: Bearer eyJabcdef.g\nnext'
    )
    assert SECRET not in text and "hunter2" not in text and "abc.def" not in text and "eyJabcdef" not in text
    assert "\n" not in text and text.startswith("x ***")


# -- pushing for real ------------------------------------------------------------------------------------


def test_push_two_cells_then_pull_them_by_digest(client: docker.DockerClient, results: Path) -> None:
    name = f"air-fleet/{TOKEN}-two"
    repository = f"{REGISTRY}/{name}"
    a, b = cell(client, results, repository, "aws-runtime-a"), cell(client, results, repository, "aws-runtime-b")
    progress = Lines()
    out = run([a, b], client, results, progress=progress)
    for c in (a, b):
        r = out[c.slug]
        assert r.status == "pushed" and r.reason is None, r
        immutable = image_tag(c.slug, c.digest)
        assert r.tags == [immutable] and r.attempts == 1  # a candidate: aliases are promote's
        assert r.image_id == client.images.get(c.local_ref).id
        assert r.repo_digest and re.fullmatch(r"sha256:[0-9a-f]{64}", r.repo_digest)
        record = push_record(results, c.slug)
        assert record["status"] == "pushed" and record["repo_digest"] == r.repo_digest
        assert record["tags"] == r.tags and record["digest"] == c.digest and record["pushed_at"]
        assert record["attempts"] == 1
    assert registry_tags(name) == sorted(t for r in out.values() for t in r.tags)
    assert exit_status(list(out.values())) == 0 and "2 pushed" in summary(list(out.values()))
    assert any("pushed" in line for line in progress.lines)
    # Progress from the engine's push stream: per cell and tag, layers done of those seen, bytes, elapsed.
    for c in (a, b):
        shown = rf"^{c.slug}: {image_tag(c.slug, c.digest)}: (\d+)/(\d+) layers, [\d.]+ [kMG]?B pushed \(\d+ s\)$"
        last = [m for m in (re.match(shown, line) for line in progress.lines) if m][-1]
        assert last[1] == last[2] != "0", progress.lines

    # Pullable by digest: drop every local tag, pull <repository>@<repo digest>, get the same image back.
    for c in (a, b):
        image_id = client.images.get(c.local_ref).id
        for tag in out[c.slug].tags:
            client.images.remove(f"{repository}:{tag}")
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(c.local_ref)
        pulled = client.images.pull(f"{repository}@{out[c.slug].repo_digest}")
        assert pulled.id == image_id and pulled.labels["air-fleet.digest"] == c.digest

    # Built elsewhere, in the registry only ("up to date (registry)"): push pulls it and pushes again.
    records(results, a.slug, a.digest, build="up to date")
    again = run([a], client, results)[a.slug]
    assert again.status == "pushed" and again.repo_digest == out[a.slug].repo_digest


def test_atomic_pushes_nothing_when_one_cell_failed_its_probe(client: docker.DockerClient, results: Path) -> None:
    name = f"air-fleet/{TOKEN}-atomic"
    repository = f"{REGISTRY}/{name}"
    good = cell(client, results, repository, "aws-runtime-good")
    bad = cell(client, results, repository, "aws-runtime-bad", probe="FAIL")
    out = run([good, bad], client, results, atomic=True)
    assert out[bad.slug].status == "refused" and out[bad.slug].reason == "probe FAIL"
    assert out[good.slug].status == "held" and bad.slug in (out[good.slug].reason or "")
    assert out[good.slug].tags == [] and out[good.slug].repo_digest is None
    assert registry_tags(name) == []  # nothing at all reached the registry
    assert push_record(results, good.slug)["status"] == "held"
    assert exit_status(list(out.values())) == 1

    # Without --atomic the good one goes, and the bad one is reported.
    out = run([good, bad], client, results, atomic=False)
    assert out[good.slug].status == "pushed" and out[bad.slug].status == "refused"
    assert registry_tags(name) == sorted(out[good.slug].tags)


def test_cells_without_a_build_or_with_another_digest_or_a_stale_image_are_refused(
    client: docker.DockerClient, results: Path
) -> None:
    name = f"air-fleet/{TOKEN}-refused"
    repository = f"{REGISTRY}/{name}"
    unbuilt = cell(client, results, repository, "no-build-record", build_records=False)
    moved = cell(client, results, repository, "digest-moved")
    records(results, moved.slug, new_digest())  # the last build was of another digest
    stale = cell(client, results, repository, "stale-image", label=new_digest())  # local tag, another build
    unprobed = cell(client, results, repository, "no-probe", probe=None)
    out = run([unbuilt, moved, stale, unprobed], client, results)
    assert out[unbuilt.slug].status == "refused" and "no build record" in (out[unbuilt.slug].reason or "")
    assert out[moved.slug].status == "refused" and "rebuild" in (out[moved.slug].reason or "")
    assert out[stale.slug].status == "failed" and "stale image" in (out[stale.slug].reason or "")
    assert out[unprobed.slug].status == "refused" and "no probe record" in (out[unprobed.slug].reason or "")
    assert registry_tags(name) == []

    # --atomic with a stale image (gate passed, image wrong): nothing goes either.
    good = cell(client, results, repository, "good")
    out = run([good, stale], client, results, atomic=True)
    assert out[good.slug].status == "held" and out[stale.slug].status == "failed"
    assert registry_tags(name) == []


# -- a registry in trouble: an HTTP stub in front of the real one ------------------------------------------


class Stub(http.server.ThreadingHTTPServer):
    """Forwards to the real registry, except: `fail` requests matching `matching` get `status`; with
    `basic` set, every request needs those credentials (a 401 challenge otherwise); `echo` puts the
    credentials it got into its error message, as a careless registry might, and `says` more text."""

    daemon_threads = True

    def __init__(
        self,
        *,
        fail: int = 0,
        matching: str = r"^PUT .*/manifests/",
        status: int = 503,
        basic: tuple[str, str] | None = None,
        echo: bool = False,
        says: str = "",
    ) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.fail, self.matching, self.status = fail, re.compile(matching), status
        self.basic, self.echo, self.says = basic, echo, says
        self.failed = 0
        self.seen: list[str] = []
        self.lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _StubHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Stub

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                out += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return out
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        # The distribution spec's codes: the engine retries an unknown code itself (for ~50 s), not these.
        code = {401: "UNAUTHORIZED", 403: "DENIED", 429: "TOOMANYREQUESTS"}.get(status, "UNAVAILABLE")
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _any(self) -> None:
        body = self._body()
        stub = self.server
        line = f"{self.command} {self.path}"
        given = self.headers.get("Authorization", "")
        if stub.basic is not None:
            wanted = "Basic " + base64.b64encode(":".join(stub.basic).encode()).decode()
            if given != wanted:
                challenge = {"WWW-Authenticate": 'Basic realm="air-fleet-test"'}
                self._reply(401, "authentication required", challenge)
                return
        with stub.lock:
            stub.seen.append(line)
            inject = stub.failed < stub.fail and stub.matching.search(line) is not None
            stub.failed += inject
        if inject:
            decoded = base64.b64decode(given.removeprefix("Basic ")).decode() if given else ""
            extra = f" for {decoded} ({given})" if stub.echo else ""
            self._reply(stub.status, f"stub says no{extra}{stub.says}")
            return
        upstream = http.client.HTTPConnection(REGISTRY, timeout=30)
        skip = {"transfer-encoding", "content-length", "connection", "authorization"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        headers["Content-Length"] = str(len(body))
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in {"transfer-encoding", "content-length", "connection", "date", "server"}:
                self.send_header(key, value.replace(f"http://{REGISTRY}/", f"http://{stub.address}/"))
        # A HEAD answer's length is the blob's (the engine puts it in the manifest), not its empty body's.
        length = response.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any


@pytest.fixture
def stub() -> Iterator[list[Stub]]:
    made: list[Stub] = []
    yield made
    for server in made:
        server.shutdown()
        server.server_close()


def start(made: list[Stub], **kw: object) -> Stub:
    server = Stub(**kw)  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    made.append(server)
    return server


def test_transient_registry_errors_are_retried_with_backoff(
    client: docker.DockerClient, results: Path, stub: list[Stub]
) -> None:
    flaky = start(stub, fail=2, status=503)
    name = f"air-fleet/{TOKEN}-retry"
    c = cell(client, results, f"{flaky.address}/{name}", "flaky")
    sleeps: list[float] = []
    progress = Lines()
    r = run([c], client, results, backoff_s=0.01, sleep=sleeps.append, draw=lambda: 0.0, progress=progress)[c.slug]
    assert r.status == "pushed" and r.attempts == 3, r
    assert sleeps == [0.01, 0.02]  # exponential (the jitter drew 0 here: it only ever shortens a wait)
    assert flaky.failed == 2 and sum("503" in line for line in progress.lines) == 2
    assert registry_tags(name) == sorted(r.tags)  # through the stub, into the real registry
    assert push_record(results, c.slug)["attempts"] == 3

    # Out of tries: failed, after exactly `attempts` tries.
    flaky.fail, flaky.failed = 10, 0
    r = run([c], client, results, backoff_s=0, attempts=3)[c.slug]
    assert r.status == "failed" and r.attempts == 3 and "503" in (r.reason or "") and flaky.failed == 3


def test_a_final_error_is_not_retried(client: docker.DockerClient, results: Path, stub: list[Stub]) -> None:
    denying = start(stub, fail=100, status=403)
    c = cell(client, results, f"{denying.address}/air-fleet/{TOKEN}-denied", "denied")
    sleeps: list[float] = []
    r = run([c], client, results, sleep=sleeps.append)[c.slug]
    assert r.status == "failed" and r.attempts == 1 and sleeps == [] and denying.failed == 1
    assert "stub says no" in (r.reason or "")
    assert registry_tags(f"air-fleet/{TOKEN}-denied") == []


def test_a_planted_secret_never_reaches_logs_results_or_errors(
    client: docker.DockerClient,
    results: Path,
    stub: list[Stub],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(ENV_USERNAME, "robot")
    monkeypatch.setenv(ENV_PASSWORD, SECRET)
    progress = Lines()
    # A registry that wants exactly these credentials: the push works only if the engine got them.
    guarded = start(stub, basic=("robot", SECRET))
    name = f"air-fleet/{TOKEN}-secret"
    ok = cell(client, results, f"{guarded.address}/{name}", "with-credentials")
    r = run([ok], client, results, progress=progress)[ok.slug]
    assert r.status == "pushed", r
    assert registry_tags(name) == sorted(r.tags)
    # The same registry, careless: its error message repeats the credentials it was sent, and tokens of
    # other services (a JWT, a Databricks token, a URL with a password) that no value list holds.
    careless = start(stub, basic=("robot", SECRET), fail=100, status=403, echo=True, says=f" {OTHER_SECRETS}")
    leaky = cell(client, results, f"{careless.address}/{name}-echo", "echoed")
    r = run([leaky], client, results, progress=progress)[leaky.slug]
    assert r.status == "failed" and "stub says no for" in (r.reason or "") and "***" in (r.reason or ""), r
    # And the other ways out: a half pair, the CLI's summary. (No wrong-pair push: the engine itself
    # retries a refused layer upload for ~50 s before it gives up.)
    monkeypatch.delenv(ENV_USERNAME)
    with pytest.raises(CredentialsError) as half:
        run([ok], client, results, progress=progress)
    encoded = base64.b64encode(f"robot:{SECRET}".encode()).decode()
    texts = [
        *progress.lines,
        str(half.value),
        summary([r]),
        caplog.text,
        *capsys.readouterr(),
        *(p.read_text() for p in results.rglob("*") if p.is_file()),
    ]
    assert len(texts) > 5
    for text in texts:
        assert SECRET not in text and encoded not in text
        assert not any(shape in text for shape in OTHER_SHAPES), text


def test_credentials_from_the_docker_config_and_its_helpers(
    client: docker.DockerClient, results: Path, stub: list[Stub], tmp_path: Path
) -> None:
    """The engine gets the credentials `generator.release.credentials` found, explicitly: a client made before
    the config existed (so the SDK never read it) pushes with them all the same."""
    guarded = start(stub, basic=("cfg-robot", SECRET))
    config = tmp_path / "docker-config"
    config.mkdir()
    auth = base64.b64encode(f"cfg-robot:{SECRET}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {guarded.address: {"auth": auth}}}))
    repository = f"{guarded.address}/air-fleet/{TOKEN}-config"
    source = CredentialSource({"DOCKER_CONFIG": str(config)})
    assert source.for_ref(repository).source == "docker config" and source.scrubber.leaks(SECRET)
    c = cell(client, results, repository, "configured")
    progress = Lines()
    r = run([c], client, results, progress=progress, source=source)[c.slug]
    assert r.status == "pushed", r
    assert registry_tags(f"air-fleet/{TOKEN}-config") == sorted(r.tags)

    # A credential helper (ECR's and ACR's way): asked with `docker-credential-<name> get`.
    write_helper(tmp_path / "bin", "fleet-push", {"Username": "cfg-robot", "Secret": SECRET})
    (config / "config.json").write_text(json.dumps({"credHelpers": {guarded.address: "fleet-push"}}))
    env = {"DOCKER_CONFIG": str(config), "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}
    helped = cell(client, results, repository, "helped")
    r = run([helped], client, results, progress=progress, source=CredentialSource(env))[helped.slug]
    assert r.status == "pushed", r
    assert (tmp_path / "bin" / "fleet-push.asked").read_text().split() == [guarded.address]
    assert all(SECRET not in line for line in progress.lines)


def test_a_broken_credential_helper_stops_the_push_before_anything_moves(
    client: docker.DockerClient, results: Path, stub: list[Stub], tmp_path: Path
) -> None:
    """Not "no credentials": a push without them would fail far from the cause, its secrets unknown."""
    guarded = start(stub, basic=("cfg-robot", SECRET))
    write_helper(tmp_path / "bin", "broken-push", {}, exit_status=1)
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "broken-push"}))
    env = {"DOCKER_CONFIG": str(tmp_path), "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}
    c = cell(client, results, f"{guarded.address}/air-fleet/{TOKEN}-broken-helper", "broken-helper")
    with pytest.raises(CredentialsError, match=r"docker-credential-broken-push failed for 127\.0\.0\.1:\d+"):
        run([c], client, results, source=CredentialSource(env))
    assert guarded.seen == [] and not (results / PROFILE / "push").exists()


def test_a_registry_that_is_down_fails_the_push_with_exit_status_2(client: docker.DockerClient, results: Path) -> None:
    """A refused connection is retried; then that registry is unreachable: the other cells there are not
    tried again, the records say so, and the run's exit status is 2 (a service that cannot be reached)."""
    with closed_port() as address:
        a = cell(client, results, f"{address}/air-fleet/{TOKEN}-down", "down-a")
        b = cell(client, results, f"{address}/air-fleet/{TOKEN}-down", "down-b")
        sleeps: list[float] = []
        out = run([a, b], client, results, attempts=3, backoff_s=0.01, sleep=sleeps.append)
    first, second = out[a.slug], out[b.slug]
    assert first.status == "failed" and first.attempts == 3 and len(sleeps) == 2, first
    assert "connection refused" in (first.reason or "") and first.unreachable == address
    assert second.status == "failed" and second.attempts == 0 and "not tried" in (second.reason or "")
    assert second.unreachable == address and push_record(results, b.slug)["unreachable"] == address
    assert exit_status([first, second]) == 2 and f"could not reach {address}" in summary([first, second])


def test_a_registry_that_never_answers_is_retried_then_unreachable(client: docker.DockerClient, results: Path) -> None:
    """A real socket that accepts and never answers: the engine gives up on each try after ~25 s
    ("Client.Timeout exceeded while awaiting headers"), a timeout worth another try, then exit status 2."""
    with silent_server() as (address, accepted):
        c = cell(client, results, f"{address}/air-fleet/{TOKEN}-silent", "silent")
        progress = Lines()
        r = run([c], client, results, attempts=2, backoff_s=0.01, progress=progress)[c.slug]
        assert r.status == "failed" and r.attempts == 2 and r.unreachable == address, r
        assert "after 2 tries" in (r.reason or "") and len(accepted) >= 2  # the engine came back for a second try
    assert any("try 2/2" in line for line in progress.lines) and exit_status([r]) == 2


def built_and_probed(
    client: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, probe: str
) -> tuple[Path, RenderedCell, Path]:
    """A one-cell matrix pushing to `name`, its image built and its records written: (matrix, cell, results)."""
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        "schema: 1\n"
        f"registry: {{host: {REGISTRY}, repository: {name}}}\n"
        "clouds: [aws]\nvariants: [runtime]\naccelerators: [GPU_1xA10]\n"
        "torch:\n  - {version: 2.6.0}\n"
    )
    (rendered,) = Fleet.load(matrix).render()
    results = tmp_path / "results"
    monkeypatch.setenv("AIR_FLEET_RESULTS", str(results))
    monkeypatch.setenv("AIR_FLEET_STATE", str(tmp_path / "state"))
    make_image(client, rendered.ref, rendered.digest)
    # Where `--matrix` of this file reads and writes its records: a folder of its own under the profile.
    records = results / load_profile("default", matrix).records
    for step, status in (("build", "built"), ("probe", probe)):
        write_record(
            records / step / f"{rendered.cell.slug}.json",
            {"slug": rendered.cell.slug, "digest": rendered.digest, "status": status},
        )
    return matrix, rendered, records


def test_run_push_takes_rendered_cells(
    client: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's entry point: rendered cells of a real matrix, today's UTC date, the run lock, the records."""
    name = f"air-fleet/{TOKEN}-cli"
    _, rendered, results = built_and_probed(client, tmp_path, monkeypatch, name, "WARN")
    progress = Lines()
    (r,) = run_push(
        load_profile("default", tmp_path / "matrix.yaml").records, [rendered], atomic=True, progress=progress
    )
    assert r.status == "pushed" and r.tags == [rendered.tag]
    assert registry_tags(f"{name}-staging") == [rendered.tag]  # the staging repository only
    assert registry_tags(name) == []
    assert (results / "push" / f"{rendered.cell.slug}.json").exists()


def test_push_json_prints_the_records_and_keeps_progress_on_stderr(
    client: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    matrix, rendered, _ = built_and_probed(client, tmp_path, monkeypatch, f"air-fleet/{TOKEN}-json", "OK")
    assert main(["--matrix", str(matrix), "push", "--atomic", "--json"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    (record,) = data["results"]
    assert data["profile"] == "default" and record["status"] == "pushed" and record["unreachable"] is None
    assert record["tags"][0] == rendered.tag and "layers" in err and "pushed" in err
