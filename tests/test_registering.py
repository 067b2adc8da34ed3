"""`python -m generator register`: targets come from promote records only, registered by their release
reference by digest; a second run calls no CLI.

The Databricks workspace behind the CLIs cannot exist here: the stand-in `databricks` executable of
tests/fixtures/fake_cli follows the documented contract (see tests/test_register.py for the adapters).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from generator.fleet import Fleet
from generator.results import record_path, write_record
from generator.spec.profiles import load_profile
from tests.conftest import ROOT, WriteMatrix

FAKE_CLI = ROOT / "tests" / "fixtures" / "fake_cli"
MATRIX = """\
schema: 1
registry: {host: 127.0.0.1:5000, repository: team/air}
clouds: [aws]
variants: [runtime, devel]
accelerators: [GPU_1xA10]
torch:
  - {version: 2.6.0}
"""


def test_register_only_what_was_promoted_and_only_once(write_matrix: WriteMatrix, tmp_path: Path) -> None:
    matrix = write_matrix(MATRIX)
    pushed, not_pushed = Fleet.load(matrix).render()
    results, state = tmp_path / "results", tmp_path / "state"
    manifest = "sha256:" + hashlib.sha256(b"the promoted manifest").hexdigest()
    records = load_profile("default", matrix).records
    write_record(
        record_path(results, records, "promote", pushed.cell.slug),
        {"slug": pushed.cell.slug, "digest": pushed.digest, "status": "promoted", "manifest_digest": manifest},
    )
    # Pushed to staging but never promoted: not registered.
    write_record(
        record_path(results, records, "push", not_pushed.cell.slug),
        {"slug": not_pushed.cell.slug, "digest": not_pushed.digest, "status": "pushed", "repo_digest": manifest},
    )
    release_ref = f"{pushed.cell.image}@{manifest}"
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"default": {"steps": ["success"]}}))
    env = {
        "PATH": f"{FAKE_CLI}:/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "AIR_FLEET_RESULTS": str(results),
        "AIR_FLEET_STATE": str(state),
        "FAKE_CLI_SCENARIO": str(scenario),
        "FAKE_CLI_STATE": str(tmp_path),
        "DATABRICKS_TOKEN": "dapi-planted-secret-0123456789",
    }

    def register() -> subprocess.CompletedProcess[str]:
        argv = [
            sys.executable,
            "-m",
            "generator",
            "--matrix",
            str(matrix),
            "register",
            "--json",
            "--workspace-profile",
            "ws",
        ]
        return subprocess.run(
            argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL
        )

    first = register()
    assert first.returncode == 1, first.stderr  # the cell that was never promoted is a failure
    outcomes = {o["slug"]: o for o in json.loads(first.stdout)["outcomes"]}
    assert outcomes[pushed.cell.slug]["status"] == "registered"
    assert outcomes[not_pushed.cell.slug]["status"] == "failed"
    assert "not promoted (no promote record)" in outcomes[not_pushed.cell.slug]["detail"]
    calls = (tmp_path / "calls.jsonl").read_text().splitlines()
    assert len(calls) == 1 and json.loads(calls[0])["ref"] == release_ref
    argv = json.loads(calls[0])["argv"]
    assert (
        argv[:4] == ["experimental", "air", "register-image", release_ref] and "--interactive-authenticate" not in argv
    )

    second = register()
    again = {o["slug"]: o for o in json.loads(second.stdout)["outcomes"]}
    assert again[pushed.cell.slug]["status"] == "already registered"
    assert len((tmp_path / "calls.jsonl").read_text().splitlines()) == 1  # the ledger: no second CLI call
    everything = first.stdout + first.stderr + second.stdout + second.stderr
    everything += "".join(p.read_text() for p in [*results.rglob("*.json"), *state.rglob("*.json")])
    assert "planted-secret" not in everything
    assert os.environ.get("DATABRICKS_TOKEN") != env["DATABRICKS_TOKEN"]  # the secret lived only in the child
