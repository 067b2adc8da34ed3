"""Which file of the package index a request means, as pip on this machine would pick it.

Files from the index are resolved THROUGH pip, as configured here (index URLs, find-links,
constraints): pip already knows how to pick the right wheel for a Python and platform, and its
`--report` gives the URL and sha256 of the file it picked, without installing anything. This module
runs pip and reads its answer; downloading and hashing are not its business.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from generator.deps.pins import Request, WheelhouseError, cp

PIP_TIMEOUT_S = 1800  # a whole pip resolution; pip has its own per-request timeout
# manylinux_2_X is glibc 2.X; the legacy names are aliases of these glibc versions (PEP 600).
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def pip_runs(requests: list[Request]) -> list[tuple[str, str, list[Request]]]:
    """The pip runs that resolve `requests`, as (python, platform, batch).

    One run per Python/platform group, more where a group holds several versions of one project.
    """
    runs: list[tuple[str, str, list[Request]]] = []
    for (python, platform), group in _groups(requests).items():
        runs += [(python, platform, batch) for batch in _rounds(group)]
    return runs


def _groups(requests: list[Request]) -> dict[tuple[str, str], list[Request]]:
    groups: dict[tuple[str, str], list[Request]] = {}
    for request in requests:
        groups.setdefault((request.python, request.platform), []).append(request)
    return groups


def _rounds(group: list[Request]) -> list[list[Request]]:
    """Split a group so each pip run asks for one version per project.

    pip resolves its arguments together, so `torch==2.6.0 torch==2.7.1` in one run is "impossible", while
    a Python/platform group of a fleet routinely holds several torch releases.
    """
    rounds: list[tuple[dict[str, str], list[Request]]] = []
    for request in group:
        name = canonicalize_name(request.project)
        for versions, batch in rounds:
            if versions.get(name, request.version) == request.version:
                versions[name] = request.version
                batch.append(request)
                break
        else:
            rounds.append(({name: request.version}, [request]))
    return [batch for _, batch in rounds]


def platform_tags(platform: str) -> list[str]:
    """The platform tags an image with `platform` runs, most specific first: pip takes them as-is.

    pip expands the legacy `manylinux2014` to the older ones but not `manylinux_2_28`, while most wheels
    on the index are tagged for an older glibc (torch: manylinux_2_28, many others: manylinux_2_17 alias
    manylinux2014), and those run on the newer one.
    """
    match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", platform)
    if not match:
        return [platform]
    newest, arch = int(match[1]), match[2]
    tags: list[str] = []
    for glibc in range(newest, 4, -1):  # glibc 2.5 is manylinux1, the oldest
        tags.append(f"manylinux_2_{glibc}_{arch}")
        if glibc in LEGACY_MANYLINUX:
            tags.append(f"{LEGACY_MANYLINUX[glibc]}_{arch}")
    return tags


@dataclass(frozen=True)
class Picked:
    url: str
    sha256: str | None  # None: the report had no hash (then the file pip saw is hashed)


def pip_resolve(requirements: list[str], python: str, platform: str) -> dict[str, Picked]:
    """What pip would install for `requirements` on CPython `python` / `platform`: name -> URL and sha256.

    `install --dry-run --report` resolves exactly like a real install (pip's configured indexes,
    find-links and constraints) and installs nothing; `--target` and `--ignore-installed` make what is
    in this virtualenv irrelevant, `--no-deps` keeps it to the pinned files.
    """
    platforms = [arg for tag in platform_tags(platform) for arg in ("--platform", tag)]
    with tempfile.TemporaryDirectory(prefix="wheelhouse-pip-") as tmp:
        report = Path(tmp) / "report.json"
        argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet"]
        argv += ["--report", str(report), "--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
        argv += [*platforms, "--target", str(Path(tmp) / "target"), *requirements]
        _run_pip(argv, f"{' '.join(requirements)} for {cp(python)} {platform}")
        return _read_report(report)


def _run_pip(argv: list[str], what: str) -> None:
    # No prompts: a resolver waiting for a password on a CI runner would hang until the timeout.
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise WheelhouseError(f"pip did not resolve {what} within {PIP_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise WheelhouseError(f"pip could not resolve {what}: {_pip_error(done.stderr + done.stdout)}")


def _pip_error(output: str) -> str:
    """pip's own verdict (its last `ERROR:` line), not the pages of context around it."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["no output"])[-1]


def _read_report(report: Path) -> dict[str, Picked]:
    """Name -> the file pip picked. The shape is pip's installation report, version 1."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        picked: dict[str, Picked] = {}
        for item in data["install"]:
            info = item["download_info"]
            hashes = info.get("archive_info", {}).get("hashes", {})
            picked[canonicalize_name(item["metadata"]["name"])] = Picked(info["url"], hashes.get("sha256"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WheelhouseError(f"pip's report {report} is not what this pip version should write: {exc!r}") from None
    return picked


@dataclass(frozen=True)
class Resolved:
    """One distribution of a resolved closure: what `--require-hashes` will accept for it."""

    name: str  # canonical
    version: str
    sha256: str | None  # None: the index gave no hash for the file pip picked


def pip_closure(requirements: list[str], python: str, platform: str, extra: list[str]) -> list[Resolved]:
    """Everything pip would install for `requirements` WITH their dependencies, on CPython `python` /
    `platform`: each distribution's version and the sha256 of the file pip picked. `extra`: more pip
    arguments (an index URL for a CUDA build of torch)."""
    platforms = [arg for tag in platform_tags(platform) for arg in ("--platform", tag)]
    with tempfile.TemporaryDirectory(prefix="closure-pip-") as tmp:
        report = Path(tmp) / "report.json"
        argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        argv += ["--report", str(report), "--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
        argv += [*platforms, "--target", str(Path(tmp) / "target"), *extra, *requirements]
        _run_pip(argv, f"the closure of {' '.join(requirements)} for {cp(python)} {platform}")
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
            return sorted(
                (
                    Resolved(
                        canonicalize_name(item["metadata"]["name"]),
                        str(item["metadata"]["version"]),
                        item["download_info"].get("archive_info", {}).get("hashes", {}).get("sha256"),
                    )
                    for item in data["install"]
                ),
                key=lambda r: r.name,
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise WheelhouseError(f"pip's report is not what this pip version should write: {exc!r}") from None
