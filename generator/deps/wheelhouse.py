"""Lock, fetch and stage the files a cell's build COPYs from `wheels/`.

`lock` turns what cells need (`Request`s) into pinned files (`Locked`: name, URL, sha256, size) kept in a
committed lock file; `fetch` downloads a locked file once into a content-addressed cache and verifies it;
`stage` puts cached files into a cell's `wheels/` directory. Nothing is trusted without its sha256: a
mismatch is a hard error and the bad bytes never reach the cache.

The parts it is made of, one concept each: pins (what is asked for and what is pinned, validated),
index (which file pip on this machine would pick), download (bytes from a URL, retried when the fault
is passing), cache (the content-addressed cache). Beside it, lockfile reads and writes the committed
lock, and cells turns cells into requests and puts the lock's answers back into them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name

from generator.deps.cache import cache_path, cache_root, fetch_into_cache, hash_file, verified
from generator.deps.download import head_size, local_path
from generator.deps.index import Picked, pip_resolve, pip_runs
from generator.deps.pins import (
    Locked,
    Request,
    WheelhouseError,
    check_locked,
    cp,
    is_filename,
    is_sha256,
    url_filename,
)

# ---------------------------------------------------------------------------------------------- lock


def lock(
    requests: Iterable[Request],
    previous: dict[str, Locked] | None = None,
    progress: Callable[[str], object] = print,
    *,
    cache: Path | None = None,
) -> dict[str, Locked]:
    """Every requested file locked, keyed by `Request.key`, sorted; entries no longer requested are dropped.

    An entry of `previous` whose key is still requested is kept as it is, without any network: a lock
    only changes where the matrix did. URL requests are downloaded into the cache (so `fetch` finds them
    there) and hashed; index requests are resolved by pip, one run per Python/platform (more where a
    group holds several versions of one project).
    """
    wanted = {r.key: r for r in requests}
    kept = {key: previous[key] for key in wanted if previous and key in previous}
    if kept:
        progress(f"lock: {len(kept)} kept from the previous lock")
    todo = [r for key, r in wanted.items() if key not in kept]
    result = dict(kept)
    for request in (r for r in todo if r.url is not None):
        result[request.key] = _lock_url(request, cache, progress)
    result.update(_lock_index([r for r in todo if r.url is None], cache, progress))
    return dict(sorted(result.items()))


def _lock_url(request: Request, cache: Path | None, progress: Callable[[str], object]) -> Locked:
    assert request.url is not None
    filename = request.filename or url_filename(request.url)
    if not is_filename(filename):
        raise WheelhouseError(f"{request.url}: ends with {filename!r}, not a plain file name; give a filename")
    progress(f"lock: downloading {request.url}")
    _, sha256, size = fetch_into_cache(request.url, filename, None, None, cache_root(cache))
    return Locked(filename, request.url, sha256, size)


def _lock_index(requests: list[Request], cache: Path | None, progress: Callable[[str], object]) -> dict[str, Locked]:
    result: dict[str, Locked] = {}
    for python, platform, batch in pip_runs(requests):
        requirements = sorted({r.requirement for r in batch})
        progress(f"lock: pip resolves {' '.join(requirements)} for {cp(python)} {platform}")
        picked = pip_resolve(requirements, python, platform)
        for request in batch:
            result[request.key] = _locked_from_pip(request, picked, cache)
    return result


def _locked_from_pip(request: Request, picked: dict[str, Picked], cache: Path | None) -> Locked:
    name = canonicalize_name(request.project)
    if name not in picked:
        raise WheelhouseError(f"pip resolved no file for {request.key}")
    url, sha256 = picked[name].url, picked[name].sha256
    filename = url_filename(url)
    if request.filename is not None and filename != request.filename:
        raise WheelhouseError(f"{request.key}: pip picks {filename} for {cp(request.python)} {request.platform}")
    if sha256 is None or not is_sha256(sha256):
        # The index gave no hash: hash the very file pip saw (a download lands in the cache, for `fetch`).
        _, sha256, size = fetch_into_cache(url, filename, None, None, cache_root(cache))
    else:
        size = _size_of(url, filename, sha256, cache)
    return Locked(filename, url, sha256, size)


def _size_of(url: str, filename: str, sha256: str, cache: Path | None) -> int:
    """The byte count, without downloading a large wheel when the server says it (HEAD)."""
    if urlsplit(url).scheme == "file":
        try:
            return local_path(url).stat().st_size
        except OSError as exc:
            raise WheelhouseError(f"{url}: {exc.strerror or exc}") from None
    size = head_size(url)
    if size is None:  # no Content-Length: download (and verify) it, `fetch` will find it in the cache
        _, _, size = fetch_into_cache(url, filename, sha256, None, cache_root(cache))
    return size


# --------------------------------------------------------------------------------------------- fetch


def fetch(locked: Locked, cache: Path | None = None) -> Path:
    """The verified file in the content-addressed cache, downloaded only when it is not already there.

    The cache path is `<cache>/sha256/<hex[:2]>/<hex>/<filename>`: the content names the place, so two
    cells sharing a file share one copy, and a cached file is re-hashed before it is trusted.
    """
    check_locked(locked)
    root = cache_root(cache)
    final = cache_path(root, locked.sha256, locked.filename)
    if verified(final, locked.sha256, locked.size):
        return final
    path, _, _ = fetch_into_cache(locked.url, locked.filename, locked.sha256, locked.size, root)
    return path


# --------------------------------------------------------------------------------------------- stage


def stage(files: Iterable[Path], dest: Path) -> list[Path]:
    """Make `dest` (a cell's `wheels/`) hold exactly `files`, by name: the build context's wheels.

    Hard links where the cache and `dest` share a file system (instant, no extra disk), copies
    otherwise; anything else in `dest` is removed, since the Dockerfile context takes all of `wheels/`.
    Running it again with the same files changes nothing.
    """
    sources: dict[str, Path] = {}
    for path in files:
        if path.name in sources and not _same(sources[path.name], path):
            raise WheelhouseError(f"{dest}: two different files named {path.name}: {sources[path.name]}, {path}")
        sources[path.name] = path
    dest.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        _stage_one(source, dest / name)
    for stale in sorted(p for p in dest.iterdir() if p.name not in sources):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    return [dest / name for name in sources]


def _stage_one(source: Path, target: Path) -> None:
    if target.is_file() and _same(source, target):
        return
    # Into a temp name first, then rename: a half-copied wheel never sits under the real name.
    tmp = target.with_name(f".{target.name}.staging")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
        except OSError:  # another file system, or links not allowed: copy
            shutil.copyfile(source, tmp)
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WheelhouseError(f"cannot stage {source} as {target}: {exc.strerror or exc}") from None


def _same(a: Path, b: Path) -> bool:
    """Same file (hard link) or same bytes (an earlier copy)."""
    if a.samefile(b):
        return True
    return a.stat().st_size == b.stat().st_size and hash_file(a) == hash_file(b)
