"""The probe's judge on canned facts (no engine): real facts in, the seed's table out, never a crash.

The canned facts are what the payload printed for the sandbox's aws-devel-torch2.13-einops0.8.2 image;
each test changes the one fact it is about. The payload itself runs here too, with this interpreter (which
has no torch: a finding it must report, not a crash).
"""

from __future__ import annotations

import ast
import copy
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from generator.fleet import Fleet
from generator.model import Cell, Extension, Origin
from generator.render.renderer import expect_json
from generator.resolve.checks import FAIL, NA, OK, WARN, Check, worst
from generator.spec.profiles import load_profile
from generator.verify.judge import NOT_MEASURED, Expectations, expectations_for, judge
from generator.verify.probe import PAYLOAD, PROBE_DIR, ProbeError, ProbeResult, _archive, _parse, report
from tests.conftest import build_matrix

GPU_ROWS = ("driver", "cuda", "nccl")
SANDBOX_FACTS: dict[str, Any] = {
    "schema": 1,
    "probe": "/air-fleet-probe/probe.py",
    "expect": "/air-fleet-probe/expect.json",
    "errors": [],
    "python": {"executable": "/opt/venv/bin/python", "prefix": "/opt/venv", "version": "3.11.2"},
    "databricks_python": {
        "exists": True,
        "path": "/databricks/python/bin/python",
        "prefix": "/opt/venv",
        "target": "/usr/bin/python3.11",
    },
    "uv": {"path": "/usr/local/bin/uv", "version": "uv 0.9.5"},
    "torch": {
        "imported": True,
        "version": "2.13.0+cpu",
        "cuda": None,
        "cxx11_abi": 1,
        "cuda_available": False,
        "device_count": 0,
        "devices": [],
        "nccl": None,
        "nccl_note": "not measured: no GPU visible",
    },
    "extensions": {"einops": {"import": "n/a", "native": "n/a", "native_modules": {}, "version": "0.8.2"}},
    "network": {
        "efa": {"installed": False, "libfabric": []},
        "infiniband": {"ibv_devinfo": None, "libibverbs": []},
        "ofi_nccl": [],
    },
    "env": {
        "FI_EFA_USE_DEVICE_RDMA": "1",
        "LD_LIBRARY_PATH": None,
        "NCCL_NET_PLUGIN": None,
        "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
        "NVIDIA_VISIBLE_DEVICES": "all",
        "OPENSSL_FORCE_FIPS_MODE": "0",
        "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
    },
    "driver": None,
    "distributions": ["einops==0.8.2", "filelock==4.3.1", "setuptools==84.2.1", "torch==2.13.0+cpu"],
}
# A GPU machine's view of a cu128 torch 2.8.0 image with flash-attn (shape as the payload prints it).
GPU_TORCH = {
    "imported": True,
    "version": "2.8.0+cu128",
    "cuda": "12.8",
    "cxx11_abi": 1,
    "cuda_available": True,
    "device_count": 1,
    "devices": [{"name": "NVIDIA H100 80GB HBM3", "capability": "9.0"}],
    "nccl": "2.27.3",
    "nccl_note": "torch.cuda.nccl.version()",
}
UNDEFINED = (
    "ImportError: /opt/venv/lib/python3.12/site-packages/flash_attn_2_cuda.cpython-312-x86_64-linux-gnu.so: "
    "undefined symbol: _ZN3c105ErrorC2ENS_14SourceLocationENSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE"
)


def facts(**changes: Any) -> dict[str, Any]:
    """The sandbox facts with sections replaced (a deep copy: tests never share state)."""
    out = copy.deepcopy(SANDBOX_FACTS)
    out.update(copy.deepcopy(changes))
    return out


def rows(checks: list[Check]) -> dict[str, Check]:
    return {c.id: c for c in checks}


@pytest.fixture(scope="module")
def sandbox() -> dict[str, Cell]:
    fleet = Fleet.for_profile(load_profile("sandbox"))
    return {c.slug: c for c in fleet.cells}


@pytest.fixture
def einops_cell(sandbox: dict[str, Cell]) -> Cell:
    return sandbox["aws-devel-torch2.13-einops0.8.2"]


@pytest.fixture
def gpu_fleet(load_fleet: Callable[[str], Fleet]) -> Fleet:
    return load_fleet(build_matrix("{version: 2.8.0, flash-attn: 2.8.3}", stack="flash-attn"))


