"""Which docker CLI builds, and its command line for a `BuildSpec`.

Builds go through BuildKit, driven by a docker CLI: the Docker SDK cannot drive BuildKit (docker-py
issue 2230), so the SDK keeps inspect, run and push. Two ways exist, tried in this order:

- `buildx`: `docker buildx build` where some `docker` has the buildx plugin (`docker buildx version`
  answers): cache sources as `type=registry`, the inline cache as `--cache-to type=inline`, `--load`.
- `buildkit`: `DOCKER_BUILDKIT=1 docker build` with a CLI older than 23, whose built-in BuildKit client
  talks to the engine's BuildKit (Debian's docker.io 20.10, `/usr/bin/docker`). From 23 on the CLI
  hands `docker build` to buildx and refuses BuildKit without it, which is why the `docker` first on
  PATH is not simply taken: on these machines it is a newer CLI without buildx.

`AIR_FLEET_DOCKER` names the docker executable to use (default: every `docker` on PATH, then
`/usr/bin/docker`), `AIR_FLEET_BUILDER` forces `buildx` or `buildkit` (default `auto`). The choice is
shown on a progress line and kept in each build record.

There is no classic-builder fallback: the rendered Dockerfiles use `RUN --mount=type=cache`, which the
classic builder rejects, and a fleet half built one way and half the other would share no layers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from generator.build.spec import BuildSpec
from generator.errors import FleetError

BUILDER_ENV = "AIR_FLEET_BUILDER"
DOCKER_ENV = "AIR_FLEET_DOCKER"
MODES = ("auto", "buildx", "buildkit")
DEBIAN_DOCKER = "/usr/bin/docker"
PROBE_TIMEOUT_S = 20
VERSION = re.compile(r"version (\d+)\.(\d+)")
# From this release on `docker build` is buildx's, and DOCKER_BUILDKIT=1 without buildx is refused.
BUILDX_ONLY_FROM = 23
INSTALL_ADVICE = (
    "install the buildx plugin (docker-buildx-plugin or docker-buildx), or Debian's docker.io "
    f"(docker 20.10 at {DEBIAN_DOCKER}), or name a docker executable in {DOCKER_ENV}"
)


class NoBuildKit(FleetError):
    """No docker CLI here can build with BuildKit: one line saying what to install (exit status 2)."""


@dataclass(frozen=True)
class BuildCli:
    executable: str
    mode: str  # buildx | buildkit
    version: str  # the CLI's own version, for the record

    @property
    def describe(self) -> str:
        """`docker buildx build (/usr/local/bin/docker 28.2.2)`: the progress line and the build record."""
        how = "docker buildx build" if self.mode == "buildx" else "DOCKER_BUILDKIT=1 docker build"
        return f"{how} ({self.executable} {self.version})"

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        env = dict(base)
        env["DOCKER_BUILDKIT"] = "1"  # buildx ignores it; the 20.10 CLI needs it
        return env

    def argv(self, spec: BuildSpec, iidfile: Path) -> list[str]:
        """The whole command line of one build; nothing secret ever goes on it (the CLI reads the Docker
        config for registry credentials)."""
        head = [self.executable, "buildx", "build", "--load"] if self.mode == "buildx" else [self.executable, "build"]
        argv = [*head, "--progress=plain", "--iidfile", str(iidfile), "--file", str(spec.context / spec.dockerfile)]
        for platform in spec.platforms:
            argv += ["--platform", platform]
        for tag in spec.tags:  # the candidate's tag only: aliases move at promote, after the probes
            argv += ["--tag", tag]
        for key, value in spec.build_args.items():
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in spec.labels.items():
            argv += ["--label", f"{key}={value}"]
        for ref in spec.cache_from:
            argv += ["--cache-from", f"type=registry,ref={ref}" if self.mode == "buildx" else ref]
        for export in spec.cache_to:
            if self.mode == "buildx":
                argv += ["--cache-to", export.buildx()]
            elif export.type != "inline":  # the inline cache is the build argument above
                raise FleetError(f"{spec.slug}: the engine's built-in BuildKit cannot export a {export.type} cache")
        return [*argv, str(spec.context)]


def select(env: Mapping[str, str] | None = None) -> BuildCli:
    """The CLI builds use here, or NoBuildKit naming what to install."""
    env = os.environ if env is None else env
    mode = env.get(BUILDER_ENV, "auto").strip() or "auto"
    if mode not in MODES:
        raise NoBuildKit(f"{BUILDER_ENV}={mode!r}: expected one of {', '.join(MODES)}")
    candidates = _candidates(env)
    if not candidates:
        raise NoBuildKit(f"no docker CLI found ({DOCKER_ENV} or PATH); {INSTALL_ADVICE}")
    if mode in ("auto", "buildx"):
        for exe in candidates:
            version = _run(exe, ["buildx", "version"], env)
            if version is not None:
                return BuildCli(exe, "buildx", _client_version(exe, env) or "?")
    if mode in ("auto", "buildkit"):
        for exe in candidates:
            version = _client_version(exe, env)
            if version is not None and _major(version) < BUILDX_ONLY_FROM:
                return BuildCli(exe, "buildkit", version)
    tried = ", ".join(candidates)
    wanted = {"auto": "BuildKit", "buildx": "buildx", "buildkit": f"a docker CLI older than {BUILDX_ONLY_FROM}"}[mode]
    raise NoBuildKit(f"no docker CLI here can build with {wanted} (tried {tried}); {INSTALL_ADVICE}")


def _candidates(env: Mapping[str, str]) -> list[str]:
    """Docker executables to try, each once (by real path), in order."""
    named = env.get(DOCKER_ENV, "").strip()
    if named:
        found = shutil.which(named, path=env.get("PATH"))
        return [found] if found else []
    out: list[str] = []
    seen: set[str] = set()
    for directory in [*env.get("PATH", "").split(os.pathsep), str(Path(DEBIAN_DOCKER).parent)]:
        exe = shutil.which("docker", path=directory) if directory else None
        if exe and os.path.realpath(exe) not in seen:
            seen.add(os.path.realpath(exe))
            out.append(exe)
    return out


def _run(exe: str, args: list[str], env: Mapping[str, str]) -> str | None:
    """The output of a quick CLI call, or None if it fails (not there, unknown command, hangs)."""
    try:
        done = subprocess.run(
            [exe, *args],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _client_version(exe: str, env: Mapping[str, str]) -> str | None:
    """`Docker version 20.10.24+dfsg1, build 297e128` -> `20.10.24+dfsg1` (needs no engine)."""
    out = _run(exe, ["--version"], env)
    if out is None or VERSION.search(out) is None:
        return None
    return out.split("version", 1)[1].split(",", 1)[0].strip()


def _major(version: str) -> int:
    match = re.match(r"(\d+)", version)
    return int(match[1]) if match else 0
