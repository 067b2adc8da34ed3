"""Debian's packages for what the sandbox runs: a program that is missing is installed with apt-get.

One apt-get at a time (the caller holds the state folder's lock); its output goes to a private log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from generator.clock import utc_stamp
from generator.sandbox.errors import ServiceError
from generator.sandbox.processes import append_private
from generator.sandbox.report import Progress, gist

PACKAGES = {
    "dockerd": "docker.io",
    "docker-registry": "docker-registry",
    "debootstrap": "debootstrap",
    "chromium": "chromium",  # the browser the page's tests load it in (not a service: nothing is started)
}
# Programs the sandbox starts live in sbin on Debian, which a non-root PATH often lacks.
SYSTEM_BIN = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def program(service: str, name: str, apt_log: Path, progress: Progress) -> str:
    """The path of `name`, installing its Debian package first when it is missing."""
    found = which(name)
    if found:
        return found
    _install(service, PACKAGES[name], apt_log, progress)
    found = which(name)
    if not found:
        raise ServiceError(f"{PACKAGES[name]} was installed but {name} is not on PATH (log: {apt_log})")
    return found


def which(name: str) -> str | None:
    """`name` on PATH or in the system's bin folders."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SYSTEM_BIN])
    return shutil.which(name, path=search)


def _install(service: str, package: str, apt_log: Path, progress: Progress) -> None:
    commands = [
        ["apt-get", "-o", "DPkg::Lock::Timeout=120", "update"],
        ["apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y", "--no-install-recommends", package],
    ]
    if os.geteuid() != 0:
        raise ServiceError(
            f"{package} is not installed and installing it needs root: run `sudo apt-get update && sudo "
            f"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {package}`"
        )
    if which("apt-get") is None:
        raise ServiceError(f"{package} is not installed and there is no apt-get here: install it, then retry")
    progress(f"{service}: installing Debian's {package} with apt-get (log {apt_log})…")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in commands:
        with append_private(apt_log) as log:
            log.write(f"--- {utc_stamp()} {' '.join(argv)}\n".encode())
            log.flush()
            code = subprocess.run(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            ).returncode
        if code != 0:
            raise ServiceError(f"`{' '.join(argv)}` failed (exit {code}): {gist(apt_log)} (log: {apt_log})")
    if package == "docker-registry":
        _disable_packaged_registry(apt_log)
    progress(f"{service}: {package} installed")


def _disable_packaged_registry(apt_log: Path) -> None:
    """Stop the registry Debian's postinst starts where an init system lets it.

    That one listens on every interface at :5000 with htpasswd auth: it would hold the sandbox's port and
    answer 401. The sandbox runs its own (loopback, its own storage), so the packaged service is switched off.
    """
    if Path("/run/systemd/system").is_dir():
        commands = [["systemctl", "disable", "--now", "docker-registry.service"]]
    else:
        commands = [["/etc/init.d/docker-registry", "stop"], ["update-rc.d", "docker-registry", "disable"]]
    with append_private(apt_log) as log:
        for argv in commands:
            if which(argv[0]) or Path(argv[0]).exists():
                # Failure is fine: it usually means the service was never started.
                subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=False)
