"""The package index's vulnerability data for pinned packages: pip-audit's own service first, then the
project page where that cannot answer.

pip-audit's default service (PyPIService) asks the index's per-release JSON (`/pypi/<name>/<version>/json`)
and takes its `vulnerabilities`. Where that answers 404 — a local version such as torch's `+cpu` that no
index has, or a mirror or proxy that serves only the per-project JSON (this machine's does: every
per-release page is 404 here) — pip-audit skips the package and, alone, would report "No known
vulnerabilities found". So a skipped package is asked again at the per-project JSON
(`/pypi/<name>/json`), whose `vulnerabilities` are those of the project's LATEST release: they apply
exactly when the pinned version is that release. Any other pin stays "not audited", with the reason, and
the policy and the page say so; it is never counted as clean.

Severity: neither page carries one, so every finding here is "unknown" (generator/audit/findings.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pip_audit._service import PyPIService, ResolvedDependency, SkippedDependency, VulnerabilityResult
from pip_audit._service.interface import ServiceError

from generator.audit.findings import Finding, NotAudited
from generator.errors import FleetError
from generator.upstream.index import pip_setting

PROJECT_URL = "{api}/{name}/json"
DEFAULT_TIMEOUT_S = 30

# (name, version) -> (findings, None) or ([], why it was not audited)
Answer = tuple[list[Finding], NotAudited | None]


class AuditError(FleetError):
    """The vulnerability data cannot be reached at all (exit status 2): no audit is better than a false one."""

    exit_status = 2


def from_pip_audit(name: str, version: str, results: list[VulnerabilityResult]) -> list[Finding]:
    return [
        Finding(
            package=canonicalize_name(name),
            version=version,
            id=str(r.id),
            aliases=tuple(sorted(str(a) for a in r.aliases)),
            summary=r.description,
            fix_versions=tuple(str(v) for v in r.fix_versions),
        )
        for r in results
    ]


def from_project_page(name: str, version: str, page: dict[str, Any]) -> Answer:
    """The findings a per-project JSON page gives for `version`: its `vulnerabilities` when `version` is
    the latest release it describes; otherwise not audited, saying why."""
    latest = str((page.get("info") or {}).get("version") or "")
    try:
        same = Version(latest) == Version(version)
    except InvalidVersion:
        same = latest == version
    if not same:
        why = f"the index has no page for {version} here, and its project page describes {latest or 'nothing'}"
        return [], NotAudited(canonicalize_name(name), version, why)
    out = []
    for v in page.get("vulnerabilities") or []:
        if not isinstance(v, dict) or v.get("withdrawn"):
            continue  # a withdrawn advisory is no finding, as pip-audit's own service treats it
        out.append(
            Finding(
                package=canonicalize_name(name),
                version=version,
                id=str(v.get("id", "")),
                aliases=tuple(sorted(str(a) for a in v.get("aliases") or [])),
                summary=" ".join(str(v.get("summary") or v.get("details") or "").split()),
                link=str(v.get("link") or ""),
                fix_versions=tuple(str(f) for f in v.get("fixed_in") or []),
            )
        )
    return out, None


def json_api() -> str:
    """The package index's JSON API that pip-audit's service asks (pip's built-in index, from pip itself: no
    host name is written into this project). A mirror named by PIP_INDEX_URL serves packages, not
    vulnerability data, so it is not asked."""
    from pip._internal.models.index import PyPI

    return str(PyPI.pypi_url)


class IndexAuditor:
    """Asks once per (name, version) and remembers: cells share most of their environment."""

    def __init__(
        self,
        api: str | None = None,
        *,
        service: Any | None = None,
        get_json: Callable[[str], dict[str, Any] | None] | None = None,
        timeout: int = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.api = (api or json_api()).rstrip("/")
        # pip's `cert` (the CA bundle pip verifies HTTPS with, as behind a TLS-intercepting proxy) serves
        # these requests too: pip-audit's session and ours would otherwise know only their own CA bundle.
        self.cafile = pip_setting("cert")
        if service is None:
            service = PyPIService(timeout=timeout)
            if self.cafile:
                service.session.verify = self.cafile
        self.service = service
        self.get_json = get_json if get_json is not None else self._get_json
        self.timeout = timeout
        self.source = "the package index (pip-audit's service; the project page where it cannot answer)"
        self._seen: dict[tuple[str, str], Answer] = {}

    def _get_json(self, url: str) -> dict[str, Any] | None:
        try:
            response = requests.get(url, timeout=self.timeout, verify=self.cafile or True)
        except requests.RequestException as exc:
            raise AuditError(f"the package index cannot be reached ({url}): {type(exc).__name__}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise AuditError(f"the package index answered HTTP {response.status_code} to {url}")
        data = response.json()
        return data if isinstance(data, dict) else None

    def query(self, name: str, version: str) -> Answer:
        key = (canonicalize_name(name), version)
        if key not in self._seen:
            self._seen[key] = self._query(*key)
        return self._seen[key]

    def _query(self, name: str, version: str) -> Answer:
        try:
            spec, results = self.service.query(ResolvedDependency(name=name, version=Version(version)))
        except (ServiceError, requests.RequestException) as exc:
            raise AuditError(f"pip-audit's service cannot answer for {name} {version}: {exc}") from None
        if not isinstance(spec, SkippedDependency):
            return from_pip_audit(name, version, results), None
        page = self.get_json(PROJECT_URL.format(api=self.api, name=name))
        if page is None:
            return [], NotAudited(name, version, f"the package index knows no project {name}")
        return from_project_page(name, version, page)
