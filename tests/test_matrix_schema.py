"""docs/matrix.schema.json: generated from the loader's own key definition, committed, named by every
matrix, and in agreement with the loader about misspelt keys (checked with check-jsonschema, the tool
editors' and CI's JSON Schema checks are built on)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from generator.errors import MatrixError
from generator.fleet import Fleet
from generator.spec import matrix
from generator.spec.knowledge import knowledge
from generator.spec.schema import json_schema
from tests.conftest import DEFAULT_MATRIX, MINIMAL, WriteMatrix, run_cli

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "docs" / "matrix.schema.json"
MATRICES = [DEFAULT_MATRIX, ROOT / "generator" / "profiles" / "sandbox.matrix.yaml"]
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def schema_accepts(path: Path) -> tuple[bool, str]:
    done = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--schemafile", str(SCHEMA), str(path)], capture_output=True, text=True, check=False
    )
    return done.returncode == 0, done.stdout + done.stderr


def test_the_committed_schema_is_what_the_definition_generates() -> None:
    result = run_cli("schema", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_command_writes_the_file_it_checks(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert run_cli("schema", "--out", str(out)).returncode == 0
    assert out.read_bytes() == SCHEMA.read_bytes()
    out.write_text("{}\n")
    stale = run_cli("schema", "--check", "--out", str(out))
    assert stale.returncode == 1 and "stale" in stale.stdout


@pytest.mark.parametrize("path", MATRICES, ids=lambda p: p.name)
def test_every_matrix_names_the_schema_and_passes_it(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    named = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert named is not None, first
    assert (path.parent / named.group(1)).resolve() == SCHEMA  # relative to the file, as editors resolve it
    ok, out = schema_accepts(path)
    assert ok, out


def test_loader_and_schema_share_one_key_definition() -> None:
    """The key sets the loader enforces are the schema's properties, level by level."""
    s = json_schema(knowledge())
    assert set(s["properties"]) == matrix.TOP_KEYS
    assert set(s["required"]) == {"schema", "registry", "clouds", "variants", "accelerators", "torch"}
    row = s["properties"]["torch"]["items"]["anyOf"][1]
    assert set(row["properties"]) >= matrix.TORCH_KEYS
    assert set(s["properties"]["registry"]["properties"]) == {"host", "repository", "staging"}
    assert s["properties"]["registry"]["required"] == ["host", "repository"]


TYPOS = [
    # (what, the line as written in MINIMAL or appended, the misspelt line)
    ("top-level key", "stacks: {s: [einops]}\n", "stack: {s: [einops]}\n"),
    ("registry key", "registry: {host: registry.example.com", "registry: {hots: registry.example.com"),
    ("selector key", "exclude:\n  - {variant: devel}\n", "exclude:\n  - {varaint: devel}\n"),
    (
        "include key",
        "include:\n  - {base: scratch, cloud: aws, variant: runtime, torch: 2.6.0, stack: s}\n",
        "include:\n  - {base: scratch, cloud: aws, variant: runtime, torch: 2.6.0, stakc: s}\n",
    ),
    (
        "extension key",
        "extensions:\n  einops: {kind: pip, version: 0.8.2}\n",
        "extensions:\n  einops: {kind: pip, verison: 0.8.2}\n",
    ),
    (
        "override key",
        "overrides:\n  - select: {cloud: aws}\n    accelerators: [GPU_1xA10]\n",
        "overrides:\n  - selct: {cloud: aws}\n    accelerators: [GPU_1xA10]\n",
    ),
    ("accelerator value", "accelerators: [GPU_1xA10]", "accelerators: [GPU_1xA100]"),
]


@pytest.mark.parametrize(("what", "good", "bad"), TYPOS, ids=[t[0] for t in TYPOS])
def test_a_misspelt_key_fails_both_the_schema_and_the_loader(
    write_matrix: WriteMatrix, what: str, good: str, bad: str
) -> None:
    base = MINIMAL.replace("variants: [runtime]", "variants: [runtime, devel]")
    text = base + "stacks: {s: [einops]}\n" + "extensions:\n  einops: {kind: pip, version: 0.8.2}\n"
    if good not in text:
        text += good
    path = write_matrix(text)
    ok, out = schema_accepts(path)
    assert ok, f"the good {what} must pass: {out}"
    Fleet.load(path)  # and load

    path = write_matrix(text.replace(good, bad))
    ok, _ = schema_accepts(path)
    assert not ok, f"the schema let a misspelt {what} through"
    with pytest.raises(MatrixError):
        Fleet.load(path)
