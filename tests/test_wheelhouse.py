"""The wheelhouse: lock, fetch, stage, with real downloads.

Files come from a real HTTP server on 127.0.0.1 started here (it counts requests and can answer 503 a
few times) and from file:// URLs; package-index resolutions run the real pip, as configured on this
machine (its find-links directory holds the torch wheel), or pointed at a PEP 503 index served here.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import http.server
import io
import json
import os
import re
import socket
import stat
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from generator.deps import download, index, lockfile, pins
from generator.deps.lockfile import BaseLock, Lock, read_lock, write_lock
from generator.deps.pins import Locked, Request, WheelhouseError
from generator.deps.wheelhouse import fetch, lock, stage
from generator.model import Artifact

PROBE = "wheelhouse-probe"  # a project no configured index has: only the index served here knows it


class Server:
    """A static file server on 127.0.0.1 that counts requests and can fail a path a few times first."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hits: Counter[tuple[str, str]] = Counter()
        self.fail: dict[str, list[int]] = {}  # path -> statuses to answer before serving it
        self.slow: set[str] = set()  # paths streamed in small pieces, so concurrent downloads overlap
        self.lock = threading.Lock()
        handler = functools.partial(_Handler, self, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def add(self, rel: str, data: bytes) -> str:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{self.url}/{rel}"

    def gets(self, rel: str) -> int:
        return self.hits["GET", f"/{rel}"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, server_state: Server, *args: Any, **kwargs: Any) -> None:
        self.state = server_state
        super().__init__(*args, **kwargs)

    def _count(self) -> bool:
        """Count the request; True when it was answered with a queued failure status."""
        with self.state.lock:
            self.state.hits[self.command, self.path] += 1
            queue = self.state.fail.get(self.path)
            status = queue.pop(0) if queue else None
        if status is None:
            return False
        self.send_error(status)
        return True

    def do_GET(self) -> None:
        if not self._count():
            super().do_GET()

    def do_HEAD(self) -> None:
        if not self._count():
            super().do_HEAD()

    def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:  # type: ignore[override]
        if self.path not in self.state.slow:
            return super().copyfile(source, outputfile)
        while chunk := source.read(64 * 1024):
            outputfile.write(chunk)
            threading.Event().wait(0.003)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest's output for failures


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "srv")
    yield srv
    srv.close()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(n: int, seed: int = 0) -> bytes:
    """Distinct, incompressible-ish bytes: every test file has its own sha256."""
    out = bytearray()
    block = seed.to_bytes(8, "big")
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def cache_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


