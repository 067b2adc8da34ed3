"""The SBOM document from an inventory (no engine): the lock's hashes matched, licences, purls, validity."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from generator.fleet import Fleet
from generator.model import Pinned
from generator.sbom.document import ImageFacts, build_bom, document_text, locked_hashes, python_component
from generator.spec.profiles import load_profile

PAYLOAD = Path(__file__).parent.parent / "generator" / "verify" / "payload" / "sbom.py"
STATUS = """\
Package: python3
Status: install ok installed
Architecture: amd64
Source: python3-defaults (3.11.2-1)
Version: 3.11.2-1+b1
Description: interactive high-level object-oriented language
 a continuation line: Package: not-a-package

Package: removed-one
Status: deinstall ok config-files
Version: 1.0

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u10
"""


def _payload() -> object:
    spec = importlib.util.spec_from_file_location("sbom_payload", PAYLOAD)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_payload_reads_only_installed_dpkg_packages(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text(STATUS)
    packages = _payload().dpkg_packages(str(status))  # type: ignore[attr-defined]
    assert packages == [
        {"name": "libc6", "version": "2.36-9+deb12u10", "arch": "amd64", "source": "glibc"},
        {"name": "python3", "version": "3.11.2-1+b1", "arch": "amd64", "source": "python3-defaults"},
    ]
    assert _payload().dpkg_packages(str(tmp_path / "none")) == []  # type: ignore[attr-defined]


def test_a_distribution_gets_the_locks_sha256_by_canonical_name_and_equal_version() -> None:
    locked = {"jinja2": [Pinned("jinja2", "3.1.6", "a" * 64)], "torch": [Pinned("torch", "2.13.0+cpu", "b" * 64)]}
    jinja = python_component({"name": "Jinja2", "version": "3.1.6.0", "license": "BSD License"}, locked)
    assert [h.content for h in jinja.hashes] == ["a" * 64]
    assert str(jinja.purl) == "pkg:pypi/jinja2@3.1.6.0"
    assert [lic.name for lic in jinja.licenses] == ["BSD License"]
    other = python_component({"name": "torch", "version": "2.12.0+cpu"}, locked)  # another version: no hash
    assert list(other.hashes) == [] and {p.value for p in other.properties if p.name == "air-fleet:locked"} == {"false"}


def test_a_whole_document_validates_and_carries_the_cells_files() -> None:
    fleet = Fleet.for_profile(load_profile("sandbox"))
    cell = next(c for c in fleet.cells if c.slug == "aws-runtime-torch2.13-einops0.8.2")
    assert "einops" in locked_hashes(cell)
    inventory = {
        "os": {"id": "debian", "version_id": "12", "pretty_name": "Debian GNU/Linux 12 (bookworm)"},
        "dpkg": [{"name": "python3", "version": "3.11.2-1+b1", "arch": "amd64", "source": "python3-defaults"}],
        "distributions": [{"name": "einops", "version": "0.8.2", "license": "MIT", "installer": "uv"}],
    }
    image = ImageFacts(
        f"{cell.image}:tag", "sha256:" + "c" * 64, "2026-12-02T16:08:31.923919752Z", "sha256:" + "d" * 64
    )
    text = document_text(build_bom(cell, image, inventory))
    data = json.loads(text)
    assert data["specVersion"] == "1.6" and data["metadata"]["timestamp"].startswith("2026-12-02T16:08:31")
    purls = {c.get("purl") for c in data["components"]}
    assert "pkg:deb/debian/python3@3.11.2-1%2Bb1?arch=amd64&distro=debian-12" in purls
    files = [c for c in data["components"] if c["type"] == "file"]
    assert [f["hashes"][0]["content"] for f in files] == [a.sha256 for a in cell.artifacts]
    assert document_text(build_bom(cell, image, inventory)) == text  # no clock, no randomness
