"""The sandbox's OCI registry: CNCF distribution on 127.0.0.1, no auth, its storage in the state folder.

Loopback only, because it has no auth. Whatever already holds the address is probed first: a registry is
reused, one that wants credentials (Debian's packaged service) or anything else is named, never raced.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import os
import socket
import urllib.error
import urllib.request
from typing import Literal, NamedTuple

import yaml

from generator.sandbox import apt, processes
from generator.sandbox.errors import ServiceError
from generator.sandbox.layout import StateFiles
from generator.sandbox.report import Progress, ServiceState, first_line

DEFAULT_REGISTRY = "127.0.0.1:5000"
REGISTRY_WAIT_S = 30.0


class _Probe(NamedTuple):
    kind: Literal["free", "registry", "auth", "other"]
    reason: str


def parse_address(registry: str) -> tuple[str, int]:
    """`127.0.0.1:PORT` -> (host, port); the sandbox registry has no auth, so it listens on loopback only."""
    host, _, port_text = registry.rpartition(":")
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else 0
    if not loopback or not 0 < port < 65536:
        raise ServiceError(
            f"registry address {registry!r}: expected 127.0.0.1:PORT (the sandbox registry is loopback-only)"
        )
    return host, port


def state(files: StateFiles, host: str, port: int) -> ServiceState:
    """The registry at host:port as `status` sees it."""
    return _view(files, host, port)[0]


def ensure(files: StateFiles, host: str, port: int, progress: Progress) -> ServiceState:
    """A registry that answers at host:port: the one already there, else one the sandbox starts."""
    current, probe = _view(files, host, port)
    if current.running:
        progress(f"registry: already {current.detail} at {current.address}")
        return current
    if probe.kind != "free":
        raise ServiceError(f"registry: {current.detail}; pick another port or free this one")
    _clear_stale(files, current, progress)
    binary = apt.program("registry", "docker-registry", files.apt_log, progress)
    address = f"{host}:{port}"
    _write_config(files, address)
    progress(f"registry: starting on {address}…")
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    pid = processes.spawn([binary, "serve", str(files.registry_config)], files.registry_log, files.registry_pid, env)
    answers = functools.partial(_answers, host, port)
    processes.wait_ready("registry", pid, answers, REGISTRY_WAIT_S, files.registry_log, files.registry_pid)
    progress(f"registry: running (pid {pid}) at {address}, storage {files.registry_data}")
    return state(files, host, port)


def _probe(host: str, port: int) -> _Probe:
    """What holds host:port: nothing, a registry (v2 API), one that wants credentials, or something else."""
    try:
        with socket.create_connection((host, port), timeout=1):
            pass
    except OSError:
        return _Probe("free", "nothing listens")
    # No proxy: a corporate HTTP(S)_PROXY must never see (or answer for) a loopback address.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{host}:{port}/v2/", timeout=2) as response:
            code, api = response.status, response.headers.get("Docker-Distribution-Api-Version", "")
    except urllib.error.HTTPError as exc:
        code, api = exc.code, exc.headers.get("Docker-Distribution-Api-Version", "")
    except (OSError, http.client.HTTPException) as exc:
        return _Probe("other", f"it does not answer GET /v2/ over HTTP: {first_line(exc)}")
    if api.startswith("registry/2.") and code == 200:
        return _Probe("registry", "v2 API")
    if api.startswith("registry/2.") and code == 401:
        return _Probe("auth", "it asks for credentials")
    return _Probe("other", f"GET /v2/ answered HTTP {code} without the registry API header")


def _answers(host: str, port: int) -> bool:
    return _probe(host, port).kind == "registry"


def _view(files: StateFiles, host: str, port: int) -> tuple[ServiceState, _Probe]:
    """The registry's state, and what the probe of its address found."""
    address = f"{host}:{port}"
    pid = processes.our_pid(files.registry_pid, "docker-registry")
    ours = pid is not None and _configured_address(files) == address
    log, our_pid = (files.registry_log, pid) if ours else (None, None)
    probe = _probe(host, port)
    if probe.kind == "registry":
        detail = f"running (pid {pid}, started by the sandbox)" if ours else "running (not started by the sandbox)"
        return ServiceState("registry", True, detail, address, log, our_pid), probe
    if probe.kind == "auth":
        detail = (
            f"a registry that asks for credentials holds {address} (Debian's docker-registry service? "
            "`systemctl disable --now docker-registry` or `/etc/init.d/docker-registry stop`)"
        )
    elif probe.kind == "other":
        detail = f"{address} is taken by something that is not a registry: {probe.reason}"
    else:
        detail = f"not answering (pid {pid})" if ours else "stopped"
    return ServiceState("registry", False, detail, address, log, our_pid), probe


def _clear_stale(files: StateFiles, current: ServiceState, progress: Progress) -> None:
    """One registry per state folder: refuse a second address, restart ours if it went deaf."""
    pid = processes.our_pid(files.registry_pid, "docker-registry")
    if pid is None:
        files.registry_pid.unlink(missing_ok=True)
        return
    configured = _configured_address(files)
    if configured != current.address:
        raise ServiceError(
            f"the sandbox registry in {files.state} already serves {configured} (pid {pid}): run "
            "`python -m generator sandbox down` first, or use another state folder"
        )
    progress(f"registry: pid {pid} does not answer; restarting…")
    processes.stop(pid, REGISTRY_WAIT_S)
    files.registry_pid.unlink(missing_ok=True)


def _config(files: StateFiles, address: str) -> dict[str, object]:
    """The CNCF distribution registry's config: no auth (loopback only), deletes allowed, storage in state."""
    return {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(files.registry_data)},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": address, "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }


def _write_config(files: StateFiles, address: str) -> None:
    files.registry_data.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(_config(files, address), sort_keys=False)
    temp = files.registry_config.with_suffix(".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(files.registry_config)


def _configured_address(files: StateFiles) -> str | None:
    try:
        config = yaml.safe_load(files.registry_config.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    addr = config.get("http", {}).get("addr") if isinstance(config, dict) else None
    return addr if isinstance(addr, str) else None
