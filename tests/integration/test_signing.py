"""Signing on the real sandbox registry, in cosign's key-based format, through the CLI as the nightly's gate
runs it: promote signs what it promoted and verify passes; a second signature is appended beside the
first, never over it; a signature made with another key, or a good one naming another digest, makes
`verify` fail and `register` refuse the image before any registration call; once only good signatures
are left, register goes ahead.

The candidate is a tiny image put straight into the registry (the gate reads records and manifests, not
layers), in repositories of this run's own; the audit promote's accounting asks for runs against the
package index as in tests/integration/test_promote_policy.py. The key is the sandbox's machine key pair
(~/.config/air-fleet/signing/), made on first use. The Databricks workspace behind `register` cannot exist
here: the stand-in CLI of tests/fixtures/fake_cli follows the documented contract.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from generator.fleet import Fleet
from generator.release.credentials import CredentialSource
from generator.release.distribution import Registry
from generator.release.oci import split_ref
from generator.release.registration import Ledger
from generator.results import read_record, record_path, write_record
from generator.sign import keys
from generator.sign.config import machine_keys
from generator.sign.layout import OCI_MANIFEST, config, manifest, signature_tag, signatures
from generator.sign.payload import simple_signing
from generator.sign.store import append
from generator.spec.profiles import load_profile
from tests.conftest import ROOT
from tests.integration.registryimages import MANIFEST, empty, tiny_image
from tests.integration.sandboxfleet import cli, locked_project, sandbox_matrix

HOST = "127.0.0.1:5000"
REPOSITORY = f"sign-test/sig-{uuid.uuid4().hex[:8]}"
MATRIX = sandbox_matrix(REPOSITORY, "runtime", {"einops": "einops==0.8.2"})
FAKE_CLI = ROOT / "tests" / "fixtures" / "fake_cli"


@dataclass
class Project:
    root: Path
    records: Path  # results/<records folder>
    slug: str
    release: str  # repository path on HOST
    digest: str  # the candidate's (and so the release's) manifest digest
    registry: Registry


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """A candidate in staging that its probe tested and the audit passed: what promote may release."""
    root = locked_project(tmp_path_factory, "sign", MATRIX, "dcs-base-aws-runtime")
    fleet = Fleet.for_profile(load_profile("sandbox", root / "matrix.yaml"))
    (rendered,) = fleet.render()
    registry = Registry(HOST, CredentialSource({}))
    _, staging, tag = split_ref(rendered.ref)
    _, release, _ = split_ref(rendered.release_ref)
    body, digest = tiny_image(registry, staging, f"candidate {REPOSITORY}".encode())
    registry.put_manifest(staging, tag, body, MANIFEST)
    slug = rendered.cell.slug
    probe = {"slug": slug, "digest": rendered.digest, "status": "OK", "manifest_digest": digest}
    write_record(record_path(root / "results", fleet.profile.records, "probe", slug), probe)
    audited = cli(root, "audit")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    try:
        yield Project(root, root / "results" / fleet.profile.records, slug, release, digest, registry)
    finally:
        empty(registry, staging, release)


def _layers(p: Project) -> list[dict[str, object]]:
    answer = p.registry.manifest(p.release, signature_tag(p.digest))
    assert answer is not None and answer.media_type == OCI_MANIFEST
    return signatures(answer.body)[0]


def _verify(p: Project) -> tuple[int, dict[str, object]]:
    done = cli(p.root, "verify", "--json")
    (result,) = json.loads(done.stdout)["results"]
    return done.returncode, result


def _register(p: Project) -> tuple[int, dict[str, object], bool]:
    """(exit status, the outcome, whether the workspace CLI was called) of `register` with the stand-in CLI."""
    workspace = f"sign-test-{uuid.uuid4().hex[:8]}"
    scenario = p.root / "scenario.json"
    scenario.write_text(json.dumps({"default": {"steps": ["success"]}}))
    calls = p.root / "calls.jsonl"
    calls.unlink(missing_ok=True)
    env = {
        "PATH": f"{FAKE_CLI}:{os.environ['PATH']}",
        "FAKE_CLI_SCENARIO": str(scenario),
        "FAKE_CLI_STATE": str(p.root),
    }
    try:
        done = cli(p.root, "register", "--cli", "databricks", "--workspace-profile", workspace, "--json", env=env)
    finally:
        Ledger.for_profile(workspace).path.unlink(missing_ok=True)
    (outcome,) = json.loads(done.stdout)["outcomes"]
    return done.returncode, outcome, calls.exists()


def _rewrite(p: Project, layers: list[dict[str, object]]) -> None:
    """Put the signature manifest back with exactly these layers (their blobs are in the repository)."""
    blob = config(layers, "2026-01-01T00:00:00Z")
    p.registry.put_blob(p.release, blob)
    p.registry.put_manifest(p.release, signature_tag(p.digest), manifest(blob, layers), OCI_MANIFEST)


def test_promote_signs_what_it_promoted_and_verify_passes(project: Project) -> None:
    p = project
    promoted = cli(p.root, "promote", "--json")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    (result,) = json.loads(promoted.stdout)["results"]
    assert result["status"] == "promoted" and result["manifest_digest"] == p.digest and result["signed"] is True
    assert p.registry.manifest_digest(p.release, result["tags"][0]) == p.digest  # the tags first, then the signature

    # What cosign reads: one simple-signing layer whose payload names this repository and digest, signed
    # (DER ECDSA P-256 over SHA-256) by the machine's key, checked here with the public key file alone.
    (layer,) = _layers(p)
    annotations = layer["annotations"]
    assert isinstance(annotations, dict)
    payload = p.registry.get_blob(p.release, str(layer["digest"]))
    critical = json.loads(payload)["critical"]
    assert critical["identity"]["docker-reference"] == f"{HOST}/{p.release}"
    assert critical["image"]["docker-manifest-digest"] == p.digest
    public = serialization.load_pem_public_key(machine_keys().public.read_bytes())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert keys.verifies(public, payload, str(annotations["dev.cosignproject.cosign/signature"]))
    signed = read_record(p.records / "sign" / f"{p.slug}.json")
    assert signed is not None and signed["status"] == "signed" and signed["manifest_digest"] == p.digest

    status, verified = _verify(p)
    assert status == 0 and verified["status"] == "verified", verified
    assert verified["release_ref"] == f"{HOST}/{p.release}@{p.digest}"

    again = cli(p.root, "promote", "--json")  # a re-run finds a good signature: it adds none
    assert again.returncode == 0, again.stderr
    assert len(_layers(p)) == 1


def test_signing_again_appends_a_second_signature_and_keeps_the_first(project: Project) -> None:
    p = project
    before = _layers(p)
    signed = cli(p.root, "sign", "--json")
    assert signed.returncode == 0, signed.stdout + signed.stderr
    after = _layers(p)
    assert len(after) == len(before) + 1 and after[: len(before)] == before
    status, verified = _verify(p)
    signatures_checked = verified["signatures"]
    assert status == 0 and isinstance(signatures_checked, list) and len(signatures_checked) == len(after)


def test_a_signature_by_another_key_or_for_another_digest_is_refused_by_verify_and_register(
    project: Project, tmp_path: Path
) -> None:
    p = project
    good = _layers(p)
    stranger = keys.load_private(keys.generate(tmp_path / "stranger")[0])
    payload = simple_signing(f"{HOST}/{p.release}", p.digest, {"creator": "someone else"})
    append(p.registry, p.release, p.digest, payload, keys.sign(stranger, payload), "2026-01-01T00:00:00Z")
    status, verified = _verify(p)
    assert status == 1 and verified["status"] == "invalid"
    assert "not made by the configured key" in str(verified["reason"])
    code, outcome, called = _register(p)
    assert code == 1 and outcome["status"] == "failed" and not called  # refused before any registration call
    assert str(outcome["detail"]).startswith("refused: signature") and "not made by the configured key" in str(
        outcome["detail"]
    )

    # The right key, over a payload that names another image: a good signature of the wrong thing.
    _rewrite(p, good)
    other = "sha256:" + "0" * 64
    payload = simple_signing(f"{HOST}/{p.release}", other)
    append(p.registry, p.release, p.digest, payload, keys.sign(machine_keys().private_key(), payload), "x")
    status, verified = _verify(p)
    assert status == 1 and f"its payload names {other}, not {p.digest}" in str(verified["reason"])
    code, outcome, called = _register(p)
    assert code == 1 and not called and f"names {other}" in str(outcome["detail"])

    # No signature at all: refused too.
    p.registry.delete_manifest(p.release, str(p.registry.manifest_digest(p.release, signature_tag(p.digest))))
    status, verified = _verify(p)
    assert status == 1 and verified["status"] == "unsigned"
    code, outcome, called = _register(p)
    assert code == 1 and not called and "no signature" in str(outcome["detail"])

    # Only good signatures again: register goes ahead.
    _rewrite(p, good)
    assert _verify(p)[0] == 0
    code, outcome, called = _register(p)
    assert code == 0 and outcome["status"] == "registered" and called, outcome
