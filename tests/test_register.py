"""Registration against stand-in CLIs (tests/fixtures/fake_cli) that follow the documented command lines.

No Databricks workspace exists here, so `air` and `databricks` are small Python scripts that parse argv the
way the real ones do (unknown flags are errors), refuse to run with a TTY or an open stdin, and play a
scenario per image ref: success, cached, transient then success, permanent, hang, garbage, leaking secrets.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from generator.release.registration import (
    ALREADY,
    CACHED,
    FAILED,
    REGISTERED,
    Adapter,
    AdapterResult,
    DatabricksCli,
    Ledger,
    LegacyAirCli,
    Outcome,
    RegisterError,
    Target,
    pick_adapter,
    register,
)

FAKES = Path(__file__).parent / "fixtures" / "fake_cli"
PYTHON_DIR = str(Path(sys.executable).parent)  # where the stand-ins' `#!/usr/bin/env python3` is found
CLIS = ("databricks", "air")
# Planted secrets (fake values) that must never show: noqa, they are test data, not credentials.
PLANTED_TOKEN = "planted-databricks-token-7f3a9c"  # noqa: S105
PLANTED_PASSWORD = "planted-registry-password-91b2"  # noqa: S105
PLANTED_DOCKER = "planted-docker-config-password-5e8d"


def digest_of(ref: str) -> str:
    """What the stand-ins report as the manifest of `ref` unless a scenario says otherwise."""
    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()


def target(n: int) -> Target:
    ref = f"registry.example.com/team/air:cell{n}-0123456789ab"
    return Target(ref=ref, manifest_digest=digest_of(ref), slug=f"cell{n}")


@dataclass
class Bench:
    """A scenario file, a state folder the stand-ins log calls into, a ledger, and the CLI's environment."""

    tmp: Path
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)
    images: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return Path(self.env["FAKE_CLI_STATE"])

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.tmp / "ledger" / "ws.json")

    def play(self, n: int, *steps: str, **extra: Any) -> Target:
        self.images[target(n).ref] = {"steps": list(steps), **extra}
        Path(self.env["FAKE_CLI_SCENARIO"]).write_text(json.dumps({"images": self.images}))
        return target(n)

    def adapter(self, cli: str, **kwargs: Any) -> Adapter:
        return pick_adapter(cli, "ws", executable=str(FAKES / cli), **kwargs)

    def run(self, targets: list[Target], adapter: Adapter, **kwargs: Any) -> list[Outcome]:
        kwargs.setdefault("backoff_s", 0.0)
        kwargs.setdefault("progress", self.lines.append)
        return register(targets, adapter, self.ledger, env=self.env, **kwargs)

    def calls(self, ref: str | None = None) -> list[dict[str, Any]]:
        log = self.state / "calls.jsonl"
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [call for call in calls if ref is None or call["ref"] == ref]


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bench:
    (tmp_path / "state").mkdir()
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("AIR_FLEET_STATE", str(tmp_path / "fleet-state"))
    env = {
        "PATH": f"{PYTHON_DIR}:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "FAKE_CLI_STATE": str(tmp_path / "state"),
        "FAKE_CLI_SCENARIO": str(tmp_path / "scenario.json"),
    }
    return Bench(tmp_path, env)


def statuses(outcomes: list[Outcome]) -> list[str]:
    return [outcome.status for outcome in outcomes]


# --- argv: exactly the documented command lines, never interactive, never a secret ---------------------------


def test_go_cli_argv_is_the_documented_command_line() -> None:
    adapter = DatabricksCli("ws", timeout_minutes=45, executable="databricks")
    assert adapter.argv(target(1)) == [
        "databricks",
        *("experimental", "air", "register-image", target(1).ref),
        *("-p", "ws", "--timeout-minutes", "45", "-o", "json"),
    ]
    assert adapter.timeout_s > 45 * 60  # our kill comes only after the CLI's own timeout


