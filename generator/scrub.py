"""Keep secrets out of everything the project shows: records, progress lines, errors, CLI output it passes on.

One scrubber for every step (push, registry lookups, registration). It masks, in this order:
- known values: the registry credentials in use, the values of environment variables named like a secret
  (*TOKEN*, *PASSWORD*, *SECRET*, ...) and what the Docker config stores, each also JSON-escaped and
  URL-encoded, the forms in which a CLI or an HTTP library may repeat it;
- fields that carry a credential whatever its value: `"password": "..."`, `token=...`, `Authorization: ...`;
- shapes that are credentials on sight: `Bearer <x>`, `Basic <base64>`, Databricks tokens (`dapi...`),
  JWTs, URL userinfo (`https://user:password@host`).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
SECRET_ENV_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|API_?KEY|PRIVATE_?KEY", re.I)
# Shorter values ("1", "yes") are flags, not credentials, and masking them would blank ordinary words.
MIN_SECRET_LENGTH = 4

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
# `Basic <base64 of user:password>`, as a registry or proxy may quote a request header back. Only a
# base64-looking word: "Basic realm=..." and "Basic authentication" are prose, not credentials.
_BASIC = re.compile(r"(?<=\bBasic )[A-Za-z0-9+/]{8,}={0,2}(?![\w+/=])")


def _mask_field(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['key']}{quote}{MASK}{quote}"


def _mask_basic(match: re.Match[str]) -> str:
    word = match[0]
    encoded = any(c.isdigit() or c in "+/=" for c in word) or any(c.isupper() for c in word[1:])
    return MASK if encoded else word


def variants(value: str) -> set[str]:
    """A secret as text may repeat it: raw, JSON-escaped, URL-encoded (path and form style)."""
    return {value, json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}


def secret_env_values(env: Mapping[str, str]) -> set[str]:
    """The values of environment variables whose name says they are secret."""
    return {value for name, value in env.items() if SECRET_ENV_NAME.search(name)}


class Scrubber:
    def __init__(self, values: Iterable[str] = ()) -> None:
        self._raw = frozenset(v for v in values if len(v) >= MIN_SECRET_LENGTH)
        forms = {form for value in self._raw for form in variants(value)}
        # Longest first, so a secret that contains another is masked whole.
        self._values = sorted((v for v in forms if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)

    def with_values(self, values: Iterable[str]) -> Scrubber:
        """This scrubber, also masking `values`."""
        return Scrubber(self._raw | set(values))

    def leaks(self, text: str) -> bool:
        """Whether `text` holds a known secret value (the registration runner refuses such an argv)."""
        return any(value in text for value in self._values)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, MASK)
        text = _FIELD.sub(_mask_field, text)
        for shape in _SHAPES:
            text = shape.sub(MASK, text)
        return _BASIC.sub(_mask_basic, text)

    def line(self, text: str) -> str:
        """Scrubbed, on one line (scrubbed first: folding could join the halves of a secret)."""
        return " ".join(self(text).split())

    def all(self, value: Any) -> Any:
        """Every string in a record (dicts, lists) scrubbed to one line; other values as they are."""
        if isinstance(value, str):
            return self.line(value)
        if isinstance(value, dict):
            return {k: self.all(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.all(v) for v in value]
        return value
