"""`outdated`: newer upstream releases as proposals, from a fake package index served on 127.0.0.1.

The index speaks both forms of the simple API: torch's page as PEP 691 JSON, xformers' as PEP 503 HTML
(with PEP 658 metadata for one wheel), so both parsers run. Nothing here reaches a real index: pip's
configuration is switched off (PIP_CONFIG_FILE=/dev/null) and PIP_INDEX_URL names the local server.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from generator.fleet import Fleet
from generator.spec.knowledge import XformersPin
from generator.upstream.index import PackageIndex, PackageIndexError
from generator.upstream.outdated import pin_proposals, torch_proposals
from tests.conftest import WriteMatrix, build_matrix, run_cli

LINUX = "cp312-cp312-manylinux_2_28_x86_64"
ABI3 = "cp39-abi3-manylinux_2_28_x86_64"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
XFORMERS_034 = f"xformers-0.0.34-{ABI3}.whl"
METADATA_034 = (
    b"Metadata-Version: 2.1\nName: xformers\nVersion: 0.0.34\nRequires-Dist: numpy\nRequires-Dist: torch==2.10.0\n"
)


class FakeIndex:
    """Pages by path; every request is kept (path, Accept, Authorization) so tests see what was asked."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, bytes]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        handler = functools.partial(_Handler, self)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/simple/"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    def __init__(self, index: FakeIndex, *args: Any, **kwargs: Any) -> None:
        self.index = index
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.index.requests.append((self.path, self.headers.get("Accept", ""), self.headers.get("Authorization")))
        if self.path not in self.index.pages:
            self.send_error(404)
            return
        content_type, body = self.index.pages[self.path]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def torch_page(*files: dict[str, Any]) -> tuple[str, bytes]:
    page = {"meta": {"api-version": "1.1"}, "name": "torch", "files": list(files)}
    return JSON_TYPE, json.dumps(page).encode()


def wheel(name: str, **extra: Any) -> dict[str, Any]:
    return {"filename": name, "url": f"../../files/{name}", "hashes": {}, **extra}


def xformers_page(*anchors: str) -> tuple[str, bytes]:
    return "text/html", ("<!DOCTYPE html><html><body>\n" + "\n".join(anchors) + "\n</body></html>").encode()


def anchor(name: str, attrs: str = "") -> str:
    return f'<a href="../../files/{name}#sha256=00"{attrs}>{name}</a>'


@pytest.fixture
def index() -> Iterator[FakeIndex]:
    fake = FakeIndex()
    fake.pages["/simple/torch/"] = torch_page(
        wheel(f"torch-2.5.1-{LINUX}.whl"),  # an older minor than any row: not a proposal
        wheel(f"torch-2.7.1-{LINUX}.whl"),
        wheel(f"torch-2.8.0-{LINUX}.whl"),
        wheel(f"torch-2.8.1-{LINUX}.whl"),
        wheel(f"torch-2.8.2-{LINUX}.whl", yanked="broken wheel"),  # yanked: 2.8.1 is the newest patch
        wheel(f"torch-2.9.1-{LINUX}.whl"),
        wheel("torch-2.9.2-cp312-none-macosx_11_0_arm64.whl"),  # no Linux wheel: nothing to adopt
        wheel(f"torch-2.10.0-{LINUX}.whl"),
        wheel("torch-2.10.1-cp313-cp313-manylinux_2_28_x86_64.whl"),  # not the matrix's Python
        wheel(f"torch-2.11.0rc1-{LINUX}.whl"),  # a pre-release
    )
    meta = hashlib.sha256(METADATA_034).hexdigest()
    fake.pages["/simple/xformers/"] = xformers_page(
        anchor(f"xformers-0.0.33.post2-{ABI3}.whl"),
        anchor("xformers-0.0.34.tar.gz"),
        anchor(XFORMERS_034, f' data-core-metadata="sha256={meta}"'),
        anchor(f"xformers-0.0.35-{ABI3}.whl", ' data-yanked=""'),
        anchor(f"xformers-0.0.36.dev1-{ABI3}.whl"),
    )
    fake.pages[f"/files/{XFORMERS_034}.metadata"] = ("application/octet-stream", METADATA_034)
    yield fake
    fake.close()


