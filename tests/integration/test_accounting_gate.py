"""The accounting gate promote calls, against the real registry: a candidate (a tiny image in a staging
repository of the test's own) with an audit record naming an advisory is refused, naming it; allowed, it
passes, and its first size is recorded."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import replace
from pathlib import Path

from generator.audit.findings import Finding
from generator.fleet import Fleet
from generator.model import Allowance
from generator.release.accounting import accounting_gate
from generator.release.credentials import CredentialSource
from generator.release.distribution import Registry
from generator.release.oci import split_ref
from generator.release.promote import PromoteCell
from generator.results import read_record, record_path, write_record
from generator.sandbox import services
from generator.spec.profiles import load_profile
from tests.integration.registryimages import MANIFEST, tiny_image

GHSA = "GHSA-wj6h-64fc-37mp"
TODAY = datetime.date(2026, 12, 2)


def test_promote_would_refuse_an_advisory_then_pass_it_allowed_and_record_the_size(tmp_path: Path) -> None:
    services.up(progress=lambda _: None)
    fleet = Fleet.for_profile(load_profile("sandbox"))
    rendered = fleet.render()[0]
    repo = f"sbom-test/gate-{uuid.uuid4().hex[:8]}"
    rendered = replace(rendered, cell=replace(rendered.cell, repository=repo, staging_repository=f"{repo}-staging"))
    registry = Registry("127.0.0.1:5000", CredentialSource({}))
    _, staging, tag = split_ref(rendered.ref)
    body, digest = tiny_image(registry, staging, b"candidate")
    registry.put_manifest(staging, tag, body, MANIFEST)
    finding = Finding("ecdsa", "0.19.2", GHSA, ("CVE-2024-23342",), "Minerva", f"https://osv.dev/vulnerability/{GHSA}")
    slug = rendered.cell.slug
    write_record(record_path(tmp_path, "p", "audit", slug), {"digest": rendered.digest, "findings": [finding.record()]})
    try:
        ok, why = accounting_gate(tmp_path, "p", PromoteCell.of(rendered), fleet.matrix, registry, TODAY)
        assert not ok and GHSA in why and "the first blessed size" in why
        allow = Allowance("CVE-2024-23342", TODAY, "test", rendered.cell.origin)
        matrix = replace(fleet.matrix, vulnerabilities=replace(fleet.matrix.vulnerabilities, allow=(allow,)))
        ok, why = accounting_gate(tmp_path, "p", PromoteCell.of(rendered), matrix, registry, TODAY)
        assert ok, why
        record = read_record(record_path(tmp_path, "p", "size", slug))
        assert record is not None and record["candidate"]["digest"] == digest and record["blessed"] is None
    finally:
        registry.delete_manifest(staging, digest)
