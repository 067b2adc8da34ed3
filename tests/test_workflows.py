"""The GitHub Actions workflows: valid, audited, pinned, least-privilege, and fed by the generator itself.

Offline and fast: GitHub's workflow schema as vendored by check-jsonschema, zizmor with `--offline`, and the
generator's own CLI. The tools are the ones installed next to the interpreter running the tests (the
project's .venv, `dev` extras). The nightly's plan step and the runner-label steps are run for real, as
bash scripts, the way a runner would run them.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
NIGHTLY = WORKFLOWS / "nightly.yml"
ALL = [CI, NIGHTLY]
RUNNERS = ROOT / ".github" / "runners.yml"
OPERATING = ROOT / "docs" / "operating.md"
BIN = Path(sys.executable).parent
# owner/repo[/path]@<40 hex>: a tag or branch can be moved to other code, a full commit SHA cannot.
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
SECRET = re.compile(r"\bsecrets\s*(?:\.|\[)")
SECRET_VALUE = re.compile(r"^\$\{\{\s*secrets\.([A-Z][A-Z0-9_]*)\s*\}\}$")
RUNNER_OUTPUT = re.compile(r"^\$\{\{\s*fromJSON\(needs\.([\w-]+)\.outputs\.([\w-]+)-runner\)\s*\}\}$")
# GitHub-hosted images the workflows may name directly; everything self-hosted comes from runners.yml.
HOSTED = re.compile(r"^ubuntu-\d\d\.\d\d$")
# Every secret the workflows read, and so every secret docs/operating.md must tell a platform team to set.
SECRETS = {"AIR_FLEET_REGISTRY_USERNAME", "AIR_FLEET_REGISTRY_PASSWORD", "DATABRICKS_HOST", "DATABRICKS_TOKEN"}
BAD_SEVERITIES = {"medium", "high"}
# The only jobs allowed any `write` permission, and exactly what each may write.
WRITE_JOBS = {
    (NIGHTLY.name, "publish"): {"pages", "id-token"},  # the Pages deployment
    (NIGHTLY.name, "refresh"): {"contents", "pull-requests"},  # the lock-refresh branch and its pull request
}

Workflow = dict[str, Any]
Path_ = tuple[str | int, ...]


def load(path: Path) -> Workflow:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    if True in data:  # YAML 1.1 reads the key `on` as the boolean true
        data["on"] = data.pop(True)
    return data


def jobs(workflow: Workflow) -> dict[str, dict[str, Any]]:
    found = workflow["jobs"]
    assert isinstance(found, dict) and found
    return found


def steps(workflow: Workflow) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in jobs(workflow).items():
        for step in job.get("steps", []):
            yield job_id, step


def step(workflow: Workflow, job_id: str, step_id: str) -> dict[str, Any]:
    (found,) = [s for s in jobs(workflow)[job_id]["steps"] if s.get("id") == step_id]
    assert isinstance(found, dict)
    return found


def strings(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, str]]:
    """Every string in the document (keys' values, list items), with the path of keys that leads to it."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, (*path, index))
    elif isinstance(node, str):
        yield path, node


def run_texts(workflow: Workflow) -> list[str]:
    return [s["run"] for _, s in steps(workflow) if "run" in s]


def tool(name: str) -> str:
    path = BIN / name
    assert path.is_file(), f"{path} missing: `pip install -e '.[dev]'` installs it"
    return str(path)


def generator(*args: str) -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "generator", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def slugs(cells: list[dict[str, Any]]) -> list[str]:
    return [cell["slug"] for cell in cells]


def run_step(script: str, env: dict[str, str], tmp: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run a `run:` script as a runner does (`shell: bash`), with $GITHUB_OUTPUT and friends in `tmp`."""
    output, summary = tmp / "github_output", tmp / "step_summary"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIR_FLEET_REGISTRY_", "DATABRICKS_"))}
    full = {
        **base,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # `python` is this interpreter
        "RUNNER_TEMP": str(tmp),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        **env,
    }
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = output.read_text(encoding="utf-8").splitlines() if output.exists() else []
    return proc, dict(line.split("=", 1) for line in lines)


def plan_step(cells: str, force: bool, tmp: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    found = step(load(NIGHTLY), "plan", "plan")
    assert {"CELLS", "FORCE"} <= set(found["env"]), "the plan step takes its inputs through CELLS and FORCE"
    return run_step(found["run"], {"CELLS": cells, "FORCE": "true" if force else "false"}, tmp)


# -- the tools' verdicts ---------------------------------------------------------------------------------------


def test_workflows_validate_against_the_github_workflow_schema() -> None:
    proc = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, ALL)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def zizmor(*inputs: Path) -> list[dict[str, Any]]:
    """zizmor's findings (JSON), offline: no GitHub API, no network, whatever token is in the environment."""
    proc = subprocess.run(
        [tool("zizmor"), "--offline", "--no-exit-codes", "--format", "json", *map(str, inputs)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    findings = json.loads(proc.stdout)
    assert isinstance(findings, list)
    return findings


def test_zizmor_finds_nothing_above_low() -> None:
    bad = [
        f"{f['ident']} ({f['determinations']['severity']}): {f['desc']} at {f['locations'][0]['concrete']['feature']}"
        for f in zizmor(*ALL)
        if f["determinations"]["severity"].lower() in BAD_SEVERITIES and not f.get("ignored")
    ]
    assert not bad, "\n".join(bad)


def test_zizmor_and_this_filter_do_catch_a_template_injection(tmp_path: Path) -> None:
    """The filter above is not vacuous: a planted `${{ }}` in a script is a high finding."""
    planted = tmp_path / "planted.yml"
    planted.write_text(
        "name: planted\non: issues\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-24.04\n"
        '    steps:\n      - run: echo "${{ github.event.issue.title }}"\n',
        encoding="utf-8",
    )
    found = {(f["ident"], f["determinations"]["severity"].lower()) for f in zizmor(planted)}
    assert ("template-injection", "high") in found


# -- the matrix the nightly gets is the generator's cells -----------------------------------------------------


def test_matrix_command_lists_every_cell() -> None:
    cells = slugs(generator("list", "--json")["cells"])
    assert cells and slugs(generator("matrix", "--json")["include"]) == cells


def test_forced_plan_lists_every_cell() -> None:
    cells = slugs(generator("list", "--json")["cells"])
    assert slugs(generator("plan", "--json", "--force")["include"]) == cells


def test_the_plan_step_hands_every_cell_to_the_build_jobs(tmp_path: Path) -> None:
    proc, out = plan_step("all", True, tmp_path)
    assert proc.returncode == 0, proc.stderr
    matrix = json.loads(out["matrix"])
    assert set(matrix) == {"include"}, "any key but include would become a matrix axis"
    cells = slugs(generator("list", "--json")["cells"])
    assert slugs(matrix["include"]) == cells
    assert out["empty"] == "false"
    assert out["cells"].split() == cells
    assert "to build" in (tmp_path / "step_summary").read_text(encoding="utf-8")


def test_the_plan_step_passes_the_chosen_cells(tmp_path: Path) -> None:
    proc, out = plan_step("1, aws-devel-*\n2", True, tmp_path)
    assert proc.returncode == 0, proc.stderr
    expected = slugs(generator("plan", "--json", "--force", "1", "aws-devel-*", "2")["include"])
    assert 2 < len(expected) < len(generator("list", "--json")["cells"])
    assert slugs(json.loads(out["matrix"])["include"]) == expected == out["cells"].split()


@pytest.mark.parametrize("cells", ["--json", "1 -h", " , "])
def test_the_plan_step_refuses_options_and_empty_lists_as_cells(cells: str, tmp_path: Path) -> None:
    proc, out = plan_step(cells, False, tmp_path)
    assert proc.returncode == 2 and "::error::" in proc.stdout + proc.stderr
    assert "matrix" not in out


# -- runner labels: one place ---------------------------------------------------------------------------------


def runner_pools() -> dict[str, list[str]]:
    pools = yaml.safe_load(RUNNERS.read_text(encoding="utf-8"))
    assert isinstance(pools, dict) and {"build", "gpu", "sandbox"} <= set(pools)
    for labels in pools.values():
        assert isinstance(labels, list) and all(isinstance(label, str) for label in labels)
    return pools


@pytest.mark.parametrize(("path", "job_id"), [(NIGHTLY, "pools"), (CI, "lint")])
def test_the_runner_step_reads_runners_yml(path: Path, job_id: str, tmp_path: Path) -> None:
    proc, out = run_step(step(load(path), job_id, "runners")["run"], {}, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {pool: json.loads(out[f"{pool}-runner"]) for pool in runner_pools()} == runner_pools()


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_self_hosted_jobs_take_their_labels_from_runners_yml(path: Path) -> None:
    assert "self-hosted" not in path.read_text(encoding="utf-8"), "labels live in .github/runners.yml only"
    workflow, pools = load(path), runner_pools()
    for job_id, job in jobs(workflow).items():
        runs_on = job["runs-on"]
        if isinstance(runs_on, str) and HOSTED.match(runs_on):
            continue
        match = RUNNER_OUTPUT.match(runs_on) if isinstance(runs_on, str) else None
        assert match, f"{job_id}: runs-on {runs_on!r} is neither GitHub-hosted nor from .github/runners.yml"
        source, pool = match.groups()
        assert pool in pools, f"{job_id}: no pool {pool!r} in .github/runners.yml"
        needs = job.get("needs", [])
        assert source in ([needs] if isinstance(needs, str) else needs), f"{job_id} must need {source}"
        output = jobs(workflow)[source]["outputs"][f"{pool}-runner"]
        assert output == f"${{{{ steps.runners.outputs.{pool}-runner }}}}"


def test_the_docs_name_every_runner_label_and_secret() -> None:
    docs = OPERATING.read_text(encoding="utf-8")
    assert ".github/runners.yml" in docs
    for pool, labels in runner_pools().items():
        for label in labels:
            assert f"`{label}`" in docs, f"docs/operating.md does not name the {pool} label {label}"
    for name in SECRETS:
        assert name in docs, f"docs/operating.md does not name the secret {name}"


def test_the_docs_list_every_pin_in_use() -> None:
    docs = OPERATING.read_text(encoding="utf-8")
    for path in ALL:
        for _, s in steps(load(path)):
            if "uses" in s:
                action, sha = s["uses"].split("@")
                assert f"`{action}`" in docs and f"`{sha}`" in docs, f"docs/operating.md lacks the pin {s['uses']}"


# -- supply chain and privileges ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_full_commit_sha(path: Path) -> None:
    uses = [s["uses"] for _, s in steps(load(path)) if "uses" in s]
    assert uses
    assert [u for u in uses if not PINNED.match(u)] == []
    for line in path.read_text(encoding="utf-8").splitlines():  # and says which release that SHA is
        if re.search(r"\buses:", line):
            assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_job_has_a_timeout(path: Path) -> None:
    for job_id, job in jobs(load(path)).items():
        minutes = job.get("timeout-minutes")
        assert isinstance(minutes, int) and 0 < minutes <= 180, f"{job_id}: timeout-minutes {minutes!r}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_permissions_are_least_privilege(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] in ({}, {"contents": "read"}), "top-level permissions grant nothing to write"
    for job_id, job in jobs(workflow).items():
        granted = job.get("permissions")
        assert isinstance(granted, dict), f"{job_id}: no explicit permissions mapping"
        writes = {scope for scope, level in granted.items() if level == "write"}
        if (path.name, job_id) in WRITE_JOBS:
            assert writes == WRITE_JOBS[path.name, job_id], f"{job_id}: {granted}"
        else:
            assert not writes, f"{job_id} may not write: {granted}"
        assert set(granted.values()) <= {"read", "write", "none"}


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_secrets_reach_steps_only_through_env(path: Path) -> None:
    workflow = load(path)
    used = set()
    for where, text in strings(workflow):
        if SECRET.search(text):
            assert len(where) >= 2 and where[-2] == "env", f"secret outside an env: mapping at {where}"
            match = SECRET_VALUE.match(text)
            assert match, f"{where}: an env value is exactly one secret, nothing around it: {text!r}"
            used.add(match.group(1))
    assert used <= SECRETS, f"secrets docs/operating.md does not describe: {used - SECRETS}"
    for _, s in steps(workflow):
        assert "secrets" not in s.get("run", ""), f"{s.get('name')}: a script names secrets"
        assert not SECRET.search(json.dumps(s.get("with", {}))), f"{s.get('name')}: a secret as an input"
    for job_id, job in jobs(workflow).items():
        assert job.get("secrets") != "inherit", job_id


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_scripts_never_print_a_secret(path: Path) -> None:
    """No tracing (`set -x` would log the printf that writes the Databricks profile), no echo of a secret."""
    for _, s in steps(load(path)):
        script = s.get("run", "")
        assert not re.search(r"\bset\s+(-\w*x|-o\s+xtrace)", script), f"{s.get('name')}: tracing on"
        secret_vars = [name for name, value in s.get("env", {}).items() if SECRET_VALUE.match(str(value))]
        for line in script.splitlines():
            if any(re.search(rf"\${{?{name}\b", line) for name in secret_vars):
                assert not re.search(r"\b(echo|cat|tee)\b", line), f"{s.get('name')}: prints a secret: {line}"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_no_expression_is_expanded_inside_a_script(path: Path) -> None:
    """`${{ }}` in `run:` is pasted into the script before bash reads it: data becomes code."""
    for text in run_texts(load(path)):
        assert "${{" not in text, text


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_checkout_never_leaves_the_token_on_disk(path: Path) -> None:
    checkouts = [s for _, s in steps(load(path)) if s.get("uses", "").startswith("actions/checkout@")]
    assert checkouts
    for s in checkouts:
        assert s.get("with", {}).get("persist-credentials") is False


# -- what each workflow runs ----------------------------------------------------------------------------------


def test_ci_runs_lint_the_stale_check_and_the_tests() -> None:
    workflow = load(CI)
    assert set(workflow["on"]) == {"pull_request", "push"}
    assert workflow["on"]["push"]["branches"] == ["main"]
    script = "\n".join(run_texts(workflow))
    for command in (
        "ruff check",
        "ruff format --check",
        "mypy",
        "hadolint --config .hadolint.yaml images/*/Dockerfile",
        "generator generate --check",
        "pytest",
        "pytest tests/integration",
        "check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml",
        "zizmor --offline",
    ):
        assert command in script, f"ci.yml does not run `{command}`"
    pythons = [s for _, s in steps(workflow) if s.get("uses", "").startswith("actions/setup-python@")]
    assert pythons and all(s["with"].get("cache") == "pip" for s in pythons)


def test_nightly_is_scheduled_dispatchable_and_never_cancelled() -> None:
    workflow = load(NIGHTLY)
    assert workflow["on"]["schedule"][0]["cron"]
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["cells"]["type"] == "string" and inputs["cells"]["default"] == "all"
    assert inputs["force"]["type"] == "boolean" and inputs["force"]["default"] is False
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_nightly_fans_out_the_plan_and_gates_publication() -> None:
    workflow = load(NIGHTLY)
    all_jobs = jobs(workflow)
    assert set(all_jobs) == {"pools", "compile", "refresh", "plan", "build", "benchmark", "gate", "publish"}
    assert all_jobs["plan"]["outputs"]["matrix"] == "${{ steps.plan.outputs.matrix }}"
    assert "python -m generator plan --json" in step(workflow, "plan", "plan")["run"]
    for job_id in ("build", "benchmark"):
        job = all_jobs[job_id]
        assert job["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
        assert job["strategy"]["fail-fast"] is False
        assert isinstance(job["strategy"]["max-parallel"], int)
        assert "needs.plan.outputs.empty == 'false'" in job["if"], f"{job_id} must skip an empty plan"
    gate = all_jobs["gate"]
    assert {"plan", "build", "benchmark"} <= set(gate["needs"])
    assert gate["if"].startswith("success()")
    gate_script = "\n".join(s.get("run", "") for s in gate["steps"])
    assert "python -m generator promote --atomic" in gate_script and "generator push" not in gate_script
    assert gate["runs-on"] == "ubuntu-24.04"  # promote needs no Docker engine
    build_script = "\n".join(s.get("run", "") for s in all_jobs["build"]["steps"])
    assert "python -m generator push --atomic" in build_script  # the candidate, to staging
    gpu_script = "\n".join(s.get("run", "") for s in all_jobs["benchmark"]["steps"])
    assert "generator build" not in gpu_script and "generator fetch" not in gpu_script  # it pulls by digest
    assert "python -m generator register" in gate_script
    publish = all_jobs["publish"]
    assert publish["needs"] == "gate" and publish["if"] == "success()"
    assert "python -m generator publish --out site/" in "\n".join(run_texts({"jobs": {"publish": publish}}))
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in publish["steps"])


@pytest.mark.parametrize("force", [True, False])
def test_a_forced_night_forces_the_build_too(force: bool, tmp_path: Path) -> None:
    """The plan lists every cell when forced; the build step must then build them, not report "up to date".
    The step runs as a runner runs it, with a `python` that records its arguments instead of building."""
    job = jobs(load(NIGHTLY))["build"]
    assert job["env"]["FORCE"] == "${{ inputs.force && 'true' || 'false' }}"
    (build,) = [s for s in job["steps"] if s.get("name") == "Build"]
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\n')
    (fake / "python").chmod(0o755)
    env = {"CELL": "aws-runtime-torch2.6", "FORCE": "true" if force else "false", "PATH": f"{fake}:/usr/bin:/bin"}
    proc = subprocess.run(["bash", "-eo", "pipefail", "-c", build["run"]], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    argv = (tmp_path / "argv").read_text().split()
    assert argv[:3] == ["-m", "generator", "build"] and argv[-1] == "aws-runtime-torch2.6"
    assert ("--force" in argv) is force


# -- the refresh job: run as a runner runs it -----------------------------------------------------------------

REPO = "acme/air-fleet"
TODAY_BRANCH = "lock-refresh/" + datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
PR_URL = f"https://github.com/{REPO}/pull/7"
# `python`: pip install is a no-op; `lock --refresh` moves a base digest (FAKE_LOCK=moved), asks nothing new
# (same) or moves one and fails on another (fail); `generate` renders the lock into images/; `outdated` prints
# a proposal and exits FAKE_OUTDATED.
FAKE_PYTHON = """#!/bin/bash
printf '%s\\n' "$*" >> "$FAKES/python.log"
case "$*" in
  "-m pip install"*) ;;
  "-m generator lock --refresh")
    if [ "$FAKE_LOCK" = same ]; then
      echo "0 cells' content digests change: none"
    else
      echo '{"bases": {"air:dcs-base-aws-runtime": "sha256:bbb"}}' > wheels.lock.json
      echo "moved: base air:dcs-base-aws-runtime: sha256:aaa -> sha256:bbb (1 cells: aws-runtime-torch2.8)"
      echo "1 cells' content digests change: aws-runtime-torch2.8"
    fi
    echo "wheels.lock.json: 1 inputs locked"
    if [ "$FAKE_LOCK" = fail ]; then echo "error: docker.invalid/other: no answer" >&2; exit 1; fi ;;
  "-m generator generate")
    if [ -e wheels.lock.json ]; then mkdir -p images/a; cp wheels.lock.json images/a/base.json; fi ;;
  "-m generator outdated")
    echo "torch      2.9.1     new minor 2.9 (in the knowledge): add a torch line"
    exit "${FAKE_OUTDATED:-1}" ;;
  *) echo "fake python: unexpected $*" >&2; exit 99 ;;
esac
"""
# `gh`: records its arguments and any --body-file; `pr view` finds a pull request only with FAKE_GH_EXISTING;
# `pr list` prints FAKE_GH_OPEN (what its --jq would print: "<number> <head branch>" lines).
FAKE_GH = """#!/bin/bash
printf '%s\\n' "$*" >> "$FAKES/gh.log"
previous=""
for arg in "$@"; do
  if [ "$previous" = --body-file ]; then cp "$arg" "$FAKES/pr-body.md"; fi
  previous="$arg"
done
case "$1 $2" in
  "pr view") [ -n "$FAKE_GH_EXISTING" ] && echo "$FAKE_GH_EXISTING" ;;
  "pr create") echo "__URL__" ;;
  "pr list") printf '%s' "$FAKE_GH_OPEN" ;;
  "auth setup-git"|"pr edit"|"pr close") ;;
  *) echo "fake gh: unexpected $*" >&2; exit 99 ;;
esac
""".replace("__URL__", PR_URL)


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd.parent / "home")}
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main"]
    done = subprocess.run(["git", *ident, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A clone of a bare `origin` whose main has a lock and images/, as actions/checkout leaves it."""
    (tmp_path / "home").mkdir()
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git(tmp_path, "init", "--quiet", "--bare", str(origin))
    work.mkdir()
    git(work, "init", "--quiet")
    (work / "wheels.lock.json").write_text('{"bases": {"air:dcs-base-aws-runtime": "sha256:aaa"}}\n')
    (work / "images" / "a").mkdir(parents=True)
    (work / "images" / "a" / "base.json").write_text('{"bases": {"air:dcs-base-aws-runtime": "sha256:aaa"}}\n')
    git(work, "add", ".")
    git(work, "commit", "--quiet", "-m", "main")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "--quiet", "origin", "HEAD:refs/heads/main")
    return work


def expand(value: str, outputs: dict[str, str]) -> str:
    """A step's env value as GitHub would expand it, for the few expressions the refresh job uses."""
    known = {"github.token": "fake-token", "github.repository": REPO}
    match = re.fullmatch(r"\$\{\{\s*(.+?)\s*\}\}", value)
    if match is None:
        return value
    expr = match.group(1)
    step_output = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr)
    if step_output:
        return outputs.get(f"{step_output.group(1)}.{step_output.group(2)}", "")
    assert expr in known, f"the test does not know how to expand {value!r}"
    return known[expr]


def run_refresh(checkout: Path, **fakes: str) -> tuple[int, str, Path]:
    """Every `run:` step of the refresh job in order, as a runner runs them (`uses:` steps are what the
    fixture did); stops at the first that fails, as GitHub does. Returns (status, output, fakes dir)."""
    tmp = checkout.parent
    bin_dir, temp = tmp / "bin", tmp / "runner_temp"
    bin_dir.mkdir(exist_ok=True)
    temp.mkdir(exist_ok=True)
    for name, text in (("python", FAKE_PYTHON), ("gh", FAKE_GH)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    base = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp / "home"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "FAKES": str(tmp),
        "RUNNER_TEMP": str(temp),
        "GITHUB_STEP_SUMMARY": str(tmp / "step_summary"),
        "GITHUB_REF_NAME": "main",
        "GITHUB_REF_TYPE": "branch",
        **fakes,
    }
    outputs: dict[str, str] = {}
    log = ""
    for s in jobs(load(NIGHTLY))["refresh"]["steps"]:
        if "run" not in s:
            continue
        assert "if" not in s, "the harness runs every step: a condition would need emulating"
        output = temp / f"output-{s.get('id', 'step')}"
        env = {**base, "GITHUB_OUTPUT": str(output)}
        env.update({name: expand(str(value), outputs) for name, value in s.get("env", {}).items()})
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", s["run"]],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        log += proc.stdout + proc.stderr
        if output.exists() and "id" in s:
            for line in output.read_text().splitlines():
                key, _, value = line.partition("=")
                outputs[f"{s['id']}.{key}"] = value
        if proc.returncode != 0:
            return proc.returncode, log, tmp
    return 0, log, tmp


def gh_calls(fakes: Path) -> list[str]:
    path = fakes / "gh.log"
    return path.read_text().splitlines() if path.exists() else []


def test_refresh_runs_before_plan_and_never_holds_it_back() -> None:
    all_jobs = jobs(load(NIGHTLY))
    refresh, plan = all_jobs["refresh"], all_jobs["plan"]
    assert plan["needs"] == "refresh" and refresh["needs"] == "compile"
    assert list(all_jobs)[:4] == ["pools", "compile", "refresh", "plan"]  # written as they run
    # A failed refresh (upstream down) is red, yet reports success to `plan`: tonight still builds main's lock.
    assert refresh["continue-on-error"] is True
    assert "if" not in plan
    assert refresh["runs-on"] == "ubuntu-24.04"
    assert "environment" not in refresh, "the refresh reads no secret: none of air-fleet's may reach it"
    assert refresh["permissions"] == {"contents": "write", "pull-requests": "write"}
    pythons = [s for s in refresh["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
    assert pythons and all("cache" not in s["with"] for s in pythons), "no cache beside a token that can push"
    script = "\n".join(s.get("run", "") for s in refresh["steps"])
    for command in (
        "python -m generator lock --refresh",
        "python -m generator generate",
        "python -m generator outdated",
    ):
        assert command in script, f"refresh does not run `{command}`"


def test_the_refresh_job_stages_the_default_profiles_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    from generator.spec.profiles import load_profile

    monkeypatch.chdir(ROOT)  # the default profile's paths are the checkout's, as on the runner
    (propose,) = [s for s in jobs(load(NIGHTLY))["refresh"]["steps"] if "gh pr create" in s.get("run", "")]
    assert load_profile("default", None).lock.resolve() == ROOT / propose["env"]["LOCK"]


def test_the_refresh_opens_a_pull_request_with_what_moved(checkout: Path) -> None:
    status, log, fakes = run_refresh(checkout, FAKE_LOCK="moved")
    assert status == 0, log
    # The branch is on origin, one commit over main, holding exactly the lock and images/.
    origin = checkout.parent / "origin.git"
    changed = git(origin, "diff", "--name-only", "main", TODAY_BRANCH).split()
    assert changed == ["images/a/base.json", "wheels.lock.json"]
    message = git(origin, "log", "-1", "--format=%B", TODAY_BRANCH)
    assert "moved: base air:dcs-base-aws-runtime: sha256:aaa -> sha256:bbb" in message
    calls = gh_calls(fakes)
    assert calls[0] == "auth setup-git", "git pushes with gh's credentials, the token never in a URL"
    (create,) = [c for c in calls if c.startswith("pr create")]
    assert f"--base main --head {TODAY_BRANCH}" in create
    body = (fakes / "pr-body.md").read_text()
    assert "moved: base air:dcs-base-aws-runtime: sha256:aaa -> sha256:bbb (1 cells: aws-runtime-torch2.8)" in body
    assert "1 cells' content digests change: aws-runtime-torch2.8" in body
    summary = (fakes / "step_summary").read_text()
    assert "torch      2.9.1     new minor 2.9" in summary, "outdated's output goes to the job summary"
    assert f"Pull request: {PR_URL}" in summary
    assert "fake-token" not in log


def test_nothing_moved_is_no_branch_and_no_pull_request(checkout: Path) -> None:
    status, log, fakes = run_refresh(checkout, FAKE_LOCK="same", FAKE_OUTDATED="0")
    assert status == 0, log
    assert git(checkout.parent / "origin.git", "for-each-ref", "--format=%(refname)").split() == ["refs/heads/main"]
    assert gh_calls(fakes) == []
    summary = (fakes / "step_summary").read_text()
    assert "Nothing moved upstream: no pull request." in summary and "exited 0" in summary


def test_a_refresh_supersedes_the_one_nobody_merged(checkout: Path) -> None:
    open_prs = "12 lock-refresh/2020-01-01\n13 feature-x\n"
    status, log, fakes = run_refresh(checkout, FAKE_LOCK="moved", FAKE_GH_OPEN=open_prs)
    assert status == 0, log
    closes = [c for c in gh_calls(fakes) if c.startswith("pr close")]
    assert closes == [f"pr close 12 --delete-branch --comment Superseded by {PR_URL}"]


def test_a_rerun_on_the_same_day_updates_that_days_pull_request(checkout: Path) -> None:
    status, log, fakes = run_refresh(checkout, FAKE_LOCK="moved", FAKE_GH_EXISTING=PR_URL)
    assert status == 0, log
    calls = gh_calls(fakes)
    assert f"pr edit {TODAY_BRANCH} --body-file {checkout.parent / 'runner_temp' / 'pr-body.md'}" in calls
    assert not [c for c in calls if c.startswith("pr create")]


def test_a_failed_refresh_still_proposes_what_moved_and_ends_red(checkout: Path) -> None:
    status, log, fakes = run_refresh(checkout, FAKE_LOCK="fail", FAKE_OUTDATED="2")
    assert status == 1
    assert "::error::lock --refresh exited 1" in log
    assert "::warning::outdated: the package index did not answer (exit 2)" in log
    assert [c for c in gh_calls(fakes) if c.startswith("pr create")], "what could be asked is still proposed"


def test_compile_runs_before_the_refresh_which_proposes_its_lock_entries() -> None:
    """Source-built extensions compile once on the build pool before the refresh; a new compile key's lock
    entry reaches the refresh's pull request as an artifact; a failed compile never holds the night back."""
    all_jobs = jobs(load(NIGHTLY))
    compile_job, refresh = all_jobs["compile"], all_jobs["refresh"]
    assert compile_job["continue-on-error"] is True and compile_job["environment"] == "air-fleet"
    assert compile_job["runs-on"] == "${{ fromJSON(needs.pools.outputs.build-runner) }}"
    assert "python -m generator compile" in "\n".join(s.get("run", "") for s in compile_job["steps"])
    (upload,) = [s for s in compile_job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["with"]["name"] == "compiled-lock" and upload["with"]["path"] == "wheels.lock.json"
    names = [s.get("name", "") for s in refresh["steps"]]
    (download,) = [s for s in refresh["steps"] if s.get("uses", "").startswith("actions/download-artifact@")]
    assert download["with"]["name"] == "compiled-lock" and download["continue-on-error"] is True
    assert names.index(download["name"]) < names.index(
        "Refresh the lock (what moved upstream, which cells' content digests change)"
    )