def test_legacy_argv_has_scope_and_key_only_when_given() -> None:
    plain = LegacyAirCli("ws", executable="air").argv(target(1))
    assert plain == ["air", "register", "image", target(1).ref, "-p", "ws"]
    named = LegacyAirCli("ws", scope="registry", key="ci-push", executable="air").argv(target(1))
    assert named == [*plain, "--scope", "registry", "--key", "ci-push"]


@pytest.mark.parametrize("scope, key", [("registry", None), (None, "ci-push"), ("a b", "k"), ("s", "--x")])
def test_legacy_scope_and_key_come_together_and_name_a_secret(scope: str | None, key: str | None) -> None:
    with pytest.raises(RegisterError):
        LegacyAirCli("ws", scope=scope, key=key)


def test_go_cli_refuses_scope_and_key() -> None:
    with pytest.raises(RegisterError, match="no --scope/--key"):
        pick_adapter("databricks", "ws", scope="registry", key="ci-push", executable=str(FAKES / "databricks"))


@pytest.mark.parametrize("kwargs", [{}, {"scope": "registry", "key": "ci-push"}])
def test_no_argv_ever_carries_interactive_authenticate(bench: Bench, kwargs: dict[str, str]) -> None:
    adapters = [bench.adapter("air", **kwargs)] + ([bench.adapter("databricks")] if not kwargs else [])
    for adapter in adapters:
        assert not any("interactive" in arg for arg in adapter.argv(target(1)))


@dataclass(frozen=True)
class Prompting:
    """A broken adapter that asks for the flag that hangs: the runner must refuse it before any call."""

    inner: LegacyAirCli
    name: str = "air"
    timeout_s: float = 5.0

    def argv(self, target: Target) -> list[str]:
        return [*self.inner.argv(target), "--interactive-authenticate"]

    def parse(self, returncode: int, stdout: str, stderr: str) -> AdapterResult:
        return self.inner.parse(returncode, stdout, stderr)


def test_runner_refuses_interactive_authenticate(bench: Bench) -> None:
    bench.play(1, "success")
    inner = LegacyAirCli("ws", executable=str(FAKES / "air"))
    [outcome] = bench.run([target(1)], Prompting(inner))
    assert outcome.status == FAILED and "--interactive-authenticate" in outcome.detail
    assert outcome.attempts == 0 and bench.calls() == []


def test_runner_refuses_a_secret_in_argv(bench: Bench) -> None:
    bench.env["REGISTRY_PASSWORD"] = "hunter2-as-a-scope"  # noqa: S105 (a planted test value)
    adapter = bench.adapter("air", scope="hunter2-as-a-scope", key="k")
    [outcome] = bench.run([bench.play(1, "success")], adapter)
    assert outcome.status == FAILED and "secret" in outcome.detail and "hunter2" not in outcome.detail
    assert bench.calls() == []


def test_stand_in_go_cli_rejects_scope_like_the_real_one(bench: Bench) -> None:
    argv = [str(FAKES / "databricks"), *DatabricksCli("ws").argv(target(1))[1:], "--scope", "s", "--key", "k"]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=bench.env, check=False)
    assert done.returncode == 1 and "Error: unknown flag: --scope" in done.stderr
    result = DatabricksCli("ws").parse(done.returncode, done.stdout, done.stderr)
    assert result.kind == "permanent" and "unknown flag: --scope" in result.detail


def test_stand_ins_refuse_a_tty_or_an_open_stdin(bench: Bench) -> None:
    """The guard the stand-ins apply to every call is real: a TTY or a pipe left open is refused."""
    argv = [str(FAKES / "air"), *LegacyAirCli("ws").argv(target(1))[1:]]
    _, tty = pty.openpty()
    with_tty = subprocess.run(argv, stdin=tty, capture_output=True, text=True, env=bench.env, check=False)
    os.close(tty)
    assert with_tty.returncode == 97 and "stdin is a TTY" in with_tty.stderr
    pipe = subprocess.PIPE
    with subprocess.Popen(argv, stdin=pipe, stdout=pipe, stderr=pipe, env=bench.env) as proc:
        returncode = proc.wait(timeout=10)  # stdin stays open and empty meanwhile, as a forgotten pipe would
        _, err = proc.communicate()
    assert returncode == 97 and b"open pipe" in err
    [call, _] = bench.calls()
    assert call["ref"] is None  # refused before it did anything