def gpu_facts(cell: Cell) -> dict[str, Any]:
    ext = {"import": "ok", "native": "ok", "native_modules": {"flash_attn_2_cuda": "ok"}, "version": "2.8.3"}
    return facts(
        torch=GPU_TORCH,
        driver="580.126.16",
        extensions={"flash-attn": ext},
        python={"executable": cell.python_path, "prefix": "/opt/venv", "version": "3.12.3"},
        distributions=["flash_attn==2.8.3", "torch==2.8.0+cu128", "torchvision==0.23.0", "torchaudio==2.8.0"],
    )


def test_a_good_sandbox_image_is_ok_and_gpu_facts_are_not_measured(einops_cell: Cell) -> None:
    checks = judge(einops_cell, facts(), Expectations(gpus=False, stand_in=True))
    by_id = rows(checks)
    for row in GPU_ROWS:
        assert (by_id[row].status, by_id[row].detail) == (NA, NOT_MEASURED)
    others = [c for c in checks if c.id not in GPU_ROWS and c.id != "network"]
    assert {c.status for c in others} == {OK}, others
    assert by_id["network"].status == NA
    assert worst([c.status for c in checks]) == OK
    assert "einops 0.8.2" in by_id["extensions"].detail


def test_without_a_gpu_even_glowing_gpu_facts_are_never_ok(gpu_fleet: Fleet) -> None:
    """A CPU-only machine reports GPU facts as not measured: whatever the facts claim, never as passed."""
    cell = gpu_fleet.cells[0]
    by_id = rows(judge(cell, gpu_facts(cell), Expectations(gpus=False)))
    assert [by_id[r].status for r in GPU_ROWS] == [NA, NA, NA]
    assert all("not measured" in by_id[r].detail for r in GPU_ROWS)


def test_a_good_gpu_image_on_a_gpu_machine(gpu_fleet: Fleet) -> None:
    cell = gpu_fleet.cells[0]
    expected = expectations_for(cell, gpu_fleet.facts, gpus=True)
    checks = rows(judge(cell, gpu_facts(cell), expected))
    assert checks["cuda"].status == OK and "NVIDIA H100" in checks["cuda"].detail
    assert checks["nccl"].status == OK and "2.27.3" in checks["nccl"].detail
    assert checks["driver"].status == OK and "580.126.16" in checks["driver"].detail
    assert checks["abi"].status == OK and "flash_attn_2_cuda loads" in checks["abi"].detail
    assert checks["torch-cuda"].status == OK


def test_gpu_given_but_cuda_unavailable_or_nccl_broken_fails(gpu_fleet: Fleet) -> None:
    cell = gpu_fleet.cells[0]
    broken = gpu_facts(cell)
    broken["torch"].update(cuda_available=False, nccl=None, nccl_note="RuntimeError: NCCL not loaded")
    broken["driver"] = None
    checks = rows(judge(cell, broken, Expectations(gpus=True, min_driver="570.26")))
    assert checks["cuda"].status == FAIL and "is_available() is False" in checks["cuda"].detail
    assert checks["nccl"].status == FAIL and "NCCL not loaded" in checks["nccl"].detail
    assert checks["driver"].status == FAIL


def test_a_driver_below_the_minimum_is_a_warning(gpu_fleet: Fleet) -> None:
    cell = gpu_fleet.cells[0]
    old = gpu_facts(cell) | {"driver": "550.54.15"}
    check = rows(judge(cell, old, Expectations(gpus=True, min_driver="570.26")))["driver"]
    assert check.status == WARN and "≥570.26" in check.detail


def test_torch_abi_differs_from_the_cell(einops_cell: Cell) -> None:
    bad = facts()
    bad["torch"]["cxx11_abi"] = 0
    check = rows(judge(einops_cell, bad))["abi"]
    assert check.status == FAIL and "ABI 0" in check.detail and "expects 1" in check.detail


def test_an_extension_built_for_the_other_abi_fails_by_name(gpu_fleet: Fleet) -> None:
    cell = gpu_fleet.cells[0]
    bad = gpu_facts(cell)
    bad["extensions"]["flash-attn"]["native"] = UNDEFINED
    checks = rows(judge(cell, bad, Expectations(gpus=True)))
    assert checks["abi"].status == FAIL
    assert "flash-attn" in checks["abi"].detail and "undefined symbol" in checks["abi"].detail
    assert "another C++11 ABI" in checks["abi"].detail
    assert checks["extensions"].status == OK  # the package itself imports; its native module is the ABI row's


