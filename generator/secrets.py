"""Keep secrets out of everything registration shows: outcome details, progress lines, results.

Whatever a CLI prints passes through a Scrubber first. It masks, in this order:
- the exact values of environment variables named like a secret (*TOKEN*, *PASSWORD*, *SECRET*, ...) and the
  credentials in the Docker config the CLI reads (`auths.*.auth|password|identitytoken|registrytoken`, and the
  password inside a base64 `auth`), also in their JSON-escaped form;
- fields that carry a credential whatever its value: `"password": "..."`, `token=...`, `Authorization: ...`;
- shapes that are credentials on sight: `Bearer <x>`, Databricks tokens (`dapi...`), JWTs, URL userinfo.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

MASK = "***"
SECRET_ENV_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|API_?KEY|PRIVATE_?KEY", re.I)
# Shorter values ("1", "yes") are flags, not credentials, and masking them would blank ordinary words.
MIN_SECRET_LENGTH = 4
MAX_CONFIG_BYTES = 1024 * 1024
DOCKER_AUTH_FIELDS = ("auth", "password", "identitytoken", "registrytoken")

_NAMES = r"[\w.-]*(?:authorization|password|passwd|secret|token|auth|api[_-]?key)[\w.-]*"
# A quoted key (JSON, YAML) takes any colon; a bare key needs `=` or `: ` so an image ref such as
# `host/auth-service:tag` is not taken for a field.
_FIELD = re.compile(
    rf"""(?P<key>(?P<q>["']){_NAMES}(?P=q)\s*:\s*|\b{_NAMES}(?:\s*=\s*|:\s+))"""
    r"""(?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|(?:bearer|basic)\s+[^\s"',;]+|[^\s"',;&}\]]+)""",
    re.I,
)
_SHAPES = (
    re.compile(r"(?<=\bBearer )[A-Za-z0-9._~+/=-]+", re.I),
    re.compile(r"\bdapi[0-9a-f]{32}(?:-\d+)?\b"),  # Databricks personal access token
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"),  # a JWT (OAuth access tokens)
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),  # user:password@ in a URL
)


def _mask_field(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['key']}{quote}{MASK}{quote}"


def docker_config_secrets(env: Mapping[str, str]) -> set[str]:
    """The credentials in the Docker config the CLI would read (`$DOCKER_CONFIG`, else `~/.docker`)."""
    folder = env.get("DOCKER_CONFIG") or (str(Path(env["HOME"]) / ".docker") if env.get("HOME") else None)
    if not folder:
        return set()
    path = Path(folder) / "config.json"
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return set()
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    auths = doc.get("auths") if isinstance(doc, dict) else None
    found: set[str] = set()
    for entry in auths.values() if isinstance(auths, dict) else ():
        if isinstance(entry, dict):
            found |= {v for field in DOCKER_AUTH_FIELDS if isinstance(v := entry.get(field), str)}
            found |= _basic_auth_password(entry.get("auth"))
    return found


def _basic_auth_password(auth: object) -> set[str]:
    if not isinstance(auth, str):
        return set()
    try:
        decoded = base64.b64decode(auth, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return set()
    _, colon, password = decoded.partition(":")
    return {password} if colon else set()


def secret_values(env: Mapping[str, str]) -> frozenset[str]:
    values = {value for name, value in env.items() if SECRET_ENV_NAME.search(name)}
    values |= docker_config_secrets(env)
    values |= {json.dumps(value)[1:-1] for value in values}  # as a CLI's JSON output would escape it
    return frozenset(value for value in values if len(value) >= MIN_SECRET_LENGTH)


class Scrubber:
    def __init__(self, values: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._values = sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Scrubber:
        return cls(secret_values(env))

    def leaks(self, text: str) -> bool:
        """Whether `text` holds a known secret value (the runner refuses such an argv)."""
        return any(value in text for value in self._values)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        text = _FIELD.sub(_mask_field, text)
        for shape in _SHAPES:
            text = shape.sub(MASK, text)
        return text