@pytest.mark.parametrize("ours", ["open pipe", "tty"])
def test_cli_never_inherits_our_stdin(bench: Bench, ours: str) -> None:
    """Even when this process's stdin is a TTY or a pipe that never closes, the CLI gets neither."""
    ends = os.pipe() if ours == "open pipe" else pty.openpty()
    ours_fd = ends[0] if ours == "open pipe" else ends[1]  # a pipe's read end (never written); a pty's terminal end
    saved = os.dup(0)
    os.dup2(ours_fd, 0)
    try:
        outcomes = bench.run([bench.play(1, "success")], bench.adapter("databricks"))
    finally:
        os.dup2(saved, 0)
        for fd in (saved, *ends):
            os.close(fd)
    assert statuses(outcomes) == [REGISTERED], outcomes[0].detail


# --- pick_adapter ------------------------------------------------------------------------------------------


def _path_with(tmp: Path, *names: str) -> str:
    folder = tmp / f"bin-{'-'.join(names) or 'none'}"
    folder.mkdir()
    for name in names:
        (folder / name).symlink_to(FAKES / name)
    return str(folder)


def test_pick_adapter_auto_prefers_the_go_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _path_with(tmp_path, "air", "databricks"))
    assert isinstance(pick_adapter(None, "ws"), DatabricksCli)
    assert isinstance(pick_adapter(None, "ws", scope="s", key="k"), LegacyAirCli)  # only air has them
    monkeypatch.setenv("PATH", _path_with(tmp_path, "air"))
    legacy = pick_adapter(None, "ws")
    assert isinstance(legacy, LegacyAirCli) and legacy.executable.endswith("/air")
    monkeypatch.setenv("PATH", _path_with(tmp_path))
    with pytest.raises(RegisterError, match="no registration CLI"):
        pick_adapter(None, "ws")
    with pytest.raises(RegisterError, match="not on PATH"):
        pick_adapter("air", "ws")


@pytest.mark.parametrize(
    "name, profile, executable",
    [("docker", "ws", None), ("air", "-p", None), ("air", "a/b", None), ("air", "ws", "/nonexistent/air")],
)
def test_pick_adapter_rejects_bad_input(name: str, profile: str, executable: str | None) -> None:
    with pytest.raises(RegisterError):
        pick_adapter(name, profile, executable=executable or str(FAKES / "air"))


# --- behaviour against the stand-ins -----------------------------------------------------------------------


@pytest.mark.parametrize("cli", CLIS)
def test_success_is_registered_and_recorded(bench: Bench, cli: str) -> None:
    adapter = bench.adapter(cli)
    [outcome] = bench.run([bench.play(1, "success")], adapter)
    assert (outcome.status, outcome.attempts, outcome.cli) == (REGISTERED, 1, cli)
    [call] = bench.calls()
    assert call["argv"] == adapter.argv(target(1))[1:]  # the stand-in accepted exactly our command line
    entry = bench.ledger.entries()[target(1).manifest_digest]
    assert (entry.ref, entry.slug, entry.cli) == (target(1).ref, "cell1", cli)


@pytest.mark.parametrize("cli", CLIS)
def test_cached_is_reported_and_recorded(bench: Bench, cli: str) -> None:
    [outcome] = bench.run([bench.play(1, "cached")], bench.adapter(cli))
    assert (outcome.status, outcome.attempts) == (CACHED, 1)
    assert target(1).manifest_digest in bench.ledger.entries()


