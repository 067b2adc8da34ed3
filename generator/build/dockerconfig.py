"""The Docker config a build's CLI reads its registry credentials from; never its command line.

Credentials from the Docker config and its helpers are the CLI's own: it reads them as `push` and `plan`
do, so nothing is written. Credentials that only the environment holds (`AIR_FLEET_REGISTRY_USERNAME` /
`_PASSWORD`) are written, for that one build, into a temporary `DOCKER_CONFIG` folder (0700, its
config.json 0600), over a copy of the user's config (other registries keep their helpers), and the folder
is removed afterwards, whatever happens.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from generator.release.credentials import HUB_KEY, Credentials, CredentialSource, read_config


def _entry(found: Credentials) -> dict[str, str]:
    if found.registry_token:
        return {"registrytoken": found.registry_token}
    if found.identity_token:
        return {"identitytoken": found.identity_token}
    return {"auth": base64.b64encode(f"{found.username}:{found.password}".encode()).decode("ascii")}


def config_with(found: Iterable[Credentials], env: Mapping[str, str]) -> dict[str, Any]:
    """The user's Docker config with these registries' credentials as plain `auths` entries (a helper
    named for them would win over `auths`, so it is dropped for them)."""
    config = read_config(env)
    auths = dict(config.get("auths") or {})
    helpers = dict(config.get("credHelpers") or {})
    for credentials in found:
        key = HUB_KEY if credentials.registry == "docker.io" else credentials.registry
        auths[key] = _entry(credentials)
        helpers.pop(credentials.registry, None)
    config["auths"] = auths
    config["credHelpers"] = helpers
    # A credsStore is asked instead of `auths` for every registry: the written entries must win, so it goes
    # (a registry only that store knows then has no credentials for this build: set them in the environment).
    config.pop("credsStore", None)
    return config


@contextlib.contextmanager
def build_env(env: Mapping[str, str], source: CredentialSource | None, refs: Iterable[str]) -> Iterator[dict[str, str]]:
    """The environment of one build's CLI: `env`, with DOCKER_CONFIG pointing at a temporary config when
    credentials for `refs`' registries come from the environment only."""
    out = dict(env)
    if source is None:
        yield out
        return
    wanted = {source.for_ref(ref) for ref in sorted(set(refs))}
    from_env = [c for c in wanted if c.source == "environment" and not c.anonymous]
    if not from_env:
        yield out
        return
    folder = Path(tempfile.mkdtemp(prefix="air-fleet-docker-config-"))  # 0700 by mkdtemp
    try:
        path = folder / "config.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config_with(from_env, env), handle)
        out["DOCKER_CONFIG"] = str(folder)
        yield out
    finally:
        shutil.rmtree(folder, ignore_errors=True)
