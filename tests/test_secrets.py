"""The one scrubber (generator/scrub.py): every step's records, progress lines and errors go through it."""

from __future__ import annotations

import hashlib

import pytest

from generator.release.credentials import scrubber_for
from generator.scrub import Scrubber


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ('{"password": "p4ssw0rd!", "user": "bob"}', '"user": "bob"'),
        ("Authorization: Bearer abc.def.ghi", "Authorization: "),
        ("for robot (Basic cm9ib3Q6czNjcjN0cHc=) at", "at"),
        ("GET /api?access_token=zzz999&x=1", "&x=1"),
        ("token: abcdef123 failed", "failed"),
        ('"identitytoken": "idtok4567"', "identitytoken"),
        ("using dapi0123456789abcdef0123456789abcdef now", "using"),
        ("pull https://robot:s3cr3tpw@registry.example.com/v2/", "registry.example.com"),
        ("header eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end", "end"),
    ],
)
def test_fields_and_shapes_are_masked(text: str, kept: str) -> None:
    masked = Scrubber()(text)
    assert "***" in masked and kept in masked
    gone = ("p4ssw0rd", "abc.def", "cm9ib3Q6", "zzz999", "abcdef123", "idtok4567", "dapi0123", "s3cr3tpw", "c2ln")
    assert not any(s in masked for s in gone)


def test_refs_digests_error_codes_and_prose_are_left_alone() -> None:
    digest = "sha256:" + hashlib.sha256(b"x").hexdigest()
    text = f"registered auth-service.example.com/ml/auth-tokens:v1 {digest} INVALID_TOKEN retryable=false"
    assert Scrubber(["1234"])(text) == text
    prose = 'no basic auth credentials; Basic realm="fleet"; Basic authentication required'
    assert Scrubber()(prose) == prose


def test_known_values_are_masked_in_every_form_a_tool_writes_them() -> None:
    scrub = scrubber_for({"MY_SECRET": 'a"b\\c-long', "PATH": "/usr/bin", "API_TOKEN": "1"})
    assert scrub('said a"b\\c-long and "a\\"b\\\\c-long"') == 'said *** and "***"'
    assert scrub("/usr/bin 1") == "/usr/bin 1"  # not secret names; too short to be a credential
    url = Scrubber(["p@ss/w rd"])
    assert url.line("u=p%40ss%2Fw%20rd f=p%40ss%2Fw+rd\nraw p@ss/w rd") == "u=*** f=*** raw ***"


def test_records_are_scrubbed_to_one_line_throughout() -> None:
    record = {"reason": "denied\nfor s3cret-value", "tags": ["a", "s3cret-value"], "attempts": 2, "none": None}
    assert Scrubber(["s3cret-value"]).all(record) == {
        "reason": "denied for ***",
        "tags": ["a", "***"],
        "attempts": 2,
        "none": None,
    }