@pytest.mark.parametrize("cli", CLIS)
def test_transient_then_success_retries(bench: Bench, cli: str) -> None:
    [outcome] = bench.run([bench.play(1, "transient", "transient", "success")], bench.adapter(cli), attempts=3)
    assert (outcome.status, outcome.attempts) == (REGISTERED, 3)
    assert len(bench.calls()) == 3
    assert len([line for line in bench.lines if "failed (transient)" in line]) == 2


@pytest.mark.parametrize("cli", CLIS)
def test_transient_gives_up_after_the_attempts(bench: Bench, cli: str) -> None:
    [outcome] = bench.run([bench.play(1, "transient")], bench.adapter(cli), attempts=2)
    assert (outcome.status, outcome.attempts) == (FAILED, 2)
    assert "gave up after 2 attempts" in outcome.detail
    assert len(bench.calls()) == 2 and bench.ledger.entries() == {}


def test_backoff_doubles_less_jitter(bench: Bench) -> None:
    waits: list[float] = []
    steps = ("transient", "transient", "success")
    air = bench.adapter("air")
    [outcome] = bench.run([bench.play(1, *steps)], air, backoff_s=3, sleep=waits.append, draw=lambda: 0)
    assert outcome.status == REGISTERED and waits == [3, 6]
    assert any("retry in 6.0 s" in line for line in bench.lines)
    # The jitter takes up to half of each wait off, never adds to it.
    waits.clear()
    bench.run([bench.play(2, *steps)], air, backoff_s=3, sleep=waits.append, draw=lambda: 0.999)
    assert 1.5 <= waits[0] < 1.51 and 3 <= waits[1] < 3.01


@pytest.mark.parametrize("cli", CLIS)
def test_permanent_error_fails_only_its_target(bench: Bench, cli: str) -> None:
    targets = [bench.play(1, "success"), bench.play(2, "permanent"), bench.play(3, "cached")]
    outcomes = bench.run(targets, bench.adapter(cli), attempts=3)
    assert statuses(outcomes) == [REGISTERED, FAILED, CACHED]
    assert outcomes[1].attempts == 1 and len(bench.calls(target(2).ref)) == 1  # not retried
    assert "PERMISSION_DENIED" in outcomes[1].detail
    assert set(bench.ledger.entries()) == {target(1).manifest_digest, target(3).manifest_digest}


