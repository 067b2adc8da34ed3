"""The gate's pure policy decisions: vulnerabilities (with dated allowances) and size growth."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path

import pytest

from generator.audit.findings import Finding
from generator.fleet import Fleet
from generator.model import Allowance, Origin, SizeAcceptance, SizePolicy, VulnerabilityPolicy
from generator.release.policy import size_verdict, vulnerability_verdict
from tests.conftest import MINIMAL

HERE = Origin(Path("matrix.yaml"), 40, "vulnerabilities.allow[0]")
ECDSA = Finding(
    "ecdsa",
    "0.19.2",
    "GHSA-wj6h-64fc-37mp",
    ("CVE-2024-23342", "PYSEC-2026-1325"),
    "Minerva timing attack",
    "https://osv.dev/vulnerability/GHSA-wj6h-64fc-37mp",
)
TODAY = datetime.date(2026, 12, 2)


def _allow(id_: str, until: datetime.date) -> Allowance:
    return Allowance(id_, until, "no fix upstream; we never sign with P-256 here", HERE)


def test_an_unknown_severity_is_refused_by_default_naming_the_advisory_and_its_link() -> None:
    ok, why = vulnerability_verdict(VulnerabilityPolicy(), [ECDSA], [], TODAY)
    assert not ok
    assert "GHSA-wj6h-64fc-37mp (ecdsa 0.19.2, severity unknown, https://osv.dev/" in why


def test_unknown_pass_lets_it_through_but_a_known_high_is_refused() -> None:
    policy = VulnerabilityPolicy(fail_on="high", unknown="pass")
    assert vulnerability_verdict(policy, [ECDSA], [], TODAY)[0]
    high = Finding("x", "1", "GHSA-aaaa-bbbb-cccc", severity="high")
    medium = Finding("y", "1", "GHSA-dddd-eeee-ffff", severity="medium")
    ok, why = vulnerability_verdict(policy, [high, medium], [], TODAY)
    assert not ok and "GHSA-aaaa-bbbb-cccc" in why and "GHSA-dddd" not in why
    assert vulnerability_verdict(VulnerabilityPolicy(fail_on="none", unknown="pass"), [high], [], TODAY)[0]
    assert not vulnerability_verdict(VulnerabilityPolicy(fail_on="medium"), [medium], [], TODAY)[0]


@pytest.mark.parametrize("alias", ["GHSA-wj6h-64fc-37mp", "CVE-2024-23342", "PYSEC-2026-1325"])
def test_an_allowance_by_any_alias_allows_until_its_last_day_and_not_after(alias: str) -> None:
    policy = VulnerabilityPolicy(allow=(_allow(alias, TODAY),))
    ok, why = vulnerability_verdict(policy, [ECDSA], [], TODAY)
    assert ok and "allowed until 2026-12-02" in why
    ok, why = vulnerability_verdict(policy, [ECDSA], [], TODAY + datetime.timedelta(days=1))
    assert not ok and "expired on 2026-12-02" in why and "matrix.yaml:40" in why


def test_packages_not_audited_pass_by_default_and_fail_when_the_policy_says_so() -> None:
    ok, why = vulnerability_verdict(VulnerabilityPolicy(), [], ["torch 2.13.0+cpu"], TODAY)
    assert ok and "1 packages not audited" in why
    ok, why = vulnerability_verdict(VulnerabilityPolicy(not_audited="fail"), [], ["torch 2.13.0+cpu"], TODAY)
    assert not ok and "torch 2.13.0+cpu" in why


def test_growth_within_the_threshold_passes_and_beyond_it_is_refused() -> None:
    policy = SizePolicy()
    assert size_verdict(policy, "c", None, 500_000_000) == (True, "500.0 MB, the first blessed size of this cell")
    ok, why = size_verdict(policy, "c", 1_000_000_000, 1_100_000_000)
    assert ok and "+10.0 %" in why
    ok, why = size_verdict(policy, "c", 1_000_000_000, 1_100_000_001)
    assert not ok and "more than the 10 % allowed" in why
    assert size_verdict(SizePolicy(max_growth_percent=25), "c", 1_000_000_000, 1_200_000_000)[0]


def test_an_acceptance_lets_a_cell_grow_up_to_its_size_and_no_further() -> None:
    accept = SizeAcceptance("aws-*", 1_300_000_000, "flash-attn 2.8 wheels are larger", HERE)
    policy = SizePolicy(accept=(accept,))
    ok, why = size_verdict(policy, "aws-runtime", 1_000_000_000, 1_250_000_000)
    assert ok and "accepted up to 1,300.0 MB" in why and "flash-attn 2.8" in why
    ok, why = size_verdict(policy, "aws-runtime", 1_000_000_000, 1_350_000_000)
    assert not ok and "accepts it only up to 1,300.0 MB" in why
    assert not size_verdict(policy, "azure-runtime", 1_000_000_000, 1_250_000_000)[0]  # another cell


def test_the_matrix_carries_both_policies_and_defaults_without_them(load_fleet: Callable[[str], Fleet]) -> None:
    assert load_fleet(MINIMAL).matrix.vulnerabilities == VulnerabilityPolicy()
    assert load_fleet(MINIMAL).matrix.size == SizePolicy()
    matrix = load_fleet(
        MINIMAL
        + "vulnerabilities:\n  fail_on: critical\n  unknown: pass\n  not_audited: fail\n  allow:\n"
        + "    - {id: CVE-2024-23342, until: '2027-01-31', reason: no fix upstream}\n"
        + "size:\n  max_growth_percent: 5\n  accept:\n    - {cell: 'aws-*', max_mb: 1400.5, reason: bigger wheels}\n"
    ).matrix
    policy = matrix.vulnerabilities
    assert (policy.fail_on, policy.unknown, policy.not_audited) == ("critical", "pass", "fail")
    (entry,) = policy.allow
    assert (entry.id, entry.until, entry.reason) == ("CVE-2024-23342", datetime.date(2027, 1, 31), "no fix upstream")
    assert entry.origin.line == MINIMAL.count("\n") + 6  # the allowance's own line, for messages
    assert matrix.size.max_growth_percent == 5.0
    assert [(a.cell, a.max_bytes) for a in matrix.size.accept] == [("aws-*", 1_400_500_000)]
