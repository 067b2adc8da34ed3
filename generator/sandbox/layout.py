"""The sandbox's state folder: where each service's log, pidfile and config live, and the lock on it."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from generator import paths
from generator.sandbox.errors import ServiceError


@dataclass(frozen=True)
class StateFiles:
    """Everything the sandbox keeps in its state folder."""

    state: Path

    @property
    def lock(self) -> Path:
        return self.state / "services.lock"

    @property
    def apt_log(self) -> Path:
        return self.state / "apt.log"

    @property
    def dockerd_log(self) -> Path:
        return self.state / "dockerd.log"

    @property
    def dockerd_pid(self) -> Path:
        return self.state / "dockerd.pid"

    @property
    def registry_log(self) -> Path:
        return self.state / "registry.log"

    @property
    def registry_pid(self) -> Path:
        return self.state / "registry.pid"

    @property
    def registry_config(self) -> Path:
        return self.state / "registry" / "config.yml"

    @property
    def registry_data(self) -> Path:
        return self.state / "registry" / "data"

    @property
    def logs(self) -> tuple[Path, ...]:
        """The services' logs, to be kept private (see processes.append_private)."""
        return (self.dockerd_log, self.registry_log, self.apt_log)


def state_files(state: Path | None) -> StateFiles:
    """The files of `state`, by default the sandbox folder under the project's state dir."""
    return StateFiles(state if state is not None else paths.state_dir() / "sandbox")


def create(files: StateFiles) -> None:
    """Make the state folder, or say in one line why it cannot be made."""
    try:
        files.state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceError(f"cannot create the sandbox state folder {files.state}: {exc.strerror}") from None


@contextlib.contextmanager
def locked(files: StateFiles) -> Iterator[None]:
    """Hold the state folder's lock."""
    # make, nox and a test session may run `up` at once: without the lock both would start a registry.
    with files.lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
