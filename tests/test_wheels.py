"""Extension resolution (generator/resolve/extensions.py): exact flash-attn wheel names and URLs by REAL ABI, xformers
pins, the apex source archive, and the einops companion.

Matrices are written inline from conftest's MINIMAL; a few cases call `resolve` directly with a TorchBuild.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from generator.errors import MatrixError
from generator.fleet import Fleet
from generator.model import Artifact, Cell, Extension, Origin
from generator.resolve.extensions import TorchBuild, cp_tag, resolve
from generator.spec.knowledge import Knowledge, XformersPin, knowledge
from tests.conftest import build_matrix

LoadFleet = Callable[[str], Fleet]

APEX_COMMIT = "810ffae374a2b9cb4b5c5e28eaeca7d7998fca0c"
RELEASES = "https://github.com/Dao-AILab/flash-attention/releases/download"
ORIGIN = Origin(Path("matrix.yaml"), 1, "torch[0]")


def matrix(row: str, stack: str, **kwargs: str) -> str:
    """MINIMAL with one torch row and one stack `s` holding `stack` (a comma-separated extension list)."""
    return build_matrix(row, stack=stack, **kwargs)


def resolved(load_fleet: LoadFleet, text: str) -> tuple[Cell, Extension]:
    fleet = load_fleet(text)
    assert len(fleet.cells) == 1, [c.slug for c in fleet.cells]
    cell = fleet.cells[0]
    (ext,) = cell.extensions
    return cell, ext


def url_of(version: str, filename: str) -> str:
    return f"{RELEASES}/v{version}/{filename.replace('+', '%2B')}"


# --- flash-attn release wheels ---------------------------------------------------------------------------


def test_flash_attn_wheel_name_and_url_exactly(load_fleet: LoadFleet) -> None:
    cell, ext = resolved(load_fleet, matrix("{version: 2.6.0, flash-attn: 2.7.4.post1}", "flash-attn"))
    wheel = Artifact(
        filename="flash_attn-2.7.4.post1+cu12torch2.6cxx11abiFALSE-cp312-cp312-linux_x86_64.whl",
        url=(
            "https://github.com/Dao-AILab/flash-attention/releases/download/v2.7.4.post1/"
            "flash_attn-2.7.4.post1%2Bcu12torch2.6cxx11abiFALSE-cp312-cp312-linux_x86_64.whl"
        ),
        project="flash-attn",
        version="2.7.4.post1",
    )
    assert ext.artifacts == (wheel,)  # einops joins the locked Python environment, not the fetched files
    assert (ext.kind, ext.build, ext.version, ext.abi, ext.problem) == (
        "release-wheel",
        "wheel",
        "2.7.4.post1",
        0,
        None,
    )
    assert (ext.import_name, ext.native_modules) == ("flash_attn", ("flash_attn_2_cuda",))
    assert ext.abi_note == "cxx11abiFALSE wheel, built with ABI 0"
    assert cell.slug == "aws-runtime-torch2.6-flash-attn2.7.4.post1"


@pytest.mark.parametrize(
    ("row", "kwargs", "filename"),
    [
        pytest.param(
            "{version: 2.6.0, flash-attn: 2.7.4.post1}",
            {},
            "flash_attn-2.7.4.post1+cu12torch2.6cxx11abiFALSE-cp312-cp312-linux_x86_64.whl",
            id="torch2.6-default",
        ),
        pytest.param(
            "{version: 2.6.0, index: cu126, flash-attn: 2.7.4.post1}",
            {},
            "flash_attn-2.7.4.post1+cu12torch2.6cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
            id="torch2.6-cu126-fa2.7.4.post1",
        ),
        pytest.param(
            "{version: 2.6.0, index: cu126, flash-attn: 2.8.3}",
            {},
            "flash_attn-2.8.3+cu12torch2.6cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
            id="torch2.6-cu126-fa2.8.3",
        ),
        pytest.param(
            "{version: 2.7.1, flash-attn: 2.8.3}",
            {},
            "flash_attn-2.8.3+cu12torch2.7cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
            id="torch2.7.1",
        ),
        pytest.param(
            "{version: 2.7.0, flash-attn: 2.8.0.post2}",
            {},
            "flash_attn-2.8.0.post2+cu12torch2.7cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
            id="torch2.7.0-any-patch",
        ),
        pytest.param(
            "{version: 2.8.0, flash-attn: 2.8.3}",
            {},
            "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
            id="torch2.8.0",
        ),
        pytest.param(
            "{version: 2.4.1, flash-attn: 2.8.3}",
            {},
            "flash_attn-2.8.3+cu12torch2.4cxx11abiFALSE-cp312-cp312-linux_x86_64.whl",
            id="torch2.4-fa2.8.3-not-mislabelled",
        ),
        # 2.6.3 ships cu118 and cu123 wheels: torch 2.4's default cu121 build takes the CUDA 12 one.
        pytest.param(
            "{version: 2.4.1, flash-attn: 2.6.3}",
            {},
            "flash_attn-2.6.3+cu123torch2.4cxx11abiFALSE-cp312-cp312-linux_x86_64.whl",
            id="fa2.6.3-cu12x-label",
        ),
        pytest.param(
            "{version: 2.4.0, index: cu124, flash-attn: 2.6.3}",
            {},
            "flash_attn-2.6.3+cu123torch2.4cxx11abiFALSE-cp312-cp312-linux_x86_64.whl",
            id="fa2.6.3-cu124-index",
        ),
        pytest.param(
            "{version: 2.4.0, index: cu118, flash-attn: 2.6.3}",
            {},
            "flash_attn-2.6.3+cu118torch2.4cxx11abiFALSE-cp312-cp312-linux_x86_64.whl",
            id="fa2.6.3-cu118-index",
        ),
        # Python 3.11 is not what the bases ship (the python check FAILs), but the wheel tag still follows it.
        pytest.param(
            "{version: 2.6.0, flash-attn: 2.7.4.post1}",
            {"python": "3.11", "base": "scratch"},
            "flash_attn-2.7.4.post1+cu12torch2.6cxx11abiFALSE-cp311-cp311-linux_x86_64.whl",
            id="cp311-scratch",
        ),
        pytest.param(
            "{version: 2.6.0, flash-attn: 2.7.4.post1}",
            {"python": "3.11"},
            "flash_attn-2.7.4.post1+cu12torch2.6cxx11abiFALSE-cp311-cp311-linux_x86_64.whl",
            id="cp311-databricks",
        ),
        pytest.param(
            "{version: 2.7.1, flash-attn: 2.8.3}",
            {"python": "3.13", "base": "scratch"},
            "flash_attn-2.8.3+cu12torch2.7cxx11abiTRUE-cp313-cp313-linux_x86_64.whl",
            id="cp313",
        ),
    ],
)
def test_flash_attn_wheel_filenames(load_fleet: LoadFleet, row: str, kwargs: dict[str, str], filename: str) -> None:
    cell, ext = resolved(load_fleet, matrix(row, "flash-attn", **kwargs))
    assert ext.problem is None
    (wheel,) = ext.artifacts
    assert wheel.filename == filename
    assert wheel.url == url_of(ext.version, filename)
    assert (wheel.project, wheel.version, wheel.sha256) == ("flash-attn", ext.version, None)
    assert ext.abi == cell.abi
    assert ("cxx11abiTRUE" in filename) == (cell.abi == 1)


def test_unpinned_flash_attn_on_default_torch_2_6_skips_every_mislabelled_2_8_release(load_fleet: LoadFleet) -> None:
    _, ext = resolved(load_fleet, matrix("{version: 2.6.0}", "flash-attn"))
    assert ext.version == "2.7.4.post1"
    assert ext.artifacts[0].filename == "flash_attn-2.7.4.post1+cu12torch2.6cxx11abiFALSE-cp312-cp312-linux_x86_64.whl"
    assert ext.abi == 0


@pytest.mark.parametrize(
    ("row", "kwargs", "problem"),
    [
        pytest.param(
            "{version: 2.6.0, flash-attn: 2.8.3}",
            {},
            (
                "flash-attn 2.8.3: no wheel built with ABI 0 for torch 2.6.0 from the package index default build, "
                "ABI 0: the cxx11abiFALSE wheel is mislabelled (really ABI 1)"
            ),
            id="mislabelled",
        ),
        pytest.param(
            "{version: 2.7.1, flash-attn: 2.7.4.post1}",
            {},
            "flash-attn 2.7.4.post1: no release wheel for torch 2.7 (built for 2.2, 2.3, 2.4, 2.5, 2.6)",
            id="torch-too-new",
        ),
        pytest.param(
            "{version: 2.6.0, flash-attn: 2.5.0}",
            {},
            "flash-attn 2.5.0: not in generator/knowledge/flash_attn.yaml",
            id="unknown-release",
        ),
        pytest.param(
            "{version: 2.6.0, index: cu118, flash-attn: 2.7.4.post1}",
            {},
            "flash-attn 2.7.4.post1: no CUDA 11 build (wheels: cu12)",
            id="no-cuda11-wheel",
        ),
        pytest.param(
            "{version: 2.9.0, index: cu130, flash-attn: 2.8.3}",
            {},
            "flash-attn 2.8.3: no release wheel for torch 2.9",
            id="torch2.9",
        ),
        pytest.param(
            "{version: 2.4.1, flash-attn: 2.7.4.post1}",
            {"python": "3.13", "base": "scratch"},
            "flash-attn 2.7.4.post1: no cp313 wheel for torch 2.4",
            id="no-cp313-for-torch2.4",
        ),
        pytest.param(
            "{version: 2.8.0}",
            {"python": "3.8", "base": "scratch"},
            "flash-attn any known release: no cp38 wheel for torch 2.8",
            id="unpinned-none-fits",
        ),
    ],
)
def test_flash_attn_without_a_correct_wheel_carries_a_problem(
    load_fleet: LoadFleet, row: str, kwargs: dict[str, str], problem: str
) -> None:
    _, ext = resolved(load_fleet, matrix(row, "flash-attn", **kwargs))
    assert ext.problem is not None
    assert ext.problem.startswith(problem), ext.problem
    assert ext.artifacts == ()
    assert ext.abi is None


@pytest.mark.parametrize(
    ("row", "variant", "version", "abi"),
    [
        # A FORCED build follows torch's ABI: flash-attn's setup.py (v2.8.3) forces 1 only with
        # FLASH_ATTENTION_FORCE_CXX11_ABI, which the recipe never sets. PyPI torch 2.6.0 is ABI 0.
        ("{version: 2.6.0, flash-attn: {version: 2.8.3, build: source}}", "devel", "2.8.3", 0),
        ("{version: 2.6.0, index: cu126, flash-attn: {version: 2.8.3, build: source}}", "devel", "2.8.3", 1),
        ("{version: 2.7.1, flash-attn: {version: 2.7.4.post1, build: source}}", "devel", "2.7.4.post1", 1),
        ("{version: 2.7.1, flash-attn: {build: source}}", "devel", "2.8.3", 1),  # no version: the newest known
    ],
)
def test_flash_attn_forced_source_build_takes_torchs_abi_with_einops(
    load_fleet: LoadFleet, row: str, variant: str, version: str, abi: int
) -> None:
    _, ext = resolved(load_fleet, matrix(row, "flash-attn", variant=variant))
    assert (ext.build, ext.version, ext.abi, ext.problem) == ("source", version, abi, None)
    # The sdist is an artifact like any wheel: fetched and sha256-locked, never resolved at build time.
    sdist = Artifact(filename=f"flash_attn-{version}.tar.gz", url=None, project="flash-attn", version=version)
    assert ext.artifacts == (sdist,)
    assert "forced source build (FLASH_ATTENTION_FORCE_BUILD=TRUE): follows torch's" in ext.abi_note
    assert ext.abi_note.endswith(f"ABI {abi}")


def test_einops_companion_comes_from_knowledge() -> None:
    assert knowledge().flash_attn_companions == {"einops": "0.8.2"}


# --- direct resolution: a mislabelled wheel is used only when its REAL ABI matches -------------------------


def _torch(minor: str, abi: int, *, index: str = "cu124", python: str = "3.12") -> TorchBuild:
    return TorchBuild(
        version=f"{minor}.0", minor=minor, index=index, from_pypi=True, cuda="12.4", abi=abi, python=python
    )


def _with_mislabel(facts: Knowledge, version: str, mislabelled: dict[str, dict[str, int]]) -> Knowledge:
    release = replace(facts.flash_attn[version], mislabelled=mislabelled)
    return replace(facts, flash_attn={**facts.flash_attn, version: release})


def test_honest_label_preferred_over_a_mislabelled_wheel_of_the_same_real_abi() -> None:
    # torch 2.6 with ABI 1: both the TRUE wheel and the mislabelled FALSE wheel are really ABI 1.
    ext = resolve("flash-attn", "2.8.3", "wheel", "release-wheel", _torch("2.6", 1), knowledge(), ORIGIN)
    assert ext.artifacts[0].filename == "flash_attn-2.8.3+cu12torch2.6cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    assert ext.abi_note == "cxx11abiTRUE wheel, built with ABI 1"


def test_mislabelled_wheel_is_accepted_when_its_real_abi_matches() -> None:
    facts = _with_mislabel(knowledge(), "2.8.3", {"2.6": {"FALSE": 1, "TRUE": 0}})
    ext = resolve("flash-attn", "2.8.3", "wheel", "release-wheel", _torch("2.6", 0), facts, ORIGIN)
    assert ext.problem is None
    assert ext.artifacts[0].filename == "flash_attn-2.8.3+cu12torch2.6cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    assert (ext.abi, ext.abi_note) == (0, "cxx11abiTRUE wheel, built with ABI 0 (mislabelled)")


def test_cuda_label_is_the_newest_not_newer_than_torch_cuda() -> None:
    # A synthetic 2.6.3 with three labels: torch's CUDA 12.1 takes cu121, not the newer cu123 nor cu118.
    facts = knowledge()
    release = replace(facts.flash_attn["2.6.3"], cuda_labels=("cu118", "cu121", "cu123"))
    facts = replace(facts, flash_attn={**facts.flash_attn, "2.6.3": release})
    torch = replace(_torch("2.4", 0), cuda="12.1", index="cu121")
    ext = resolve("flash-attn", "2.6.3", "wheel", "release-wheel", torch, facts, ORIGIN)
    assert ext.artifacts[0].filename == "flash_attn-2.6.3+cu121torch2.4cxx11abiFALSE-cp312-cp312-linux_x86_64.whl"


def test_unpinned_xformers_takes_the_newest_release_pinning_that_torch() -> None:
    facts = knowledge()
    other = XformersPin(torch="2.8.0", cuda=None)
    facts = replace(facts, xformers_pins={"0.0.32.post1": other, **facts.xformers_pins, "0.0.32": other})
    torch = TorchBuild(version="2.8.0", minor="2.8", index="cu128", from_pypi=True, cuda="12.8", abi=1, python="3.12")
    ext = resolve("xformers", None, "wheel", "torch-pinned", torch, facts, ORIGIN)
    assert (ext.version, ext.abi, ext.problem) == ("0.0.32.post2", 1, None)


def test_resolve_pip_extension_is_pure_python() -> None:
    ext = resolve("einops", "0.8.2", "wheel", "pip", _torch("2.6", 0), knowledge(), ORIGIN)
    assert (ext.kind, ext.build, ext.version, ext.artifacts, ext.abi) == ("pip", "pip", "0.8.2", (), None)
    assert (ext.abi_note, ext.problem, ext.origin) == ("pure Python", None, ORIGIN)


@pytest.mark.parametrize(("python", "tag"), [("3.9", "cp39"), ("3.11", "cp311"), ("3.12", "cp312"), ("3.13", "cp313")])
def test_cp_tag(python: str, tag: str) -> None:
    assert cp_tag(python) == tag


@pytest.mark.parametrize(
    ("from_pypi", "describe"),
    [
        (True, "torch 2.6.0 from the package index default build, ABI 0"),
        (False, "torch 2.6.0 from the cu124 index, ABI 0"),
    ],
)
def test_torch_build_describe(from_pypi: bool, describe: str) -> None:
    assert replace(_torch("2.6", 0), from_pypi=from_pypi).describe == describe


# --- xformers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "version", "abi"),
    [
        ("{version: 2.6.0, xformers: 0.0.29.post3}", "0.0.29.post3", 0),
        ("{version: 2.6.0, index: cu126, xformers: 0.0.29.post3}", "0.0.29.post3", 0),  # the default build's ABI
        ("{version: 2.7.1, xformers: 0.0.31.post1}", "0.0.31.post1", 1),
        ("{version: 2.8.0}", "0.0.32.post2", 1),
        ("{version: 2.4.0}", "0.0.27.post2", 0),
        ("{version: 2.4.1}", "0.0.28.post1", 0),
        ("{version: 2.9.0}", "0.0.33", 1),
    ],
)
def test_xformers_pin_and_abi_of_the_default_torch_build(
    load_fleet: LoadFleet, row: str, version: str, abi: int
) -> None:
    _, ext = resolved(load_fleet, matrix(row, "xformers"))
    assert (ext.kind, ext.build, ext.version, ext.abi, ext.problem) == ("torch-pinned", "wheel", version, abi, None)
    assert ext.artifacts == ()  # installed from the package index by exact version
    assert f"(ABI {abi})" in ext.abi_note
    assert (ext.import_name, ext.native_modules) == ("xformers", ("xformers._C",))


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            "{version: 2.6.0, xformers: 0.0.31.post1}",
            "xformers 0.0.31.post1 pins torch==2.7.1, the cell has torch 2.6.0",
        ),
        (
            "{version: 2.4.0, xformers: 0.0.28.post1}",
            "xformers 0.0.28.post1 pins torch==2.4.1, the cell has torch 2.4.0",
        ),
        ("{version: 2.6.0, xformers: 0.0.1}", "xformers 0.0.1 is not in generator/knowledge/xformers.yaml"),
        ("{version: 2.5.0}", "no xformers release pins torch 2.5.0"),
    ],
)
def test_xformers_problems(load_fleet: LoadFleet, row: str, problem: str) -> None:
    _, ext = resolved(load_fleet, matrix(row, "xformers"))
    assert ext.problem is not None
    assert ext.problem.startswith(problem), ext.problem
    assert ext.abi is None


@pytest.mark.parametrize("row", ['{version: "2.8", xformers: 0.0.32.post2}', '{version: "2.8"}'])
def test_xformers_pin_compares_torch_versions_by_pep440(load_fleet: LoadFleet, row: str) -> None:
    """`2.8` and `2.8.0` are the same release (PEP 440): either the matrix rejects the short form loudly, or
    xformers 0.0.32.post2 (torch==2.8.0) resolves for it. A spurious "pins torch==2.8.0" FAIL is a bug."""
    try:
        fleet = load_fleet(matrix(row, "xformers"))
    except MatrixError:
        return
    (ext,) = fleet.cells[0].extensions
    assert (ext.version, ext.problem) == ("0.0.32.post2", None)


# --- apex ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("row", "abi"), [("{version: 2.6.0}", 0), ("{version: 2.6.0, index: cu126}", 1)])
def test_apex_source_archive_takes_torch_abi(load_fleet: LoadFleet, row: str, abi: int) -> None:
    extra = f"extensions:\n  apex: {{version: {APEX_COMMIT}}}\n"
    cell, ext = resolved(load_fleet, matrix(row, "apex", variant="devel", extra=extra))
    assert ext.artifacts == (
        Artifact(
            filename=f"apex-{APEX_COMMIT}.tar.gz",
            url=f"https://github.com/NVIDIA/apex/archive/{APEX_COMMIT}.tar.gz",
            project="apex",
            version=APEX_COMMIT,
        ),
    )
    assert (ext.kind, ext.build, ext.version, ext.abi, ext.problem) == ("source", "source", APEX_COMMIT, abi, None)
    assert cell.abi == abi
    # A torch from a CUDA index names it in the slug: one release may be listed once per build.
    assert cell.slug == ("aws-devel-torch2.6-apex" if abi == 0 else "aws-devel-torch2.6-cu126-apex")


def test_apex_pin_on_the_torch_row_wins_over_the_matrix_wide_one(load_fleet: LoadFleet) -> None:
    other = "0" * 40
    extra = f"extensions:\n  apex: {{version: {APEX_COMMIT}}}\n"
    _, ext = resolved(load_fleet, matrix(f"{{version: 2.6.0, apex: '{other}'}}", "apex", variant="devel", extra=extra))
    assert ext.version == other
    assert ext.artifacts[0].url == f"https://github.com/NVIDIA/apex/archive/{other}.tar.gz"


def test_apex_without_a_commit_has_no_archive(load_fleet: LoadFleet) -> None:
    _, ext = resolved(load_fleet, matrix("{version: 2.6.0}", "apex", variant="devel"))
    assert ext.problem is not None
    assert "pin a source commit" in ext.problem
    assert ext.artifacts == ()


def test_xformers_refuses_a_torch_build_of_another_cuda_major(load_fleet: LoadFleet) -> None:
    """The package-index xformers wheel is built for torch's default CUDA 12 build; a cu118 torch cannot load it."""
    _, ext = resolved(load_fleet, matrix("{version: 2.6.0, index: cu118, xformers: 0.0.29.post3}", "xformers"))
    assert ext.problem == "xformers 0.0.29.post3 on the package index is built for CUDA 12.4; this torch is cu118"
    assert not ext.abi_problem
    # Same CUDA major, other index: resolved (the ABI check judges it separately).
    _, same_major = resolved(load_fleet, matrix("{version: 2.6.0, index: cu126, xformers: 0.0.29.post3}", "xformers"))
    assert same_major.problem is None and same_major.abi == 0
