"""The Docker engine: whether one answers, and starting one of the sandbox's own when none does.

One engine per socket: an engine that already answers (the system's, or one the sandbox started earlier)
is reused, and a system dockerd that is still coming up is waited for rather than raced.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from generator.sandbox import apt, processes
from generator.sandbox.errors import ServiceError
from generator.sandbox.layout import StateFiles
from generator.sandbox.report import Progress, ServiceState, first_line

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
SYSTEM_DOCKERD_PIDFILE = Path("/var/run/docker.pid")
DOCKERD_WAIT_S = 60.0


@dataclass(frozen=True)
class Engine:
    """Where the engine listens, and extra dockerd flags (a private engine: own data-root, exec-root, pidfile)."""

    host: str = DEFAULT_DOCKER_HOST
    args: tuple[str, ...] = ()


def default_engine() -> Engine:
    """The engine the docker SDK and CLI would use: DOCKER_HOST, else the default socket."""
    return Engine(os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST)


def state(files: StateFiles, engine: Engine) -> ServiceState:
    """The engine as `status` sees it: answering or not, started by the sandbox or not."""
    pid = processes.our_pid(files.dockerd_pid, "dockerd")
    problem = _problem(engine.host)
    log = files.dockerd_log if pid else None
    if problem is None:
        detail = f"running (pid {pid}, started by the sandbox)" if pid else "running (not started by the sandbox)"
        return ServiceState("dockerd", True, detail, engine.host, log, pid)
    if pid:
        return ServiceState("dockerd", False, f"not answering (pid {pid}): {problem}", engine.host, log, pid)
    return ServiceState("dockerd", False, f"stopped (nothing answers at {engine.host})", engine.host, None)


def ensure(files: StateFiles, engine: Engine, progress: Progress) -> ServiceState:
    """An engine that answers at `engine.host`: the one already there, else one the sandbox starts."""
    current = state(files, engine)
    if current.running:
        progress(f"dockerd: already {current.detail}")
        return current
    if current.pid is not None:
        # Ours but deaf (hung, or its socket was removed): a fresh one is the only way forward.
        progress(f"dockerd: pid {current.pid} does not answer; restarting…")
        processes.stop(current.pid, processes.STOP_WAIT_S)
        files.dockerd_pid.unlink(missing_ok=True)
    if not engine.host.startswith("unix://"):
        raise ServiceError(
            f"no Docker engine answers at {engine.host}; the sandbox only starts a local one on a unix socket: "
            "unset DOCKER_HOST or start that engine yourself"
        )
    binary = apt.program("dockerd", "dockerd", files.apt_log, progress)
    if _answers(engine.host) or _system_dockerd_answers(engine):
        # Installing docker.io may have started the system's own service: one engine per socket.
        current = state(files, engine)
        progress(f"dockerd: {current.detail}")
        return current
    _require_root("starting dockerd", "or start the engine yourself and set DOCKER_HOST")
    progress("dockerd: starting…")
    pid = processes.spawn([binary, "-H", engine.host, *engine.args], files.dockerd_log, files.dockerd_pid)
    answers = functools.partial(_answers, engine.host)
    processes.wait_ready("dockerd", pid, answers, DOCKERD_WAIT_S, files.dockerd_log, files.dockerd_pid)
    progress(f"dockerd: running (pid {pid})")
    return state(files, engine)


def root_dir(engine: Engine) -> Path | None:
    """Where the engine keeps its images (DockerRootDir), when it is a local engine that answers; else None."""
    if not engine.host.startswith("unix://"):
        return None  # a remote engine's disk is not ours to measure
    try:
        client = _client(engine.host)
        try:
            root = Path(str(client.info().get("DockerRootDir") or ""))
        finally:
            client.close()
    except (docker.errors.DockerException, OSError):
        return None
    return root if root.is_absolute() and root.exists() else None


def _client(host: str) -> docker.DockerClient:
    # from_env with DOCKER_HOST swapped in keeps the user's TLS settings (DOCKER_CERT_PATH, ...).
    return docker.from_env(environment={**os.environ, "DOCKER_HOST": host}, timeout=5)


def _problem(host: str) -> str | None:
    """None when the engine at `host` answers a ping, else why not (one line)."""
    try:
        client = _client(host)
    except (docker.errors.DockerException, OSError) as exc:
        return first_line(exc)
    try:
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        return first_line(exc)
    finally:
        client.close()
    return None


def _answers(host: str) -> bool:
    return _problem(host) is None


def _system_dockerd_answers(engine: Engine) -> bool:
    """Wait for a dockerd the sandbox did not start (it may be coming up) when it would share our socket."""
    if engine.args:
        return False  # a private engine has its own pidfile and socket: the system's is no obstacle
    pid = processes.pid_in(SYSTEM_DOCKERD_PIDFILE, "dockerd")
    if pid is None:
        return False
    deadline = time.monotonic() + DOCKERD_WAIT_S
    while processes.alive(pid) and time.monotonic() < deadline:
        if _problem(engine.host) is None:
            return True
        time.sleep(processes.POLL_S)
    raise ServiceError(
        f"a dockerd the sandbox did not start (pid {pid}, {SYSTEM_DOCKERD_PIDFILE}) runs but does not answer "
        f"at {engine.host}: stop it, or point DOCKER_HOST at its socket"
    )


def _require_root(what: str, alternative: str) -> None:
    if os.geteuid() != 0:
        raise ServiceError(f"{what} needs root: run `sudo python -m generator sandbox up`, {alternative}")
