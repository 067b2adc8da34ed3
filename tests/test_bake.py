"""The docker-bake.json for BuildKit clusters: structure, tags, groups, determinism, writes.

The structure is checked against a JSON Schema of bake's JSON format written here from the buildx
documentation (groups hold `targets`; a target's known fields and their types; names `[a-zA-Z0-9_-]+`),
with the `jsonschema` package (`dev` extras): the schema is itself checked to be valid JSON Schema, and
documents bake would reject are shown to fail it.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from generator.ci.bake import bake_file, dumps, target_name, write_bake
from generator.errors import FleetError
from generator.fleet import Fleet
from generator.render.renderer import RenderedCell
from generator.resolve.checks import FAIL
from tests.conftest import DEFAULT_MATRIX, MINIMAL, ROOT, WriteMatrix

DAY = datetime.date(2026, 3, 7)
NAME = "^[a-zA-Z0-9_-]+$"
STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
STRING_MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}

# bake's JSON format (https://docs.docker.com/build/bake/reference/): every target attribute bake knows,
# so a misspelt one ("cache_from") is caught here rather than ignored by an old buildx.
TARGET: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "annotations": STRINGS,
        "args": STRING_MAP,
        "attest": STRINGS,
        "cache-from": {"type": "array", "items": {"type": "string", "pattern": "^type=[a-z]+(,[a-z-]+=[^,]+)*$"}},
        "cache-to": {"type": "array", "items": {"type": "string", "pattern": "^type=[a-z]+(,[a-z-]+=[^,]+)*$"}},
        "call": {"type": "string"},
        "context": {"type": "string", "minLength": 1},
        "contexts": STRING_MAP,
        "description": {"type": "string"},
        "dockerfile": {"type": "string"},
        "dockerfile-inline": {"type": "string"},
        "entitlements": STRINGS,
        "inherits": STRINGS,
        "labels": STRING_MAP,
        "matrix": {"type": "object"},
        "name": {"type": "string"},
        "network": {"type": "string"},
        "no-cache": {"type": "boolean"},
        "no-cache-filter": STRINGS,
        "output": STRINGS,
        "platforms": {"type": "array", "items": {"type": "string", "pattern": "^[a-z0-9]+/[a-z0-9]+(/[a-z0-9]+)?$"}},
        "pull": {"type": "boolean"},
        "secret": STRINGS,
        "shm-size": {"type": "string"},
        "ssh": STRINGS,
        "tags": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"type": "string"}},
        "target": {"type": "string"},
        "ulimits": STRINGS,
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["group", "target"],
    "properties": {
        "group": {
            "type": "object",
            "propertyNames": {"pattern": NAME},
            "required": ["default"],
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["targets"],
                "properties": {
                    "description": {"type": "string"},
                    "targets": {"type": "array", "uniqueItems": True, "items": {"type": "string", "pattern": NAME}},
                },
            },
        },
        "target": {"type": "object", "propertyNames": {"pattern": NAME}, "additionalProperties": TARGET},
        "variable": {"type": "object"},
    },
}
VALIDATOR = Draft202012Validator(SCHEMA)


def schema_errors(value: Any) -> list[tuple[str, str, str]]:
    """What `value` breaks of SCHEMA: (keyword, JSON path, message) for each error jsonschema finds."""
    return [(e.validator, e.json_path, e.message) for e in VALIDATOR.iter_errors(value)]


@pytest.fixture(scope="module")
def fleet() -> list[RenderedCell]:
    return Fleet.load(DEFAULT_MATRIX).render()


@pytest.fixture(scope="module")
def bake(fleet: list[RenderedCell]) -> dict[str, Any]:
    return bake_file(fleet, Path("images"))


def failing(matrix: WriteMatrix) -> RenderedCell:
    """A really FAILing cell: torch 2.6 has no cu128 build (tests/test_cli.py)."""
    (bad,) = Fleet.load(matrix(MINIMAL.replace("{version: 2.6.0}", "{version: 2.6.0, index: cu128}"))).render()
    assert bad.status == FAIL
    return bad


# -- structure ------------------------------------------------------------------------------------------


def test_the_bake_file_matches_bakes_format(bake: dict[str, Any]) -> None:
    assert schema_errors(bake) == []
    # Through the JSON text too: what bake reads is the file, not the dict.
    assert schema_errors(json.loads(dumps(bake))) == []


def test_the_schema_is_valid_json_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_the_schema_check_rejects_what_bake_rejects(bake: dict[str, Any]) -> None:
    """The schema is not vacuous: each planted fault is found, by the keyword that forbids it, where it is."""
    name = next(iter(bake["target"]))
    where = f"$.target['{name}']"
    faults: list[tuple[tuple[str, str], Callable[[dict[str, Any]], object]]] = [
        (("pattern", "$.target"), lambda d: d["target"].__setitem__("a.b", d["target"][name])),
        (("additionalProperties", where), lambda d: d["target"][name].__setitem__("cache_from", [])),
        (("type", f"{where}.tags"), lambda d: d["target"][name].__setitem__("tags", "x:y")),
        (("required", "$.group.aws"), lambda d: d["group"].__setitem__("aws", {"members": []})),
        (("type", f"{where}.labels.n"), lambda d: d["target"][name]["labels"].__setitem__("n", 1)),
        (("required", "$.group"), lambda d: d["group"].pop("default")),
        (("uniqueItems", f"{where}.tags"), lambda d: d["target"][name]["tags"].append(d["target"][name]["tags"][0])),
    ]
    broken: list[tuple[tuple[str, str], list[tuple[str, str]]]] = []
    for fault, mutate in faults:
        doc = json.loads(json.dumps(bake))
        mutate(doc)
        broken.append((fault, [(keyword, path) for keyword, path, _ in schema_errors(doc)]))
    for fault, errors in broken:
        assert fault in errors, (fault, errors)


# -- targets ---------------------------------------------------------------------------------------------


def test_every_cell_has_one_target_with_its_immutable_tag_first(
    fleet: list[RenderedCell], bake: dict[str, Any]
) -> None:
    assert len(bake["target"]) == len(fleet)
    for r in fleet:
        cell = r.cell
        target = bake["target"][target_name(cell.slug)]
        assert target["tags"] == [r.ref]  # the candidate only: bake --push never reaches the release repository
        assert not any(t.startswith(f"{cell.image}:") for t in target["tags"])
        assert target["context"] == f"images/{cell.slug}" and target["dockerfile"] == "Dockerfile"
        assert (ROOT / target["context"] / target["dockerfile"]).is_file()  # relative to the repository root
        assert target["labels"]["air-fleet.digest"] == r.digest and target["labels"]["air-fleet.cell"] == cell.slug
        # The cache as the builder's: inline, and the other cells of its group (same base, torch build and
        # Python) as sources, in matrix order.
        group = [
            o
            for o in fleet
            if (o.cell.base_image, o.cell.torch, o.cell.torch_index, o.cell.python)
            == (cell.base_image, cell.torch, cell.torch_index, cell.python)
        ]
        assert target["cache-from"] == [f"type=registry,ref={o.ref}" for o in group if o is not r]
        assert target["cache-to"] == ["type=inline"] and target["args"] == {"BUILDKIT_INLINE_CACHE": "1"}
        assert target["platforms"] == ["linux/amd64"]
    assert any(t["cache-from"] for t in bake["target"].values())  # the default fleet has groups of several
    assert all(re.fullmatch(NAME, name) for name in [*bake["target"], *bake["group"]])
    assert target_name("aws-runtime-torch2.6-flash-attn2.7.4.post1") == "aws-runtime-torch2_6-flash-attn2_7_4_post1"


def test_groups_hold_exactly_their_cells(fleet: list[RenderedCell], bake: dict[str, Any]) -> None:
    groups = {name: g["targets"] for name, g in bake["group"].items()}
    names = [target_name(r.cell.slug) for r in fleet]
    assert groups["default"] == names  # matrix order
    expected: dict[str, list[str]] = {}
    for r, name in zip(fleet, names, strict=True):
        c = r.cell
        for group in (c.cloud, f"{c.cloud}-{c.variant}", f"torch{c.torch_minor.replace('.', '_')}"):
            expected.setdefault(group, []).append(name)
    assert {k: v for k, v in groups.items() if k != "default"} == expected
    assert {"aws", "azure", "aws-runtime", "aws-devel", "azure-devel", "torch2_6", "torch2_7", "torch2_8"} <= set(
        groups
    )
    assert all(t in bake["target"] for members in groups.values() for t in members)  # no dangling reference
    assert not set(groups) & set(bake["target"])


def test_a_failing_cell_gets_no_target(fleet: list[RenderedCell], write_matrix: WriteMatrix) -> None:
    bad = failing(write_matrix)
    others = fleet[:2]  # its slug names its index (aws-runtime-torch2.6-cu128): no default cell has it
    assert bad.cell.slug not in {r.cell.slug for r in others}
    data = bake_file([others[0], bad, others[1]], Path("images"))
    assert list(data["target"]) == sorted(target_name(r.cell.slug) for r in others)
    assert all(target_name(bad.cell.slug) not in g["targets"] for g in data["group"].values())
    assert schema_errors(data) == []


def test_options_cache_repository_and_paths(fleet: list[RenderedCell], tmp_path: Path) -> None:
    r = fleet[0]
    data = bake_file([r], ROOT / "build" / "sandbox" / "images", cache="cache.example.com/air/cache", root=ROOT)
    target = data["target"][target_name(r.cell.slug)]
    assert target["context"] == f"build/sandbox/images/{r.cell.slug}"  # absolute, made relative to the root
    cache = f"type=registry,ref=cache.example.com/air/cache:buildcache-{r.cell.slug}"
    assert target["cache-to"] == [f"{cache},mode=max"] and target["cache-from"] == [cache]
    outside = bake_file([r], tmp_path, root=ROOT)["target"][target_name(r.cell.slug)]
    assert outside["context"] == f"{tmp_path.as_posix()}/{r.cell.slug}"  # outside the repository: absolute


def test_two_slugs_on_one_target_name_are_an_error(fleet: list[RenderedCell]) -> None:
    r = fleet[0]
    twin = dataclasses.replace(r, cell=dataclasses.replace(r.cell, slug=r.cell.slug.replace(".", "_")))
    with pytest.raises(FleetError, match="one bake target"):
        bake_file([r, twin], Path("images"))


# -- determinism and writes ------------------------------------------------------------------------------


def test_the_same_fleet_gives_the_same_bytes(fleet: list[RenderedCell], bake: dict[str, Any]) -> None:
    again = bake_file(list(fleet), Path("images"))
    assert dumps(again) == dumps(bake)
    assert json.loads(dumps(bake)) == bake
    text = dumps(bake)
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"  # sorted keys


def test_write_bake_writes_only_changes_atomically(bake: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "out" / "docker-bake.json"
    assert write_bake(path, bake) is True
    assert path.read_text(encoding="utf-8") == dumps(bake) and oct(path.stat().st_mode & 0o777) == "0o644"
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert write_bake(path, bake) is False and path.stat().st_mtime_ns == 1_000_000_000  # untouched
    smaller: dict[str, Any] = {"group": {"default": {"targets": []}}, "target": {}}
    assert write_bake(path, smaller) is True and json.loads(path.read_text(encoding="utf-8")) == smaller
    assert [p.name for p in path.parent.iterdir()] == ["docker-bake.json"]  # no temp file left behind


# `docker buildx bake --print` would be the last word on the format, but buildx is not packaged for this
# machine's Debian (and CI runs here): the schema above is checked instead, from bake's documented format.
