"""One credential source for every registry call (generator/release/credentials.py), and the one scrubber.

Docker configs are written to temp folders; credential helpers are real executables on a temp PATH
(tests/standins.py) speaking the `docker-credential-<name> get` protocol. No Docker engine is needed:
what reaches the engine is checked in tests/integration/test_push.py and test_registry.py.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path

import pytest

from generator.errors import FleetError
from generator.release.credentials import (
    ENV_PASSWORD,
    ENV_USERNAME,
    HUB_KEY,
    CredentialsError,
    CredentialSource,
    canonical_registry,
    lookup,
    registry_of,
    scrubber_for,
)
from tests.standins import write_helper

SECRET = "planted-registry-secret-4c1e9b"  # noqa: S105 - test data


def config(folder: Path, doc: object) -> dict[str, str]:
    """An environment whose Docker config is `doc` (and whose PATH has `folder/bin` for helpers)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(doc))
    return {"DOCKER_CONFIG": str(folder), "PATH": f"{folder / 'bin'}:/usr/bin:/bin"}


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_environment_pair_comes_first_and_only_in_pairs(tmp_path: Path) -> None:
    env = config(tmp_path, {"auths": {"r.example.com": {"auth": basic("cfg", "other")}}})
    found = lookup("r.example.com", {**env, ENV_USERNAME: "robot", ENV_PASSWORD: SECRET})
    assert (found.source, found.username, found.password) == ("environment", "robot", SECRET)
    assert found.auth_config() == {"serveraddress": "r.example.com", "username": "robot", "password": SECRET}
    assert SECRET not in repr(found)
    for half in ({ENV_USERNAME: "robot"}, {ENV_PASSWORD: SECRET}):
        with pytest.raises(CredentialsError, match="set both") as info:
            lookup("r.example.com", half)
        assert SECRET not in str(info.value) and isinstance(info.value, FleetError)


@pytest.mark.parametrize(
    "entry",
    [
        {"auth": basic("cfg-robot", SECRET)},
        {"username": "cfg-robot", "password": SECRET},
    ],
)
@pytest.mark.parametrize("key", ["r.example.com:5000", "https://r.example.com:5000/v2/"])
def test_auths_entries_in_every_form(tmp_path: Path, entry: dict[str, str], key: str) -> None:
    found = lookup("r.example.com:5000", config(tmp_path, {"auths": {key: entry}}))
    assert (found.source, found.username, found.password) == ("docker config", "cfg-robot", SECRET)


def test_tokens_in_the_config(tmp_path: Path) -> None:
    env = config(
        tmp_path,
        {"auths": {"a.example.com": {"identitytoken": SECRET}, "b.example.com": {"registrytoken": "rt-" + SECRET}}},
    )
    a, b = lookup("a.example.com", env), lookup("b.example.com", env)
    assert a.auth_config() == {"serveraddress": "a.example.com", "identitytoken": SECRET}
    assert b.auth_config() == {"serveraddress": "b.example.com", "registrytoken": "rt-" + SECRET}


def test_no_entry_is_explicitly_anonymous(tmp_path: Path) -> None:
    for env in ({}, {"DOCKER_CONFIG": str(tmp_path / "none")}, config(tmp_path, {"auths": {"else.example.com": {}}})):
        found = lookup("r.example.com", env)
        assert found.anonymous and found.source == "none" and found.auth_config() == {}


def test_docker_hub_is_filed_under_its_v1_url(tmp_path: Path) -> None:
    env = config(tmp_path, {"auths": {HUB_KEY: {"auth": basic("hub", SECRET)}}})
    for ref in ("ubuntu:24.04", "docker.io/nvidia/cuda:12", "registry-1.docker.io/library/x:y"):
        assert registry_of(ref) == "docker.io" and lookup(registry_of(ref), env).password == SECRET
    assert canonical_registry("https://index.docker.io/v1/") == "docker.io"
    assert registry_of("127.0.0.1:5000/air-fleet/x:t") == "127.0.0.1:5000"
    assert registry_of("localhost/x") == "localhost"


