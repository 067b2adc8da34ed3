"""Which releases a project has on the package index: its simple API, PEP 691 JSON or PEP 503 HTML.

The simple API is what every index pip can install from speaks (the main index, a mirror, a proxy);
a per-project JSON API is one index's own. One GET per project asks for PEP 691 JSON first and reads
PEP 503 HTML when that is what comes back; a release counts when it has a file that is not yanked.

The index is the one pip on this machine installs from: `PIP_INDEX_URL`, else pip's configuration
(`index-url` of the `install` or `global` section), else pip's own default; pip's `cert` setting is
honoured (a TLS-intercepting proxy's CA). Extra indexes and find-links are not asked: the fleet's torch
and xformers come from the main index. Credentials in the URL (`https://user:token@host/simple`) are
sent as HTTP Basic and never shown.
"""

from __future__ import annotations

import base64
import email.parser
import html.parser
import http.client
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from generator.deps.index import platform_tags
from generator.deps.pins import DEFAULT_PLATFORM, cp
from generator.errors import FleetError
from generator.retry import Policy, retry

# PEP 691 content negotiation: JSON preferred, the HTML forms accepted (PEP 503 pages are text/html).
ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
TIMEOUT_S = 30.0  # per socket operation
MAX_PAGE_BYTES = 32 << 20  # torch's page lists every file of every release: a few MiB at most
MAX_METADATA_BYTES = 1 << 20  # a wheel's METADATA is a few KiB
# Another try when the index or the network is busy, not when the index answers "no such project".
POLICY = Policy(attempts=3, first_s=0.5)
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class PackageIndexError(FleetError):
    """The package index cannot be reached or does not answer as an index (exit status 2)."""


class _Transient(Exception):
    """A failure another try may not meet: the network or a busy server."""


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str  # absolute, without the #sha256= fragment
    metadata: bool  # PEP 658/714: the index serves the wheel's METADATA at <url>.metadata


@dataclass(frozen=True)
class Release:
    version: Version
    files: tuple[IndexFile, ...]  # those not yanked; a release with none is not listed

    def wheels_for(self, tags: frozenset[Tag]) -> list[IndexFile]:
        return [f for f in self.files if f.filename.endswith(".whl") and parse_wheel_filename(f.filename)[3] & tags]


def image_tags(python: str, platform: str = DEFAULT_PLATFORM) -> frozenset[Tag]:
    """The wheel tags CPython `python` on the images' Linux accepts (older manylinux tags included)."""
    version = tuple(int(part) for part in python.split("."))
    platforms = platform_tags(platform)
    tags = [*cpython_tags(version, platforms=platforms), *compatible_tags(version, cp(python), platforms)]
    return frozenset(tags)


@dataclass(frozen=True)
class PackageIndex:
    url: str  # the simple API's root, ending in "/", without credentials
    authorization: str | None = None  # an HTTP Basic header value from the URL's userinfo
    cafile: str | None = None  # pip's `cert`: the CA bundle to verify HTTPS with

    @classmethod
    def at(cls, url: str, cafile: str | None = None) -> PackageIndex:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https", "file"):
            raise PackageIndexError(f"package index URL {_shown(url)}: not http, https or file")
        authorization = None
        if parts.username is not None:
            pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode()
            parts = _without_userinfo(parts)
        root = urllib.parse.urlunsplit(parts._replace(query="", fragment="")).rstrip("/") + "/"
        return cls(root, authorization, cafile)

    @classmethod
    def from_pip(cls) -> PackageIndex:
        """The index pip on this machine installs from, with pip's CA bundle."""
        url, cafile = pip_setting("index-url"), pip_setting("cert")
        return cls.at(url or _pip_default(), cafile)

    def releases(self, project: str) -> dict[Version, Release]:
        """Every release of `project` with a file that is not yanked, oldest first."""
        url = urllib.parse.urljoin(self.url, f"{canonicalize_name(project)}/")
        body, content_type, final = self._get(url, ACCEPT, MAX_PAGE_BYTES, f"project {project!r}")
        if content_type == JSON_TYPE or content_type.endswith("+json") or content_type == "application/json":
            files = _json_files(body, final, project)
        else:
            files = _html_files(body, final)
        by_version: dict[Version, list[IndexFile]] = {}
        for found in files:
            version = _version_of(found.filename)
            if version is not None:
                by_version.setdefault(version, []).append(found)
        return {v: Release(v, tuple(by_version[v])) for v in sorted(by_version)}

    def requires(self, wheel: IndexFile) -> list[str]:
        """The wheel's Requires-Dist lines from its PEP 658 metadata; empty when the index has none to give."""
        if not wheel.metadata:
            return []
        try:
            body, _, _ = self._get(wheel.url + ".metadata", "*/*", MAX_METADATA_BYTES, wheel.filename)
        except PackageIndexError:  # the listing said it has it; without it the proposal just says less
            return []
        message = email.parser.Parser().parsestr(body.decode("utf-8", "replace"), headersonly=True)
        return [str(line) for line in message.get_all("Requires-Dist") or []]

    def _get(self, url: str, accept: str, limit: int, what: str) -> tuple[bytes, str, str]:
        """The body, its media type and the URL it finally came from (relative links resolve against it)."""
        if urllib.parse.urlsplit(url).scheme == "file":
            return _read_local(url, limit, what)
        request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 - scheme checked in at()
        if self.authorization:
            # Unredirected: a redirect to another host must not carry the credentials there.
            request.add_unredirected_header("Authorization", self.authorization)
        try:
            context = ssl.create_default_context(cafile=self.cafile) if self.cafile else None
        except (OSError, ssl.SSLError) as exc:
            raise PackageIndexError(f"pip's cert {self.cafile} cannot be read: {exc}") from None

        def once() -> tuple[bytes, str, str]:
            try:
                with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:  # noqa: S310
                    body = response.read(limit + 1)
                    media = response.headers.get_content_type()
                    final = response.geturl()
            except urllib.error.HTTPError as exc:
                if exc.code in TRANSIENT_STATUS:
                    raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
                raise PackageIndexError(f"the package index at {_shown(self.url)}: {what}: HTTP {exc.code}") from None
            except (OSError, http.client.HTTPException) as exc:
                raise _Transient(str(getattr(exc, "reason", exc))) from None
            if len(body) > limit:
                raise PackageIndexError(f"the package index at {_shown(self.url)}: {what}: over {limit} bytes")
            return body, media, final

        try:
            return retry(once, policy=POLICY, transient=lambda exc: isinstance(exc, _Transient))
        except _Transient as exc:
            raise PackageIndexError(
                f"the package index at {_shown(self.url)} cannot be reached: {exc} (after {POLICY.attempts} tries)"
            ) from None


