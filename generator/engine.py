"""One way to reach the Docker engine, with an error a user can act on when it is not there."""

from __future__ import annotations

import docker
import docker.errors
from docker import DockerClient

from generator.errors import FleetError


class DockerUnavailable(FleetError):
    """The Docker engine cannot be reached: exit status 2, one line saying how to fix it."""


def connect(timeout: int = 600) -> DockerClient:
    """A client for the engine named by DOCKER_HOST (default: the local socket), checked with a ping."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        raise DockerUnavailable(
            f"cannot reach the Docker engine ({_reason(exc)}); "
            "start it with `python -m generator sandbox up` or set DOCKER_HOST"
        ) from None
    return client


def _reason(exc: Exception) -> str:
    text = str(exc).split("\n")[0]
    return text[:200] if text else type(exc).__name__