def test_a_credential_helper_answers_for_its_registry(tmp_path: Path) -> None:
    """ECR's `ecr-login` style: credHelpers names a helper per registry; credsStore is the default one."""
    env = config(tmp_path, {"credHelpers": {"1234.dkr.ecr.example.com": "ecr-test"}, "credsStore": "store-test"})
    write_helper(tmp_path / "bin", "ecr-test", {"Username": "AWS", "Secret": SECRET})
    write_helper(tmp_path / "bin", "store-test", {"Username": "<token>", "Secret": "id-" + SECRET})
    ecr = lookup("1234.dkr.ecr.example.com", env)
    assert (ecr.source, ecr.username, ecr.password) == ("credential helper docker-credential-ecr-test", "AWS", SECRET)
    acr = lookup("acr.example.com", env)  # `<token>`: an identity token (ACR's `az acr login`)
    assert acr.identity_token == "id-" + SECRET and not acr.password
    asked = (tmp_path / "bin" / "ecr-test.asked").read_text().split()
    assert asked == ["1234.dkr.ecr.example.com"]  # the server on stdin, never in argv


def test_a_helper_with_nothing_falls_back_to_auths_then_anonymous(tmp_path: Path) -> None:
    env = config(tmp_path, {"credsStore": "empty-test", "auths": {"r.example.com": {"auth": basic("u", SECRET)}}})
    write_helper(tmp_path / "bin", "empty-test", None)
    assert lookup("r.example.com", env).password == SECRET
    assert lookup("other.example.com", env).anonymous


@pytest.mark.parametrize(
    ("doc", "helper", "says"),
    [
        ({"credsStore": "missing-test"}, None, r"docker-credential-missing-test .*not on PATH"),
        ({"credsStore": "broken-test"}, "broken", r"docker-credential-broken-test failed .*exit status 3.*keyring"),
        ({"credsStore": "garbled-test"}, "garbled", r"no Username and Secret"),
        ("[1, 2]", None, r"not a JSON object"),
    ],
)
def test_a_failed_lookup_is_an_error_never_no_credentials(
    tmp_path: Path, doc: object, helper: str | None, says: str
) -> None:
    env = config(tmp_path, json.loads(doc) if isinstance(doc, str) else doc)
    if helper == "broken":
        write_helper(tmp_path / "bin", "broken-test", {}, exit_status=3)
    elif helper == "garbled":
        write_helper(tmp_path / "bin", "garbled-test", {"User": "x"})
    with pytest.raises(CredentialsError, match=says):
        lookup("r.example.com", env)


def test_a_config_that_is_not_json_is_an_error_that_does_not_quote_it(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"auths": {"r": {"auth": "' + SECRET + '"}')
    with pytest.raises(CredentialsError, match="is not JSON") as info:
        lookup("r.example.com", {"DOCKER_CONFIG": str(tmp_path)})
    assert SECRET not in str(info.value)


def test_a_helper_that_hangs_is_killed_and_an_error(tmp_path: Path) -> None:
    helper = tmp_path / "bin" / "docker-credential-hang-test"
    helper.parent.mkdir()
    helper.write_text("#!/bin/sh\nsleep 600\n")
    helper.chmod(0o755)
    env = config(tmp_path, {"credsStore": "hang-test"})
    with pytest.raises(CredentialsError, match=r"no answer .* within 0.5 s"):
        lookup("r.example.com", env, timeout_s=0.5)


def test_the_source_asks_each_registry_once_and_knows_every_value(tmp_path: Path) -> None:
    secret = SECRET + "/+=&"  # characters that JSON, URLs and forms write otherwise
    env = config(tmp_path, {"credsStore": "count-test"})
    write_helper(tmp_path / "bin", "count-test", {"Username": "u", "Secret": secret})
    source = CredentialSource(env)
    assert not source.scrubber.leaks(secret)  # a helper's secret is known once it was asked
    for ref in ("r.example.com/a:1", "r.example.com/b:2", "r.example.com/a:1"):
        assert source.for_ref(ref).password == secret
    assert (tmp_path / "bin" / "count-test.asked").read_text().split() == ["r.example.com"]
    header = base64.urlsafe_b64encode(json.dumps(source.for_ref("r.example.com/a").auth_config()).encode()).decode()
    forms = [secret, basic("u", secret), header, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)]
    masked = source.scrubber.line(" ".join(forms))
    assert masked == " ".join(["***"] * len(forms))


def test_the_scrubber_knows_the_environment_and_the_docker_config(tmp_path: Path) -> None:
    env = config(tmp_path, {"auths": {"r.example.com": {"auth": basic("u", SECRET)}}})
    scrub = scrubber_for({**env, "SOME_TOKEN": "tok-" + SECRET[:8]})
    assert scrub(f"a {SECRET} b tok-{SECRET[:8]} c {basic('u', SECRET)}") == "a *** b *** c ***"