def dead_url(name: str) -> str:
    """An http URL on a port nothing listens on: any attempt to use it fails."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


# ------------------------------------------------------------------------------------------- requests


def test_request_keys_name_what_decides_the_file() -> None:
    url = "https://github.com/x/y/releases/download/v1/flash_attn-2.8.3%2Bcu12-cp312-cp312-linux_x86_64.whl"
    fa = Request("Flash_Attn", "2.8.3", "flash_attn-2.8.3+cu12-cp312-cp312-linux_x86_64.whl", url)
    assert fa.key == f"flash-attn==2.8.3 flash_attn-2.8.3+cu12-cp312-cp312-linux_x86_64.whl {url}"
    assert Request("einops", "0.8.2", "einops-0.8.2-py3-none-any.whl", None).key == (
        "einops==0.8.2 einops-0.8.2-py3-none-any.whl"
    )
    torch = Request("torch", "2.13.0", None, None, python="3.11")
    assert torch.key == "torch==2.13.0 cp311 manylinux_2_28_x86_64"
    assert Request("torch", "2.13.0", None, None).key != torch.key  # another Python: another file
    artifact = Artifact(filename="einops-0.8.2-py3-none-any.whl", url=None, project="einops", version="0.8.2")
    assert pins.request_for(artifact, "3.11") == Request(
        "einops", "0.8.2", "einops-0.8.2-py3-none-any.whl", None, "3.11"
    )


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (("--index-url=http://evil", "1.0", None, None), "not a valid project name"),
        (("apex", "810ffae", None, None), "not a PEP 440 version"),
        (("flash-attn", "2.8.3", "flash_attn-2.8.3.tar.gz", None), "not a wheel"),
        (("x", "1.0", "../../etc/passwd", "https://h/x.whl"), "not a plain file name"),
        (("x", "1.0", None, "ftp://h/x.whl"), "only file, http, https"),
        (("x", "1.0 --pre", None, None), "one word"),
        (("x", "1.0", None, None, "3"), "not like 3.12"),
    ],
)
def test_bad_requests_are_refused_before_anything_runs(args: tuple[Any, ...], why: str) -> None:
    with pytest.raises(WheelhouseError, match=why):
        Request(*args)


def test_platform_tags_cover_the_older_manylinux_family() -> None:
    tags = index.platform_tags("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64"
    assert tags.index("manylinux_2_17_x86_64") + 1 == tags.index("manylinux2014_x86_64")
    assert tags[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert len(tags) == len(set(tags)) == 24 + 3
    assert index.platform_tags("linux_x86_64") == ["linux_x86_64"]


# ------------------------------------------------------------------------------------- lock: URLs


def test_lock_hashes_url_requests(server: Server, cache: Path, tmp_path: Path) -> None:
    wheel, archive = payload(300_000, 1), payload(70_000, 2)
    server.add("dl/pkg-1.0+cu12-py3-none-any.whl", wheel)
    wheel_url = f"{server.url}/dl/pkg-1.0%2Bcu12-py3-none-any.whl"  # quoted, as GitHub release URLs are
    (tmp_path / "apex.tar.gz").write_bytes(archive)
    archive_url = (tmp_path / "apex.tar.gz").as_uri()
    requests = [Request("pkg", "1.0", None, wheel_url), Request("apex", "abc123", "apex-abc123.tar.gz", archive_url)]
    messages: list[str] = []

    got = lock(requests, progress=messages.append, cache=cache)

    assert list(got) == sorted(r.key for r in requests)
    assert got[requests[0].key] == Locked("pkg-1.0+cu12-py3-none-any.whl", wheel_url, sha(wheel), len(wheel))
    assert got[requests[1].key] == Locked("apex-abc123.tar.gz", archive_url, sha(archive), len(archive))
    assert any(wheel_url in m for m in messages)
    # What lock downloaded is in the cache already: fetch needs no second download.
    assert fetch(got[requests[0].key], cache).read_bytes() == wheel
    assert server.gets("dl/pkg-1.0%2Bcu12-py3-none-any.whl") == 1


def test_lock_keeps_previous_entries_without_network(server: Server, cache: Path) -> None:
    old = Request("flash-attn", "2.8.3", "fa.whl", dead_url("fa.whl"))
    previous = {
        old.key: Locked("fa.whl", old.url or "", "a" * 64, 123),
        "gone==1.0 gone.whl": Locked("gone.whl", dead_url("gone.whl"), "b" * 64, 1),
    }
    new_data = payload(1000, 3)
    new = Request("einops", "0.8.2", "einops-0.8.2-py3-none-any.whl", server.add("e.whl", new_data))
    messages: list[str] = []

    got = lock([old, new], previous, progress=messages.append, cache=cache)

    # The old entry came back untouched (its dead URL would have failed any download); the one no
    # longer requested is dropped; only the new one was fetched.
    assert got == {
        new.key: Locked("einops-0.8.2-py3-none-any.whl", new.url or "", sha(new_data), 1000),
        old.key: previous[old.key],
    }
    assert list(got) == sorted(got)
    assert "lock: 1 kept from the previous lock" in messages
    assert server.gets("e.whl") == 1


def test_lock_of_a_url_that_is_gone_is_an_error(server: Server, cache: Path) -> None:
    with pytest.raises(WheelhouseError, match=r"HTTP 404"):
        lock([Request("x", "1.0", None, f"{server.url}/missing.whl")], progress=lambda _: None, cache=cache)
    assert server.hits["GET", "/missing.whl"] == 1  # a 404 is final: no retries
    assert cache_files(cache) == []


# ------------------------------------------------------------------------------------------- fetch


def test_fetch_downloads_once_into_the_content_addressed_cache(server: Server, cache: Path) -> None:
    data = payload(2_500_000, 4)  # several chunks
    locked = Locked("w-1.0-py3-none-any.whl", server.add("w.whl", data), sha(data), len(data))

    first = fetch(locked, cache)
    second = fetch(locked, cache)

    h = sha(data)
    assert first == second == cache / "sha256" / h[:2] / h / "w-1.0-py3-none-any.whl"
    assert first.read_bytes() == data
    assert server.gets("w.whl") == 1  # the second fetch found it cached and verified
    assert not stat.S_IMODE(first.stat().st_mode) & 0o222  # read-only: staged hard links share it
    assert cache_files(cache) == [first]  # no temp files left behind

    # A cached file that no longer matches (disk, someone editing it) is not trusted: downloaded again.
    first.chmod(0o644)
    first.write_bytes(data[:-1] + b"!")
    assert fetch(locked, cache).read_bytes() == data
    assert server.gets("w.whl") == 2


def test_fetch_defaults_to_the_state_dir(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIR_FLEET_STATE", str(tmp_path / "state"))
    data = payload(10, 5)
    path = fetch(Locked("d.whl", server.add("d.whl", data), sha(data), 10))
    assert path.is_relative_to(tmp_path / "state" / "wheelhouse" / "sha256")


def test_sha256_mismatch_is_a_hard_error_and_leaves_nothing(server: Server, cache: Path) -> None:
    data = payload(50_000, 6)
    wrong = sha(b"something else")
    locked = Locked("evil-1.0-py3-none-any.whl", server.add("evil.whl", data), wrong, len(data))

    with pytest.raises(WheelhouseError) as caught:
        fetch(locked, cache)

    message = str(caught.value)
    assert "evil-1.0-py3-none-any.whl" in message and wrong in message and sha(data) in message
    assert "\n" not in message
    assert cache_files(cache) == []  # neither the temp file nor a final one
    assert not (cache / "sha256").exists()


def test_size_mismatch_is_a_hard_error_too(server: Server, cache: Path) -> None:
    data = payload(5000, 7)
    url = server.add("s.whl", data)
    with pytest.raises(WheelhouseError, match="size mismatch"):
        fetch(Locked("s.whl", url, sha(data), len(data) + 1), cache)
    with pytest.raises(WheelhouseError, match="larger than the locked 100 bytes"):
        fetch(Locked("s.whl", url, sha(data), 100), cache)
    assert cache_files(cache) == []


def test_transient_503_is_retried(server: Server, cache: Path) -> None:
    data = payload(4000, 8)
    locked = Locked("t.whl", server.add("t.whl", data), sha(data), len(data))
    server.fail["/t.whl"] = [503]

    assert fetch(locked, cache).read_bytes() == data
    assert server.gets("t.whl") == 2  # one 503, then the 200


def test_persistent_failures_give_up(server: Server, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "BACKOFF_S", 0.01)
    data = payload(10, 9)
    server.fail["/p.whl"] = [503] * download.ATTEMPTS
    with pytest.raises(WheelhouseError, match=f"HTTP 503.*gave up after {download.ATTEMPTS} tries"):
        fetch(Locked("p.whl", server.add("p.whl", data), sha(data), 10), cache)
    assert server.gets("p.whl") == download.ATTEMPTS
    with pytest.raises(WheelhouseError, match="gave up"):  # nothing listening: retried, then one clear line
        fetch(Locked("p.whl", dead_url("p.whl"), sha(data), 10), cache)
    assert cache_files(cache) == []


def test_fetch_from_a_file_url(tmp_path: Path, cache: Path) -> None:
    data = payload(3000, 10)
    (tmp_path / "local file.whl").write_bytes(data)
    locked = Locked("local.whl", (tmp_path / "local file.whl").as_uri(), sha(data), len(data))
    assert fetch(locked, cache).read_bytes() == data
    with pytest.raises(WheelhouseError, match="No such file"):  # a missing local file is final
        fetch(Locked("x.whl", (tmp_path / "nope.whl").as_uri(), sha(data), 1), cache)


def test_concurrent_fetches_of_one_file_do_not_corrupt_the_cache(server: Server, cache: Path) -> None:
    data = payload(1_000_000, 11)
    locked = Locked("c-1.0-py3-none-any.whl", server.add("c.whl", data), sha(data), len(data))
    server.slow.add("/c.whl")
    barrier = threading.Barrier(8)
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            path = fetch(locked, cache)
            results.append(path)
            # Keep reading while the others finish: a reader must only ever see the whole file.
            while len(results) + len(errors) < 8:
                assert sha(path.read_bytes()) == locked.sha256
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert len(set(results)) == 1 and len(results) == 8
    assert server.gets("c.whl") >= 2  # they really did download at the same time
    assert cache_files(cache) == [results[0]]  # one file, no temp files
    assert results[0].read_bytes() == data


# ------------------------------------------------------------------------------------------- stage


def _two_cached(server: Server, cache: Path) -> list[Path]:
    out = []
    for i, name in enumerate(("a-1.0-py3-none-any.whl", "b-2.0.tar.gz")):
        data = payload(1000 + i, 20 + i)
        out.append(fetch(Locked(name, server.add(name, data), sha(data), len(data)), cache))
    return out


def test_stage_hard_links_and_removes_stale_files(server: Server, cache: Path, tmp_path: Path) -> None:
    files = _two_cached(server, cache)
    dest = tmp_path / "cell" / "wheels"
    dest.mkdir(parents=True)
    (dest / "old-0.1-py3-none-any.whl").write_bytes(b"stale")
    (dest / "a-1.0-py3-none-any.whl").write_bytes(b"an older copy under the same name")
    (dest / "junk").mkdir()
    (dest / "junk" / "x").write_bytes(b"x")

    staged = stage(files, dest)

    assert staged == [dest / f.name for f in files]
    assert sorted(p.name for p in dest.iterdir()) == ["a-1.0-py3-none-any.whl", "b-2.0.tar.gz"]
    for source, target in zip(files, staged, strict=True):
        assert target.stat().st_ino == source.stat().st_ino  # a hard link to the cache, no copy

    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in dest.iterdir()}
    assert stage(files, dest) == staged  # idempotent: nothing changes
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in dest.iterdir()} == before

    assert stage(files[1:], dest) == [dest / "b-2.0.tar.gz"]  # a file the cell no longer needs goes
    assert [p.name for p in dest.iterdir()] == ["b-2.0.tar.gz"]


def test_stage_copies_where_links_fail(
    server: Server, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _two_cached(server, cache)

    def cross_device(src: Any, dst: Any) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    dest = tmp_path / "wheels"
    staged = stage(files, dest)
    for source, target in zip(files, staged, strict=True):
        assert target.read_bytes() == source.read_bytes()
        assert target.stat().st_ino != source.stat().st_ino
    mtimes = [p.stat().st_mtime_ns for p in staged]
    assert stage(files, dest) == staged  # a copy with the same bytes is left alone
    assert [p.stat().st_mtime_ns for p in staged] == mtimes
    assert sorted(p.name for p in dest.iterdir()) == sorted(f.name for f in files)  # no staging leftovers


def test_stage_refuses_two_files_with_one_name(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "a.whl").write_bytes(b"1")
    (tmp_path / "y" / "a.whl").write_bytes(b"2")
    with pytest.raises(WheelhouseError, match=re.escape("two different files named a.whl")):
        stage([tmp_path / "x" / "a.whl", tmp_path / "y" / "a.whl"], tmp_path / "wheels")


# --------------------------------------------------------------------------------------- lock file


ENTRIES = {
    "torch==2.13.0 cp311 manylinux_2_28_x86_64": Locked(
        "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "file:///opt/wheels/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "6" * 64,
        191794682,
    ),
    "einops==0.8.2 einops-0.8.2-py3-none-any.whl": Locked(
        "einops-0.8.2-py3-none-any.whl", "https://files.example/einops-0.8.2-py3-none-any.whl", "5" * 64, 64000
    ),
}


def test_write_lock_is_deterministic_and_quiet_when_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "wheels.lock.json"
    assert write_lock(path, Lock(files=ENTRIES)) is True
    data = path.read_bytes()
    assert json.loads(data) == {
        "_generated": lockfile.LOCK_HEADER,
        "files": {
            "einops==0.8.2 einops-0.8.2-py3-none-any.whl": {
                "filename": "einops-0.8.2-py3-none-any.whl",
                "sha256": "5" * 64,
                "size": 64000,
                "url": "https://files.example/einops-0.8.2-py3-none-any.whl",
            },
            "torch==2.13.0 cp311 manylinux_2_28_x86_64": {
                "filename": "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
                "sha256": "6" * 64,
                "size": 191794682,
                "url": "file:///opt/wheels/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl",
            },
        },
    }
    assert data.startswith(b'{\n  "_generated": "GENERATED by') and data.endswith(b"}\n")
    assert data.index(b'"einops==') < data.index(b'"torch==')  # sorted, whatever the dict order
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    mtime = path.stat().st_mtime_ns

    assert write_lock(path, Lock(files=dict(reversed(list(ENTRIES.items()))))) is False  # same entries: no write
    assert path.read_bytes() == data and path.stat().st_mtime_ns == mtime
    assert read_lock(path) == Lock(files=ENTRIES)
    assert sorted(p.name for p in path.parent.iterdir()) == ["wheels.lock.json"]  # no temp files

    changed = {**ENTRIES, "x==1 x.whl": Locked("x.whl", "https://h/x.whl", "7" * 64, 1)}
    assert write_lock(path, Lock(files=changed)) is True
    assert read_lock(path) == Lock(files=changed)


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"filename": "../../x.whl", "url": "https://h/x", "sha256": "a" * 64, "size": 1}, "not a plain file name"),
        ({"filename": "x.whl", "url": "https://h/x", "sha256": "A" * 64, "size": 1}, "not 64 lowercase hex"),
        ({"filename": "x.whl", "url": "https://h/x", "sha256": "a" * 64, "size": True}, "not a byte count"),
        ({"filename": "x.whl", "url": "gopher://h/x", "sha256": "a" * 64, "size": 1}, "only file, http"),
        ({"filename": "x.whl", "url": "https://h/x", "sha256": "a" * 64}, "needs exactly"),
    ],
)
def test_read_lock_checks_every_entry(tmp_path: Path, entry: dict[str, Any], why: str) -> None:
    path = tmp_path / "lock.json"
    path.write_text(json.dumps({"_generated": lockfile.LOCK_HEADER, "files": {"x==1": entry}}))
    with pytest.raises(WheelhouseError, match=f"lock.json: files.x==1: .*{why}"):
        read_lock(path)


def test_base_digests_round_trip_and_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    lock = Lock(
        bases={"air/x:tag": BaseLock("sha256:" + "a" * 64, "sha256:" + "b" * 64), "y:1": BaseLock("sha256:" + "c" * 64)}
    )
    write_lock(path, lock)
    assert read_lock(path) == lock
    data = json.loads(path.read_text())
    data["bases"]["y:1"]["digest"] = "sha256:short"
    path.write_text(json.dumps(data))
    with pytest.raises(WheelhouseError, match=r"lock.json: bases.y:1: digest is not sha256:<64 hex>"):
        read_lock(path)
    path.write_text(json.dumps({"files": {}, "basse": {}}))  # a misspelt section is refused, not ignored
    with pytest.raises(WheelhouseError, match="unknown section"):
        read_lock(path)


def test_read_lock_of_a_missing_file_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(WheelhouseError, match="run `python -m generator lock`"):
        read_lock(tmp_path / "nope.json")


# -------------------------------------------------------------------------------- lock: through pip


def test_pip_resolves_einops_from_the_package_index(cache: Path) -> None:
    by_name = Request("einops", "0.8.2", None, None)
    named = Request("einops", "0.8.2", "einops-0.8.2-py3-none-any.whl", None)

    got = lock([by_name, named], progress=lambda _: None, cache=cache)

    assert set(got) == {"einops==0.8.2 cp312 manylinux_2_28_x86_64", "einops==0.8.2 einops-0.8.2-py3-none-any.whl"}
    entry = got[by_name.key]
    assert entry == got[named.key]
    assert entry.filename == "einops-0.8.2-py3-none-any.whl"
    assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
    assert entry.size > 10_000
    assert fetch(entry, cache).stat().st_size == entry.size  # the index's hash and size are the file's


def test_pip_resolves_torch_from_find_links_without_downloading(cache: Path) -> None:
    request = Request("torch", "2.13.0", None, None, python="3.11", platform="manylinux_2_28_x86_64")

    entry = lock([request], progress=lambda _: None, cache=cache)[request.key]

    assert entry.filename.startswith("torch-2.13.0")
    assert entry.filename.endswith("cp311-cp311-manylinux_2_28_x86_64.whl")
    assert entry.url.startswith("file://")
    assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
    assert entry.size == download.local_path(entry.url).stat().st_size > 100_000_000
    assert cache_files(cache) == []  # pip's report had the hash: nothing downloaded, nothing hashed here


def _probe_wheel(version: str, tag: str = "py3-none-any") -> tuple[str, bytes]:
    """A minimal valid wheel of the probe project (what pip needs to read its metadata)."""
    name = f"wheelhouse_probe-{version}-{tag}.whl"
    info = f"wheelhouse_probe-{version}.dist-info"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("wheelhouse_probe/__init__.py", "")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: {version}\n")
        z.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n")
        z.writestr(f"{info}/RECORD", "")
    return name, buf.getvalue()


@pytest.fixture
def probe_index(server: Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """A PEP 503 index on the local server, as pip's main index: version 1.0 is listed without a hash
    but with PEP 658 metadata (so pip never downloads it and its report has no hash), 2.0 with a hash,
    3.0 only as a manylinux2014 (glibc 2.17) wheel for CPython 3.12."""
    one, one_data = _probe_wheel("1.0")
    two, two_data = _probe_wheel("2.0")
    three, three_data = _probe_wheel("3.0", "cp312-cp312-manylinux2014_x86_64")
    for name, data in ((one, one_data), (two, two_data), (three, three_data)):
        server.add(f"files/{name}", data)
    meta = zipfile.ZipFile(server.root / "files" / one).read("wheelhouse_probe-1.0.dist-info/METADATA")
    server.add(f"files/{one}.metadata", meta)
    links = (
        f'<a href="../../files/{one}" data-core-metadata="sha256={sha(meta)}">{one}</a>\n'
        f'<a href="../../files/{two}#sha256={sha(two_data)}">{two}</a>\n'
        f'<a href="../../files/{three}#sha256={sha(three_data)}">{three}</a>\n'
    )
    server.add(f"simple/{PROBE}/index.html", links.encode())
    monkeypatch.setenv("PIP_INDEX_URL", f"{server.url}/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")  # pip's HTTP cache must not answer for this server
    return {"1.0": one_data, "2.0": two_data, "3.0": three_data}


def test_pip_resolution_over_http_with_and_without_index_hashes(
    server: Server, cache: Path, probe_index: dict[str, bytes]
) -> None:
    one = Request(PROBE, "1.0", None, None)
    two = Request(PROBE, "2.0", "wheelhouse_probe-2.0-py3-none-any.whl", None)
    messages: list[str] = []

    got = lock([one, two], progress=messages.append, cache=cache)

    # Two versions of one project cannot be one pip run (pip resolves them together): two runs.
    assert sum("pip resolves" in m for m in messages) == 2
    for request, version in ((one, "1.0"), (two, "2.0")):
        data = probe_index[version]
        name = f"wheelhouse_probe-{version}-py3-none-any.whl"
        assert got[request.key] == Locked(name, f"{server.url}/files/{name}", sha(data), len(data))
    # 1.0: the report had no hash, so the file pip saw was downloaded, hashed and cached for fetch.
    assert server.gets("files/wheelhouse_probe-1.0-py3-none-any.whl") == 1
    assert fetch(got[one.key], cache).read_bytes() == probe_index["1.0"]
    assert server.gets("files/wheelhouse_probe-1.0-py3-none-any.whl") == 1
    # 2.0: the report had the hash; the size came from a HEAD, the file was not downloaded by lock.
    assert server.hits["HEAD", "/files/wheelhouse_probe-2.0-py3-none-any.whl"] == 1
    assert [p.name for p in cache_files(cache)] == ["wheelhouse_probe-1.0-py3-none-any.whl"]


def test_pip_errors_are_one_actionable_line(cache: Path, probe_index: dict[str, bytes]) -> None:
    with pytest.raises(WheelhouseError) as missing:
        lock([Request(PROBE, "9.9", None, None)], progress=lambda _: None, cache=cache)
    assert f"pip could not resolve {PROBE}==9.9 for cp312 manylinux_2_28_x86_64" in str(missing.value)
    assert "No matching distribution" in str(missing.value) and "\n" not in str(missing.value)

    wrong = Request(PROBE, "2.0", "wheelhouse_probe-2.0-cp312-cp312-manylinux_2_28_x86_64.whl", None)
    with pytest.raises(WheelhouseError, match=re.escape("pip picks wheelhouse_probe-2.0-py3-none-any.whl for cp312")):
        lock([wrong], progress=lambda _: None, cache=cache)


def test_pip_accepts_older_manylinux_wheels_for_a_newer_platform(
    server: Server, cache: Path, probe_index: dict[str, bytes]
) -> None:
    """A manylinux2014 wheel runs on a manylinux_2_28 image; pip only picks it when told the whole family."""
    request = Request(PROBE, "3.0", None, None, python="3.12", platform="manylinux_2_28_x86_64")
    entry = lock([request], progress=lambda _: None, cache=cache)[request.key]
    assert entry.filename == "wheelhouse_probe-3.0-cp312-cp312-manylinux2014_x86_64.whl"
    assert entry.sha256 == sha(probe_index["3.0"])
    with pytest.raises(WheelhouseError, match="No matching distribution"):  # not for another Python
        lock([Request(PROBE, "3.0", None, None, python="3.11")], progress=lambda _: None, cache=cache)