def outdated(matrix: Path, url: str, *extra: str) -> tuple[int, str, str]:
    env = {"PIP_INDEX_URL": url, "PIP_CONFIG_FILE": os.devnull, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    proc = run_cli("--matrix", str(matrix), "outdated", *extra, env=env)
    return proc.returncode, proc.stdout, proc.stderr


MATRIX = build_matrix("{version: 2.7.1, flash-attn: 2.8.0.post2}", "{version: 2.8.0}", stack="flash-attn")


def test_every_category_from_the_index_and_the_knowledge(index: FakeIndex, write_matrix: WriteMatrix) -> None:
    status, out, err = outdated(write_matrix(MATRIX), index.url, "--json")
    assert status == 1, err
    got = json.loads(out)
    assert got["python"] == "3.12" and got["index"] == index.url and got["count"] == 5
    torch = {(t["version"], t["kind"], t["known"], tuple(t["rows"])) for t in got["torch"]}
    assert torch == {
        ("2.8.1", "patch", True, ("2.8.0",)),  # a patch of a minor the matrix has (2.8.2 is yanked)
        ("2.9.1", "minor", True, ()),  # a newer minor the knowledge knows
        ("2.10.0", "minor", False, ()),  # one it does not: the knowledge comes first
    }
    (unknown,) = [t for t in got["torch"] if not t["known"]]
    assert "extend generator/knowledge/torch.yaml with a 2.10 release first" in unknown["action"]
    (pin,) = got["pins"]
    assert pin["row"] == "2.7.1" and pin["extension"] == "flash-attn" and pin["current"] == "2.8.0.post2"
    assert pin["newer"] == ["2.8.3", "2.8.2", "2.8.1"] and pin["latest"] == "2.8.3"
    assert pin["where"]["key"] == "torch[0].flash-attn" and pin["where"]["line"]
    (new,) = got["knowledge"]  # 0.0.35 is yanked, 0.0.36.dev1 a pre-release, 0.0.33.post2 known
    assert new == {
        "project": "xformers",
        "version": "0.0.34",
        "file": "generator/knowledge/xformers.yaml",
        "torch": "2.10.0",  # from the wheel's PEP 658 metadata
        "action": new["action"],
    }
    asked = {path: accept for path, accept, _ in index.requests}
    assert JSON_TYPE in asked["/simple/torch/"], "PEP 691 JSON is asked for"
    assert f"/files/{XFORMERS_034}.metadata" in asked


def test_the_text_output_says_what_to_do_and_changes_nothing(index: FakeIndex, write_matrix: WriteMatrix) -> None:
    matrix = write_matrix(MATRIX)
    before = matrix.read_bytes()
    status, out, _ = outdated(matrix, index.url)
    assert status == 1
    lines = out.splitlines()
    assert lines[0].startswith("torch      2.8.1     patch of 2.8: bump the torch line(s) 2.8.0")
    assert any(line.startswith("torch      2.10.0    new minor 2.10 (NOT in the knowledge)") for line in lines)
    assert "pin        flash-attn 2.8.0.post2 -> 2.8.3 on torch 2.7.1 (" in out and "also 2.8.2, 2.8.1" in out
    assert 'knowledge  xformers 0.0.34 (pins torch 2.10.0): add "0.0.34": {torch: "2.10.0"}' in out
    assert lines[-1].startswith("5 proposals (the package index at ")
    assert matrix.read_bytes() == before


def test_nothing_outdated_is_exit_0(index: FakeIndex, write_matrix: WriteMatrix) -> None:
    index.pages["/simple/torch/"] = torch_page(wheel(f"torch-2.8.0-{LINUX}.whl"))
    index.pages["/simple/xformers/"] = xformers_page(anchor(f"xformers-0.0.33.post2-{ABI3}.whl"))
    status, out, err = outdated(
        write_matrix(build_matrix("{version: 2.8.0, flash-attn: 2.8.3}", stack="flash-attn")), index.url
    )
    assert (status, err) == (0, "")
    assert out.startswith("nothing outdated (the package index at ")


def test_an_unreachable_index_is_exit_2_in_one_line(write_matrix: WriteMatrix) -> None:
    fake = FakeIndex()
    url = fake.url
    fake.close()  # nothing listens on that port any more
    status, out, err = outdated(write_matrix(MATRIX), url)
    assert (status, out) == (2, "")
    assert err.startswith(f"error: the package index at {url} cannot be reached: ") and err.count("\n") == 1


def test_an_index_without_the_project_is_exit_2(index: FakeIndex, write_matrix: WriteMatrix) -> None:
    del index.pages["/simple/torch/"]
    status, _, err = outdated(write_matrix(MATRIX), index.url)
    assert status == 2 and err == f"error: the package index at {index.url}: project 'torch': HTTP 404\n"


def test_credentials_in_the_index_url_are_sent_never_shown(index: FakeIndex, write_matrix: WriteMatrix) -> None:
    secret_url = index.url.replace("http://", "http://robot:s3cr3t-token@")
    status, out, err = outdated(write_matrix(MATRIX), secret_url, "--json")
    assert status == 1, err
    assert "s3cr3t" not in out + err and json.loads(out)["index"] == index.url
    assert {auth for _, _, auth in index.requests} == {"Basic cm9ib3Q6czNjcjN0LXRva2Vu"}  # robot:s3cr3t-token


def test_the_index_comes_from_pips_configuration(
    index: FakeIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\nindex-url = {index.url}\n", encoding="utf-8")
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    assert PackageIndex.from_pip().url == index.url
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/other/")  # the environment wins, as in pip
    assert PackageIndex.from_pip().url == "http://127.0.0.1:9/other/"


def test_without_configuration_the_index_is_pips_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from pip._internal.models.index import PyPI

    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    assert PackageIndex.from_pip().url == PyPI.simple_url.rstrip("/") + "/"


def test_a_page_that_is_not_an_index_is_refused(index: FakeIndex) -> None:
    index.pages["/simple/torch/"] = (JSON_TYPE, b'{"files": 3}')
    with pytest.raises(PackageIndexError, match="not PEP 691 JSON"):
        PackageIndex.at(index.url).releases("torch")


# -- the proposals themselves, offline ------------------------------------------------------------------------


def test_torch_proposals_split_patches_known_and_unknown_minors(write_matrix: WriteMatrix) -> None:
    fleet = Fleet.load(
        write_matrix(build_matrix("{version: 2.6.0}", "{version: 2.8.0}", "{version: 2.8.0, index: cu129}"))
    )
    available = [Version(v) for v in ("2.5.1", "2.6.0", "2.7.1", "2.8.1", "2.8.2", "2.9.0", "2.10.0", "2.10.1")]
    got = [(p.version, p.kind, p.known, p.rows) for p in torch_proposals(fleet.matrix, fleet.facts, available)]
    # 2.7.1: a minor between two rows is no newer than the matrix; 2.5.1 is older than every row.
    assert got == [
        ("2.8.2", "patch", True, ("2.8.0", "2.8.0+cu129")),
        ("2.9.0", "minor", True, ()),
        ("2.10.1", "minor", False, ()),
    ]


def test_pin_proposals_follow_the_resolvers_rules(write_matrix: WriteMatrix) -> None:
    """Only releases that really work with the row: flash-attn 2.8.x's torch-2.6 wheels are built with ABI 1,
    so the package index's torch 2.6.0 (ABI 0) keeps 2.7.4.post1; an xformers pin for another torch is no
    proposal; an unpinned row already takes the newest."""
    fleet = Fleet.load(
        write_matrix(
            build_matrix(
                "{version: 2.6.0, flash-attn: 2.7.4.post1, xformers: 0.0.29.post3}",
                "{version: 2.7.1, flash-attn: 2.8.1, xformers: 0.0.31.post1}",
                "{version: 2.8.0}",
                stack="flash-attn, xformers",
            )
        )
    )
    pins = {
        **fleet.facts.xformers_pins,
        "0.0.31.post2": XformersPin(torch="2.7.1", cuda="12.8"),
        "0.0.32.post3": XformersPin(torch="2.8.0", cuda="12.8"),
    }
    facts = dataclasses.replace(fleet.facts, xformers_pins=pins)
    got = [(p.row, p.extension, p.current, p.newer) for p in pin_proposals(fleet.matrix, fleet.cells, facts)]
    assert got == [
        ("2.7.1", "flash-attn", "2.8.1", ("2.8.3", "2.8.2")),
        ("2.7.1", "xformers", "0.0.31.post1", ("0.0.31.post2",)),
    ]


def test_a_pin_no_cell_installs_is_no_proposal(write_matrix: WriteMatrix) -> None:
    """Every flash-attn cell of the 2.7.1 row is excluded: bumping its pin would change no image."""
    text = build_matrix(
        "{version: 2.7.1, flash-attn: 2.8.1}",
        "{version: 2.8.0, flash-attn: 2.8.3}",
        stack="flash-attn",
        extra="exclude:\n  - {torch: 2.7.1, stack: s}\n",
    )
    fleet = Fleet.load(write_matrix(text))
    assert {c.torch for c in fleet.cells} == {"2.8.0"}
    assert pin_proposals(fleet.matrix, fleet.cells, fleet.facts) == []
