"""The catalogue: one row per cell joining the matrix's answers with the run records, trusting a record only
for the cell's current content digest."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from generator.fleet import Fleet
from generator.render.renderer import RenderedCell
from generator.site.catalogue import NO_GPU_MEASURED, NOT_RUN, STALE, CatalogueError, carry_forward, catalogue, row
from tests import records as canned
from tests.conftest import DEFAULT_MATRIX

STAMP = "2026-11-29T00:00:00Z"
REPO_DIGEST = "sha256:" + "ab" * 32


@functools.cache
def _rendered() -> tuple[RenderedCell, ...]:
    return tuple(Fleet.load(DEFAULT_MATRIX).render())


@pytest.fixture
def cell() -> RenderedCell:
    return _rendered()[1]  # a flash-attn cell: extensions, several accelerators


def _row(root: Path, r: RenderedCell) -> dict[str, Any]:
    recs = canned.records(root)
    return row(r, recs, recs.registrations())


def test_a_cell_with_no_records_says_nothing_was_run(tmp_path: Path, cell: RenderedCell) -> None:
    got = _row(tmp_path, cell)
    assert got["slug"] == cell.cell.slug and got["digest"] == cell.digest and got["ref"] == cell.release_ref
    assert got["candidate"] == cell.ref
    assert [c["id"] for c in got["checks"]["items"]] == [c.id for c in cell.checks]
    assert got["build"] == {"status": NOT_RUN, "detail": "no build record", "size": None, "built_at": None}
    assert got["probe"]["status"] == NOT_RUN and got["probe"]["packages"] == []
    assert got["bench"]["status"] == NOT_RUN and got["bench"]["detail"] == "never benchmarked"
    assert got["bench"]["measured"] is False and got["bench"]["figures"] == []
    assert got["push"]["status"] == NOT_RUN and got["push"]["tags"] == []
    assert got["promotion"]["status"] == NOT_RUN and got["chain"]["intact"] is False
    assert got["registration"]["status"] == "not registered"
    assert got["air_yaml"] == cell.files["air.yaml"].decode()


def test_sections_have_the_same_keys_whatever_is_known(tmp_path: Path, cell: RenderedCell) -> None:
    empty = _row(tmp_path / "empty", cell)
    full = tmp_path / "full"
    canned.build(full, cell)
    canned.probe(full, cell, gpus=True, step="gpu-probe")
    canned.bench(full, cell, canned.H200_OUTPUT)
    canned.push(full, cell, REPO_DIGEST)
    canned.promote(full, cell, REPO_DIGEST)
    known = _row(full, cell)
    for section in ("build", "probe", "bench", "push", "promotion", "registration"):
        assert set(empty[section]) == set(known[section]), section


def test_records_of_another_build_are_stale_not_shown(tmp_path: Path, cell: RenderedCell) -> None:
    other = "sha256:" + "0f" * 32
    canned.build(tmp_path, cell, digest=other)
    for step in ("probe", "bench", "push"):
        canned.write(tmp_path, step, cell.cell.slug, {"digest": other, "status": "OK", "tags": ["x"]})
    got = _row(tmp_path, cell)
    for section in ("build", "probe", "bench", "push"):
        assert got[section]["status"] == STALE, section
        assert got[section]["detail"] == f"{STALE}: the record is for another build (0f0f0f0f0f0f)"
    assert got["build"]["size"] is None and got["push"]["tags"] == []


def test_real_facts_build_size_date_and_packages(tmp_path: Path, cell: RenderedCell) -> None:
    canned.build(tmp_path, cell, size=5 * 2**30)
    canned.probe(tmp_path, cell)
    got = _row(tmp_path, cell)
    assert got["build"] == {"status": "built", "detail": "built", "size": 5 * 2**30, "built_at": "2026-11-28T03:40:00Z"}
    probe = got["probe"]
    assert probe["status"] == "OK" and probe["gpu"] is False
    assert probe["detail"] == "no GPU: GPU rows not measured"
    assert probe["packages"] == sorted(["torch==" + cell.cell.torch, "numpy==2.1.0"])


def test_the_gpu_probe_wins_over_the_cpu_one(tmp_path: Path, cell: RenderedCell) -> None:
    canned.probe(tmp_path, cell, status="OK")
    canned.probe(tmp_path, cell, status="WARN", gpus=True, step="gpu-probe")
    probe = _row(tmp_path, cell)["probe"]
    assert probe["status"] == "WARN" and probe["gpu"] is True and probe["devices"] == ["NVIDIA H200"]


def test_a_benchmark_without_gpu_is_never_a_figure(tmp_path: Path, cell: RenderedCell) -> None:
    canned.bench(tmp_path, cell, canned.NO_GPU_OUTPUT)
    bench = _row(tmp_path, cell)["bench"]
    assert bench["status"] == "no GPU" and bench["detail"] == NO_GPU_MEASURED
    assert bench["measured"] is False and bench["figures"] == []


def test_measured_figures_carry_their_fraction_of_the_reference(tmp_path: Path, cell: RenderedCell) -> None:
    canned.bench(tmp_path, cell, canned.H200_OUTPUT)
    bench = _row(tmp_path, cell)["bench"]
    assert bench["measured"] is True and bench["device"] == "NVIDIA H200"
    figures = {f["figure"]: f for f in bench["figures"]}
    assert figures["matmul_bf16"]["value"] == 711.0
    assert figures["matmul_bf16"]["fraction"] == pytest.approx(711 / 790)
    assert figures["flash_attn"]["value"] is None and figures["flash_attn"]["fraction"] is None


def test_registration_comes_from_the_ledger_by_manifest_digest_and_ref(tmp_path: Path, cell: RenderedCell) -> None:
    canned.push(tmp_path, cell, REPO_DIGEST)
    canned.promote(tmp_path, cell, REPO_DIGEST)
    release_ref = f"{cell.cell.image}@{REPO_DIGEST}"
    entry = {"ref": release_ref, "slug": cell.cell.slug, "registered_at": "2026-11-28T04:10:00Z", "cli": "databricks"}
    canned.ledger(tmp_path, {REPO_DIGEST: entry})
    got = _row(tmp_path, cell)
    assert got["push"]["tags"][0] == cell.tag and got["push"]["repo_digest"] == REPO_DIGEST
    assert got["registration"] == {
        "status": "registered",
        "detail": "in workspace profile air-fleet by databricks",
        "at": "2026-11-28T04:10:00Z",
    }
    # The same manifest under another ref (a renamed registry) is not this image's registration.
    canned.ledger(tmp_path, {REPO_DIGEST: {**entry, "ref": "elsewhere.example/x:y"}})
    assert _row(tmp_path, cell)["registration"]["status"] == "not registered"


def test_a_failed_registration_attempt_is_shown(tmp_path: Path, cell: RenderedCell) -> None:
    canned.push(tmp_path, cell, REPO_DIGEST)
    canned.promote(tmp_path, cell, REPO_DIGEST)
    release_ref = f"{cell.cell.image}@{REPO_DIGEST}"
    canned.write(tmp_path, "register", cell.cell.slug, {"ref": release_ref, "status": "failed", "detail": "401"})
    assert _row(tmp_path, cell)["registration"] == {"status": "failed", "detail": "401", "at": None}


def test_an_unreadable_ledger_loses_only_the_registration_column(tmp_path: Path, cell: RenderedCell) -> None:
    (tmp_path / "state" / "register").mkdir(parents=True)
    (tmp_path / "state" / "register" / "broken.json").write_text("{not json")
    canned.push(tmp_path, cell, REPO_DIGEST)
    got = _row(tmp_path, cell)
    assert got["push"]["status"] == "pushed" and got["registration"]["status"] == "not registered"


def test_catalogue_counts(tmp_path: Path) -> None:
    cells = _rendered()
    canned.build(tmp_path, cells[0])
    canned.probe(tmp_path, cells[0])
    canned.build(tmp_path, cells[1])
    canned.probe(tmp_path, cells[1], status="FAIL")
    canned.probe(tmp_path, cells[2], gpus=True, step="gpu-probe")
    canned.bench(tmp_path, cells[2], canned.H200_OUTPUT)
    canned.bench(tmp_path, cells[3], canned.NO_GPU_OUTPUT)
    canned.push(tmp_path, cells[0], REPO_DIGEST)
    data = catalogue(cells, canned.records(tmp_path), generated_at=STAMP)
    assert [c["slug"] for c in data["cells"]] == [c.cell.slug for c in cells]
    assert (data["schema"], data["profile"], data["generated_at"]) == (1, "default", STAMP)
    assert data["counts"] == {
        "cells": len(cells),
        "checks_fail": 0,
        "built": 2,
        "probed_ok": 2,
        "probed_on_gpu": 1,
        "benchmarked": 1,
        "pushed": 1,
        "promoted": 0,
        "registered": 0,
    }


def _previous(root: Path, cells: tuple[RenderedCell, ...], stamp: str = "2026-11-28T03:00:00Z") -> dict[str, Any]:
    """A page published the night before, from its own records (a copy, as a reader of matrix.json sees it)."""
    canned.sample(root, list(cells))
    canned.push(root, cells[1], REPO_DIGEST)
    copy: dict[str, Any] = json.loads(json.dumps(catalogue(cells, canned.records(root), generated_at=stamp)))
    return copy


def test_cells_not_rebuilt_tonight_keep_what_the_last_page_knew(tmp_path: Path) -> None:
    cells = _rendered()[:3]
    previous = _previous(tmp_path / "last-night", cells)
    canned.probe(tmp_path / "tonight", cells[0], status="WARN")  # tonight probed the first cell again
    data = carry_forward(catalogue(cells, canned.records(tmp_path / "tonight"), generated_at=STAMP), previous)
    first, second, third = data["cells"]
    assert first["probe"]["status"] == "WARN" and "carried_from" not in first["probe"]  # tonight's record wins
    assert first["build"]["carried_from"] == "2026-11-28T03:00:00Z"  # ...but its build is from last night
    assert first["build"]["detail"] == "built (as of 2026-11-28T03:00:00Z)"
    assert second["bench"]["measured"] is True and second["bench"]["carried_from"] == "2026-11-28T03:00:00Z"
    assert second["push"]["tags"][0] == cells[1].tag
    assert third["probe"]["status"] == NOT_RUN  # the last page knew nothing either
    assert data["counts"]["benchmarked"] == 1 and data["counts"]["pushed"] == 1 and data["counts"]["built"] == 1
    # A second night carries the first date, not the second page's, and never stacks "as of" twice.
    again = carry_forward(catalogue(cells, canned.records(tmp_path / "empty"), generated_at=STAMP), data)
    assert again["cells"][0]["build"]["detail"] == "built (as of 2026-11-28T03:00:00Z)"
    assert again["cells"][0]["probe"]["carried_from"] == STAMP  # tonight's probe, first known tonight


def test_nothing_is_carried_to_another_build_or_over_a_stale_record(tmp_path: Path) -> None:
    cells = _rendered()[:2]
    previous = _previous(tmp_path / "last-night", cells)
    previous["cells"][1]["digest"] = "sha256:" + "0" * 64  # the cell was rebuilt since: another image
    canned.build(tmp_path / "tonight", cells[0], digest="sha256:" + "1" * 64)  # a stale record tonight
    data = carry_forward(catalogue(cells, canned.records(tmp_path / "tonight"), generated_at=STAMP), previous)
    assert data["cells"][0]["build"]["status"] == STALE
    assert data["cells"][0]["probe"]["status"] == "OK"  # no record tonight: carried
    assert all(data["cells"][1][s]["status"] in (NOT_RUN, "not registered") for s in ("probe", "bench", "push"))


def test_a_previous_page_of_another_profile_or_schema_is_refused(tmp_path: Path) -> None:
    cells = _rendered()[:1]
    data = catalogue(cells, canned.records(tmp_path), generated_at=STAMP)
    with pytest.raises(CatalogueError, match="profile 'sandbox', not 'default'"):
        carry_forward(data, {**data, "profile": "sandbox"})
    with pytest.raises(CatalogueError, match="schema 1"):
        carry_forward(data, {"schema": 99, "cells": []})


def test_the_trust_chain_is_intact_only_when_every_step_saw_the_released_manifest(
    tmp_path: Path, cell: RenderedCell
) -> None:
    canned.build(tmp_path, cell)
    canned.probe(tmp_path, cell)  # a local image probed before its push: tied by its config digest
    canned.write(
        tmp_path,
        "probe",
        cell.cell.slug,
        {**canned.read(tmp_path, "probe", cell.cell.slug), "image_id": canned.IMAGE_ID},
    )
    canned.push(tmp_path, cell, REPO_DIGEST)
    canned.promote(tmp_path, cell, REPO_DIGEST)
    entry = {"ref": f"{cell.cell.image}@{REPO_DIGEST}", "slug": cell.cell.slug, "registered_at": STAMP, "cli": "air"}
    canned.ledger(tmp_path, {REPO_DIGEST: entry})
    chain = _row(tmp_path, cell)["chain"]
    assert [link["step"] for link in chain["links"]] == ["staging", "probe", "release", "registered"]
    assert {link["digest"] for link in chain["links"]} == {REPO_DIGEST}
    assert chain == {**chain, "intact": True, "broken": None, "missing": []}

    # A GPU probe of another manifest (a sibling build) breaks the chain, and says where.
    other = "sha256:" + "cd" * 32
    assert other != REPO_DIGEST
    canned.probe(tmp_path, cell, gpus=True, step="gpu-probe")
    canned.write(
        tmp_path,
        "gpu-probe",
        cell.cell.slug,
        {**canned.read(tmp_path, "gpu-probe", cell.cell.slug), "manifest_digest": other},
    )
    chain = _row(tmp_path, cell)["chain"]
    assert chain["intact"] is False and chain["broken"] == "GPU probe"

    # Not registered yet: not broken, incomplete.
    canned.ledger(tmp_path, {})
    canned.write(
        tmp_path,
        "gpu-probe",
        cell.cell.slug,
        {**canned.read(tmp_path, "gpu-probe", cell.cell.slug), "manifest_digest": REPO_DIGEST},
    )
    chain = _row(tmp_path, cell)["chain"]
    assert (chain["intact"], chain["broken"], chain["missing"]) == (False, None, ["registered"])


def test_a_signature_is_a_link_of_the_chain_once_a_sign_record_exists(tmp_path: Path, cell: RenderedCell) -> None:
    canned.build(tmp_path, cell)
    canned.probe(tmp_path, cell)
    canned.write(
        tmp_path,
        "probe",
        cell.cell.slug,
        {**canned.read(tmp_path, "probe", cell.cell.slug), "manifest_digest": REPO_DIGEST},
    )
    canned.push(tmp_path, cell, REPO_DIGEST)
    canned.promote(tmp_path, cell, REPO_DIGEST)
    entry = {"ref": f"{cell.cell.image}@{REPO_DIGEST}", "slug": cell.cell.slug, "registered_at": STAMP, "cli": "air"}
    canned.ledger(tmp_path, {REPO_DIGEST: entry})
    # No sign record (signing not configured): the chain has no such link, and is whole without it.
    assert _row(tmp_path, cell)["chain"]["intact"] is True

    signed = {"slug": cell.cell.slug, "digest": cell.digest, "status": "verified", "manifest_digest": REPO_DIGEST}
    canned.write(tmp_path, "sign", cell.cell.slug, signed)
    chain = _row(tmp_path, cell)["chain"]
    assert [link["step"] for link in chain["links"]] == ["staging", "probe", "release", "signed", "registered"]
    assert chain["intact"] is True

    canned.write(tmp_path, "sign", cell.cell.slug, {**signed, "status": "invalid"})  # a bad signature: no link
    chain = _row(tmp_path, cell)["chain"]
    assert (chain["intact"], chain["missing"]) == (False, ["signed"])
