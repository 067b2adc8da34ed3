"""Getting bytes from a file, http or https URL: streamed, hashed on the way, retried when the fault is passing.

A failure is sorted once, where it happens: the server or network being busy (5xx, 429, resets,
timeouts) is worth another try, with backoff (generator.retry); anything about the file itself (404, a
missing local file, more bytes than locked) is a `WheelhouseError` at once. What the bytes are checked
against, and where they end up, is the cache's business (cache.py).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from generator.deps.pins import WheelhouseError
from generator.retry import Policy, retry

_T = TypeVar("_T")

CHUNK = 1 << 20  # 1 MiB: large enough to stream a 2 GB torch wheel quickly, small enough to hold in memory
TIMEOUT_S = 60.0  # per socket operation, not per file: a slow but steady download is fine
ATTEMPTS = 4  # tries per download; transient failures (5xx, 429, resets, timeouts) are retried
BACKOFF_S = 0.5  # first wait between tries, doubled each time, less a random part (generator.retry)
# Statuses worth another try: the server or a proxy is busy or restarting, not "this file is wrong".
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def download(url: str, tmp_dir: Path, limit: int | None) -> tuple[Path, str, int]:
    """`url` into a fresh temp file in `tmp_dir`: its path, sha256 and size. Retried as a whole file."""
    return _retrying(url, lambda: _download_once(url, tmp_dir, limit))


def head_size(url: str) -> int | None:
    """Content-Length from a HEAD, or None where the server does not say (or does not do HEAD)."""

    def once() -> int | None:
        request = urllib.request.Request(url, method="HEAD")  # noqa: S310 - scheme checked by check_url
        with _open(request) as response:
            length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    try:
        return _retrying(url, once)
    except WheelhouseError:  # e.g. 405: the download that follows says what is really wrong, if anything
        return None


def local_path(url: str) -> Path:
    """The path a file:// URL names."""
    return Path(urllib.request.url2pathname(urlsplit(url).path))


class _Response(Protocol):
    """What urlopen returns for http(s) and file URLs alike."""

    headers: Message

    def read(self, amt: int, /) -> bytes: ...


class _Transient(Exception):
    """A failure another try may not have: the server or network, not the file."""


def _retrying(url: str, once: Callable[[], _T]) -> _T:
    policy = Policy(attempts=ATTEMPTS, first_s=BACKOFF_S)
    try:
        return retry(once, policy=policy, transient=lambda exc: isinstance(exc, _Transient))
    except _Transient as exc:  # only the last try's: the earlier ones were retried
        raise WheelhouseError(f"{url}: {exc} (gave up after {ATTEMPTS} tries)") from None


def _download_once(url: str, tmp_dir: Path, limit: int | None) -> tuple[Path, str, int]:
    """One try: stream into a fresh temp file, hashing as it goes; the temp file is gone if this fails."""
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix=".download-", suffix=".part")
    tmp = Path(name)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out, _open(urllib.request.Request(url)) as response:  # noqa: S310
            while chunk := _read(response, url):
                size += len(chunk)
                if limit is not None and size > limit:  # a wrong URL must not fill the disk
                    raise WheelhouseError(f"{url}: larger than the locked {limit} bytes; discarded")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest(), size


@contextmanager
def _open(request: urllib.request.Request) -> Iterator[_Response]:
    """urlopen with a timeout, its failures sorted into transient (retry) and final (WheelhouseError)."""
    url = request.full_url
    local = urlsplit(url).scheme == "file"
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 - scheme checked
    except urllib.error.HTTPError as exc:
        if exc.code in TRANSIENT_STATUS:
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from None
        raise WheelhouseError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if local:  # a missing local file stays missing
            raise WheelhouseError(f"{url}: {reason}") from None
        raise _Transient(str(reason)) from None
    try:
        yield response
    finally:
        response.close()


def _read(response: _Response, url: str) -> bytes:
    try:
        return response.read(CHUNK)
    except (OSError, http.client.HTTPException) as exc:  # a reset or timeout mid-file: try the whole file again
        if urlsplit(url).scheme == "file":
            raise WheelhouseError(f"{url}: {exc}") from None
        raise _Transient(f"{type(exc).__name__}: {exc}") from None