def newest_final(releases: Iterable[Release], tags: frozenset[Tag]) -> list[Release]:
    """Final releases (no pre-, dev- or local versions) that have a wheel for `tags`, oldest first."""
    return [
        r
        for r in releases
        if not (r.version.is_prerelease or r.version.is_devrelease or r.version.local) and r.wheels_for(tags)
    ]


def _version_of(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None  # an .egg, an .exe installer: not something pip installs on Linux


def _json_files(body: bytes, base: str, project: str) -> list[IndexFile]:
    try:
        data = json.loads(body)
        files = data["files"]
        if not isinstance(files, list):
            raise TypeError("files is not a list")
        out = []
        for item in files:
            if item.get("yanked") not in (None, False):  # True or the reason as a string
                continue
            metadata = item.get("core-metadata", item.get("dist-info-metadata", False))
            out.append(_file(str(item["filename"]), str(item["url"]), base, metadata not in (None, False)))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PackageIndexError(f"the package index's page for {project!r} is not PEP 691 JSON: {exc!r}") from None
    return out


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open, self._text = dict(attrs), ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.found.append((self._open, self._text.strip()))
            self._open = None


def _html_files(body: bytes, base: str) -> list[IndexFile]:
    parser = _Anchors()
    parser.feed(body.decode("utf-8", "replace"))
    out = []
    for attrs, text in parser.found:
        href = attrs.get("href")
        if not href or "data-yanked" in attrs:
            continue
        name = text or urllib.parse.unquote(urllib.parse.urlsplit(href).path.rsplit("/", 1)[-1])
        metadata = any(key in attrs for key in ("data-core-metadata", "data-dist-info-metadata"))
        out.append(_file(name, href, base, metadata))
    return out


def _file(filename: str, href: str, base: str, metadata: bool) -> IndexFile:
    url = urllib.parse.urldefrag(urllib.parse.urljoin(base, href)).url
    return IndexFile(filename, url, metadata)


def _read_local(url: str, limit: int, what: str) -> tuple[bytes, str, str]:
    """A file:// index (a directory of PEP 503 pages, as pip reads one): `<dir>/index.html`."""
    path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    page = path / "index.html" if path.is_dir() else path
    try:
        with page.open("rb") as fh:
            body = fh.read(limit + 1)
    except OSError as exc:
        raise PackageIndexError(f"the package index at {url}: {what}: {exc.strerror or exc}") from None
    if len(body) > limit:
        raise PackageIndexError(f"the package index at {url}: {what}: over {limit} bytes")
    media = "application/vnd.pypi.simple.v1+json" if page.suffix == ".json" else "text/html"
    return body, media, page.as_uri() if page != path else url


def pip_setting(name: str) -> str | None:
    """pip's own value for an option, as `pip install` reads it: environment, then `install`, then `global`."""
    env = os.environ.get(f"PIP_{name.upper().replace('-', '_')}")
    if env:
        return env.split()[0]  # PIP_INDEX_URL holds one URL; a list would be pip's to refuse
    try:
        from pip._internal.configuration import Configuration
        from pip._internal.exceptions import ConfigurationError
    except ImportError:  # no pip beside this interpreter: only the environment can say
        return None
    config = Configuration(isolated=False)
    try:
        config.load()
    except ConfigurationError as exc:
        raise PackageIndexError(f"pip's configuration cannot be read: {exc}") from None
    for key in (f"install.{name}", f"global.{name}"):
        try:
            value: Any = config.get_value(key)
        except ConfigurationError:
            continue
        return str(value).split()[0] if str(value).strip() else None
    return None


def _pip_default() -> str:
    """pip's built-in index, from pip itself: no host name is written into this project."""
    try:
        from pip._internal.models.index import PyPI
    except ImportError:
        raise PackageIndexError(
            "no pip beside this Python to say where the package index is: set PIP_INDEX_URL"
        ) from None
    return str(PyPI.simple_url)


def _shown(url: str) -> str:
    """A URL as it may be printed: no userinfo."""
    return urllib.parse.urlunsplit(_without_userinfo(urllib.parse.urlsplit(url)))


def _without_userinfo(parts: urllib.parse.SplitResult) -> urllib.parse.SplitResult:
    if parts.username is None and parts.password is None:
        return parts
    return parts._replace(netloc=parts.netloc.rpartition("@")[2])
