"""The vulnerability gate against the LIVE package index: a sandbox cell that deliberately pins ecdsa
0.19.2 (GHSA-wj6h-64fc-37mp, a Minerva timing attack its maintainers will not fix) is audited from its
locked requirements, refused by the default policy naming the advisory, let through by an allowance,
and refused again once that allowance has expired. Through the CLI, as a person runs it.

ecdsa 0.19.2 is that project's latest release today: where the index serves only project pages (this
machine), its advisories are known exactly because of that (generator/audit/index.py).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from generator.deps.step import run_lock
from generator.fleet import Fleet
from generator.spec.profiles import load_profile
from tests.conftest import run_cli

GHSA = "GHSA-wj6h-64fc-37mp"
MATRIX = """\
schema: 1
python: "3.11"
registry: {host: 127.0.0.1:5000, repository: sbom-test/audit}
clouds: [aws]
variants: [runtime]
accelerators: [GPU_1xA10]
torch:
  - {version: 2.13.0, torchvision: none, torchaudio: none}
stacks:
  vulnerable: [ecdsa]
extensions:
  ecdsa: {kind: pip, version: 0.19.2}
"""
SLUG = "aws-runtime-torch2.13-ecdsa0.19.2"


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cell's matrix with its lock beside it (the lock resolves the closure through pip: the network)."""
    path = tmp_path_factory.mktemp("audit") / "matrix.yaml"
    path.write_text(MATRIX, encoding="utf-8")
    assert run_lock(Fleet.for_profile(load_profile("sandbox", path)), say=lambda _: None).failures == []
    return path


def _env(matrix: Path) -> dict[str, str]:
    return {"AIR_FLEET_RESULTS": str(matrix.parent / "results"), "AIR_FLEET_STATE": str(matrix.parent / "state")}


def _audit(matrix: Path, policy: str) -> tuple[int, dict[str, object]]:
    matrix.write_text(MATRIX + policy, encoding="utf-8")
    env = _env(matrix)
    done = run_cli("--profile", "sandbox", "--matrix", str(matrix), "audit", "--json", env=env, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    (result,) = json.loads(done.stdout)["results"]
    return done.returncode, result


def test_a_pinned_advisory_is_found_refused_allowed_and_refused_again_after_expiry(matrix: Path) -> None:
    status, result = _audit(matrix, "")
    assert result["slug"] == SLUG
    (finding,) = [f for f in result["findings"] if f["package"] == "ecdsa"]  # type: ignore[attr-defined]
    assert finding["id"] == GHSA and "CVE-2024-23342" in finding["aliases"] and finding["severity"] == "unknown"
    assert finding["link"] == f"https://osv.dev/vulnerability/{GHSA}"
    assert result["counts"]["unknown"] >= 1  # type: ignore[index]
    assert status == 1 and not result["verdict"]["ok"] and GHSA in result["verdict"]["why"]  # type: ignore[index]
    (path,) = (matrix.parent / "results").glob(f"sandbox/**/audit/{SLUG}.json")  # the matrix's own folder
    record = json.loads(path.read_text())
    assert record["findings"] == result["findings"]
    # The page shows it, with the advisory's link, and says what is not covered.
    out = matrix.parent / "site"
    done = run_cli("--profile", "sandbox", "--matrix", str(matrix), "publish", "--out", str(out), env=_env(matrix))
    assert done.returncode == 0, done.stderr
    page = (out / "index.html").read_text()
    assert (
        f'<a href="https://osv.dev/vulnerability/{GHSA}">{GHSA}</a>' in page and "OS packages are not covered" in page
    )

    tomorrow = datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=1)
    allow = (
        "vulnerabilities:\n  allow:\n    - {{id: CVE-2024-23342, until: '{until}', reason: 'no P-256 signing here'}}\n"
    )
    status, result = _audit(matrix, allow.format(until=tomorrow.isoformat()))
    assert status == 0 and result["verdict"]["ok"], result["verdict"]  # type: ignore[index]
    assert f"{GHSA} allowed until {tomorrow.isoformat()}" in result["verdict"]["why"]  # type: ignore[index]

    status, result = _audit(matrix, allow.format(until="2026-01-31"))
    assert status == 1 and not result["verdict"]["ok"]  # type: ignore[index]
    assert "expired on 2026-01-31" in result["verdict"]["why"]  # type: ignore[index]