def test_an_extension_that_does_not_import_at_all(gpu_fleet: Fleet) -> None:
    cell = gpu_fleet.cells[0]
    bad = gpu_facts(cell)
    bad["extensions"]["flash-attn"].update(
        {"import": "ModuleNotFoundError: No module named 'flash_attn'", "native": "n/a", "version": None}
    )
    checks = rows(judge(cell, bad, Expectations(gpus=True)))
    assert checks["extensions"].status == FAIL
    assert "No module named 'flash_attn'" in checks["extensions"].detail
    assert "not installed" in checks["extensions"].detail
    assert checks["abi"].status == FAIL  # its native module was never loaded: not a pass


def test_an_extension_at_another_version(einops_cell: Cell) -> None:
    bad = facts()
    bad["extensions"]["einops"]["version"] = "0.7.0"
    check = rows(judge(einops_cell, bad))["extensions"]
    assert check.status == FAIL and "version 0.7.0, pinned 0.8.2" in check.detail


def test_a_source_build_pin_is_a_commit_not_compared_with_the_version(einops_cell: Cell) -> None:
    commit = "810ffae374a2b9cb4b5c5e28eaeca7d7998fca0c"
    apex = Extension(
        "apex", "source", commit, "source", "apex", ("fused_layer_norm_cuda",), (), 1, "built here", None, ORIGIN
    )
    cell = replace(einops_cell, extensions=(apex,))
    got = facts(extensions={"apex": {"import": "ok", "native": "ok", "native_modules": {"x": "ok"}, "version": "0.1"}})
    assert rows(judge(cell, got))["extensions"].status == OK


def test_torch_version_mismatch(einops_cell: Cell) -> None:
    bad = facts()
    bad["torch"]["version"] = "2.12.1+cpu"
    check = rows(judge(einops_cell, bad))["torch-cuda"]
    assert check.status == FAIL and "torch 2.12.1+cpu, the cell pins 2.13.0" in check.detail


def test_torch_cuda_mismatch_and_companions(gpu_fleet: Fleet) -> None:
    cell = gpu_fleet.cells[0]
    bad = gpu_facts(cell)
    bad["torch"]["cuda"] = "12.6"
    bad["distributions"] = ["torch==2.8.0+cu128"]
    detail = rows(judge(cell, bad, Expectations(gpus=True)))["torch-cuda"].detail
    assert "torch.version.cuda 12.6, the cell expects 12.8" in detail
    assert f"torchvision missing, the cell pins {cell.torchvision}" in detail


def test_torch_that_does_not_import_fails_every_torch_row(einops_cell: Cell) -> None:
    bad = facts(torch={"imported": False, "error": "ImportError: libtorch_cpu.so: cannot open shared object file"})
    checks = rows(judge(einops_cell, bad, Expectations(gpus=True)))
    for row in ("torch-cuda", "abi"):
        assert checks[row].status == FAIL and "libtorch_cpu.so" in checks[row].detail
    assert checks["cuda"].status == NA  # a CPU build: nothing to measure even with GPUs


def test_missing_databricks_python_fails_from_scratch_and_warns_on_a_databricks_base(
    sandbox: dict[str, Cell],
) -> None:
    gone = {"exists": False, "path": "/databricks/python/bin/python", "prefix": None, "target": None}
    scratch = sandbox["aws-runtime-scratch-torch2.13"]
    scratch_facts = facts(
        databricks_python=gone, python={"executable": "/usr/bin/python3", "prefix": "/usr", "version": "3.11.2"}
    )
    check = rows(judge(scratch, scratch_facts))["python"]
    assert check.status == FAIL and "/databricks/python/bin/python is missing" in check.detail
    check = rows(judge(sandbox["aws-devel-torch2.13"], facts(databricks_python=gone)))["python"]
    assert check.status == WARN


def test_databricks_python_in_another_environment(sandbox: dict[str, Cell]) -> None:
    """The lone-binary link: /databricks/python/bin/python starts /usr's Python, where torch is not."""
    other = {"exists": True, "path": "/databricks/python/bin/python", "prefix": "/usr", "target": "/usr/bin/python3"}
    check = rows(judge(sandbox["aws-devel-torch2.13"], facts(databricks_python=other)))["python"]
    assert check.status == WARN and "another environment" in check.detail


