"""The probe reads a compiled module's GPU architectures from its ELF's .nv_fatbin section (no cuobjdump),
and the judge holds them against the accelerators the cell is blessed for."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from generator.fleet import Fleet
from generator.status import Verdict
from generator.verify.archs import judge_archs
from generator.verify.judge import judge
from generator.verify.payload.probe import fatbin_archs, kernel_archs
from tests.conftest import DEFAULT_MATRIX

FATBIN_MAGIC = 0xBA55ED50


def entry(kind: int, arch: int, payload: bytes = b"\0" * 24) -> bytes:
    """One fatbin entry as nvcc writes it: a 64-byte header (kind, header size, payload size, ..., arch)."""
    header = struct.pack("<HHIQIIHHIIIQQQ", kind, 0x101, 64, len(payload), 0, 0, 8, 1, arch, 0, 0, 0x11, 0, 0)
    return header + payload


def container(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack("<IHHQ", FATBIN_MAGIC, 1, 16, len(body)) + body


# Two fatbinaries, as two translation units leave them: cubins for 8.0 and 9.0 and PTX for 9.0, then 8.6.
FATBIN = container(entry(2, 80), entry(2, 90), entry(1, 90)) + b"\0" * 8 + container(entry(2, 86))


@pytest.fixture(scope="module")
def module_with_kernels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ELF (this machine's Python binary, linked by a real linker) given a .nv_fatbin section the
    way nvcc's host link leaves one, by binutils' objcopy."""
    work = tmp_path_factory.mktemp("fatbin")
    (work / "fatbin.bin").write_bytes(FATBIN)
    target = work / "_C.so"
    objcopy = shutil.which("objcopy")
    assert objcopy is not None, "binutils' objcopy is part of the test toolchain"
    subprocess.run(
        [objcopy, "--add-section", f".nv_fatbin={work / 'fatbin.bin'}", sys.executable, str(target)], check=True
    )
    return target


def test_the_architectures_are_read_from_the_elf_section(module_with_kernels: Path) -> None:
    assert kernel_archs(str(module_with_kernels)) == ["compute_90", "sm_80", "sm_86", "sm_90"]
    assert fatbin_archs(FATBIN) == ["compute_90", "sm_80", "sm_86", "sm_90"]


def test_a_module_without_gpu_code_has_no_architectures() -> None:
    assert kernel_archs(sys.executable) is None  # an ELF without .nv_fatbin: CPU code only
    assert kernel_archs(__file__) is None  # not an ELF at all


@pytest.mark.parametrize(
    ("entries", "status", "words"),
    [
        (["sm_86", "sm_90"], Verdict.OK, "kernels sm_86, sm_90 for 8.6, 9.0"),
        (["sm_80", "sm_90"], Verdict.OK, "for 8.6, 9.0"),  # sm_80 cubins run on 8.6 (same major, older minor)
        (["compute_80"], Verdict.OK, "for 8.6, 9.0"),  # PTX: the driver JIT-compiles it for newer GPUs
        (["sm_90"], Verdict.FAIL, "serve no GPU of compute capability 8.6"),
        (["sm_89", "sm_90"], Verdict.FAIL, "8.6"),  # a newer minor's cubin does not run on 8.6
        ([], Verdict.FAIL, "kernels none serve no GPU of compute capability 8.6, 9.0"),
        (["sm_86", "sm_90", "sm_100"], Verdict.WARN, "sm_100 for GPUs the cell is not blessed for"),
    ],
)
def test_kernels_against_the_blessed_accelerators(entries: list[str], status: Verdict, words: str) -> None:
    verdict, line = judge_archs(entries, ("8.6", "9.0"))
    assert verdict == status and words in line, line


def test_the_probe_table_fails_a_compiled_extension_without_kernels_for_a_blessed_gpu() -> None:
    fleet = Fleet.load(DEFAULT_MATRIX)
    cell = next(c for c in fleet.cells if c.slug == "aws-devel-torch2.8-cu129-apex")
    assert cell.extensions[0].archs == ("8.6", "9.0")  # from GPU_1xA10, GPU_1xH100, GPU_8xH100

    def abi_row(archs: dict[str, list[str] | None]) -> tuple[str, str]:
        apex = {"import": "ok", "native": "ok", "native_modules": dict.fromkeys(archs, "ok"), "archs": archs}
        facts = {"torch": {"imported": True, "cxx11_abi": 1}, "extensions": {"apex": apex}}
        row = next(c for c in judge(cell, facts) if c.id == "abi")
        return row.status, row.detail

    # apex_C is CPU code (no .nv_fatbin); fused_layer_norm_cuda carries the kernels.
    status, detail = abi_row({"apex_C": None, "fused_layer_norm_cuda": ["sm_86", "sm_90"]})
    assert status == Verdict.OK and "kernels sm_86, sm_90 for 8.6, 9.0" in detail
    status, detail = abi_row({"apex_C": None, "fused_layer_norm_cuda": ["sm_90"]})
    assert status == Verdict.FAIL and "serve no GPU of compute capability 8.6" in detail
