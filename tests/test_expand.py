"""Matrix expansion: order, slugs, companions, exclude/include/overrides, selection by index or slug."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from generator.errors import MatrixError
from generator.fleet import Fleet
from generator.resolve.expand import select
from tests.conftest import DEFAULT_MATRIX, MINIMAL

LoadFleet = Callable[[str], Fleet]

TWO_BY_TWO = """\
schema: 1
registry: {host: registry.example.com, repository: team/air}
clouds: [aws, azure]
variants: [runtime, devel]
accelerators: [GPU_1xA10, GPU_8xH100]
torch:
  - {version: 2.6.0, flash-attn: 2.7.4.post1}
  - {version: 2.7.1}
stacks:
  plain: []
  flash-attn: [flash-attn]
"""


def test_minimal_matrix_is_one_cell(load_fleet: LoadFleet) -> None:
    (cell,) = load_fleet(MINIMAL).cells
    assert (cell.index, cell.slug) == (1, "aws-runtime-torch2.6")
    assert cell.base_image == "databricksruntime/air:dcs-base-aws-runtime"
    # companions come from knowledge: torchvision 0.21 / torchaudio 2.6 with torch's patch
    assert (cell.torch, cell.torchvision, cell.torchaudio) == ("2.6.0", "0.21.0", "2.6.0")
    assert (cell.torch_index, cell.torch_cuda, cell.abi, cell.nccl) == ("cu124", "12.4", 0, "2.21.5")
    assert cell.image == "registry.example.com/team/air"


def test_product_order_is_cloud_variant_base_torch_stack(load_fleet: LoadFleet) -> None:
    slugs = [c.slug for c in load_fleet(TWO_BY_TWO).cells]
    assert slugs[:4] == [
        "aws-runtime-torch2.6",
        "aws-runtime-torch2.6-flash-attn2.7.4.post1",
        "aws-runtime-torch2.7",
        "aws-runtime-torch2.7-flash-attn2.8.3",  # unpinned: newest release whose wheel really matches
    ]
    assert len(slugs) == 2 * 2 * 2 * 2
    assert slugs[4].startswith("aws-devel-") and slugs[8].startswith("azure-runtime-")
    assert [c.index for c in load_fleet(TWO_BY_TWO).cells] == list(range(1, 17))


def test_exclude_include_and_override(load_fleet: LoadFleet) -> None:
    text = (
        TWO_BY_TWO
        + """\
exclude:
  - {variant: runtime, stack: flash-attn}
  - {cloud: azure, torch: "2.7*"}
include:
  - {base: scratch, cloud: aws, variant: runtime, torch: 2.7.1, stack: plain}
overrides:
  - select: {base: scratch}
    accelerators: [GPU_1xA10]
"""
    )
    cells = load_fleet(text).cells
    slugs = [c.slug for c in cells]
    assert not any(s.startswith(("aws-runtime-", "azure-runtime-")) and "flash-attn" in s for s in slugs)
    assert not any(s.startswith("azure-") and "torch2.7" in s for s in slugs)
    assert slugs[-1] == "aws-runtime-scratch-torch2.7"  # includes come last, in file order
    scratch = cells[-1]
    assert scratch.base_image == "nvidia/cuda:12.9.0-runtime-ubuntu24.04"
    assert scratch.accelerators == ("GPU_1xA10",)
    assert all(c.accelerators == ("GPU_1xA10", "GPU_8xH100") for c in cells[:-1])


def test_explicit_companions_and_index(load_fleet: LoadFleet) -> None:
    text = MINIMAL.replace("{version: 2.6.0}", "{version: 2.6.0, index: cu126, torchvision: 0.21.0, torchaudio: 2.6.0}")
    (cell,) = load_fleet(text).cells
    assert (cell.torch_index, cell.torch_from_pypi, cell.torch_cuda, cell.abi) == ("cu126", False, "12.6", 1)


def test_default_matrix_slugs_are_valid_and_unique() -> None:
    cells = Fleet.load(DEFAULT_MATRIX).cells
    assert len(cells) >= 24
    slugs = [c.slug for c in cells]
    assert len(set(slugs)) == len(slugs)
    # The slug rule as the design states it (DESIGN.md, "A Cell"), not a copy of the code's.
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9._-]*", s) for s in slugs)
    assert "aws-runtime-torch2.6-flash-attn2.7.4.post1" in slugs


def test_select_by_index_slug_and_pattern(load_fleet: LoadFleet) -> None:
    cells = load_fleet(TWO_BY_TWO).cells
    assert [c.index for c in select(cells, ["3"])] == [3]
    assert [c.slug for c in select(cells, ["azure-devel-torch2.6"])] == ["azure-devel-torch2.6"]
    assert [c.index for c in select(cells, ["*-flash-attn*", "1"])] == [1, 2, 4, 6, 8, 10, 12, 14, 16]
    assert select(cells, []) == cells
    with pytest.raises(MatrixError, match="there are 16 cells"):
        select(cells, ["17"])
    with pytest.raises(MatrixError, match="no cell matches"):
        select(cells, ["gcp-*"])


ONE_RELEASE_TWO_BUILDS = """\
schema: 1
registry: {host: registry.example.com, repository: team/air}
clouds: [aws]
variants: [devel]
accelerators: [GPU_1xA10]
torch:
  - {version: 2.8.0}
  - {version: 2.8.0, index: cu129}
stacks:
  plain: []
  apex: [apex]
extensions:
  apex: {version: 810ffae374a2b9cb4b5c5e28eaeca7d7998fca0c}
exclude:
  - {torch: 2.8.0, stack: apex}
  - {torch: "*+cu129", stack: plain}
include:
  - {base: scratch, cloud: aws, variant: devel, torch: 2.8.0+cu129, stack: apex}
"""


def test_one_release_from_two_indexes_is_two_rows_named_by_torchs_local_version(load_fleet: LoadFleet) -> None:
    """`2.8.0` (the package index's default build) and `2.8.0+cu129` are different builds: selectors and
    includes name the latter with torch's own local version label, and its slugs name the index."""
    cells = load_fleet(ONE_RELEASE_TWO_BUILDS).cells
    assert [(c.slug, c.torch, c.torch_index, c.torch_from_pypi) for c in cells] == [
        ("aws-devel-torch2.8", "2.8.0", "cu128", True),
        ("aws-devel-torch2.8-cu129-apex", "2.8.0", "cu129", False),
        ("aws-devel-scratch-torch2.8-cu129-apex", "2.8.0", "cu129", False),
    ]


def test_an_include_naming_no_row_says_how_index_rows_are_named(load_fleet: LoadFleet) -> None:
    text = ONE_RELEASE_TWO_BUILDS.replace("torch: 2.8.0+cu129, stack: apex}", "torch: 2.8.0+cu126, stack: apex}")
    with pytest.raises(MatrixError) as err:
        load_fleet(text)
    assert "include[0].torch: torch 2.8.0+cu126 is not a row of `torch:` (2.8.0, 2.8.0+cu129;" in str(err.value)
