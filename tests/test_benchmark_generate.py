"""benchmarks/generate.py reports only what its run measured: no outside figure turned into a ratio.

One real run on the smallest stress fleet (132 cells, one repeat: a few seconds), read back as JSON and
as the printed table.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from benchmarks import generate


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return generate.benchmark(1, 1, tmp_path_factory.mktemp("bench"))


def keys(value: Any) -> set[str]:
    """Every key of every object in a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys(v)}
    return set()


def test_the_figures_are_this_runs_measurements(result: dict[str, Any]) -> None:
    cold = result["runs"]["cold"]
    assert result["cells"] == generate.FIXED_CELLS + generate.PER_STACK
    # The per-cell figure is the measured wall time over the cells, nothing else folded in.
    assert result["target"]["cold_ms_per_cell"] == pytest.approx(1000 * cold["cli_wall_s"] / result["cells"])
    assert result["target"]["cold_ms_per_cell_best"] == pytest.approx(1000 * cold["cli_wall_best_s"] / result["cells"])
    found = {k for k in keys(json.loads(json.dumps(result))) if re.search("peer|ratio|faster", k, re.IGNORECASE)}
    assert not found


def test_the_report_prints_no_ratio_to_another_tool(result: dict[str, Any]) -> None:
    text = generate.report(result)
    assert f"{result['target']['cold_ms_per_cell']:.3f} ms per cell" in text
    assert not re.search(r"peer|ratio|faster|apply-templates|\d(\.\d+)?x\b", text, re.IGNORECASE), text