def test_python_version_or_path_differ(einops_cell: Cell) -> None:
    bad = facts(python={"executable": "/opt/venv/bin/python", "prefix": "/opt/venv", "version": "3.12.3"})
    assert rows(judge(einops_cell, bad))["python"].status == FAIL
    bad = facts(python={"executable": "/usr/bin/python3", "prefix": "/usr", "version": "3.11.2"})
    check = rows(judge(einops_cell, bad))["python"]
    assert check.status == FAIL and "not /opt/venv/bin/python" in check.detail


def test_network_as_the_cell_expects(gpu_fleet: Fleet, load_fleet: Callable[[str], Fleet]) -> None:
    cell = gpu_fleet.cells[0]  # aws, databricks base: the base ships EFA; only A10 blessed here
    expected = expectations_for(cell, gpu_fleet.facts, gpus=False)
    assert (expected.fabric, expected.fabric_needed) == ("efa", False)
    assert rows(judge(cell, gpu_facts(cell), expected))["network"].status == WARN  # the base lacks its EFA
    efa = {
        "efa": {"installed": True, "libfabric": ["/opt/amazon/efa/lib/libfabric.so.1"]},
        "infiniband": {
            "ibv_devinfo": "/usr/bin/ibv_devinfo",
            "libibverbs": ["/usr/lib/x86_64-linux-gnu/libibverbs.so.1"],
        },
        "ofi_nccl": ["/opt/amazon/ofi-nccl/lib/x86_64-linux-gnu/libnccl-net-ofi.so"],
    }
    check = rows(judge(cell, gpu_facts(cell) | {"network": efa}, expected))["network"]
    assert check.status == OK and "libnccl-net-ofi.so" in check.detail
    h100x8 = load_fleet(build_matrix("{version: 2.8.0}", accelerators="GPU_8xH100"))
    needed = expectations_for(h100x8.cells[0], h100x8.facts, gpus=False)
    assert needed.fabric_needed
    assert rows(judge(h100x8.cells[0], gpu_facts(cell), needed))["network"].status == FAIL
    stand_in = expectations_for(h100x8.cells[0], h100x8.facts, gpus=False, stand_in=True)
    check = rows(judge(h100x8.cells[0], gpu_facts(cell), stand_in))["network"]
    assert check.status == NA and "stand-in" in check.detail


def test_environment_without_nvidia_variables_warns(einops_cell: Cell) -> None:
    bad = facts()
    bad["env"].update(NVIDIA_VISIBLE_DEVICES=None, NVIDIA_DRIVER_CAPABILITIES="compute")
    check = rows(judge(einops_cell, bad))["env"]
    assert check.status == WARN and "NVIDIA_VISIBLE_DEVICES unset" in check.detail and "utility" in check.detail


def test_a_failed_payload_section_is_reported(einops_cell: Cell) -> None:
    got = facts(errors=[{"section": "distributions", "error": "OSError: boom"}], distributions=None)
    checks = rows(judge(einops_cell, got))
    assert checks["probe"].status == WARN and "distributions: OSError: boom" in checks["probe"].detail


@pytest.mark.parametrize(
    "garbage",
    [
        "nonsense",
        None,
        [],
        42,
        {},
        {"torch": "x", "python": 3, "extensions": [1], "network": {"efa": 1}, "errors": "x", "distributions": 7},
        {"torch": {"imported": True, "version": None, "cxx11_abi": "one"}, "python": {"version": "three"}},
    ],
)
def test_garbage_facts_fail_clearly_and_never_crash(einops_cell: Cell, garbage: Any) -> None:
    checks = judge(einops_cell, garbage, Expectations(gpus=True))
    assert checks and worst([c.status for c in checks]) == FAIL
    for c in checks:
        assert c.detail and "\n" not in c.detail
    failed = [c for c in checks if c.status == FAIL]
    assert any(
        "reported no" in c.detail or "unreadable" in c.detail or "torch" in c.detail or "Python" in c.detail
        for c in failed
    )


def test_a_record_is_json_with_what_later_steps_read(einops_cell: Cell) -> None:
    checks = judge(einops_cell, facts())
    result = ProbeResult(4, einops_cell.slug, "r:t", "sha256:" + "0" * 64, OK, checks, facts(), False)
    record = json.loads(json.dumps(result.record()))
    assert {"slug", "digest", "status", "checks", "facts", "gpus", "probe_sha256", "image_id"} <= set(record)
    assert record["checks"][0].keys() == {"id", "title", "status", "detail"}
    text = report([result])
    assert "| CXX11 ABI (CUDA extensions) | OK |" in text and "GPU facts not measured" in text


