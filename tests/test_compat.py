"""The seven per-cell compatibility checks (generator/resolve/checks.py), each with its edge cases.

Every matrix is written inline, derived from conftest's MINIMAL (aws, runtime, GPU_1xA10, torch 2.6.0,
databricks base with CUDA 12.9.1 and Python 3.12). Assertions name statuses and the key words of details.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from generator.fleet import Fleet
from generator.model import Cell
from generator.resolve.checks import (
    CHECKS,
    FAIL,
    NA,
    OK,
    WARN,
    Check,
    needs_efa_block,
    needs_ib_block,
    network_fabrics,
    ships_unused_efa,
    summary_table,
    worst,
)
from generator.spec.knowledge import knowledge
from tests.conftest import DEFAULT_MATRIX, build_matrix

LoadFleet = Callable[[str], Fleet]

APEX_COMMIT = "810ffae374a2b9cb4b5c5e28eaeca7d7998fca0c"
CHECK_IDS = ("driver", "torch-cuda", "nccl", "network", "abi", "python", "builds")
CHECK_TITLES = (
    "CUDA toolkit vs host driver",
    "PyTorch vs CUDA",
    "NCCL",
    "EFA/RDMA",
    "CXX11 ABI (CUDA extensions)",
    "Python",
    "Extension builds",
)


matrix = build_matrix


def apex_pin() -> str:
    return f"extensions:\n  apex: {{version: {APEX_COMMIT}}}\n"


def only_cell(fleet: Fleet) -> Cell:
    assert len(fleet.cells) == 1, [c.slug for c in fleet.cells]
    return fleet.cells[0]


def checks_of(fleet: Fleet, cell: Cell | None = None) -> dict[str, Check]:
    result = fleet.checks(cell if cell is not None else only_cell(fleet))
    assert [c.id for c in result] == list(CHECK_IDS)
    return {c.id: c for c in result}


def check(load_fleet: LoadFleet, text: str, check_id: str) -> Check:
    return checks_of(load_fleet(text))[check_id]


def assert_detail(c: Check, status: str, *words: str, absent: tuple[str, ...] = ()) -> None:
    assert c.status == status, f"{c.id}: {c.status} != {status}: {c.detail}"
    for word in words:
        assert word in c.detail, f"{c.id}: {word!r} not in {c.detail!r}"
    for word in absent:
        assert word not in c.detail, f"{c.id}: {word!r} unexpectedly in {c.detail!r}"


# --- CUDA toolkit vs host driver ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "status", "words"),
    [
        # The Databricks bases are CUDA 12.9.1 (12.9 Update 1), whose own minimum is above 12.9 GA's.
        (None, OK, ("CUDA 12.9.1 (the base's toolkit) needs ≥575.57.08", "host 580.126.16 (aws)", "NOT needed")),
        ("575.57.08", OK, ("host 575.57.08", "NOT needed")),  # exactly the minimum
        ("575.55", WARN, ("CUDA 12.9.1 (the base's toolkit) needs ≥575.57.08", "host 575.55")),  # between GA and U1
        ("575.51.03", WARN, ("host 575.51.03", "minor-version compatibility")),  # 12.9 GA's minimum is not enough
        ("550.54.14", WARN, ("host 550.54.14", "minor-version compatibility", "the base ships cuda-compat")),
        ("525.60.13", WARN, ("minor-version compatibility",)),  # exactly the CUDA 12 floor
        ("520.61.05", FAIL, ("host 520.61.05", "Below the CUDA 12 floor 525.60.13", "will not run")),
    ],
)
def test_driver_against_toolkit_minimum_and_major_floor(
    load_fleet: LoadFleet, host: str | None, status: str, words: tuple[str, ...]
) -> None:
    extra = f'host_drivers: {{aws: "{host}"}}\n' if host else ""
    c = check(load_fleet, matrix(extra=extra), "driver")
    assert_detail(c, status, *words, absent=() if status == OK else ("NOT needed",))


def test_driver_warn_on_scratch_names_the_cuda_compat_package(load_fleet: LoadFleet) -> None:
    c = check(load_fleet, matrix(base="scratch", extra='host_drivers: {aws: "550.54.14"}\n'), "driver")
    assert_detail(c, WARN, "cuda-compat-12-9 needed", absent=("the base ships",))


@pytest.mark.parametrize(
    ("row", "host", "status", "words"),
    [
        # torch's own CUDA (13.0 from the cu130 index) is newer than the base's 12.9: it sets the requirement.
        (
            "{version: 2.9.0, index: cu130}",
            "578.10",
            FAIL,
            ("CUDA 13.0 (torch 2.9.0) needs ≥580.65.06", "CUDA 13 floor 580.65.06"),
        ),
        ("{version: 2.9.0, index: cu130}", "580.65.06", OK, ("CUDA 13.0 (torch 2.9.0) needs ≥580.65.06", "NOT needed")),
        ("{version: 2.9.0, index: cu130}", None, OK, ("CUDA 13.0 (torch 2.9.0) needs ≥580.65.06", "host 580.126.16")),
        # the same host with torch's default cu128 build: the base's CUDA 12.9.1 is the requirement, and it is met.
        ("{version: 2.9.0}", "578.10", OK, ("CUDA 12.9.1 (the base's toolkit) needs ≥575.57.08",)),
    ],
)
def test_driver_requirement_is_the_newer_of_base_and_torch_cuda(
    load_fleet: LoadFleet, row: str, host: str | None, status: str, words: tuple[str, ...]
) -> None:
    extra = f'host_drivers: {{aws: "{host}"}}\n' if host else ""
    assert_detail(check(load_fleet, matrix(row, extra=extra), "driver"), status, *words)


def test_host_driver_override_applies_to_its_cloud_only(load_fleet: LoadFleet) -> None:
    fleet = load_fleet(matrix(cloud="aws, azure", extra='host_drivers: {azure: "550.54.14"}\n'))
    by_cloud = {c.cloud: checks_of(fleet, c)["driver"] for c in fleet.cells}
    assert set(by_cloud) == {"aws", "azure"}
    assert_detail(by_cloud["aws"], OK, "host 580.126.16 (aws)")
    assert_detail(by_cloud["azure"], WARN, "host 550.54.14 (azure)")


# --- PyTorch vs CUDA -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "rows", "status", "words"),
    [
        ({}, ("{version: 2.6.0}",), OK, ("torch 2.6.0 ships cu124 (default build)", "CUDA 12.9.1", "minor-version")),
        ({}, ("{version: 2.6.0, index: cu126}",), OK, ("ships cu126 (index build)",)),
        ({"base": "scratch"}, ("{version: 2.8.0, index: cu129}",), OK, ("ships cu129", "CUDA 12.9.0: same CUDA")),
        ({}, ("{version: 2.6.0, index: cu128}",), FAIL, ("torch 2.6 has no cu128 build", "cu118, cu124, cu126")),
        ({}, ("{version: 2.6.0, index: cu118}",), WARN, ("different CUDA major", "bundled CUDA runtime")),
        (
            {},
            ("{version: 2.9.0, index: cu130}",),
            WARN,
            ("ships cu130", "different CUDA major", "bundled CUDA runtime"),
        ),
        # a prebuilt wheel does not compile against the toolkit: still only a WARN
        ({"stack": "xformers"}, ("{version: 2.9.0, index: cu130}",), WARN, ("different CUDA major",)),
        (
            {"variant": "devel", "stack": "apex", "extra": apex_pin()},
            ("{version: 2.9.0, index: cu130}",),
            FAIL,
            ("different CUDA major", "nvcc cannot build extensions"),
        ),
        (
            {"variant": "devel", "stack": "flash-attn"},
            ("{version: 2.9.0, index: cu130, flash-attn: {version: 2.8.3, build: source}}",),
            FAIL,
            ("nvcc cannot build extensions",),
        ),
    ],
)
def test_torch_vs_cuda(
    load_fleet: LoadFleet, kwargs: dict[str, str], rows: tuple[str, ...], status: str, words: tuple[str, ...]
) -> None:
    assert_detail(check(load_fleet, matrix(*rows, **kwargs), "torch-cuda"), status, *words)


# --- NCCL ------------------------------------------------------------------------------------------------


def test_nccl_applies_to_single_gpu_accelerators_too(load_fleet: LoadFleet) -> None:
    """A GPU_1xA10 job with num_accelerators > 1 spans nodes and still talks NCCL."""
    c = check(load_fleet, matrix(accelerators="GPU_1xA10, GPU_1xH100"), "nccl")
    assert_detail(c, OK, "nvidia-nccl-cu12 2.21.5")


def test_nccl_of_an_index_build_names_its_package_not_a_version(load_fleet: LoadFleet) -> None:
    c = check(load_fleet, matrix("{version: 2.6.0, index: cu118}"), "nccl")
    assert_detail(c, OK, "nvidia-nccl-cu11 of the cu118 build", absent=("2.21.5",))


@pytest.mark.parametrize(
    ("row", "base", "nccl", "os_nccl"),
    [
        ("{version: 2.6.0}", "databricks", "2.21.5", "OS NCCL 2.27.3 unused"),
        ("{version: 2.7.1}", "databricks", "2.26.2", "OS NCCL 2.27.3 unused"),
        ("{version: 2.8.0}", "scratch", "2.27.3", None),
    ],
)
def test_nccl_names_the_torch_bundled_version_when_multi_gpu_is_blessed(
    load_fleet: LoadFleet, row: str, base: str, nccl: str, os_nccl: str | None
) -> None:
    c = check(load_fleet, matrix(row, base=base, accelerators="GPU_1xA10, GPU_8xH100"), "nccl")
    assert_detail(c, OK, f"torch-bundled NCCL (nvidia-nccl-cu12 {nccl})", "torch.cuda.nccl.version()")
    if os_nccl:
        assert os_nccl in c.detail
    else:
        assert "OS NCCL" not in c.detail


# --- EFA / RDMA -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cloud", "base", "accelerators", "status", "words", "absent"),
    [
        ("aws", "databricks", "GPU_8xH100", OK, ("EFA 1.42.0", "aws-ofi-nccl 1.15.0", "from the base"), ("NCCL_NET",)),
        (
            "aws",
            "databricks",
            "GPU_1xA10, GPU_8xH100",
            OK,
            ("for GPU_8xH100", "NCCL_NET_PLUGIN=none in air.yaml for GPU_1xA10"),
            (),
        ),
        ("aws", "databricks", "GPU_1xA10", NA, ("no EFA hardware", "NCCL_NET_PLUGIN=none", "GPU_1xA10"), ()),
        ("aws", "scratch", "GPU_1xA10", NA, ("no EFA hardware on GPU_1xA10", "EFA block skipped"), ("NCCL_NET",)),
        ("aws", "scratch", "GPU_8xH100", OK, ("EFA 1.42.0", "the EFA installer block", "GPU_8xH100"), ()),
        (
            "aws",
            "scratch",
            "GPU_1xH100, GPU_8xH100",
            OK,
            ("EFA installer block", "NCCL_NET_PLUGIN=none in air.yaml for GPU_1xH100"),
            (),
        ),
        ("azure", "databricks", "GPU_8xH100", OK, ("InfiniBand", "rdma-core 50.0 from the base", "GPU_8xH100"), ()),
        ("azure", "scratch", "GPU_8xH100", OK, ("InfiniBand", "(apt)"), ("EFA",)),
        ("azure", "databricks", "GPU_1xA10", NA, ("no InfiniBand on GPU_1xA10",), ("NCCL_NET",)),
    ],
)
def test_network_fabric(
    load_fleet: LoadFleet,
    cloud: str,
    base: str,
    accelerators: str,
    status: str,
    words: tuple[str, ...],
    absent: tuple[str, ...],
) -> None:
    c = check(load_fleet, matrix(cloud=cloud, base=base, accelerators=accelerators), "network")
    assert_detail(c, status, *words, absent=absent)


@pytest.mark.parametrize(
    ("cloud", "base", "accelerators", "efa_block", "ib_block", "unused_efa"),
    [
        ("aws", "scratch", "GPU_1xA10", False, False, []),
        ("aws", "scratch", "GPU_8xH100", True, False, []),
        ("aws", "scratch", "GPU_1xA10, GPU_8xH100", True, False, ["GPU_1xA10"]),
        ("aws", "databricks", "GPU_8xH100", False, False, []),  # the base already has EFA: no block
        ("aws", "databricks", "GPU_1xA10, GPU_1xH100", False, False, ["GPU_1xA10", "GPU_1xH100"]),
        ("azure", "scratch", "GPU_1xA10", False, True, []),
        ("azure", "scratch", "GPU_8xH100", False, True, []),
        ("azure", "databricks", "GPU_8xH100", False, False, []),
        ("azure", "databricks", "GPU_1xA10", False, False, []),
    ],
)
def test_network_block_helpers(
    load_fleet: LoadFleet,
    cloud: str,
    base: str,
    accelerators: str,
    efa_block: bool,
    ib_block: bool,
    unused_efa: list[str],
) -> None:
    fleet = load_fleet(matrix(cloud=cloud, base=base, accelerators=accelerators))
    cell = only_cell(fleet)
    assert needs_efa_block(cell, fleet.facts) is efa_block
    assert needs_ib_block(cell) is ib_block
    assert ships_unused_efa(cell, fleet.facts) == unused_efa


@pytest.mark.parametrize(
    ("cloud", "expected"),
    [
        ("aws", {"none": ["GPU_1xA10", "GPU_1xH100"], "efa": ["GPU_8xH100"]}),
        ("azure", {"none": ["GPU_1xA10", "GPU_1xH100"], "infiniband": ["GPU_8xH100"]}),
    ],
)
def test_network_fabrics_groups_accelerators_by_fabric(
    load_fleet: LoadFleet, cloud: str, expected: dict[str, list[str]]
) -> None:
    fleet = load_fleet(matrix(cloud=cloud, accelerators="GPU_1xA10, GPU_8xH100, GPU_1xH100"))
    assert network_fabrics(only_cell(fleet), fleet.facts) == expected


# --- CXX11 ABI --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "row", "stack", "extra", "status", "words"),
    [
        pytest.param(
            "runtime",
            "{version: 2.6.0, flash-attn: 2.7.4.post1}",
            "flash-attn",
            "",
            OK,
            ("flash-attn 2.7.4.post1", "cxx11abiFALSE wheel, built with ABI 0", "= torch ABI 0"),
            id="torch2.6-default+fa2.7.4.post1",
        ),
        pytest.param(
            "runtime",
            "{version: 2.6.0, flash-attn: 2.8.3}",
            "flash-attn",
            "",
            FAIL,
            ("flash-attn 2.8.3", "no wheel built with ABI 0", "cxx11abiFALSE wheel is mislabelled (really ABI 1)"),
            id="torch2.6-default+fa2.8.3-mislabelled",
        ),
        pytest.param(
            "runtime",
            "{version: 2.6.0, index: cu126, flash-attn: 2.8.3}",
            "flash-attn",
            "",
            OK,
            ("cxx11abiTRUE wheel, built with ABI 1", "= torch ABI 1"),
            id="torch2.6-cu126+fa2.8.3",
        ),
        pytest.param(
            "runtime",
            "{version: 2.6.0, index: cu126, xformers: 0.0.29.post3}",
            "xformers",
            "",
            FAIL,
            ("xformers 0.0.29.post3", "default build (ABI 0)", "torch has ABI 1", "undefined symbol"),
            id="torch2.6-cu126+xformers-default-abi",
        ),
        pytest.param(
            "runtime",
            "{version: 2.6.0, xformers: 0.0.29.post3}",
            "xformers",
            "",
            OK,
            ("default build (ABI 0) = torch ABI 0",),
            id="torch2.6-default+xformers",
        ),
        pytest.param(
            "runtime",
            "{version: 2.7.1, flash-attn: 2.8.3}",
            "flash-attn",
            "",
            OK,
            ("cxx11abiTRUE wheel, built with ABI 1", "= torch ABI 1"),
            id="torch2.7.1+fa2.8.3",
        ),
        pytest.param(
            "devel",
            "{version: 2.6.0, flash-attn: {version: 2.8.3, build: source}}",
            "flash-attn",
            "",
            # A FORCED source build follows torch's ABI (flash-attn setup.py v2.8.3): not an ABI FAIL.
            OK,
            ("forced source build", "follows torch's _GLIBCXX_USE_CXX11_ABI", "ABI 0 = torch ABI 0"),
            id="torch2.6-default+fa-source",
        ),
        pytest.param(
            "devel",
            "{version: 2.7.1, flash-attn: {version: 2.8.3, build: source}}",
            "flash-attn",
            "",
            OK,
            ("source build", "= torch ABI 1"),
            id="torch2.7.1+fa-source",
        ),
        pytest.param(
            "devel",
            "{version: 2.6.0}",
            "apex",
            apex_pin(),
            OK,
            ("takes torch's ABI flag = torch ABI 0",),
            id="torch2.6-default+apex",
        ),
        pytest.param(
            "devel",
            "{version: 2.6.0, index: cu126}",
            "apex",
            apex_pin(),
            OK,
            ("= torch ABI 1",),
            id="torch2.6-cu126+apex",
        ),
        pytest.param(
            "runtime",
            "{version: 2.6.0}",
            "flash-attn, xformers",
            "",
            OK,
            ("flash-attn 2.7.4.post1:", "; xformers 0.0.29.post3:"),
            id="two-extensions-both-ok",
        ),
        pytest.param(
            "runtime",
            "{version: 2.6.0, index: cu126}",
            "flash-attn, xformers",
            "",
            FAIL,
            ("flash-attn 2.8.3: cxx11abiTRUE", "= torch ABI 1; xformers 0.0.29.post3:", "torch has ABI 1 (undefined"),
            id="one-of-two-extensions-fails",
        ),
        pytest.param("runtime", "{version: 2.6.0}", None, "", NA, ("no compiled extensions",), id="no-extensions"),
        pytest.param(
            "runtime",
            "{version: 2.6.0}",
            "einops",
            "extensions:\n  einops: {kind: pip, version: 0.8.2}\n",
            NA,
            ("no compiled extensions",),
            id="pip-only",
        ),
    ],
)
def test_cxx11_abi(
    load_fleet: LoadFleet,
    variant: str,
    row: str,
    stack: str | None,
    extra: str,
    status: str,
    words: tuple[str, ...],
) -> None:
    c = check(load_fleet, matrix(row, variant=variant, stack=stack, extra=extra), "abi")
    assert_detail(c, status, *words)


# --- Python ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("python", "base", "status", "words"),
    [
        (None, "databricks", OK, ("Python 3.12 at /opt/venv/bin/python", "torch 2.6 wheels cover 3.9–3.13")),
        ("3.12", "scratch", OK, ("Python 3.12 at /usr/bin/python3",)),
        (
            "3.11",
            "databricks",
            FAIL,
            ("databricksruntime/air:dcs-base-aws-runtime ships Python 3.12", "asks for 3.11"),
        ),
        ("3.11", "scratch", FAIL, ("nvidia/cuda:12.9.0-runtime-ubuntu24.04 ships Python 3.12", "asks for 3.11")),
    ],
)
def test_python_must_be_the_base_python(
    load_fleet: LoadFleet, python: str | None, base: str, status: str, words: tuple[str, ...]
) -> None:
    assert_detail(check(load_fleet, matrix(python=python, base=base), "python"), status, *words)


# --- Extension builds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "row", "stack", "extra", "status", "words"),
    [
        pytest.param(  # compiled in a builder stage on the devel base: runtime cells get apex too
            "runtime",
            "{version: 2.8.0, index: cu129}",
            "apex",
            apex_pin(),
            OK,
            (f"apex {APEX_COMMIT}: compiled once in a builder stage on databricksruntime/air:dcs-base-aws-devel",),
            id="apex-on-runtime",
        ),
        pytest.param(
            "devel",
            "{version: 2.6.0}",
            "apex",
            "",
            FAIL,
            ("apex has no prebuilt wheels: pin a source commit",),
            id="apex-unpinned",
        ),
        pytest.param(
            "devel",
            "{version: 2.8.0, index: cu129}",
            "apex",
            apex_pin(),
            OK,
            (f"apex {APEX_COMMIT}: compiled once in a builder stage", "kernels for 8.6", "not locked yet (`lock`)"),
            id="apex-on-devel",
        ),
        pytest.param(
            "runtime",
            "{version: 2.6.0, flash-attn: {version: 2.7.4.post1, build: source}}",
            "flash-attn",
            "",
            OK,
            ("flash-attn 2.7.4.post1: compiled once in a builder stage",),
            id="fa-source-on-runtime",
        ),
        pytest.param(
            "runtime",
            "{version: 2.6.0, xformers: 0.0.31.post1}",
            "xformers",
            "",
            FAIL,
            ("xformers 0.0.31.post1 pins torch==2.7.1, the cell has torch 2.6.0",),
            id="xformers-wrong-torch",
        ),
        pytest.param(
            "runtime",
            "{version: 2.7.0, xformers: 0.0.31.post1}",
            "xformers",
            "",
            FAIL,
            ("pins torch==2.7.1, the cell has torch 2.7.0",),
            id="xformers-wrong-patch",
        ),
        pytest.param(
            "runtime",
            "{version: 2.6.0, xformers: 0.0.99}",
            "xformers",
            "",
            FAIL,
            ("xformers 0.0.99 is not in generator/knowledge/xformers.yaml",),
            id="xformers-unknown",
        ),
        pytest.param(
            "runtime",
            "{version: 2.5.0}",
            "xformers",
            "",
            FAIL,
            ("no xformers release pins torch 2.5.0",),
            id="xformers-none-for-torch",
        ),
        pytest.param(
            "runtime",
            "{version: 2.9.0}",
            "flash-attn",
            "",
            FAIL,
            ("flash-attn any known release: no release wheel for torch 2.9",),
            id="fa-none-for-torch",
        ),
        pytest.param(
            "runtime",
            "{version: 2.6.0}",
            "einops",
            "extensions:\n  einops: {kind: pip, version: 0.8.2}\n",
            OK,
            ("einops 0.8.2: pinned package",),
            id="pip-package",
        ),
        pytest.param(
            "runtime",
            "{version: 2.6.0, index: cu126}",
            "apex, xformers",
            apex_pin(),
            FAIL,
            ("refuses nvcc 12.9 with torch built for CUDA 12.6", "; xformers 0.0.29.post3: prebuilt wheel"),
            id="worst-of-several",
        ),
        pytest.param("runtime", "{version: 2.6.0}", None, "", NA, ("no extensions",), id="no-extensions"),
    ],
)
def test_extension_builds(
    load_fleet: LoadFleet,
    variant: str,
    row: str,
    stack: str | None,
    extra: str,
    status: str,
    words: tuple[str, ...],
) -> None:
    c = check(load_fleet, matrix(row, variant=variant, stack=stack, extra=extra), "builds")
    assert_detail(c, status, *words)


def test_pip_extension_is_pure_python(load_fleet: LoadFleet) -> None:
    fleet = load_fleet(matrix(stack="einops", extra="extensions:\n  einops: {kind: pip, version: 0.8.2}\n"))
    (ext,) = only_cell(fleet).extensions
    assert (ext.kind, ext.build, ext.version, ext.abi, ext.abi_note) == ("pip", "pip", "0.8.2", None, "pure Python")
    assert ext.problem is None
    assert worst([c.status for c in checks_of(fleet).values()]) == OK


@pytest.mark.parametrize(
    ("row", "stack", "version"),
    [
        # every 2.8.x cxx11abiFALSE wheel for torch 2.6 is really ABI 1: the newest honest one is 2.7.4.post1
        ("{version: 2.6.0}", "flash-attn", "2.7.4.post1"),
        ("{version: 2.6.0, index: cu126}", "flash-attn", "2.8.3"),
        ("{version: 2.7.1}", "flash-attn", "2.8.3"),
        ("{version: 2.8.0}", "flash-attn", "2.8.3"),
        ("{version: 2.4.1}", "flash-attn", "2.8.3"),
        ("{version: 2.6.0}", "xformers", "0.0.29.post3"),
        ("{version: 2.7.0}", "xformers", "0.0.30"),
        ("{version: 2.7.1}", "xformers", "0.0.31.post1"),
        ("{version: 2.8.0}", "xformers", "0.0.32.post2"),
        ("{version: 2.9.1}", "xformers", "0.0.33.post2"),
    ],
)
def test_unpinned_extension_resolves_to_the_release_that_really_matches(
    load_fleet: LoadFleet, row: str, stack: str, version: str
) -> None:
    fleet = load_fleet(matrix(row, stack=stack))
    cell = only_cell(fleet)
    (ext,) = cell.extensions
    assert (ext.name, ext.version, ext.problem) == (stack, version, None)
    assert ext.abi == cell.abi
    assert cell.slug.endswith(f"-{stack}{version}")
    found = checks_of(fleet)
    assert_detail(found["abi"], OK, f"{stack} {version}")
    assert_detail(found["builds"], OK, f"{stack} {version}: prebuilt wheel")


# --- worst() and the summary table -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], NA),
        ([NA], NA),
        ([NA, NA], NA),
        ([OK], OK),
        ([NA, OK, NA], OK),
        ([OK, WARN, NA], WARN),
        ([NA, WARN], WARN),
        ([WARN, OK, FAIL, NA], FAIL),
        ([FAIL, WARN], FAIL),
        ([NA, FAIL], FAIL),
    ],
)
def test_worst_orders_fail_over_warn_over_ok_over_na(statuses: list[str], expected: str) -> None:
    assert worst(statuses) == expected


def test_summary_table_is_the_seed_markdown_table() -> None:
    checks = [
        Check("driver", "CUDA toolkit vs host driver", OK, "fine"),
        Check("abi", "CXX11 ABI (CUDA extensions)", FAIL, "a | b"),
        Check("nccl", "NCCL", NA, "single-GPU"),
    ]
    assert summary_table(checks) == (
        "## Compatibility Check\n"
        "\n"
        "| Check | Status | Details |\n"
        "|---|---|---|\n"
        "| CUDA toolkit vs host driver | OK | fine |\n"
        "| CXX11 ABI (CUDA extensions) | FAIL | a / b |\n"
        "| NCCL | N/A | single-GPU |\n"
    )


def test_summary_table_of_a_cell_has_one_row_per_check_in_order(load_fleet: LoadFleet) -> None:
    fleet = load_fleet(matrix(accelerators="GPU_8xH100", stack="flash-attn"))
    found = fleet.checks(only_cell(fleet))
    assert len(CHECKS) == len(found) == len(CHECK_TITLES)
    lines = summary_table(found).splitlines()
    assert lines[:4] == ["## Compatibility Check", "", "| Check | Status | Details |", "|---|---|---|"]
    rows = lines[4:]
    assert len(rows) == len(CHECK_TITLES)
    for row, title, c in zip(rows, CHECK_TITLES, found, strict=True):
        assert c.title == title
        assert row == f"| {title} | {c.status} | {c.detail} |"
        assert row.count("|") == 4


# --- the shipped matrix.yaml -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_fleet() -> Fleet:
    return Fleet.load(DEFAULT_MATRIX)


def test_default_matrix_every_cell_passes(default_fleet: Fleet) -> None:
    bad = {
        cell.slug: [f"{c.id}={c.status}: {c.detail}" for c in default_fleet.checks(cell) if c.status not in (OK, NA)]
        for cell in default_fleet.cells
    }
    assert {slug: issues for slug, issues in bad.items() if issues} == {}
    assert all(worst([c.status for c in default_fleet.checks(cell)]) == OK for cell in default_fleet.cells)


def test_default_matrix_covers_the_fleet(default_fleet: Fleet) -> None:
    cells = default_fleet.cells
    assert len(cells) >= 24
    assert {c.cloud for c in cells} == {"aws", "azure"}
    assert {c.variant for c in cells} == {"runtime", "devel"}
    assert {"2.6.0", "2.7.1"} <= {c.torch for c in cells}
    names = {e.name for c in cells for e in c.extensions}
    assert {"flash-attn", "xformers", "apex"} <= names
    # apex compiles once in a builder stage and ships as a wheel: runtime cells have it too.
    apex_variants = {c.variant for c in cells if any(e.name == "apex" for e in c.extensions)}
    assert apex_variants == {"runtime", "devel"}
    assert [c.index for c in cells] == list(range(1, len(cells) + 1))
    assert len({c.slug for c in cells}) == len(cells)


# --- facts a source audit corrected (issue: apex that really compiles, and five facts) ----------------------


@pytest.mark.parametrize(
    ("row", "cuda", "fix"),
    [
        # PyPI torch 2.6 / 2.7 / 2.8 are CUDA 12.4 / 12.6 / 12.8; the devel bases' nvcc is 12.9.
        ("{version: 2.6.0}", "12.4", "no torch 2.6 build has CUDA 12.9"),
        ("{version: 2.7.1}", "12.6", "no torch 2.7 build has CUDA 12.9"),
        ("{version: 2.8.0}", "12.8", "take torch from the cu129 index (`index: cu129` on the torch line)"),
        ("{version: 2.8.0, index: cu128}", "12.8", "take torch from the cu129 index"),
    ],
)
def test_apex_fails_when_torchs_cuda_minor_is_not_nvccs(load_fleet: LoadFleet, row: str, cuda: str, fix: str) -> None:
    """apex's setup.py (check_cuda_torch_binary_vs_bare_metal) raises on any nvcc/torch CUDA difference, minor
    included: such a cell would never build, so the checks must not call it OK."""
    c = check(load_fleet, matrix(row, variant="devel", stack="apex", extra=apex_pin()), "builds")
    assert_detail(c, FAIL, f"refuses nvcc 12.9 with torch built for CUDA {cuda}", fix)


@pytest.mark.parametrize("base", ["databricks", "scratch"])  # CUDA 12.9.1 and 12.9.0: nvcc 12.9 both
def test_apex_builds_against_the_torch_whose_cuda_is_nvccs(load_fleet: LoadFleet, base: str) -> None:
    text = matrix("{version: 2.8.0, index: cu129}", variant="devel", base=base, stack="apex", extra=apex_pin())
    assert worst([c.status for c in checks_of(load_fleet(text)).values()]) == OK


def test_the_default_matrix_has_apex_cells_and_every_one_would_build() -> None:
    fleet = Fleet.load(DEFAULT_MATRIX)
    apex = [c for c in fleet.cells if any(e.name == "apex" for e in c.extensions)]
    assert len(apex) >= 5  # both clouds' runtime and devel bases, and the from-scratch devel image
    assert {c.variant for c in apex} == {"runtime", "devel"}  # compiled once in a builder, shipped as a wheel
    for cell in apex:
        assert cell.torch_cuda is not None and cell.cuda is not None
        assert cell.torch_cuda == ".".join(cell.cuda.split(".")[:2]), cell.slug  # nvcc's major.minor
        assert worst([c.status for c in fleet.checks(cell)]) == OK, cell.slug


def test_xformers_built_with_a_newer_cuda_than_torch_holds_the_host_to_it(load_fleet: LoadFleet) -> None:
    """xformers 0.0.31.post1 is built with CUDA 12.8 (its cpp_lib.json) beside PyPI torch 2.7.1 (12.6). On a
    base whose own toolkit asks less (12.6.3) and a host between 12.6's and 12.8's minimum, the wheel sets
    the requirement: not OK. The same host with the plain cell is OK, so the wheel's CUDA is what moves it."""
    from dataclasses import replace

    from generator.resolve.checks import _driver

    facts = knowledge()
    fleet = load_fleet(matrix("{version: 2.7.1, xformers: 0.0.31.post1}", stack="xformers"))
    cell = replace(only_cell(fleet), cuda="12.6.3", host_driver="565.57.01")
    c = _driver(cell, facts)
    assert_detail(c, WARN, "CUDA 12.8 (xformers 0.0.31.post1) needs ≥570.26", "host 565.57.01")
    plain = replace(cell, extensions=())
    assert_detail(_driver(plain, facts), OK, "CUDA 12.6.3 (the base's toolkit) needs ≥560.35.05")
    # The check table says why the wheel's CUDA matters.
    builds = checks_of(fleet)["builds"]
    assert_detail(builds, OK, "built with CUDA 12.8 (its cpp_lib.json) while torch's is 12.6")


@pytest.mark.parametrize(
    ("cuda", "minimum"),
    [
        ("12.9.1", "575.57.08"),  # 12.9 Update 1: the Databricks bases
        ("12.9.0", "575.51.03"),  # 12.9 GA: nvidia/cuda:12.9.0
        ("12.9", "575.51.03"),  # torch's CUDA, known to the minor: that minor's GA
        ("12.8", "570.26"),
        ("12.8.1", "570.124.06"),
        ("12.3.2", "545.23.08"),  # not listed: the newest listed release of 12.3 not newer than it
        ("12.6.2", "560.35.03"),
        ("13.0.2", "580.95.05"),
        ("12.7", None),  # there is no CUDA 12.7
    ],
)
def test_minimum_driver_is_keyed_by_the_toolkits_full_version(cuda: str, minimum: str | None) -> None:
    assert knowledge().min_driver(cuda) == minimum
