"""Validators for every string a matrix can carry into a Dockerfile, a tag or a shell line.

Each returns the normalised value or raises ValueError with a short reason; the matrix loader adds the
file, line and key path. Nothing outside these shapes can reach a template, so no matrix value can add
a Dockerfile instruction or a shell command.
"""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version

NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
PYPI_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
GIT_COMMIT = re.compile(r"[0-9a-f]{40}")
# host[:port]: DNS labels or an IPv4 address, optional port.
REGISTRY_HOST = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::[0-9]{1,5})?"
)
# OCI distribution spec repository path components.
REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")


def version(text: str) -> str:
    """A PEP 440 version, returned in its normalised public form (`2.7.4.post1`)."""
    if not isinstance(text, str) or not text or text != text.strip():
        raise ValueError(f"{text!r} is not a PEP 440 version")
    try:
        parsed = Version(text)
    except InvalidVersion:
        raise ValueError(f"{text!r} is not a PEP 440 version") from None
    if parsed.local is not None:
        raise ValueError(f"{text!r}: local versions (+...) are not allowed; the generator picks builds")
    return str(parsed)


def release_version(text: str) -> str:
    """A PEP 440 version with at least major.minor.micro: `2.8` means the release `2.8.0`."""
    v = Version(version(text))
    if len(v.release) >= 3:
        return str(v)
    padded = ".".join(str(p) for p in (*v.release, 0, 0)[:3])
    return str(Version(padded + str(v)[len(".".join(map(str, v.release))) :]))


def torch_key(text: str) -> str:
    """A torch row's name: a release (`2.8` means `2.8.0`), with `+cuXYZ` for a build from a CUDA index."""
    release, plus, index = text.partition("+")
    if plus and not re.fullmatch(r"[a-z0-9]{1,20}", index):
        raise ValueError(f"{text!r}: the part after '+' names a torch index, like cu129")
    return f"{release_version(release)}+{index}" if plus else release_version(release)


def python_version(text: str) -> str:
    """`3.12` style: major.minor only."""
    v = Version(version(text))
    if len(v.release) != 2 or v.pre or v.post or v.dev:
        raise ValueError(f'{text!r}: give python as major.minor, e.g. "3.12"')
    return str(v)


def name(text: str, what: str = "name") -> str:
    if not isinstance(text, str) or not NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not a valid {what} (lowercase letters, digits, '.', '_', '-')")
    return text


def package_name(text: str) -> str:
    if not isinstance(text, str) or not PYPI_NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not a valid package name")
    return text


def git_commit(text: str) -> str:
    if not isinstance(text, str) or not GIT_COMMIT.fullmatch(text):
        raise ValueError(f"{text!r} is not a full 40-hex git commit (pin a commit, not a branch)")
    return text


def registry_host(text: str) -> str:
    if not isinstance(text, str) or not REGISTRY_HOST.fullmatch(text):
        raise ValueError(f"{text!r} is not a registry host[:port]")
    return text


def repository(text: str) -> str:
    if not isinstance(text, str) or len(text) > 200 or not REPOSITORY.fullmatch(text):
        raise ValueError(f"{text!r} is not an OCI repository path (lowercase, '/'-separated)")
    return text


def driver_version(text: str) -> str:
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{3}(?:\.[0-9]{1,3}){1,2}", text):
        raise ValueError(f"{text!r} is not an NVIDIA driver version like 580.126.16")
    return text


def pattern(text: str) -> str:
    """An fnmatch selector value: the characters of names and versions plus `*?[]!`."""
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9._+*?\[\]!-]{1,100}", text):
        raise ValueError(f"{text!r} is not a selector pattern")
    return text