def test_parse_takes_the_last_json_line_and_refuses_no_json() -> None:
    assert _parse("img", 0, 'noise\n{"schema": 1}\n', "") == {"schema": 1}
    with pytest.raises(ProbeError, match=r"printed no facts \(exit status 1\).*Segmentation"):
        _parse("img", 1, "", "Segmentation fault")
    with pytest.raises(ProbeError):
        _parse("img", 0, "[1, 2]\n", "")


def test_the_archive_carries_payload_and_expectations(einops_cell: Cell) -> None:
    blob = _archive({"probe.py": b"print(1)\n", "expect.json": json.dumps(expect_json(einops_cell)).encode()})
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        names = {m.name: m for m in tar.getmembers()}
        prefix = PROBE_DIR.lstrip("/")
        assert set(names) == {prefix, f"{prefix}/probe.py", f"{prefix}/expect.json"}
        assert names[f"{prefix}/probe.py"].mode == 0o644
        handle = tar.extractfile(f"{prefix}/expect.json")
        assert handle is not None
        expect = json.load(handle)
    assert expect["extensions"] == [{"name": "einops", "version": "0.8.2", "import": None, "native_modules": []}]


def test_the_payload_is_python_38_and_runs_without_torch(tmp_path: Path) -> None:
    ast.parse(PAYLOAD.read_text(encoding="utf-8"), feature_version=(3, 8))
    expect = tmp_path / "expect.json"
    missing = {"name": "air-fleet-nothing", "version": "1", "import": "air_fleet_nothing", "native_modules": ["x._C"]}
    expect.write_text(json.dumps({"extensions": [missing, "junk"]}))
    done = subprocess.run(
        [sys.executable, str(PAYLOAD), str(expect)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["python"]["executable"] == sys.executable
    assert got["torch"]["imported"] is False or got["torch"]["version"]  # this venv has no torch, usually
    ext = got["extensions"]["air-fleet-nothing"]
    assert ext["import"].startswith("ModuleNotFoundError") and ext["native"].startswith("x._C: ModuleNotFoundError")
    assert ext["native_modules"]["x._C"].startswith("ModuleNotFoundError")
    assert ext["version"] is None
    assert any(d.startswith("pytest==") for d in got["distributions"])
    absent = subprocess.run(
        [sys.executable, str(PAYLOAD), str(tmp_path / "absent.json")], capture_output=True, text=True, timeout=120
    )
    assert absent.returncode == 0
    assert json.loads(absent.stdout)["errors"][0]["section"] == "expect"


def test_a_native_module_that_kills_the_interpreter_marks_only_its_extension(tmp_path: Path) -> None:
    """abort() in a native module cannot be caught in-process: each extension imports in a child."""
    site = tmp_path / "site"
    (site / "crashy").mkdir(parents=True)
    (site / "crashy" / "__init__.py").write_text("")
    (site / "crashy" / "_C.py").write_text("import os\nos.abort()\n")  # stands in for a crashing .so
    (site / "fine.py").write_text("")
    expect = tmp_path / "expect.json"
    crashy = {"name": "crashy", "version": "1", "import": "crashy", "native_modules": ["crashy._C"]}
    fine = {"name": "fine", "version": "1", "import": "fine", "native_modules": []}
    expect.write_text(json.dumps({"extensions": [crashy, fine]}))
    done = subprocess.run(
        [sys.executable, str(PAYLOAD), str(expect)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["extensions"]["crashy"]["import"] == "ok"
    native = got["extensions"]["crashy"]["native"]
    assert native.startswith("crashy._C: Crashed: the interpreter died of signal 6 (SIGABRT)")
    assert got["extensions"]["fine"] == {"import": "ok", "native": "n/a", "native_modules": {}, "version": None}
    assert got["python"] and got["distributions"] and got["errors"] == []


def test_torch_that_imports_but_then_fails_is_shown(einops_cell: Cell) -> None:
    bad = facts()
    bad["torch"]["error"] = "RuntimeError: CUDA driver initialization failed"
    check = rows(judge(einops_cell, bad))["torch-cuda"]
    assert check.status == FAIL and "CUDA driver initialization failed" in check.detail


ORIGIN = Origin(Path("matrix.yaml"), None, "test")
