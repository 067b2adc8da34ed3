"""Registry credentials: one source for every call to a registry (plan, build's lookups, push, pull).

For a registry host, in this order:
1. `AIR_FLEET_REGISTRY_USERNAME` and `AIR_FLEET_REGISTRY_PASSWORD` from the environment, when both are
   set (one without the other is an error);
2. the Docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), as the Docker CLI reads
   it: the credential helper `credHelpers` names for the host, else the `credsStore` one (ECR's
   `ecr-login`, ACR's, gcloud, a desktop keychain), asked with `docker-credential-<name> get`; then the
   host's `auths` entry (`auth`, `username`/`password`, `identitytoken`, `registrytoken`);
3. none: the registry is asked anonymously.

A lookup that fails (a config that is not JSON, a helper that is missing, fails, hangs or answers
nonsense) is a CredentialsError, never "no credentials": a registry call made without the credentials
it should have had fails far from the cause, and its secrets would not be known to the scrubber.

The values found are handed to the Docker engine explicitly (`auth_config`) on every call, so what the
engine sends is exactly what `CredentialSource.scrubber` masks.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.childproc import run_bounded
from generator.errors import FleetError
from generator.scrub import Scrubber, secret_env_values
from generator.spec.userfiles import read_bounded

ENV_USERNAME = "AIR_FLEET_REGISTRY_USERNAME"
ENV_PASSWORD = "AIR_FLEET_REGISTRY_PASSWORD"  # noqa: S105 - the variable's name, not a password
HELPER_TIMEOUT_S = 60.0  # a helper may ask a cloud for a token (ECR, ACR): seconds, not minutes
MAX_CONFIG_BYTES = 1024 * 1024
# Docker Hub answers to several names; its config key is the v1 URL, as `docker login` writes it.
HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
HUB_KEY = "https://index.docker.io/v1/"
# A helper's username meaning "the secret is an identity (OAuth refresh) token" (ACR's `az acr login`).
TOKEN_USERNAME = "<token>"  # noqa: S105 - a marker of the credential-helper protocol


class CredentialsError(FleetError):
    """The registry's credentials cannot be found out (exit status 2); the message never holds a value."""


