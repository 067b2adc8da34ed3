"""The content-addressed cache of downloaded files: `<root>/sha256/<hex[:2]>/<hex>/<filename>`.

The content names the place, so two cells sharing a file share one copy; only verified bytes ever sit
at a final path, and a cached file is re-hashed before it is trusted again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from generator import paths
from generator.deps.download import CHUNK, download
from generator.deps.pins import WheelhouseError, check_url


def cache_root(cache: Path | None) -> Path:
    """The cache asked for, else the state directory's (AIR_FLEET_STATE)."""
    return cache if cache is not None else paths.state_dir() / "wheelhouse"


def cache_path(root: Path, sha256: str, filename: str) -> Path:
    return root / "sha256" / sha256[:2] / sha256 / filename


def verified(path: Path, sha256: str, size: int) -> bool:
    """A cached file is what it claims to be; a corrupt one (disk, someone editing it) is removed."""
    try:
        if path.stat().st_size == size and hash_file(path) == sha256:
            return True
    except FileNotFoundError:
        return False
    path.unlink(missing_ok=True)
    return False


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_into_cache(
    url: str, filename: str, sha256: str | None, size: int | None, root: Path
) -> tuple[Path, str, int]:
    """Download `url` to a temp file in the cache, check it against what is expected, rename it into place.

    The rename is atomic and the final path is named by the content, so concurrent fetches of one file
    (threads, two CI jobs on one runner) each write their own temp file and the last rename wins with the
    same bytes: readers never see a partial file. A mismatch never reaches the final path.
    """
    check_url(url)
    tmp_dir = root / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp, actual, actual_size = download(url, tmp_dir, size)
    try:
        if sha256 is not None and actual != sha256:
            raise WheelhouseError(f"{filename}: sha256 mismatch from {url}: expected {sha256}, got {actual}; discarded")
        if size is not None and actual_size != size:
            raise WheelhouseError(f"{filename}: size mismatch from {url}: expected {size} bytes, got {actual_size}")
        final = cache_path(root, actual, filename)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp.chmod(0o444)  # read-only: staged hard links share the inode, a build must not edit the cache
        tmp.replace(final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final, actual, actual_size
