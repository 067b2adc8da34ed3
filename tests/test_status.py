"""The status words shared between stages are enums (generator/status.py): records keep the same strings,
and a misspelt word is an error instead of a silent miss."""

from __future__ import annotations

import json

import pytest

from generator.resolve.checks import worst
from generator.status import BUILD_PASSED, PROBE_PASSED, Built, Pushed, Registered, Verdict


def test_the_words_are_the_strings_records_hold() -> None:
    assert json.dumps([Verdict.NA, Built.UP_TO_DATE, Pushed.PUSHED, Registered.ALREADY]) == (
        '["N/A", "up to date", "pushed", "already registered"]'
    )
    assert Built("up to date") is Built.UP_TO_DATE  # a record read back is the same member


def test_worst_reads_record_words_and_refuses_a_misspelt_one() -> None:
    assert worst(["OK", "N/A", "WARN"]) is Verdict.WARN
    assert worst(["N/A", "N/A"]) is Verdict.NA and worst([]) is Verdict.NA
    with pytest.raises(ValueError, match="'Ok'"):
        worst(["OK", "Ok"])  # a string compare would have ranked it nowhere and said OK


def test_the_gate_rules() -> None:
    assert {"built", "up to date"} == BUILD_PASSED and "failed" not in BUILD_PASSED
    assert Verdict.FAIL not in PROBE_PASSED and {"OK", "WARN", "N/A"} == PROBE_PASSED
