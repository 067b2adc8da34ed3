"""Promote enforces the matrix's vulnerability policy, through the CLI as the nightly's gate runs it: a
sandbox cell that deliberately pins ecdsa 0.19.2 (GHSA-wj6h-64fc-37mp) has a candidate in staging that its
probe tested, and still is not promoted: refused naming the advisory; refused again under an allowance
past its expiry; promoted under one that has not expired. The audit asks the live package index (see
tests/integration/test_audit.py); the candidate is a tiny image put straight into the registry, since the
gate reads only records and manifests."""

from __future__ import annotations

import datetime
import json
import uuid
from pathlib import Path

import pytest

from generator.fleet import Fleet
from generator.release.credentials import CredentialSource
from generator.release.distribution import Registry
from generator.release.oci import split_ref
from generator.results import record_path, write_record
from generator.spec.profiles import load_profile
from tests.integration.registryimages import MANIFEST, empty, tiny_image
from tests.integration.sandboxfleet import cli, locked_project, sandbox_matrix

REPOSITORY = f"sbom-test/policy-{uuid.uuid4().hex[:8]}"
MATRIX = sandbox_matrix(REPOSITORY, "runtime", {"vulnerable": "ecdsa==0.19.2"})
GHSA = "GHSA-wj6h-64fc-37mp"
ALLOW = "vulnerabilities:\n  allow:\n    - {{id: CVE-2024-23342, until: '{until}', reason: 'no P-256 here'}}\n"


def _promote(root: Path, policy: str) -> dict[str, object]:
    (root / "matrix.yaml").write_text(MATRIX + policy, encoding="utf-8")
    done = cli(root, "promote", "--json")
    (result,) = json.loads(done.stdout)["results"]
    return {"exit": done.returncode, **result}


def test_promote_refuses_the_advisory_and_an_expired_allowance_then_passes_a_current_one(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = locked_project(tmp_path_factory, "policy", MATRIX, "dcs-base-aws-runtime")
    fleet = Fleet.for_profile(load_profile("sandbox", root / "matrix.yaml"))
    (rendered,) = fleet.render()
    registry = Registry("127.0.0.1:5000", CredentialSource({}))
    _, staging, tag = split_ref(rendered.ref)
    _, release, _ = split_ref(rendered.release_ref)
    body, digest = tiny_image(registry, staging, f"candidate {REPOSITORY}".encode())
    registry.put_manifest(staging, tag, body, MANIFEST)
    probe = {"slug": rendered.cell.slug, "digest": rendered.digest, "status": "OK", "manifest_digest": digest}
    write_record(record_path(root / "results", fleet.profile.records, "probe", rendered.cell.slug), probe)
    try:
        audited = cli(root, "audit")
        assert audited.returncode == 1 and GHSA in audited.stdout, audited.stdout + audited.stderr

        refused = _promote(root, "")
        assert refused["exit"] != 0 and refused["status"] == "refused"
        assert GHSA in str(refused["reason"]) and "ecdsa 0.19.2" in str(refused["reason"])
        assert registry.manifest_digest(release, tag) is None  # nothing reached the release repository

        expired = _promote(root, ALLOW.format(until="2026-01-31"))
        assert expired["status"] == "refused" and "expired on 2026-01-31" in str(expired["reason"])

        tomorrow = datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=1)
        allowed = _promote(root, ALLOW.format(until=tomorrow))
        assert allowed["exit"] == 0 and allowed["status"] == "promoted", allowed
        assert registry.manifest_digest(release, tag) == digest
    finally:
        empty(registry, staging, release)
