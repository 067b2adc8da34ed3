"""Profiles: read by the matrix's strict loader (a misspelt key is a one-line error, never a default), and
where a fleet's records go: another matrix (--matrix) never writes over the real fleet's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from generator.errors import MatrixError
from generator.spec import profiles
from generator.spec.profiles import load_profile
from tests.conftest import MINIMAL, ROOT, WriteMatrix

SANDBOX = profiles.PROFILES_DIR / "sandbox.yaml"


@pytest.fixture
def profile_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A profiles folder holding the sandbox profile (its matrix and lock), and a copy of it as `trial`."""
    for name in ("sandbox.yaml", "sandbox.matrix.yaml", "sandbox.lock.json"):
        shutil.copy(profiles.PROFILES_DIR / name, tmp_path / name)
    shutil.copy(SANDBOX, tmp_path / "trial.yaml")
    monkeypatch.setattr(profiles, "PROFILES_DIR", tmp_path)
    return tmp_path


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(text))


def test_the_copy_loads_like_the_sandbox(profile_dir: Path) -> None:
    trial, sandbox = load_profile("trial"), load_profile("sandbox")
    assert (trial.torch_from, trial.knowledge_overlay, trial.images) == (
        sandbox.torch_from,
        sandbox.knowledge_overlay,
        sandbox.images,
    )


def test_a_misspelt_torch_from_is_refused_with_its_line(profile_dir: Path) -> None:
    """`torch_form: wheelhouse` was ignored by yaml.safe_load + .get(): the profile silently used the index."""
    path = profile_dir / "trial.yaml"
    path.write_text(path.read_text().replace("torch_from: wheelhouse", "torch_form: wheelhouse"))
    with pytest.raises(MatrixError) as info:
        load_profile("trial")
    line = _line_of(path, "torch_form:")
    assert str(info.value) == (
        f"{path}:{line}: torch_form: unknown key 'torch_form' "
        "(allowed: description, matrix, lock, images, torch_from, knowledge, bases_lock, signing)"
    )


@pytest.mark.parametrize(
    ("old", "new", "key", "why"),
    [
        ("torch_from: wheelhouse", "torch_from: pip", "torch_from", "must be one of index, wheelhouse"),
        ("matrix: sandbox.matrix.yaml", "matrix: [sandbox.matrix.yaml]", "matrix", "expected a string"),
        ("  bases.yaml:", "  base.yaml:", "knowledge.base.yaml", "unknown knowledge file 'base.yaml'"),
        ("matrix: sandbox.matrix.yaml", "", None, "missing required key 'matrix'"),
        ("torch_from: wheelhouse", "torch_from: &w wheelhouse\nx: *w", None, "anchors and aliases"),
    ],
)
def test_bad_profiles_are_one_line_errors(profile_dir: Path, old: str, new: str, key: str | None, why: str) -> None:
    path = profile_dir / "trial.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(MatrixError) as info:
        load_profile("trial")
    message = str(info.value)
    assert message.startswith(f"{path}:") and why in message and "\n" not in message
    if key is not None:
        assert f": {key}: " in message


def test_a_profile_without_knowledge_has_an_empty_overlay(profile_dir: Path) -> None:
    path = profile_dir / "trial.yaml"
    text = path.read_text()
    path.write_text(text[: text.index("# Facts that differ")])
    assert load_profile("trial").knowledge_overlay == "{}"


# --- whose records: the real fleet's, or another matrix's ------------------------------------------------------


def test_the_profiles_own_matrix_keeps_the_profiles_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert load_profile("default").records == "default"
    assert load_profile("default", Path("matrix.yaml")).records == "default"
    assert load_profile("default", ROOT / "matrix.yaml").records == "default"
    assert load_profile("sandbox").records == "sandbox"
    own = load_profile("sandbox", profiles.PROFILES_DIR / "sandbox.matrix.yaml")
    assert own.records == "sandbox" and own.images == load_profile("sandbox").images


def test_another_matrix_gets_a_records_folder_of_its_own(tmp_path: Path) -> None:
    """--matrix FILE wrote into results/<profile>/ and overwrote the real fleet's records of the same slug."""
    first, second = tmp_path / "a" / "matrix.yaml", tmp_path / "b" / "matrix.yaml"
    for path in (first, second):
        path.parent.mkdir()
        path.write_text(MINIMAL)
    one, two = load_profile("sandbox", first).records, load_profile("sandbox", second).records
    assert one.startswith("sandbox/matrices/matrix-") and two.startswith("sandbox/matrices/matrix-") and one != two
    assert load_profile("default", first).records.startswith("default/matrices/matrix-")
    assert load_profile("sandbox", first).records == one  # stable: the same file, the same folder
    odd = tmp_path / "..weird name!.yaml"
    odd.write_text(MINIMAL)
    assert load_profile("sandbox", odd).records.startswith("sandbox/matrices/weird-name-")


def test_publish_of_another_matrix_leaves_the_real_fleets_page_alone(write_matrix: WriteMatrix, tmp_path: Path) -> None:
    matrix = write_matrix(MINIMAL)
    results = tmp_path / "results"
    real_page = results / "default" / "site" / "index.html"
    real_page.parent.mkdir(parents=True)
    real_page.write_text("the real fleet's page\n")
    env = {**os.environ, "AIR_FLEET_RESULTS": str(results), "AIR_FLEET_STATE": str(tmp_path / "state")}
    argv = [sys.executable, "-m", "generator", "--matrix", str(matrix), "publish"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert real_page.read_text() == "the real fleet's page\n"
    assert (results / load_profile("default", matrix).records / "site" / "index.html").is_file()
