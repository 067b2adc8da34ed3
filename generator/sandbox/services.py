"""The sandbox's local services: a Docker engine and an OCI registry on 127.0.0.1, started idempotently.

`up` reuses whatever already answers, installs Debian's package when a program is missing, and starts the
rest detached (own session, output to a log file, a pidfile) under the sandbox state folder. `down` stops
only what `up` started. Every failure is one ServiceError line: what failed, the gist of its log, the log.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import http.client
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple

import docker
import docker.errors
import yaml

from generator import paths
from generator.clock import utc_stamp
from generator.errors import FleetError

DEFAULT_REGISTRY = "127.0.0.1:5000"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
SYSTEM_DOCKERD_PIDFILE = Path("/var/run/docker.pid")
DOCKERD_WAIT_S = 60.0
REGISTRY_WAIT_S = 30.0
STOP_WAIT_S = 30.0  # dockerd gives running containers 15 s to stop before it exits
POLL_S = 0.2
PIDFILE_SLACK_S = 10.0  # most seconds between a child's start and its pidfile's mtime
PACKAGES = {
    "dockerd": "docker.io",
    "docker-registry": "docker-registry",
    "debootstrap": "debootstrap",
    "chromium": "chromium",  # the browser the page's tests load it in (not a service: nothing is started)
}
# Programs the sandbox starts live in sbin on Debian, which a non-root PATH often lacks.
SYSTEM_BIN = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

Progress = Callable[[str], None]


class ServiceError(FleetError):
    """A service cannot start or stop: one line saying what failed, why (its log's gist) and where the log is."""


@dataclass(frozen=True)
class ServiceState:
    """One service as `up`, `status` and `down` see it."""

    name: str  # "dockerd" | "registry"
    running: bool
    detail: str  # one line: "running (pid 123, started by the sandbox)", "stopped", or why it is not usable
    address: str | None  # "unix:///var/run/docker.sock" / "127.0.0.1:5000"
    log: Path | None  # where its output goes (None: not started by the sandbox)
    pid: int | None = None  # the process the sandbox started (None: not started by the sandbox)

    def line(self) -> str:
        """One line for humans: name, detail, address, log."""
        where = f"  at {self.address}" if self.address else ""
        log = f"  log {self.log}" if self.log else ""
        return f"{self.name:<9} {self.detail}{where}{log}"

    def as_json(self) -> dict[str, object]:
        """A JSON-ready dict (`--json`)."""
        return {
            "name": self.name,
            "running": self.running,
            "detail": self.detail,
            "address": self.address,
            "log": str(self.log) if self.log else None,
            "pid": self.pid,
        }


@dataclass(frozen=True)
class Engine:
    """Where the engine listens, and extra dockerd flags (a private engine: own data-root, exec-root, pidfile)."""

    host: str = DEFAULT_DOCKER_HOST
    args: tuple[str, ...] = ()


def default_engine() -> Engine:
    """The engine the docker SDK and CLI would use: DOCKER_HOST, else the default socket."""
    return Engine(os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST)


@dataclass(frozen=True)
class _Files:
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


# --- the API -------------------------------------------------------------------------------------------------


def up(
    state: Path | None = None,
    registry: str = DEFAULT_REGISTRY,
    progress: Progress = print,
    *,
    engine: Engine | None = None,
) -> list[ServiceState]:
    """Make sure the engine and the registry run (reusing what already answers); raise ServiceError if not."""
    files = _files(state)
    engine = engine or default_engine()
    host, port = _parse_registry(registry)
    try:
        files.state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceError(f"cannot create the sandbox state folder {files.state}: {exc.strerror}") from None
    with _locked(files):
        _make_logs_private(files)  # also those of services started before logs were 0600, which `up` reuses
        states = [_ensure_dockerd(files, engine, progress), _ensure_registry(files, host, port, progress)]
        # The stand-in base images start from a Debian rootfs made by debootstrap: install it with the rest.
        _program("stand-in bases", "debootstrap", files, progress)
        return states


def browser(state: Path | None = None, progress: Progress = print) -> str:
    """The path of Debian's Chromium, installed when missing: the tests load the published page in it."""
    files = _files(state)
    try:
        files.state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceError(f"cannot create the sandbox state folder {files.state}: {exc.strerror}") from None
    with _locked(files):  # one apt-get at a time with `up`
        return _program("browser", "chromium", files, progress)


def status(
    state: Path | None = None, registry: str = DEFAULT_REGISTRY, *, engine: Engine | None = None
) -> list[ServiceState]:
    """What runs now; never raises for a service that is down or unreachable."""
    files = _files(state)
    host, port = _parse_registry(registry)
    return [_dockerd_state(files, engine or default_engine()), _registry_state(files, host, port)]


def down(
    state: Path | None = None,
    registry: str = DEFAULT_REGISTRY,
    progress: Progress = print,
    *,
    engine: Engine | None = None,
) -> list[ServiceState]:
    """Stop what `up` started (registry, then dockerd) and nothing else; safe to repeat."""
    files = _files(state)
    _parse_registry(registry)
    stopped: dict[str, int | None] = {"registry": None, "dockerd": None}
    if files.state.is_dir():
        with _locked(files):
            stopped["registry"] = _stop_ours("registry", files.registry_pid, "docker-registry", progress)
            stopped["dockerd"] = _stop_ours("dockerd", files.dockerd_pid, "dockerd", progress)
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


def _files(state: Path | None) -> _Files:
    return _Files(state if state is not None else paths.state_dir() / "sandbox")


@contextlib.contextmanager
def _locked(files: _Files) -> Iterator[None]:
    # make, nox and a test session may run `up` at once: without the lock both would start a registry.
    with files.lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- dockerd -------------------------------------------------------------------------------------------------


def _engine_problem(host: str) -> str | None:
    """None when the engine at `host` answers a ping, else why not (one line)."""
    try:
        # from_env with DOCKER_HOST swapped in keeps the user's TLS settings (DOCKER_CERT_PATH, ...).
        client = docker.from_env(environment={**os.environ, "DOCKER_HOST": host}, timeout=5)
    except (docker.errors.DockerException, OSError) as exc:
        return _first_line(exc)
    try:
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        return _first_line(exc)
    finally:
        client.close()
    return None


def _engine_answers(host: str) -> bool:
    return _engine_problem(host) is None


def _dockerd_state(files: _Files, engine: Engine) -> ServiceState:
    pid = _our_pid(files.dockerd_pid, "dockerd")
    problem = _engine_problem(engine.host)
    log = files.dockerd_log if pid else None
    if problem is None:
        detail = f"running (pid {pid}, started by the sandbox)" if pid else "running (not started by the sandbox)"
        return ServiceState("dockerd", True, detail, engine.host, log, pid)
    if pid:
        return ServiceState("dockerd", False, f"not answering (pid {pid}): {problem}", engine.host, log, pid)
    return ServiceState("dockerd", False, f"stopped (nothing answers at {engine.host})", engine.host, None)


def _ensure_dockerd(files: _Files, engine: Engine, progress: Progress) -> ServiceState:
    current = _dockerd_state(files, engine)
    if current.running:
        progress(f"dockerd: already {current.detail}")
        return current
    if current.pid is not None:
        # Ours but deaf (hung, or its socket was removed): a fresh one is the only way forward.
        progress(f"dockerd: pid {current.pid} does not answer; restarting…")
        _stop(current.pid, STOP_WAIT_S)
        files.dockerd_pid.unlink(missing_ok=True)
    if not engine.host.startswith("unix://"):
        raise ServiceError(
            f"no Docker engine answers at {engine.host}; the sandbox only starts a local one on a unix socket: "
            "unset DOCKER_HOST or start that engine yourself"
        )
    binary = _program("dockerd", "dockerd", files, progress)
    if _engine_answers(engine.host) or _system_dockerd_answers(engine):
        # Installing docker.io may have started the system's own service: one engine per socket.
        current = _dockerd_state(files, engine)
        progress(f"dockerd: {current.detail}")
        return current
    _require_root("starting dockerd", "or start the engine yourself and set DOCKER_HOST")
    progress("dockerd: starting…")
    pid = _spawn([binary, "-H", engine.host, *engine.args], files.dockerd_log, files.dockerd_pid)
    answers = functools.partial(_engine_answers, engine.host)
    _wait_ready("dockerd", pid, answers, DOCKERD_WAIT_S, files.dockerd_log, files.dockerd_pid)
    progress(f"dockerd: running (pid {pid})")
    return _dockerd_state(files, engine)


def _system_dockerd_answers(engine: Engine) -> bool:
    """Wait for a dockerd the sandbox did not start (it may be coming up) when it would share our socket."""
    if engine.args:
        return False  # a private engine has its own pidfile and socket: the system's is no obstacle
    pid = _pid_in(SYSTEM_DOCKERD_PIDFILE, "dockerd")
    if pid is None:
        return False
    deadline = time.monotonic() + DOCKERD_WAIT_S
    while _alive(pid) and time.monotonic() < deadline:
        if _engine_problem(engine.host) is None:
            return True
        time.sleep(POLL_S)
    raise ServiceError(
        f"a dockerd the sandbox did not start (pid {pid}, {SYSTEM_DOCKERD_PIDFILE}) runs but does not answer "
        f"at {engine.host}: stop it, or point DOCKER_HOST at its socket"
    )


# --- the registry --------------------------------------------------------------------------------------------


class _Probe(NamedTuple):
    kind: Literal["free", "registry", "auth", "other"]
    reason: str


def _parse_registry(registry: str) -> tuple[str, int]:
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


def _probe_registry(host: str, port: int) -> _Probe:
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
        return _Probe("other", f"it does not answer GET /v2/ over HTTP: {_first_line(exc)}")
    if api.startswith("registry/2.") and code == 200:
        return _Probe("registry", "v2 API")
    if api.startswith("registry/2.") and code == 401:
        return _Probe("auth", "it asks for credentials")
    return _Probe("other", f"GET /v2/ answered HTTP {code} without the registry API header")


def _registry_answers(host: str, port: int) -> bool:
    return _probe_registry(host, port).kind == "registry"


def _registry_state(files: _Files, host: str, port: int) -> ServiceState:
    return _registry_view(files, host, port)[0]


def _registry_view(files: _Files, host: str, port: int) -> tuple[ServiceState, _Probe]:
    """The registry's state, and what the probe of its address found."""
    address = f"{host}:{port}"
    pid = _our_pid(files.registry_pid, "docker-registry")
    ours = pid is not None and _configured_address(files) == address
    log, our_pid = (files.registry_log, pid) if ours else (None, None)
    probe = _probe_registry(host, port)
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


def _ensure_registry(files: _Files, host: str, port: int, progress: Progress) -> ServiceState:
    current, probe = _registry_view(files, host, port)
    if current.running:
        progress(f"registry: already {current.detail} at {current.address}")
        return current
    if probe.kind != "free":
        raise ServiceError(f"registry: {current.detail}; pick another port or free this one")
    _clear_stale_registry(files, current, progress)
    binary = _program("registry", "docker-registry", files, progress)
    address = f"{host}:{port}"
    _write_registry_config(files, address)
    progress(f"registry: starting on {address}…")
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    pid = _spawn([binary, "serve", str(files.registry_config)], files.registry_log, files.registry_pid, env)
    answers = functools.partial(_registry_answers, host, port)
    _wait_ready("registry", pid, answers, REGISTRY_WAIT_S, files.registry_log, files.registry_pid)
    progress(f"registry: running (pid {pid}) at {address}, storage {files.registry_data}")
    return _registry_state(files, host, port)


def _clear_stale_registry(files: _Files, current: ServiceState, progress: Progress) -> None:
    """One registry per state folder: refuse a second address, restart ours if it went deaf."""
    pid = _our_pid(files.registry_pid, "docker-registry")
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
    _stop(pid, REGISTRY_WAIT_S)
    files.registry_pid.unlink(missing_ok=True)


def _registry_config(files: _Files, address: str) -> dict[str, object]:
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


def _write_registry_config(files: _Files, address: str) -> None:
    files.registry_data.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(_registry_config(files, address), sort_keys=False)
    temp = files.registry_config.with_suffix(".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(files.registry_config)


def _configured_address(files: _Files) -> str | None:
    try:
        config = yaml.safe_load(files.registry_config.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    addr = config.get("http", {}).get("addr") if isinstance(config, dict) else None
    return addr if isinstance(addr, str) else None


# --- installing Debian's packages ----------------------------------------------------------------------------


def _program(service: str, name: str, files: _Files, progress: Progress) -> str:
    """The path of `name`, installing its Debian package first when it is missing."""
    found = _which(name)
    if found:
        return found
    _install(service, PACKAGES[name], files, progress)
    found = _which(name)
    if not found:
        raise ServiceError(f"{PACKAGES[name]} was installed but {name} is not on PATH (log: {files.apt_log})")
    return found


def _which(name: str) -> str | None:
    search = os.pathsep.join([os.environ.get("PATH", ""), *SYSTEM_BIN])
    return shutil.which(name, path=search)


def _install(service: str, package: str, files: _Files, progress: Progress) -> None:
    commands = [
        ["apt-get", "-o", "DPkg::Lock::Timeout=120", "update"],
        ["apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y", "--no-install-recommends", package],
    ]
    if os.geteuid() != 0:
        raise ServiceError(
            f"{package} is not installed and installing it needs root: run `sudo apt-get update && sudo "
            f"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {package}`"
        )
    if _which("apt-get") is None:
        raise ServiceError(f"{package} is not installed and there is no apt-get here: install it, then retry")
    progress(f"{service}: installing Debian's {package} with apt-get (log {files.apt_log})…")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in commands:
        with _append_private(files.apt_log) as log:
            log.write(f"--- {utc_stamp()} {' '.join(argv)}\n".encode())
            log.flush()
            code = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            ).returncode
        if code != 0:
            raise ServiceError(
                f"`{' '.join(argv)}` failed (exit {code}): {_gist(files.apt_log)} (log: {files.apt_log})"
            )
    if package == "docker-registry":
        _disable_packaged_registry(files)
    progress(f"{service}: {package} installed")


def _disable_packaged_registry(files: _Files) -> None:
    """Stop the registry Debian's postinst starts where an init system lets it.

    That one listens on every interface at :5000 with htpasswd auth: it would hold the sandbox's port and
    answer 401. The sandbox runs its own (loopback, its own storage), so the packaged service is switched off.
    """
    if Path("/run/systemd/system").is_dir():
        commands = [["systemctl", "disable", "--now", "docker-registry.service"]]
    else:
        commands = [["/etc/init.d/docker-registry", "stop"], ["update-rc.d", "docker-registry", "disable"]]
    with _append_private(files.apt_log) as log:
        for argv in commands:
            if _which(argv[0]) or Path(argv[0]).exists():
                # Failure is fine: it usually means the service was never started.
                subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=False)


def _require_root(what: str, alternative: str) -> None:
    if os.geteuid() != 0:
        raise ServiceError(f"{what} needs root: run `sudo python -m generator sandbox up`, {alternative}")


# --- processes -----------------------------------------------------------------------------------------------

# The sandbox's children, kept so that they are reaped (no zombies) while this process lives.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _spawn(argv: list[str], log_path: Path, pidfile: Path, env: dict[str, str] | None = None) -> int:
    """Start `argv` detached (new session, so a closing terminal or make does not take it down)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with _append_private(log_path) as log:
        log.write(f"--- {utc_stamp()} air-fleet sandbox: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd="/",
                env=env,
            )
        except OSError as exc:
            raise ServiceError(f"cannot run {argv[0]}: {exc.strerror or exc} (log: {log_path})") from None
    _CHILDREN[child.pid] = child
    temp = pidfile.with_suffix(".tmp")
    temp.write_text(f"{child.pid}\n", encoding="ascii")
    temp.replace(pidfile)
    return child.pid


def _append_private(path: Path) -> BinaryIO:
    """`path` opened for appending, readable by its owner only (0600), an existing file's mode fixed too.

    Why: these logs are the services' own output. dockerd writes a registry's error text into its log, and
    that text can echo credentials (an auth header, a token URL); the registry logs its requests; apt names
    the mirrors and proxies it uses, whose URLs can carry a user and password. A 0644 log under the state
    folder would hand all that to every local user.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode applies to a new file only: a log an older run made 0644 stays so
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab")


def _make_logs_private(files: _Files) -> None:
    """Existing logs to 0600 (see `_append_private`); one that is not ours to change stays as it is."""
    for log in (files.dockerd_log, files.registry_log, files.apt_log):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            log.chmod(0o600)


def _wait_ready(name: str, pid: int, ready: Callable[[], bool], timeout: float, log: Path, pidfile: Path) -> None:
    """Poll `ready` until it holds; a child that exits or stays deaf past `timeout` is a ServiceError."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not _alive(pid):
            pidfile.unlink(missing_ok=True)
            raise ServiceError(f"{name} exited while starting: {_gist(log)} (log: {log})")
        if time.monotonic() > deadline:
            _stop(pid, STOP_WAIT_S)
            pidfile.unlink(missing_ok=True)
            raise ServiceError(f"{name} did not answer within {timeout:.0f} s: {_gist(log)} (log: {log})")
        time.sleep(POLL_S)


def _stop_ours(name: str, pidfile: Path, program: str, progress: Progress) -> int | None:
    """Stop the process the sandbox's pidfile names, if it is still that program; its pid, or None."""
    pid = _our_pid(pidfile, program)
    if pid is not None:
        progress(f"{name}: stopping (pid {pid})…")
        _stop(pid, STOP_WAIT_S)
    pidfile.unlink(missing_ok=True)  # also a stale one: its process is gone, or the pid is another's now
    return pid


def _stop(pid: int, wait: float) -> None:
    """SIGTERM, then SIGKILL after `wait` seconds; returns once the process is gone."""
    for sig, patience in ((signal.SIGTERM, wait), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + patience
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _alive(pid):
            return
    raise ServiceError(f"pid {pid} survived SIGKILL; stop it by hand")


def _our_pid(pidfile: Path, program: str) -> int | None:
    """The pid in the sandbox's pidfile if that process still runs `program` and was started with the file."""
    pid = _pid_in(pidfile, program)
    if pid is None:
        return None
    # `_spawn` writes the pidfile right after the exec: a process started much earlier or any later is
    # another one that got the pid (or a pidfile written by hand). 1 s of slack: btime is whole seconds.
    started = _started_at(pid)
    try:
        written = pidfile.stat().st_mtime
    except OSError:
        return None
    return pid if started is not None and written - PIDFILE_SLACK_S <= started <= written + 1.0 else None


def _pid_in(pidfile: Path, program: str) -> int | None:
    """The pid a pidfile names when that process is alive and its executable is `program`."""
    try:
        pid = int(pidfile.read_text(encoding="ascii").strip())
        exe = str(Path(f"/proc/{pid}/exe").readlink())
    except (OSError, ValueError):
        return None
    name = Path(exe.removesuffix(" (deleted)")).name  # " (deleted)": the package was upgraded under it
    return pid if name == program and _alive(pid) else None


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None  # also reaps it, so it does not linger as a zombie
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}


def _started_at(pid: int) -> float | None:
    """The process's start time (epoch seconds), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    # fields[0] is the state (field 3 of stat(5)); the start time in clock ticks is field 22.
    return int(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")


# --- one-line messages ---------------------------------------------------------------------------------------


def _gist(log: Path) -> str:
    """The most telling line of a log's last run: its last error if any, else its last line."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return "no log"
    lines = [line for line in text.rpartition("\n--- ")[2].splitlines()[1:] if line.strip()]
    if not lines:
        return "no output"
    errors = [line for line in lines if re.search(r"level=(fatal|error)|\berror\b|\bfailed\b|^E: ", line, re.I)]
    line = (errors or lines)[-1]
    message = re.search(r'msg="((?:[^"\\]|\\.)*)"', line)
    gist = message.group(1) if message else line.strip()
    return gist[:300]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().split("\n")[0]
    return text[:200] if text else type(exc).__name__
