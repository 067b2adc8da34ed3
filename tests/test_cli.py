"""The CLI as users and CI run it: list, show, check, matrix, help, exit statuses; and nox's session list."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from tests.conftest import DEFAULT_MATRIX, MINIMAL, ROOT, WriteMatrix, run_cli


def test_list_prints_every_cell_of_the_default_matrix() -> None:
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["#", "slug", "base", "image"]
    rows = [ln for ln in lines[2:] if ln[:1].isdigit() and " cells from " not in ln]
    assert len(rows) >= 24
    assert rows[0].split()[:2] == ["1", "aws-runtime-torch2.6"]
    assert f"{len(rows)} cells from matrix.yaml" in result.stdout
    row = next(r for r in rows if " aws-runtime-torch2.6-flash-attn2.7.4.post1 " in r)
    for field in (
        "databricksruntime/air:dcs-base-aws-runtime",
        "3.12",
        "12.9.1",
        "2.6.0/0.21.0/2.6.0",
        "cu124",
        "flash-attn==2.7.4.post1",
        "1xA10,1xH100,8xH100",
    ):
        assert field in row


def test_list_json_has_everything_resolved() -> None:
    data = json.loads(run_cli("list", "--json").stdout)
    cells = data["cells"]
    assert [c["index"] for c in cells] == list(range(1, len(cells) + 1))
    fa = next(c for c in cells if c["slug"] == "aws-runtime-torch2.6-flash-attn2.7.4.post1")
    assert fa["torch"] == {
        "torch": "2.6.0",
        "torchvision": "0.21.0",
        "torchaudio": "2.6.0",
        "index": "cu124",
        "from_default_index": True,
        "cuda": "12.4",
        "cxx11_abi": 0,
        "nccl": "2.21.5",
    }
    assert fa["extensions"][0]["artifacts"] == [  # einops is in the locked Python environment instead
        "flash_attn-2.7.4.post1+cu12torch2.6cxx11abiFALSE-cp312-cp312-linux_x86_64.whl",
    ]
    assert fa["accelerators"] == ["GPU_1xA10", "GPU_1xH100", "GPU_8xH100"]


def test_show_by_index_and_slug_agree() -> None:
    by_index = json.loads(run_cli("show", "2", "--json").stdout)
    by_slug = json.loads(run_cli("show", by_index["slug"], "--json").stdout)
    assert by_index == by_slug
    committed = json.loads((ROOT / "images" / by_index["slug"] / "cell.json").read_text())
    assert by_index["digest"] == committed["digest"]
    text = run_cli("show", "2").stdout
    assert "## Compatibility Check" in text and by_index["digest"] in text


def test_check_exit_status(write_matrix: WriteMatrix) -> None:
    ok = run_cli("check")
    assert ok.returncode == 0 and "0 FAIL" in ok.stdout
    bad = write_matrix(MINIMAL.replace("{version: 2.6.0}", "{version: 2.6.0, index: cu128}"))
    failed = run_cli("--matrix", str(bad), "check", "--json")
    assert failed.returncode == 1
    data = json.loads(failed.stdout)
    assert data["counts"] == {"FAIL": 1}
    check = next(c for c in data["cells"][0]["checks"] if c["id"] == "torch-cuda")
    assert check["status"] == "FAIL" and "no cu128 build" in check["detail"]


def test_matrix_json_is_a_github_actions_matrix() -> None:
    data = json.loads(run_cli("matrix", "--json").stdout)
    assert list(data) == ["include"]
    listed = json.loads(run_cli("list", "--json").stdout)["cells"]
    assert [e["slug"] for e in data["include"]] == [c["slug"] for c in listed]
    index = json.loads((ROOT / "images" / "index.json").read_text())["cells"]
    assert [e["digest"] for e in data["include"]] == [c["digest"] for c in index]


def test_help_teaches() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for word in ("list", "show", "check", "matrix", "generate", "--matrix", "examples:", "exit status"):
        assert word in result.stdout


def test_missing_matrix_is_one_line_exit_2(tmp_path: object) -> None:
    result = run_cli("--matrix", "/nonexistent/matrix.yaml", "list")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "/nonexistent/matrix.yaml: cannot read" in result.stderr


def test_nox_sessions_are_generated_from_the_matrix() -> None:
    def nox(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "nox", "-l", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
        ).stdout

    listing = nox()
    names = (
        "generate",
        "check",
        "build",
        "probe",
        "bench",
        "push",
        "promote",
        "register",
        "publish",
        "fleet",
        "sandbox",
    )
    for name in (*names, "lint", "tests"):
        assert f" {name} -> " in listing
    per_cell = {s["session"]: s["description"] for s in json.loads(nox("--json", "-t", "cells"))}
    cells = json.loads(run_cli("--matrix", str(DEFAULT_MATRIX), "list", "--json").stdout)["cells"]
    verbs = ("check", "build", "probe", "bench", "push", "promote", "register")
    assert len(per_cell) == len(verbs) * len(cells)
    for cell in cells:
        for verb in verbs:
            assert per_cell[f"{verb}-{cell['index']}"] == f"{verb} {cell['slug']}"


def test_plan_and_bake_from_the_cli(tmp_path: object) -> None:
    from pathlib import Path

    out = Path(str(tmp_path))
    github = out / "github_output"
    result = run_cli("plan", "--force", "--github-output", str(github), "--json")
    assert result.returncode == 0, result.stderr
    planned = json.loads(result.stdout)
    listed = json.loads(run_cli("list", "--json").stdout)["cells"]
    assert [c["slug"] for c in planned["include"]] == [c["slug"] for c in listed]
    assert planned["include"][0]["dir"] == f"images/{listed[0]['slug']}"
    lines = dict(line.split("=", 1) for line in github.read_text().splitlines())
    assert json.loads(lines["matrix"]) == {"include": planned["include"]} and lines["empty"] == "false"
    bake = run_cli("bake", "--out", str(out / "docker-bake.json"))
    assert bake.returncode == 0 and f"{len(listed)} targets, written" in bake.stdout
    data = json.loads((out / "docker-bake.json").read_text())
    assert len(data["group"]["default"]["targets"]) == len(listed)


def test_every_command_has_its_function_and_list_loads_no_docker_sdk() -> None:
    import importlib

    from generator.cli import COMMANDS, _parser

    (subparsers,) = (a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == {*COMMANDS, "sandbox"}
    for command, module in COMMANDS.items():
        assert callable(getattr(importlib.import_module(f"generator.cli.{module}"), f"cmd_{command}"))
    # At exit (after `list` ran and called sys.exit), say whether the Docker SDK was ever imported.
    script = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('docker' in sys.modules))\n"
        "sys.argv = ['generator', 'list']\n"
        "runpy.run_module('generator', run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.stdout.splitlines()[-1] == "False", done.stderr
