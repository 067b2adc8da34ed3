"""A compiled wheel in the registry: a `FROM scratch` image holding the one file, tagged by its compile key.

The builder's last stage IS that image, so a compile pushes what it built; another machine, cloud or night
pulls it and copies the wheel out of a container that never runs. The registry is asked and written with the
credentials every other registry step uses (generator/release/credentials.py).
"""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker.errors

from generator.errors import FleetError
from generator.release.credentials import CredentialSource
from generator.release.registry import exists_via_engine

Say = Callable[[str], object]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class CompileFailed(FleetError):
    """The compile or its check failed: one line naming the key and why, the log's tail after it."""


def build_wheel_image(client: Any, context: Path, ref: str, log: Path, say: Say) -> None:
    """Build the builder context's `wheel` stage as `ref`, streaming the log to `log`."""
    last: list[str] = []
    with log.open("w", encoding="utf-8", buffering=1) as out:
        stream = client.api.build(path=str(context), tag=ref, target="wheel", rm=True, forcerm=True, decode=True)
        for chunk in stream:
            if "stream" in chunk:
                text = ANSI.sub("", str(chunk["stream"]))  # the builder's tools colour their errors
                out.write(text)
                last = [*last, *text.splitlines()][-12:]
                if text.startswith("Step "):
                    say(text.strip())
            elif "error" in chunk:
                out.write(f"ERROR: {chunk['error']}\n")
                refused = [line for line in last if "compiled wheel refused" in line]
                why = refused[0] if refused else " ".join(str(chunk["error"]).split())
                raise CompileFailed(f"{why} (log: {log})")


def wheel_out_of(client: Any, ref: str, filename: str | None, dest: Path) -> Path:
    """Copy the wheel out of the image `ref` into `dest` (a directory); its path. `filename` None: the one
    .whl the image holds (right after a compile, before anyone knows its name)."""
    container = client.containers.create(ref, command=["/none"])
    try:
        if filename is None:
            wheels = _listing(container)
            if len(wheels) != 1:
                raise CompileFailed(f"{ref}: expected one wheel in the image, found {wheels}")
            filename = wheels[0]
        chunks, _ = container.get_archive(f"/{filename}")
        data = io.BytesIO(b"".join(chunks))
    finally:
        container.remove(force=True)
    with tarfile.open(fileobj=data) as tar:
        member = tar.getmember(filename)
        source = tar.extractfile(member)
        if source is None:
            raise CompileFailed(f"{ref}: /{filename} is not a file")
        dest.mkdir(parents=True, exist_ok=True)
        path = dest / filename
        path.write_bytes(source.read())
    return path


def _listing(container: Any) -> list[str]:
    chunks, _ = container.get_archive("/")
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        return sorted(Path(m.name).name for m in tar.getmembers() if m.isfile() and m.name.endswith(".whl"))


def in_registry(client: Any, ref: str, source: CredentialSource) -> bool:
    return exists_via_engine(client, ref, source)


def pull(client: Any, ref: str, source: CredentialSource) -> None:
    repository, _, tag = ref.rpartition(":")
    client.images.pull(repository, tag=tag, auth_config=source.for_ref(ref).auth_config())


def push(client: Any, ref: str, source: CredentialSource) -> None:
    repository, _, tag = ref.rpartition(":")
    auth = source.for_ref(ref).auth_config()
    for chunk in client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth):
        if "error" in chunk:
            raise FleetError(f"{ref}: push refused: {' '.join(str(chunk['error']).split())}")


def forget(client: Any, ref: str) -> None:
    """Drop the local tag: the wheel lives in the wheelhouse and the registry, the builder's layers in the
    engine's cache."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(ref, noprune=True)
