"""The two CLIs that register an image with a Databricks workspace, and what their output means.

- `databricks experimental air register-image <ref> -p <profile> --timeout-minutes N -o json` (the current Go
  CLI). It has no --scope/--key (cobra answers "unknown flag"): it reads registry credentials from
  `$DOCKER_CONFIG` / `~/.docker/config.json` itself. Its JSON output is trusted only when it is complete.
- `air register image <ref> -p <profile> [--scope S --key K]` (the legacy Python CLI). --scope/--key name an
  existing Databricks secret holding the registry credentials, so they may be in argv; without them it uses
  `docker login` credentials. Success is exit status 0; its text is read leniently.

Neither argv ever carries `--interactive-authenticate` (it prompts on the TTY and hangs without one) or a
secret value: credentials reach the CLI through its environment and config files only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.release.registration.base import (
    PROFILE,
    SECRET_NAME,
    Adapter,
    AdapterResult,
    Kind,
    RegisterError,
    Target,
    normalise_digest,
)

LEGACY_TIMEOUT_S = 15 * 60  # registration takes 2-6 minutes; past 15 the legacy CLI is taken for hung
GO_GRACE_S = 60  # the Go CLI stops polling itself after --timeout-minutes; this much later it is hung

# Legacy CLI failures worth another attempt: the service or the network, not the request. Anything else
# (auth, permissions, a missing image, a usage error) fails the same way again, so it is permanent.
TRANSIENT_PATTERNS = (
    re.compile(r"\b(?:429|500|502|503|504)\b"),
    re.compile(r"too many requests|rate.?limit", re.I),
    re.compile(r"temporarily unavailable|service unavailable|bad gateway|gateway time-?out", re.I),
    re.compile(r"timed out|time-?out error|(?:read|connect)timeout|deadline exceeded", re.I),
    re.compile(r"connection (?:reset|aborted|closed)|remote end closed|broken pipe", re.I),
    re.compile(r"try again", re.I),
)
# A usage error is never transient, whatever words it quotes back (`--timeout-minutes` is not a timeout).
USAGE_ERROR = re.compile(r"^(?:Usage:|Error: (?:No such option|Missing option|Missing argument|Got unexpected))", re.M)
# Exit 0 from the legacy CLI with one of these means the workspace already had the image.
LEGACY_CACHED = re.compile(r"already registered|\bcached\b|up to date", re.I)

# The Go CLI's success document: these fields say what was registered; without any of them nothing is trusted.
REQUIRED_DATA = ("docker_image_url", "manifest_sha256", "status")
MAX_SCAN = 256 * 1024  # only the tail of a long output is searched for the JSON document
MAX_DECODE_TRIES = 64


def _tail(text: str, lines: int = 3) -> str:
    """The last few non-empty lines, joined: where CLIs put the reason they failed."""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def _signalled(returncode: int) -> AdapterResult | None:
    # Killed by a signal we did not send (OOM killer, a reboot): the machine failed, not the request.
    if returncode < 0:
        return AdapterResult("transient", f"killed by signal {-returncode}")
    return None


@dataclass(frozen=True)
class LegacyAirCli:
    profile: str
    scope: str | None = None
    key: str | None = None
    executable: str = "air"
    call_timeout_s: float = LEGACY_TIMEOUT_S

    def __post_init__(self) -> None:
        _check_profile(self.profile)
        if (self.scope is None) != (self.key is None):
            raise RegisterError("--scope and --key name one Databricks secret: give both or neither")
        for what, value in (("scope", self.scope), ("key", self.key)):
            if value is not None and not SECRET_NAME.fullmatch(value):
                raise RegisterError(f"--{what} must name a Databricks secret ([A-Za-z0-9_.-]), got {value!r}")

    @property
    def name(self) -> str:
        return "air"

    @property
    def timeout_s(self) -> float:
        return self.call_timeout_s

    def argv(self, target: Target) -> list[str]:
        argv = [self.executable, "register", "image", target.ref, "-p", self.profile]
        if self.scope is not None and self.key is not None:
            argv += ["--scope", self.scope, "--key", self.key]
        return argv

    def parse(self, returncode: int, stdout: str, stderr: str) -> AdapterResult:
        signalled = _signalled(returncode)
        if signalled:
            return signalled
        both = f"{stdout}\n{stderr}"
        if returncode == 0:
            kind: Kind = "cached" if LEGACY_CACHED.search(both) else "registered"
            return AdapterResult(kind, _tail(stdout) or _tail(stderr) or "exit status 0")
        reason = _tail(stderr) or _tail(stdout) or "no output"
        transient = not USAGE_ERROR.search(both) and any(pattern.search(both) for pattern in TRANSIENT_PATTERNS)
        return AdapterResult("transient" if transient else "permanent", f"exit status {returncode}: {reason}")


@dataclass(frozen=True)
class DatabricksCli:
    profile: str
    timeout_minutes: int = 60
    executable: str = "databricks"

    def __post_init__(self) -> None:
        _check_profile(self.profile)
        if isinstance(self.timeout_minutes, bool) or not isinstance(self.timeout_minutes, int):
            raise RegisterError(f"--timeout-minutes must be a whole number, got {self.timeout_minutes!r}")
        if self.timeout_minutes < 1:
            raise RegisterError(f"--timeout-minutes must be at least 1, got {self.timeout_minutes}")

    @property
    def name(self) -> str:
        return "databricks"

    @property
    def timeout_s(self) -> float:
        return self.timeout_minutes * 60 + GO_GRACE_S

    def argv(self, target: Target) -> list[str]:
        return [
            self.executable,
            *("experimental", "air", "register-image", target.ref),
            *("-p", self.profile, "--timeout-minutes", str(self.timeout_minutes), "-o", "json"),
        ]

    def parse(self, returncode: int, stdout: str, stderr: str) -> AdapterResult:
        signalled = _signalled(returncode)
        if signalled:
            return signalled
        # `-o json` writes its document to stdout; an error document may come on stderr instead.
        doc = json_document(stdout)
        if doc is None:
            doc = json_document(stderr)
        if doc is None:
            reason = _tail(stderr) or _tail(stdout) or "no output"
            expected = 'expected {"v":1,"data":{...}} or {"v":1,"error":{...}}'
            return AdapterResult("permanent", f"exit status {returncode}, no JSON document ({expected}): {reason}")
        return interpret(doc, returncode)


def json_document(text: str) -> dict[str, Any] | None:
    """The last JSON object in `text` that starts a line (log lines may come before or after it), or None."""
    text = text[-MAX_SCAN:]
    starts = [m.start() for m in re.finditer(r"(?m)^\{", text)]
    decoder = json.JSONDecoder()
    for start in reversed(starts[-MAX_DECODE_TRIES:]):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def interpret(doc: dict[str, Any], returncode: int) -> AdapterResult:
    """What one Go CLI document means. Errors are believed as they come; success only when complete."""
    error = doc.get("error")
    if isinstance(error, dict):  # {"v":1,"error":{"code","kind","retryable","message"}}
        return _error(error)
    if "data" not in doc and {"code", "kind", "retryable"} & doc.keys():  # a bare error object
        return _error(doc)
    if doc.get("v") != 1:
        return AdapterResult("permanent", f"output version v={doc.get('v')!r} is not 1: not trusted")
    data = doc.get("data")
    if not isinstance(data, dict):
        return AdapterResult("permanent", f"JSON output has neither data nor error (keys: {sorted(doc)})")
    return _success(data, returncode)


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)[:200]


def _error(error: dict[str, Any]) -> AdapterResult:
    # `retryable` is the CLI's own verdict; `kind` is the fallback when it is absent or not a boolean.
    retryable = error.get("retryable")
    kind = _text(error.get("kind")) or "?"
    transient = retryable if isinstance(retryable, bool) else kind.upper() == "TRANSIENT"
    message = _text(error.get("message") or error.get("msg") or error.get("detail")) or "no message"
    code = _text(error.get("code")) or "UNKNOWN"
    detail = f"{code} ({kind}, retryable={str(transient).lower()}): {message}"
    return AdapterResult("transient" if transient else "permanent", detail)


def _success(data: dict[str, Any], returncode: int) -> AdapterResult:
    if returncode != 0:
        return AdapterResult("permanent", f"exit status {returncode} with a success document: not trusted")
    missing = [field for field in REQUIRED_DATA if field not in data]
    if missing:
        return AdapterResult("permanent", f"success output lacks {', '.join(missing)}: not trusted")
    url, status = data["docker_image_url"], data["status"]
    digest = normalise_digest(data["manifest_sha256"])
    if not isinstance(url, str) or not url:
        return AdapterResult("permanent", f"docker_image_url is not an image reference: {_text(url)}")
    if digest is None:
        return AdapterResult("permanent", f"manifest_sha256 is not a sha256 digest: {_text(data['manifest_sha256'])}")
    if not isinstance(status, str) or status.upper() != "AVAILABLE":
        return AdapterResult("permanent", f"status is {_text(status)}, not AVAILABLE")
    flags = {field: data.get(field, False) for field in ("cached", "image_updated")}
    for field, value in flags.items():
        if not isinstance(value, bool):
            return AdapterResult("permanent", f"{field} is not a boolean: {_text(value)}")
    kind: Kind = "cached" if flags["cached"] else "registered"
    detail = f"{status}, manifest {digest}, image_updated={str(flags['image_updated']).lower()}"
    return AdapterResult(kind, detail, manifest_digest=digest, image_url=url)


def _check_profile(profile: str) -> None:
    if not isinstance(profile, str) or not PROFILE.fullmatch(profile):
        raise RegisterError(f"workspace profile must be [A-Za-z0-9_.-] and not start with '-', got {profile!r}")


def _resolve(name: str, executable: str | None) -> str:
    if executable is None:
        found = shutil.which(name)
        if found is None:
            raise RegisterError(f"`{name}` is not on PATH")
        return found
    path = Path(executable)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise RegisterError(f"{executable} is not an executable file")
    return executable


def _auto(secret_named: bool, executable: str | None) -> str:
    if executable is not None:
        name = Path(executable).name
        if name not in ("air", "databricks"):
            raise RegisterError(f"cannot tell which CLI {executable} is: name it (air or databricks)")
        return name
    if secret_named:  # --scope/--key exist only in the legacy CLI: asking for them picks it
        if shutil.which("air"):
            return "air"
        raise RegisterError("--scope/--key need the legacy `air` CLI, which is not on PATH")
    for name in ("databricks", "air"):
        if shutil.which(name):
            return name
    raise RegisterError("no registration CLI on PATH: install `databricks` (the Go CLI) or `air`")


def pick_adapter(
    name: str | None,
    profile: str,
    *,
    scope: str | None = None,
    key: str | None = None,
    timeout_minutes: int = 60,
    executable: str | None = None,
) -> Adapter:
    """The adapter for `name` ("air", "databricks"), or None: the Go `databricks` if on PATH, else `air`."""
    if name not in (None, "air", "databricks"):
        raise RegisterError(f"unknown registration CLI {name!r}: air or databricks")
    chosen = name or _auto(scope is not None or key is not None, executable)
    exe = _resolve(chosen, executable)
    if chosen == "air":
        return LegacyAirCli(profile, scope, key, executable=exe)
    if scope is not None or key is not None:
        raise RegisterError(
            "the databricks CLI has no --scope/--key: it reads registry credentials from $DOCKER_CONFIG "
            "or ~/.docker/config.json (use the air CLI for a Databricks secret)"
        )
    return DatabricksCli(profile, timeout_minutes=timeout_minutes, executable=exe)
