"""Run a payload script inside an image: the one mechanism the probe and the benchmark share.

The payload is copied into a created-but-not-started container (`put_archive`) rather than baked in or
bind-mounted: it works with any engine, on images built before the payload existed, and keeps the
payload in step with the host that judges its output. The container runs without network, GPUs only
when asked, and is always removed. The payload's answer is the last non-empty stdout line, a JSON object.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import docker.errors
from docker import DockerClient
from docker.types import DeviceRequest

from generator.errors import FleetError

TAIL_CHARS = 2000  # of stderr, when the payload printed no JSON: enough to show a traceback's end


@dataclass(frozen=True)
class Payload:
    what: str  # in messages: "probe", "benchmark"
    directory: str  # where its files are copied in the container, e.g. /air-fleet-probe
    error: type[FleetError]  # raised when it cannot run or answers nothing usable
    no_answer: str  # how a missing JSON object is said, e.g. "printed no facts"


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


def archive(directory: str, files: Mapping[str, bytes]) -> bytes:
    """A tar of `directory` holding `files`, for put_archive at "/" (root exists in every image)."""
    buffer = io.BytesIO()
    prefix = directory.lstrip("/")
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo(prefix)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size, info.mode = len(data), 0o644  # readable by an image's non-root user too
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def parse_answer(payload: Payload, image_ref: str, exit_status: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The last non-empty stdout line as a JSON object (anything before it is noise)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        out = json.loads(lines[-1]) if lines else None
    except ValueError:
        out = None
    if not isinstance(out, dict):
        tail = (stderr or stdout).strip()[-TAIL_CHARS:]
        raise payload.error(f"{image_ref}: the {payload.what} {payload.no_answer} (exit status {exit_status}): {tail}")
    return out


def run_payload(
    client: DockerClient,
    image_ref: str,
    payload: Payload,
    *,
    python: str,
    files: Mapping[str, bytes],
    args: list[str],
    gpus: bool,
    timeout: float,
    labels: Mapping[str, str],
    shm_size: str | None = None,
) -> dict[str, Any]:
    """Create, fill, start, wait, read, remove: the payload's JSON object, or `payload.error`."""
    extra: dict[str, Any] = {}
    if gpus:
        extra["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    if shm_size is not None:
        extra["shm_size"] = shm_size
    try:
        container = client.containers.create(
            image_ref, entrypoint=[python], command=args, network_mode="none", labels=dict(labels), **extra
        )
    except docker.errors.APIError as exc:
        raise payload.error(f"{image_ref}: cannot create the {payload.what} container: {one_line(exc)}") from None
    try:
        return _run(container, image_ref, payload, files, timeout)
    finally:
        with contextlib.suppress(docker.errors.APIError):  # already gone: nothing to clean
            container.remove(force=True)


def _run(
    container: Any, image_ref: str, payload: Payload, files: Mapping[str, bytes], timeout: float
) -> dict[str, Any]:
    what = payload.what
    try:
        container.put_archive("/", archive(payload.directory, files))
        container.start()  # an APIError here: e.g. the Python path is not in the image
    except docker.errors.APIError as exc:
        raise payload.error(f"{image_ref}: the {what} did not start: {one_line(exc)}") from None
    try:
        exit_status = int(container.wait(timeout=timeout).get("StatusCode", -1))
    except Exception as exc:  # the HTTP read timeout (requests') or a lost engine: either way no answer
        raise payload.error(f"{image_ref}: no answer from the {what} within {timeout:g} s ({one_line(exc)})") from None
    try:
        stdout = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        stderr = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
    except docker.errors.APIError as exc:
        raise payload.error(f"{image_ref}: cannot read the {what}'s output: {one_line(exc)}") from None
    return parse_answer(payload, image_ref, exit_status, stdout, stderr)
