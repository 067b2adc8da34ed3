"""What a cell asks the wheelhouse for (`Request`) and what the lock pins (`Locked`), both validated.

Every value here is refused on construction or on reading when it could make pip take a flag, a
download leave its directory, or a bad hash pass as one: the rest of `deps` trusts what it gets from
here. `WheelhouseError`, the one error of `deps`, lives here because this is where refusing starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from generator.errors import FleetError
from generator.model import Artifact

DEFAULT_PLATFORM = "manylinux_2_28_x86_64"
SCHEMES = ("file", "http", "https")

_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")  # PEP 508; never starts with "-" (a pip flag)
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")  # no "/", no "..": a lock never writes outside its dir
_PYTHON = re.compile(r"3\.\d{1,2}")
_PLATFORM = re.compile(r"[a-z0-9_]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class WheelhouseError(FleetError):
    """A file could not be locked, fetched, verified or staged: one line saying which and why."""

    def __init__(self, message: str) -> None:
        # One line whatever a server or pip said: the CLI prints errors as single lines.
        super().__init__(" ".join(message.split()))


@dataclass(frozen=True)
class Request:
    """A file a cell needs. Invalid values are refused here, before anything runs pip or opens a URL."""

    project: str  # "einops", "torch", "flash-attn", "apex"
    version: str  # PEP 440, or a git commit for source archives
    filename: str | None  # the file's name when known; None: pip picks the file for `python` and `platform`
    url: str | None  # where the file is (downloaded once by `lock` to hash it); None: the package index via pip
    python: str = "3.12"  # what pip resolves for: --python-version, --implementation cp, wheels only
    platform: str = DEFAULT_PLATFORM  # the newest platform tag the image accepts (older manylinux ones too)

    def __post_init__(self) -> None:
        what = f"{self.project}=={self.version}"
        if not _NAME.fullmatch(self.project):
            raise WheelhouseError(f"{what}: {self.project!r} is not a valid project name")
        if not self.version or any(c.isspace() for c in self.version):
            raise WheelhouseError(f"{what}: the version must be one word")
        if self.filename is not None and not is_filename(self.filename):
            raise WheelhouseError(f"{what}: {self.filename!r} is not a plain file name")
        if self.url is not None:
            check_url(self.url)
            return
        self._check_index_request(what)

    def _check_index_request(self, what: str) -> None:
        """Index requests go through pip's resolver, which only takes PEP 440 versions and wheels."""
        try:
            Version(self.version)
        except InvalidVersion:
            raise WheelhouseError(f"{what}: not a PEP 440 version; a file from a git commit needs a url") from None
        if not _PYTHON.fullmatch(self.python):
            raise WheelhouseError(f"{what}: python {self.python!r} is not like 3.12")
        if not _PLATFORM.fullmatch(self.platform):
            raise WheelhouseError(f"{what}: platform {self.platform!r} is not a platform tag")
        if self.filename is not None and not self.filename.endswith(".whl"):
            # pip can only report an sdist after building its metadata (flash-attn's setup.py imports torch).
            raise WheelhouseError(f"{what}: {self.filename} is not a wheel: pip cannot lock it; give it a url")

    @property
    def key(self) -> str:
        """The lock key: `<project>==<version>` then what picks the file, space-separated.

        The project is PEP 503-normalized; the rest is what decides which bytes are locked, so a changed
        URL, file name, Python or platform is a new key (re-resolved) and an unchanged one is reused:
        - with a URL: `<project>==<version> [<filename>] <url>`
          (`apex==810ffae... apex-810ffae....tar.gz https://github.com/NVIDIA/apex/archive/810ffae....tar.gz`)
        - from the index, file named: `<project>==<version> <filename>`
          (`einops==0.8.2 einops-0.8.2-py3-none-any.whl`: the same file for every Python)
        - from the index, pip picks: `<project>==<version> cp<XY> <platform>`
          (`torch==2.13.0 cp311 manylinux_2_28_x86_64`)
        """
        parts = [f"{canonicalize_name(self.project)}=={self.version}"]
        if self.filename is not None:
            parts.append(self.filename)
        if self.url is not None:
            parts.append(self.url)
        elif self.filename is None:
            parts += [cp(self.python), self.platform]
        return " ".join(parts)

    @property
    def requirement(self) -> str:
        return f"{canonicalize_name(self.project)}=={self.version}"


@dataclass(frozen=True)
class Locked:
    """A pinned file: what `fetch` downloads and verifies."""

    filename: str
    url: str
    sha256: str
    size: int


def request_for(artifact: Artifact, python: str, platform: str = DEFAULT_PLATFORM) -> Request:
    """The request for one of a cell's artifacts (the cell's Python decides which wheel pip may pick)."""
    return Request(artifact.project, artifact.version, artifact.filename, artifact.url, python, platform)


def cp(python: str) -> str:
    """The CPython tag of a Python version: 3.11 -> cp311."""
    return "cp" + python.replace(".", "")


def is_filename(name: str) -> bool:
    return _FILENAME.fullmatch(name) is not None


def is_sha256(value: str) -> bool:
    return _SHA256.fullmatch(value) is not None


def check_url(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES or any(c.isspace() for c in url):
        raise WheelhouseError(f"{url}: only {', '.join(SCHEMES)} URLs without spaces can be fetched")


def url_filename(url: str) -> str:
    """The file name a URL ends with (`%2B` decoded: GitHub release URLs quote the `+` of local versions)."""
    return unquote(PurePosixPath(urlsplit(url).path).name)


def check_locked(locked: Locked) -> None:
    """A lock file is input: a tampered name must not escape the cache, a bad hash must not pass as one."""
    if not is_filename(locked.filename):
        raise WheelhouseError(f"{locked.filename!r}: not a plain file name")
    if not is_sha256(locked.sha256):
        raise WheelhouseError(f"{locked.filename}: sha256 {locked.sha256!r} is not 64 lowercase hex digits")
    if isinstance(locked.size, bool) or not isinstance(locked.size, int) or locked.size < 0:
        raise WheelhouseError(f"{locked.filename}: size {locked.size!r} is not a byte count")
    check_url(locked.url)
