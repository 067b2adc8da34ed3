"""The audit's sources, offline: pip-audit's own service and the project-page fallback, both fed the
package index's REAL answer for ecdsa recorded on 2026-12-02 (tests/fixtures/index/ecdsa.json), and the
gate over the records. tests/integration/test_audit.py asks the live index."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version
from pip_audit._service import PyPIService, ResolvedDependency, SkippedDependency

from generator.audit.findings import merge_aliases
from generator.audit.gate import vulnerability_gate
from generator.audit.index import IndexAuditor, from_project_page, json_api
from generator.model import VulnerabilityPolicy
from generator.results import record_path, write_record

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "index" / "ecdsa.json").read_text())
GHSA = "GHSA-wj6h-64fc-37mp"


class Response:
    def __init__(self, status: int, data: dict[str, Any] | None = None) -> None:
        self.status_code, self._data = status, data or {}

    def raise_for_status(self) -> None:
        import requests

        if self.status_code >= 400:
            raise requests.HTTPError(response=self)

    def json(self) -> dict[str, Any]:
        return self._data


class Session:
    """Answers pip-audit's per-release request from a table; 404 for anything else (like this machine's proxy)."""

    def __init__(self, pages: dict[str, dict[str, Any]]) -> None:
        self.pages: dict[str, dict[str, Any]] = pages
        self.asked: list[str] = []

    def get(self, url: str, timeout: int | None = None) -> Response:
        self.asked.append(url)
        return Response(200, self.pages[url]) if url in self.pages else Response(404)


def _service(pages: dict[str, dict[str, Any]]) -> PyPIService:
    service = PyPIService()
    service.session = Session(pages)
    return service


def test_pip_audits_own_service_parses_the_real_answer_into_one_finding_with_every_alias() -> None:
    service = _service({f"{json_api()}/ecdsa/0.19.2/json": RECORDED})  # where pip-audit asks: the index's
    auditor = IndexAuditor("https://index.invalid/pypi", service=service, get_json=lambda url: pytest.fail(url))
    found, skipped = auditor.query("ecdsa", "0.19.2")
    assert skipped is None and len(found) == 2  # the index lists the flaw under PYSEC- and GHSA-
    (one,) = merge_aliases(found)
    assert one.id == GHSA and set(one.aliases) == {"CVE-2024-23342", "PYSEC-2026-1325"}
    assert one.severity == "unknown" and one.link == f"https://osv.dev/vulnerability/{GHSA}"
    assert "Minerva" in one.summary


def test_where_pip_audit_skips_the_project_page_answers_for_its_latest_release_only() -> None:
    pages = {"https://index.invalid/pypi/ecdsa/json": RECORDED}
    auditor = IndexAuditor("https://index.invalid/pypi", service=_service({}), get_json=pages.get)
    found, skipped = auditor.query("ecdsa", "0.19.2")
    assert skipped is None and {f.id for f in found} == {"PYSEC-2026-1325", GHSA}
    found, skipped = auditor.query("ecdsa", "0.18.0")  # older: the page says nothing about it
    assert found == [] and skipped is not None and "describes 0.19.2" in skipped.why
    found, skipped = auditor.query("no-such-project", "1.0")
    assert found == [] and skipped is not None and "knows no project" in skipped.why


def test_a_withdrawn_advisory_is_no_finding() -> None:
    page = {
        **RECORDED,
        "vulnerabilities": [{**v, "withdrawn": "2026-01-01T00:00:00Z"} for v in RECORDED["vulnerabilities"]],
    }
    assert from_project_page("ecdsa", "0.19.2", page) == ([], None)


def test_pip_audit_skips_a_local_version_without_asking_the_index_as_not_found() -> None:
    spec, results = _service({}).query(ResolvedDependency(name="torch", version=Version("2.13.0+cpu")))
    assert isinstance(spec, SkippedDependency) and results == []


def test_the_gate_reads_the_record_for_this_digest_only(tmp_path: Path) -> None:
    digest = "sha256:" + "a" * 64
    policy = VulnerabilityPolicy()
    today = datetime.date(2026, 12, 2)
    assert vulnerability_gate(tmp_path, "p", "c", digest, policy, today) == (
        False,
        "no audit record: run `audit` first",
    )
    finding = merge_aliases(from_project_page("ecdsa", "0.19.2", RECORDED)[0])[0]
    write_record(record_path(tmp_path, "p", "audit", "c"), {"digest": digest, "findings": [finding.record()]})
    ok, why = vulnerability_gate(tmp_path, "p", "c", digest, policy, today)
    assert not ok and GHSA in why
    ok, why = vulnerability_gate(tmp_path, "p", "c", "sha256:" + "b" * 64, policy, today)
    assert not ok and "audit again" in why