@dataclass(frozen=True)
class Credentials:
    registry: str  # the host[:port] as Docker names it (docker.io for Docker Hub)
    source: str  # environment | docker config | credential helper docker-credential-<name> | none
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)  # exchanged for a registry token (OAuth refresh)
    registry_token: str = field(default="", repr=False)  # sent as the Bearer token itself

    @property
    def anonymous(self) -> bool:
        return not (self.password or self.identity_token or self.registry_token)

    def auth_config(self) -> dict[str, str]:
        """What the Docker SDK sends the engine (X-Registry-Auth); {} asks anonymously, never the SDK's own."""
        if self.anonymous:
            return {}
        auth = {"serveraddress": HUB_KEY if self.registry == "docker.io" else self.registry}
        if self.registry_token:
            auth["registrytoken"] = self.registry_token
        elif self.identity_token:
            auth["identitytoken"] = self.identity_token
        else:
            auth.update(username=self.username, password=self.password)
        return auth

    def values(self) -> set[str]:
        """Every form these credentials take in text: the values, `user:password` in base64, the engine header."""
        found = {v for v in (self.password, self.identity_token, self.registry_token) if v}
        if self.password:
            found.add(base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii"))
        if found:
            found.add(base64.urlsafe_b64encode(json.dumps(self.auth_config()).encode()).decode("ascii"))
        return found


def canonical_registry(host: str) -> str:
    """`host[:port]` from a registry name or URL, Docker Hub's names folded into `docker.io`."""
    name = host.removeprefix("https://").removeprefix("http://").split("/", 1)[0].lower()
    return "docker.io" if name in HUB_NAMES else name


def registry_of(ref: str) -> str:
    """The registry host of an image reference or repository (Docker's rule: a first part with `.`/`:`)."""
    first, slash, _ = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return canonical_registry(first)
    return "docker.io"


def config_path(env: Mapping[str, str]) -> Path | None:
    """Where the Docker CLI reads its config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`."""
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    return Path(env["HOME"]) / ".docker" / "config.json" if env.get("HOME") else None


def read_config(env: Mapping[str, str]) -> dict[str, Any]:
    """The Docker config as a dict ({} when there is none); CredentialsError when it cannot be read."""
    path = config_path(env)
    if path is None or not path.exists():
        return {}
    try:
        # Bounded whatever the file is (st_size says 0 for a device or a FIFO): see generator/spec/userfiles.py.
        doc = json.loads(read_bounded(path, MAX_CONFIG_BYTES).decode("utf-8"))
    except OSError as exc:
        raise CredentialsError(f"cannot read the Docker config {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        # The position only: the text around it could be a credential.
        where = f"line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "its encoding"
        raise CredentialsError(f"the Docker config {path} is not JSON ({where})") from None
    if not isinstance(doc, dict):
        raise CredentialsError(f"the Docker config {path} is not a JSON object")
    return doc


def lookup(registry: str, env: Mapping[str, str], *, timeout_s: float = HELPER_TIMEOUT_S) -> Credentials:
    """The credentials for `registry` (host[:port], a URL or a Hub alias), by the order above."""
    registry = canonical_registry(registry)
    username, password = env.get(ENV_USERNAME) or "", env.get(ENV_PASSWORD) or ""
    if username or password:
        if not (username and password):
            raise CredentialsError(f"set both {ENV_USERNAME} and {ENV_PASSWORD}, or neither")
        return Credentials(registry, "environment", username, password)
    config = read_config(env)
    helper = _helper_for(config, registry)
    if helper is not None:
        found = _ask_helper(helper, registry, env, timeout_s)
        if found is not None:
            return found
    entry = _auths_entry(config, registry)
    return _from_entry(entry, registry) if entry is not None else Credentials(registry, "none")


def _keys(registry: str) -> list[str]:
    """The names a config may file the registry under, the one `docker login` writes first."""
    return [HUB_KEY, "index.docker.io", "docker.io"] if registry == "docker.io" else [registry]


def _helper_for(config: Mapping[str, Any], registry: str) -> str | None:
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if canonical_registry(key) == registry and isinstance(name, str) and name:
                return name
    store = config.get("credsStore")
    return store if isinstance(store, str) and store else None


def _auths_entry(config: Mapping[str, Any], registry: str) -> dict[str, Any] | None:
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    for key in _keys(registry):  # an exact key first, then any that names the same host (a URL form)
        if isinstance(auths.get(key), dict):
            return dict(auths[key])
    for key, entry in auths.items():
        if canonical_registry(key) == registry and isinstance(entry, dict):
            return dict(entry)
    return None


def _from_entry(entry: Mapping[str, Any], registry: str) -> Credentials:
    def text(name: str) -> str:
        value = entry.get(name)
        return value if isinstance(value, str) else ""

    username, password = text("username"), text("password")
    if text("auth"):
        try:
            decoded = base64.b64decode(text("auth"), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise CredentialsError(
                f"the Docker config's auths entry for {registry} has an `auth` that is not base64"
            ) from None
        username, colon, password = decoded.partition(":")
        if not colon:
            raise CredentialsError(f"the Docker config's auths entry for {registry}: `auth` is not user:password")
    found = Credentials(
        registry,
        "docker config",
        username,
        password,
        identity_token=text("identitytoken"),
        registry_token=text("registrytoken"),
    )
    return found if not found.anonymous else Credentials(registry, "none")


def _ask_helper(name: str, registry: str, env: Mapping[str, str], timeout_s: float) -> Credentials | None:
    """`docker-credential-<name> get` for the registry: None when it has nothing for it."""
    program = f"docker-credential-{name}"
    source = f"credential helper {program}"
    exe = shutil.which(program, path=env.get("PATH"))
    if exe is None:
        raise CredentialsError(f"the Docker config wants {program} for {registry}, and it is not on PATH")
    server = HUB_KEY if registry == "docker.io" else registry
    try:
        done = run_bounded([exe, "get"], env, timeout_s, stdin=server.encode())
    except OSError as exc:
        raise CredentialsError(f"cannot run {program} for {registry}: {exc.strerror or exc}") from None
    if done.returncode is None:
        raise CredentialsError(f"{program} gave no answer for {registry} within {timeout_s:g} s (killed)")
    said = Scrubber().line(done.stdout + " " + done.stderr)[:200] or "no output"
    if done.returncode != 0:
        if "credentials not found" in said.lower():  # the protocol's "nothing stored for this server"
            return None
        raise CredentialsError(f"{program} failed for {registry} (exit status {done.returncode}): {said}")
    try:
        data = json.loads(done.stdout)
        username, secret = data["Username"], data["Secret"]
        if not (isinstance(username, str) and isinstance(secret, str)):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise CredentialsError(f"{program} answered for {registry} with no Username and Secret") from None
    if not secret:
        return None
    if username == TOKEN_USERNAME:
        return Credentials(registry, source, identity_token=secret)
    return Credentials(registry, source, username, secret)


def stored_secrets(env: Mapping[str, str]) -> set[str]:
    """Every credential written in the Docker config's `auths` (the raw entries and their passwords).

    For scrubbing what other programs print (the registration CLIs read this config themselves); an
    unreadable config holds nothing they could repeat, so it yields nothing rather than an error.
    """
    try:
        auths = read_config(env).get("auths")
    except CredentialsError:
        return set()
    found: set[str] = set()
    for key, entry in auths.items() if isinstance(auths, dict) else ():
        if not isinstance(entry, dict):
            continue
        found |= {
            v
            for name in ("auth", "password", "identitytoken", "registrytoken")
            if isinstance(v := entry.get(name), str)
        }
        try:
            found |= _from_entry(entry, canonical_registry(key)).values()
        except CredentialsError:
            continue
    return found


def scrubber_for(env: Mapping[str, str]) -> Scrubber:
    """A scrubber knowing the environment's secret-named values and the Docker config's credentials."""
    return Scrubber(secret_env_values(env) | stored_secrets(env))


class CredentialSource:
    """One run's credentials: each registry looked up once (helpers are slow), every value found known to
    `scrubber`. Thread-safe: build's cells ask from several threads."""

    def __init__(self, env: Mapping[str, str] | None = None, *, timeout_s: float = HELPER_TIMEOUT_S) -> None:
        self.env = dict(os.environ if env is None else env)
        self.timeout_s = timeout_s
        self._found: dict[str, Credentials] = {}
        self._lock = threading.Lock()
        self._scrubber = scrubber_for(self.env)

    def for_registry(self, registry: str) -> Credentials:
        key = canonical_registry(registry)
        with self._lock:
            if key not in self._found:
                found = lookup(key, self.env, timeout_s=self.timeout_s)
                self._found[key] = found
                self._scrubber = self._scrubber.with_values(found.values())
            return self._found[key]

    def for_ref(self, ref: str) -> Credentials:
        """The credentials for the registry of an image reference or repository."""
        return self.for_registry(registry_of(ref))

    @property
    def scrubber(self) -> Scrubber:
        with self._lock:
            return self._scrubber