def _live_members(pgid: int) -> list[int]:
    """Processes in group `pgid` that are not zombies (a zombie is dead; only its parent may reap it)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


@pytest.mark.parametrize("cli, attempts", [("databricks", 2), ("air", 1)])
def test_hang_is_killed_with_its_process_group(bench: Bench, cli: str, attempts: int) -> None:
    started = time.monotonic()
    outcomes = bench.run(
        [bench.play(1, "hang"), bench.play(2, "success")], bench.adapter(cli), attempts=attempts, call_timeout_s=1.0
    )
    elapsed = time.monotonic() - started
    assert statuses(outcomes) == [FAILED, REGISTERED]  # the next target still goes on
    assert outcomes[0].attempts == attempts and "no answer within 1 s" in outcomes[0].detail
    assert elapsed < attempts * 1.0 + 5  # the stand-in sleeps 600 s: it was killed, not waited for
    pids = [int(pid) for pid in (bench.state / "pids").read_text().split()]
    assert len(pids) == 2 * attempts  # each hang: the CLI (the group leader) and a child holding its pipes
    deadline = time.monotonic() + 5
    while any(_live_members(leader) for leader in pids[::2]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [_live_members(leader) for leader in pids[::2]] == [[]] * attempts


# --- the ledger --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cli", CLIS)
def test_second_run_is_a_no_op(bench: Bench, cli: str) -> None:
    targets = [bench.play(1, "success"), bench.play(2, "cached")]
    assert statuses(bench.run(targets, bench.adapter(cli))) == [REGISTERED, CACHED]
    again = bench.run(targets, bench.adapter(cli))
    assert statuses(again) == [ALREADY, ALREADY]
    assert [outcome.attempts for outcome in again] == [0, 0] and len(bench.calls()) == 2  # no new CLI call
    forced = bench.run(targets, bench.adapter(cli), force=True)  # rotated credentials: register again
    assert statuses(forced) == [REGISTERED, CACHED] and len(bench.calls()) == 4


def test_same_manifest_under_a_new_ref_is_registered_again(bench: Bench) -> None:
    first = bench.play(1, "success")
    bench.run([first], bench.adapter("databricks"))
    moved = Target(
        ref="mirror.example.com/team/air:cell1-0123456789ab", manifest_digest=first.manifest_digest, slug="cell1"
    )
    bench.images[moved.ref] = {"steps": ["success"], "digest": first.manifest_digest}
    Path(bench.env["FAKE_CLI_SCENARIO"]).write_text(json.dumps({"images": bench.images}))
    [outcome] = bench.run([moved], bench.adapter("databricks"))
    assert outcome.status == REGISTERED
    assert bench.ledger.entries()[first.manifest_digest].ref == moved.ref


def test_each_success_is_in_the_ledger_before_the_next_target(bench: Bench) -> None:
    targets = [bench.play(1, "success"), bench.play(2, "success")]

    def crash_on_second(line: str) -> None:
        if line.startswith("cell2: registering"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        bench.run(targets, bench.adapter("databricks"), progress=crash_on_second)
    assert set(Ledger(bench.ledger.path).entries()) == {target(1).manifest_digest}


def test_ledger_file_format_and_atomic_writes(bench: Bench) -> None:
    bench.run([bench.play(1, "success")], bench.adapter("air"))
    doc = json.loads(bench.ledger.path.read_text())
    entry = doc["images"][target(1).manifest_digest]
    assert doc["schema"] == 1 and set(entry) == {"ref", "slug", "registered_at", "cli"}
    assert [p.name for p in bench.ledger.path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert bench.ledger.forget(target(1).manifest_digest) and bench.ledger.entries() == {}


@pytest.mark.parametrize(
    "text",
    ["{not json", "[]", '{"schema": 2, "images": {}}', '{"schema": 1, "images": {"sha256:12": {}}}'],
)
def test_an_unreadable_ledger_is_an_error_not_an_empty_one(tmp_path: Path, text: str) -> None:
    path = tmp_path / "ws.json"
    path.write_text(text)
    with pytest.raises(RegisterError, match="not a registration ledger"):
        Ledger(path).entries()


def test_ledger_default_path_is_per_profile_under_the_state_dir(bench: Bench) -> None:
    assert Ledger.for_profile("ws").path == bench.tmp / "fleet-state" / "register" / "ws.json"
    with pytest.raises(RegisterError):
        Ledger.for_profile("../etc")


# --- secrets -----------------------------------------------------------------------------------------------


def _plant_secrets(bench: Bench) -> list[str]:
    docker = bench.tmp / "docker"
    docker.mkdir()
    auth = base64.b64encode(f"robot:{PLANTED_DOCKER}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {"registry.example.com": {"auth": auth}}}))
    bench.env |= {
        "DATABRICKS_TOKEN": PLANTED_TOKEN,
        "REGISTRY_PASSWORD": PLANTED_PASSWORD,
        "DOCKER_CONFIG": str(docker),
    }
    return [PLANTED_TOKEN, PLANTED_PASSWORD, PLANTED_DOCKER, auth]


@pytest.mark.parametrize("cli", CLIS)
def test_a_planted_secret_never_reaches_outcomes_progress_or_the_ledger(bench: Bench, cli: str) -> None:
    secrets = _plant_secrets(bench)
    targets = [bench.play(1, "transient", "permanent", leak=True), bench.play(2, "success", leak=True)]
    adapter = bench.adapter(cli)
    # The stand-in really prints them: without scrubbing they would show.
    unlogged = {name: value for name, value in bench.env.items() if name != "FAKE_CLI_STATE"}  # not a counted call
    raw = subprocess.run(
        adapter.argv(target(1)), stdin=subprocess.DEVNULL, capture_output=True, text=True, env=unlogged, check=False
    )
    assert all(secret in raw.stdout + raw.stderr for secret in secrets)
    outcomes = bench.run(targets, adapter, attempts=3)
    assert statuses(outcomes) == [FAILED, REGISTERED]
    shown = json.dumps([outcome.as_record() for outcome in outcomes]) + "\n".join(bench.lines)
    shown += bench.ledger.path.read_text()
    assert "***" in shown  # the leaks were there, and masked
    assert [secret for secret in secrets if secret in shown] == []
    assert all(secret not in arg for call in bench.calls() for arg in call["argv"] for secret in secrets)


# --- output parsing: tolerant of noise, strict about what it trusts ----------------------------------------

GOOD = {"docker_image_url": target(1).ref, "manifest_sha256": target(1).manifest_digest[7:], "status": "AVAILABLE"}


def _doc(**data: Any) -> str:
    return json.dumps({"v": 1, "data": {**GOOD, **data}})


def _err(**error: Any) -> str:
    return json.dumps({"v": 1, "error": error})


@pytest.mark.parametrize(
    "returncode, stdout, stderr, kind, says",
    [
        (0, _doc(cached=False, image_updated=True), "", "registered", "AVAILABLE"),
        (0, _doc(cached=True, image_updated=False), "", "cached", "AVAILABLE"),
        (0, "Polling ...\nstill PENDING\n" + _doc() + "\n", "warning: x", "registered", "AVAILABLE"),
        (0, json.dumps({"v": 1, "data": {**GOOD}}, indent=2), "", "registered", "AVAILABLE"),
        (1, _err(code="UNAVAILABLE", kind="TRANSIENT", retryable=True, message="busy"), "", "transient", "busy"),
        (1, _err(code="QUOTA", kind="PERMANENT", retryable=True), "", "transient", "QUOTA"),  # retryable wins
        (1, _err(code="X", kind="TRANSIENT"), "", "transient", "X"),  # no retryable: kind decides
        (1, _err(code="X", kind="PERMANENT", retryable=False), "", "permanent", "X"),
        (1, _err(code="X", retryable="yes"), "", "permanent", "X"),  # not a boolean: not trusted
        (1, "", json.dumps({"code": "UNAVAILABLE", "kind": "TRANSIENT", "retryable": True}), "transient", "UNAVAIL"),
        (1, _err(code=7, kind=None, message={"nested": [1]}), "", "permanent", "nested"),
        (0, _err(code="X", kind="PERMANENT", retryable=False), "", "permanent", "X"),  # exit 0 does not undo it
        (1, _doc(), "", "permanent", "not trusted"),  # success document, failing exit
        (0, "<html>502 Bad Gateway</html>", "", "permanent", "no JSON document"),
        (0, "", "", "permanent", "no JSON document"),
        (1, "", "Error: unknown flag: --scope", "permanent", "unknown flag"),
        (0, '{"v": 1, "data": {"docker_image_url": "x"', "", "permanent", "no JSON document"),  # truncated
        (0, "[1, 2]", "", "permanent", "no JSON document"),
        (0, "\x00\xff\ufffd{{{", "", "permanent", "no JSON document"),
        (0, json.dumps({"v": 2, "data": GOOD}), "", "permanent", "v=2"),
        (0, json.dumps({"data": GOOD}), "", "permanent", "v=None"),
        (0, json.dumps({"v": 1}), "", "permanent", "neither data nor error"),
        (
            0,
            json.dumps({"v": 1, "data": {"status": "AVAILABLE"}}),
            "",
            "permanent",
            "docker_image_url, manifest_sha256",
        ),
        (0, _doc(manifest_sha256="abc"), "", "permanent", "manifest_sha256 is not"),
        (0, _doc(status="FAILED"), "", "permanent", "not AVAILABLE"),
        (0, _doc(status=None), "", "permanent", "not AVAILABLE"),
        (0, _doc(cached="true"), "", "permanent", "cached is not a boolean"),
        (0, _doc(docker_image_url=""), "", "permanent", "docker_image_url"),
        (-9, "", "", "transient", "signal 9"),
    ],
)
def test_go_cli_output(returncode: int, stdout: str, stderr: str, kind: str, says: str) -> None:
    result = DatabricksCli("ws").parse(returncode, stdout, stderr)
    assert (result.kind, says in result.detail) == (kind, True), result.detail
    if result.ok:
        assert result.manifest_digest == target(1).manifest_digest


def test_go_cli_output_of_any_size_never_crashes() -> None:
    noise = "{\n" * 5000 + "x" * 300_000
    assert DatabricksCli("ws").parse(0, noise, noise).kind == "permanent"


@pytest.mark.parametrize(
    "returncode, stdout, stderr, kind",
    [
        (0, "Registered x", "", "registered"),
        (0, "", "", "registered"),
        (0, "Image x is already registered", "", "cached"),
        (1, "", "Error: 503 Service Unavailable", "transient"),
        (1, "", "requests.exceptions.ConnectionError: Connection reset by peer", "transient"),
        (1, "", "Error: 429 Too Many Requests", "transient"),
        (1, "", "Error: PERMISSION_DENIED: unauthorized", "permanent"),
        (2, "", "Error: No such option: --timeout-minutes", "permanent"),
        (2, "", "Usage: air register image [OPTIONS] IMAGE\n\nError: 503 is not an option", "permanent"),
        (1, "", "urllib3.exceptions.ReadTimeoutError: read timed out", "transient"),
        (1, "", "", "permanent"),
        (-15, "", "", "transient"),
    ],
)
def test_legacy_cli_output(returncode: int, stdout: str, stderr: str, kind: str) -> None:
    assert LegacyAirCli("ws").parse(returncode, stdout, stderr).kind == kind


@pytest.mark.parametrize("step, says", [("garbage", "no JSON document"), ("incomplete", "lacks manifest_sha256")])
def test_go_cli_nonsense_fails_the_target_and_records_nothing(bench: Bench, step: str, says: str) -> None:
    [outcome] = bench.run([bench.play(1, step)], bench.adapter("databricks"))
    assert outcome.status == FAILED and says in outcome.detail and outcome.attempts == 1
    assert bench.ledger.entries() == {}


def test_a_registration_of_another_manifest_is_not_recorded(bench: Bench) -> None:
    [outcome] = bench.run([bench.play(1, "success", digest=digest_of("moved"))], bench.adapter("databricks"))
    assert outcome.status == FAILED and "did the tag move" in outcome.detail
    assert bench.ledger.entries() == {}


def test_a_cli_that_cannot_start_fails_its_target(bench: Bench) -> None:
    [outcome] = bench.run([bench.play(1, "success")], DatabricksCli("ws", executable=str(bench.tmp / "gone")))
    assert outcome.status == FAILED and "cannot run" in outcome.detail


@pytest.mark.parametrize(
    "make",
    [
        lambda: Target("--interactive-authenticate", digest_of("x"), "s"),
        lambda: Target("registry.example.com/team/air", digest_of("x"), "s"),  # no tag
        lambda: Target("registry.example.com/team/air:t a", digest_of("x"), "s"),
        lambda: Target("registry.example.com/team/air:t", "sha256:abc", "s"),
        lambda: Target("registry.example.com/team/air:t", digest_of("x"), ""),
    ],
)
def test_targets_are_validated(make: Callable[[], Target]) -> None:
    with pytest.raises(ValueError):
        make()
