"""The sandbox's local services: a Docker engine and an OCI registry on 127.0.0.1, started idempotently.

`up` reuses whatever already answers, installs Debian's package when a program is missing, and starts the
rest detached (own session, output to a log file, a pidfile) under the sandbox state folder. `down` stops
only what `up` started. Every failure is one ServiceError line: what failed, the gist of its log, the log.

This module is the façade that the CLI, the tests and the benchmarks call. The engine (dockerd.py), the
registry (registry.py), Debian's packages (apt.py), the processes started (processes.py), the state
folder (layout.py), what they report (report.py) and their failure (errors.py) each have their module.
"""

from __future__ import annotations

from pathlib import Path

from generator.sandbox import apt, diskspace, dockerd, layout, processes
from generator.sandbox import clean as sandbox_clean
from generator.sandbox import registry as local_registry  # `registry` is the address parameter below
from generator.sandbox.dockerd import DEFAULT_DOCKER_HOST, Engine, default_engine
from generator.sandbox.errors import ServiceError
from generator.sandbox.registry import DEFAULT_REGISTRY
from generator.sandbox.report import Progress, ServiceState

__all__ = [
    "DEFAULT_DOCKER_HOST",
    "DEFAULT_REGISTRY",
    "Engine",
    "Progress",
    "ServiceError",
    "ServiceState",
    "browser",
    "clean",
    "default_engine",
    "down",
    "status",
    "up",
]


def up(
    state: Path | None = None,
    registry: str = DEFAULT_REGISTRY,
    progress: Progress = print,
    *,
    engine: Engine | None = None,
) -> list[ServiceState]:
    """Make sure the engine and the registry run (reusing what already answers); raise ServiceError if not."""
    files = layout.state_files(state)
    engine = engine or default_engine()
    host, port = local_registry.parse_address(registry)
    layout.create(files)
    with layout.locked(files):
        processes.make_private(files.logs)  # also those of services started before logs were 0600, which `up` reuses
        states = [dockerd.ensure(files, engine, progress), local_registry.ensure(files, host, port, progress)]
        # The stand-in base images start from a Debian rootfs made by debootstrap: install it with the rest.
        apt.program("stand-in bases", "debootstrap", files.apt_log, progress)
        _check_disk(files, engine, progress)
        return states


def _check_disk(files: layout.StateFiles, engine: Engine, progress: Progress) -> None:
    """Fail now, in one line, when the engine's or the registry's disk is nearly full (see diskspace)."""
    minimum = diskspace.minimum_free()
    if minimum == 0:
        return
    root = dockerd.root_dir(engine)
    stores = {"the registry's store": files.registry_data} | ({"the engine's images": root} if root else {})
    for line in diskspace.check(stores, minimum):
        progress(f"disk: {line} (floor {minimum:g} GB)")


def browser(state: Path | None = None, progress: Progress = print) -> str:
    """The path of Debian's Chromium, installed when missing: the tests load the published page in it."""
    files = layout.state_files(state)
    layout.create(files)
    with layout.locked(files):  # one apt-get at a time with `up`
        return apt.program("browser", "chromium", files.apt_log, progress)


def status(
    state: Path | None = None, registry: str = DEFAULT_REGISTRY, *, engine: Engine | None = None
) -> list[ServiceState]:
    """What runs now; never raises for a service that is down or unreachable."""
    files = layout.state_files(state)
    host, port = local_registry.parse_address(registry)
    return [dockerd.state(files, engine or default_engine()), local_registry.state(files, host, port)]


def down(
    state: Path | None = None,
    registry: str = DEFAULT_REGISTRY,
    progress: Progress = print,
    *,
    engine: Engine | None = None,
) -> list[ServiceState]:
    """Stop what `up` started (registry, then dockerd) and nothing else; safe to repeat."""
    files = layout.state_files(state)
    local_registry.parse_address(registry)
    stopped: dict[str, int | None] = {"registry": None, "dockerd": None}
    if files.state.is_dir():
        with layout.locked(files):
            stopped["registry"] = processes.stop_ours("registry", files.registry_pid, "docker-registry", progress)
            stopped["dockerd"] = processes.stop_ours("dockerd", files.dockerd_pid, "dockerd", progress)
    states = status(state, registry, engine=engine)
    for service in reversed(states):
        pid = stopped[service.name]
        if pid is not None:
            progress(f"{service.name}: stopped (pid {pid})")
        elif service.running:
            progress(f"{service.name}: left running (not started by the sandbox)")
        else:
            progress(f"{service.name}: not running")
    return states


def clean(
    state: Path | None = None,
    registry: str = DEFAULT_REGISTRY,
    progress: Progress = print,
    *,
    engine: Engine | None = None,
    build_cache: bool = True,
) -> sandbox_clean.Cleaned:
    """Remove the images and registry content earlier runs left (generator.sandbox.clean says which)."""
    return sandbox_clean.clean(state, registry, engine or default_engine(), progress, build_cache=build_cache)
