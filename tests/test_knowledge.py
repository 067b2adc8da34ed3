"""The knowledge files load through the matrix's strict loader: a broken fact is one line naming
`file:line: key.path`, never a KeyError traceback (generator/spec/knowledge.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from generator.errors import KnowledgeError
from generator.spec import knowledge as knowledge_mod


@pytest.fixture
def facts_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the knowledge files the loader reads instead of the real ones."""
    copy = tmp_path / "knowledge"
    shutil.copytree(knowledge_mod.KNOWLEDGE_DIR, copy)
    monkeypatch.setattr(knowledge_mod, "KNOWLEDGE_DIR", copy)
    knowledge_mod.knowledge.cache_clear()
    yield copy
    knowledge_mod.knowledge.cache_clear()  # the real files again for the tests that follow


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


def test_a_missing_key_names_file_line_and_path(facts_dir: Path) -> None:
    edit(facts_dir / "accelerators.yaml", "    gpus_per_node: 8\n", "")
    with pytest.raises(KnowledgeError) as err:
        knowledge_mod.knowledge()
    message = str(err.value)
    assert "\n" not in message
    assert f"{facts_dir / 'accelerators.yaml'}:" in message
    assert "accelerators.GPU_8xH100: missing key 'gpus_per_node'" in message


def test_a_value_of_the_wrong_type_is_one_line(facts_dir: Path) -> None:
    edit(facts_dir / "build_tools.yaml", "max_jobs: 4", "max_jobs: four")
    with pytest.raises(KnowledgeError, match=r"build_tools.yaml:\d+: max_jobs: expected a whole number, got 'four'"):
        knowledge_mod.knowledge()


def test_a_duplicate_key_is_refused_not_the_last_one_kept(facts_dir: Path) -> None:
    edit(facts_dir / "host_drivers.yaml", '  aws: "580.126.16"\n', '  aws: "580.126.16"\n  aws: "470.1"\n')
    with pytest.raises(KnowledgeError, match=r"host_drivers\.yaml:\d+: drivers: duplicate key 'aws'"):
        knowledge_mod.knowledge()


def test_the_shipped_files_load() -> None:
    assert knowledge_mod.knowledge().accelerators["GPU_8xH100"].gpus_per_node == 8
