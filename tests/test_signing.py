"""Signatures in cosign's key-based format (generator/sign/), offline: the payload's exact bytes, ECDSA P-256
signatures that verify with their public key and with no other, claims checked against the image, the
registry layout cosign reads, and where a fleet's key comes from."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from generator.errors import MatrixError
from generator.sign import keys
from generator.sign.config import SIGNING_DIR_ENV, machine_key_dir, machine_keys, signing_keys
from generator.sign.layout import (
    OCI_CONFIG,
    OCI_MANIFEST,
    SIGNATURE_ANNOTATION,
    config,
    manifest,
    signature_layer,
    signature_tag,
    signatures,
)
from generator.sign.payload import MEDIA_TYPE, claims, mismatch, simple_signing
from generator.spec.matrix import load_matrix
from generator.spec.profiles import load_profile
from tests.conftest import MINIMAL

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
REFERENCE = "registry.example.com/team/air"


def test_the_payload_is_cosigns_simple_signing_json_byte_for_byte() -> None:
    # As Go's encoding/json writes cosign's struct: its field order, no spaces, `null` without optional claims.
    assert simple_signing(REFERENCE, DIGEST) == (
        b'{"critical":{"identity":{"docker-reference":"registry.example.com/team/air"},'
        b'"image":{"docker-manifest-digest":"sha256:' + b"ab" * 32 + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    with_claims = json.loads(simple_signing(REFERENCE, DIGEST, {"creator": "air-fleet"}))
    assert with_claims["optional"] == {"creator": "air-fleet"}
    said = claims(simple_signing(REFERENCE, DIGEST))
    assert said is not None and (said.reference, said.digest) == (REFERENCE, DIGEST)
    assert claims(b"not json") is None and claims(b'{"critical": {}}') is None


def test_a_signature_verifies_with_its_public_key_only_and_only_over_its_payload() -> None:
    key, stranger = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    payload = simple_signing(REFERENCE, DIGEST)
    signature = keys.sign(key, payload)
    r, s = decode_dss_signature(base64.b64decode(signature))  # DER, as cosign writes and reads it
    assert r > 0 and s > 0
    assert keys.verifies(key.public_key(), payload, signature)
    assert not keys.verifies(stranger.public_key(), payload, signature)
    assert not keys.verifies(key.public_key(), simple_signing(REFERENCE, OTHER), signature)  # another digest
    assert not keys.verifies(key.public_key(), payload, "not base64!")


def test_a_good_signature_over_another_image_is_still_refused_by_its_claims() -> None:
    assert mismatch(simple_signing(REFERENCE, DIGEST), REFERENCE, DIGEST) is None
    assert mismatch(simple_signing(REFERENCE, OTHER), REFERENCE, DIGEST) == f"its payload names {OTHER}, not {DIGEST}"
    assert "names registry.example.com/other" in str(
        mismatch(simple_signing("registry.example.com/other", DIGEST), REFERENCE, DIGEST)
    )
    assert mismatch(b"[]", REFERENCE, DIGEST) == "its payload is not a simple-signing document"


def test_the_signature_manifest_has_cosigns_layout() -> None:
    assert signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"
    first, second = simple_signing(REFERENCE, DIGEST), simple_signing(REFERENCE, DIGEST, {"n": 2})
    layers = [signature_layer(first, "c2lnMQ=="), signature_layer(second, "c2lnMg==")]
    blob = config(layers, "2026-12-02T00:00:00Z")
    document = json.loads(manifest(blob, layers))
    assert list(document) == ["schemaVersion", "mediaType", "config", "layers"]
    assert document["schemaVersion"] == 2 and document["mediaType"] == OCI_MANIFEST
    assert document["config"] == {
        "mediaType": OCI_CONFIG,
        "size": len(blob),
        "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
    }
    assert document["layers"][0] == {
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "size": len(first),
        "digest": "sha256:" + hashlib.sha256(first).hexdigest(),
        "annotations": {"dev.cosignproject.cosign/signature": "c2lnMQ=="},
    }
    assert (
        document["layers"][1]["mediaType"] == MEDIA_TYPE
        and SIGNATURE_ANNOTATION in document["layers"][1]["annotations"]
    )
    # The config is go-containerregistry's: a diff ID (the payload's digest) and a history entry per layer.
    image_config = json.loads(blob)
    assert image_config["rootfs"] == {"type": "layers", "diff_ids": [x["digest"] for x in layers]}
    assert len(image_config["history"]) == 2 and image_config["created"] == "2026-12-02T00:00:00Z"
    found_layers, found = signatures(manifest(blob, layers))
    assert found_layers == layers and [s.signature for s in found] == ["c2lnMQ==", "c2lnMg=="]


def test_the_machine_key_pair_is_made_once_private_and_reused(tmp_path: Path) -> None:
    made = machine_keys(tmp_path)
    assert made.private == tmp_path / keys.PRIVATE_NAME
    assert made.private is not None and stat.S_IMODE(made.private.stat().st_mode) == 0o600
    assert stat.S_IMODE(made.private.parent.stat().st_mode) == 0o700
    assert made.public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")  # what `cosign verify --key` reads
    again = machine_keys(tmp_path)
    assert again.public.read_bytes() == made.public.read_bytes()
    payload = simple_signing(REFERENCE, DIGEST)
    assert keys.verifies(again.public_key(), payload, keys.sign(made.private_key(), payload))


def test_where_a_fleet_signs_from_matrix_keys_the_sandbox_machine_or_nowhere(tmp_path: Path) -> None:
    default = load_profile("default")
    plain = tmp_path / "plain.yaml"
    plain.write_text(MINIMAL)
    assert signing_keys(load_matrix(plain), default, tmp_path) is None  # the real fleet: keyless, in the nightly
    sandbox = signing_keys(load_matrix(plain), load_profile("sandbox"), tmp_path)
    assert sandbox is not None and sandbox.public == tmp_path / keys.PUBLIC_NAME

    private, public = keys.generate(tmp_path / "team")
    signed = tmp_path / "signed.yaml"
    signed.write_text(MINIMAL + "signing: {key: team/cosign.key.pem, public_key: team/cosign.pub}\n")
    chosen = signing_keys(load_matrix(signed), load_profile("sandbox"), tmp_path / "machine")  # the matrix's win
    assert chosen is not None and (chosen.private, chosen.public) == (private, public)

    verify_only = tmp_path / "verify.yaml"
    verify_only.write_text(MINIMAL + "signing: {public_key: team/cosign.pub}\n")
    found = signing_keys(load_matrix(verify_only), default, tmp_path)
    assert found is not None and found.private is None
    with pytest.raises(keys.SigningKeyError, match="this machine can only verify"):
        found.private_key()

    missing = tmp_path / "missing.yaml"
    missing.write_text(MINIMAL + "signing: {public_key: nowhere.pub}\n")
    with pytest.raises(MatrixError, match=r"signing\.public_key: no public key file at"):
        load_matrix(missing)


def test_a_key_that_is_not_p256_is_refused_by_name(tmp_path: Path) -> None:
    other = tmp_path / "p384.pem"
    from cryptography.hazmat.primitives import serialization

    pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    other.write_bytes(pem)
    with pytest.raises(keys.SigningKeyError, match="is not an ECDSA P-256 key"):
        keys.load_private(other)
    with pytest.raises(keys.SigningKeyError, match="cannot read the public key"):
        keys.load_public(other)


def test_the_machine_key_is_one_per_user_not_per_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(SIGNING_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("AIR_FLEET_STATE", str(tmp_path / "one-checkout" / ".cache"))  # the state folder plays no part
    assert machine_key_dir() == tmp_path / "config" / "air-fleet" / "signing"
    monkeypatch.setenv(SIGNING_DIR_ENV, str(tmp_path / "elsewhere"))
    assert machine_keys().public == tmp_path / "elsewhere" / keys.PUBLIC_NAME
