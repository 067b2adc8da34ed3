"""The GPU benchmark: comparison with the reference table on canned payload output, the real payload on this
CPU-only machine (it must say "no GPU" with no number), and how the host runs it in a container."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from generator.fleet import Fleet
from generator.verify import bench
from generator.verify.bench import BenchResult, compare, load_reference, run_bench, write_bench_record
from tests.conftest import WriteMatrix, build_matrix

PAYLOAD = Path(bench.__file__).parent / "payload" / "bench.py"

H200: dict[str, Any] = {
    "schema": 1,
    "status": "measured",
    "device": {"name": "NVIDIA H200", "count": 1, "driver": "570.124.06", "capability": "9.0"},
    "torch": "2.7.1+cu128",
    "cuda": "12.8",
    "results": {
        "matmul_bf16": {"tflops_median": 711.0, "tflops_min": 700.0, "tflops_max": 720.0, "runs": 20},
        "matmul_fp16": {"tflops_median": 692.3, "tflops_min": 680.0, "tflops_max": 700.0, "runs": 20},
        "sdpa": {"tflops": 400.0, "tokens_per_s": 1.0e6},
        "flash_attn": {"status": "not installed", "error": "ModuleNotFoundError: No module named 'flash_attn'"},
        "memcpy_d2d": {"gb_per_s": 4080.0},
        "nccl_allreduce": {"status": "n/a: one GPU"},
    },
}


def _numbers(value: object) -> list[object]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def test_reference_every_figure_has_a_source() -> None:
    ref = load_reference()
    assert ref.for_device("NVIDIA H200").figures["matmul_bf16_tflops"].value == 790  # type: ignore[union-attr]
    assert "measured" in ref.for_device("NVIDIA H200").figures["matmul_bf16_tflops"].source  # type: ignore[union-attr]
    assert ref.for_device("NVIDIA H100 80GB HBM3").name == "NVIDIA H100 SXM"  # type: ignore[union-attr]
    assert ref.for_device("NVIDIA A10").name == "NVIDIA A10"  # type: ignore[union-attr]
    assert ref.for_device("NVIDIA A100-SXM4-80GB") is None  # "A10" must not match A100
    assert ref.for_device("NVIDIA A10G") is None
    assert all(f.source for d in ref.devices for f in d.figures.values())


def test_h200_fractions() -> None:
    rows = {r.figure: r for r in compare(H200, load_reference())}
    assert rows["matmul_bf16"].fraction == pytest.approx(711.0 / 790)
    assert rows["matmul_fp16"].fraction == pytest.approx(692.3 / 989)
    assert rows["memcpy_d2d"].fraction == pytest.approx(4080.0 / 4800)
    assert rows["sdpa"].value == 400.0 and rows["sdpa"].fraction is None  # no attention reference
    assert rows["flash_attn"].value is None and rows["flash_attn"].fraction is None
    assert "not installed" in rows["flash_attn"].note
    assert rows["nccl_allreduce"].fraction is None and "one GPU" in rows["nccl_allreduce"].note
    for r in rows.values():  # each figure carries device, driver, torch and CUDA
        assert (r.device, r.driver, r.torch, r.cuda) == ("NVIDIA H200", "570.124.06", "2.7.1+cu128", "12.8")
    assert "| matmul_bf16 | 711.0 TFLOP/s | 790 TFLOP/s | 90% |" in bench.table(list(rows.values()))


def test_no_gpu_has_no_fraction_and_no_value() -> None:
    out = {"schema": 1, "status": "no GPU", "device": None, "results": {}, "reason": "no CUDA"}
    rows = compare(out, load_reference())
    assert len(rows) == len(bench.FIGURES)
    assert all(r.value is None and r.fraction is None and r.reference is None for r in rows)
    assert all(r.note.startswith("no GPU") for r in rows)


def test_unknown_device_fraction_none() -> None:
    out = json.loads(json.dumps(H200))
    out["device"]["name"] = "NVIDIA GeForce RTX 4090"
    rows = compare(out, load_reference())
    assert rows[0].value == 711.0
    assert all(r.fraction is None for r in rows)
    assert "no reference for NVIDIA GeForce RTX 4090" in rows[0].note


def test_errors_and_garbage_are_not_numbers() -> None:
    out = json.loads(json.dumps(H200))
    out["results"]["matmul_bf16"] = {"status": "error", "error": "OutOfMemoryError: CUDA out of memory"}
    out["results"]["memcpy_d2d"] = {"gb_per_s": 0}
    rows = {r.figure: r for r in compare(out, load_reference())}
    assert rows["matmul_bf16"].fraction is None and "OutOfMemoryError" in rows["matmul_bf16"].note
    assert rows["memcpy_d2d"].value is None and rows["memcpy_d2d"].fraction is None
    assert all(r.fraction is None for r in compare({"status": "error"}, load_reference()))


def _assert_no_gpu(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1
    out: dict[str, Any] = json.loads(lines[0])
    assert out["status"] == "no GPU"
    assert out["results"] == {}
    assert _numbers(out["results"]) == [] and _numbers(out["device"]) == []
    return out


def test_payload_without_torch_says_no_gpu() -> None:
    done = subprocess.run(
        [sys.executable, str(PAYLOAD), "--json", "--quick"], capture_output=True, text=True, timeout=60, check=True
    )
    out = _assert_no_gpu(done.stdout)
    assert "torch does not import" in out["reason"]


def test_payload_with_cpu_only_torch_stand_in(tmp_path: Path) -> None:
    """A torch that imports but sees no CUDA (a CPU build, or no GPU given): "no GPU", versions reported."""
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "__version__ = '2.7.1+cpu'\n"
        "class version:\n    cuda = None\n"
        "class cuda:\n    @staticmethod\n    def is_available():\n        return False\n"
    )
    done = subprocess.run(
        [sys.executable, str(PAYLOAD), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    out = _assert_no_gpu(done.stdout)
    assert out["torch"] == "2.7.1+cpu" and out["reason"] == "torch.cuda.is_available() is False"


class _Container:
    def __init__(self, stdout: bytes) -> None:
        self.stdout, self.archive, self.removed = stdout, b"", False

    def put_archive(self, path: str, data: bytes) -> None:
        self.archive = data

    def start(self) -> None:
        pass

    def wait(self, timeout: float) -> dict[str, int]:
        return {"StatusCode": 0}

    def logs(self, stdout: bool, stderr: bool) -> bytes:
        return self.stdout if stdout else b""

    def remove(self, force: bool) -> None:
        self.removed = True


class _Image:
    """A local image that was never pushed: the record names its config digest, no manifest."""

    id = "sha256:" + "1c" * 32
    labels: ClassVar[dict[str, str]] = {}
    attrs: ClassVar[dict[str, Any]] = {"RepoDigests": []}


class _Client:
    def __init__(self, stdout: bytes) -> None:
        self.container = _Container(stdout)
        self.kwargs: dict[str, Any] = {}
        self.containers = self
        self.images = self

    def create(self, image: str, **kwargs: Any) -> _Container:
        self.kwargs = kwargs
        return self.container

    def get(self, ref: str) -> _Image:
        return _Image()


@pytest.mark.parametrize("gpus", [False, True])
def test_run_bench_copies_payload_and_asks_gpus_only_when_told(gpus: bool, tmp_path: Path) -> None:
    client = _Client(b"noise\n" + json.dumps(H200).encode() + b"\n")
    out = run_bench(client, "img:tag", gpus=gpus, quick=True, timeout=10)
    assert out["status"] == "measured"
    assert ("device_requests" in client.kwargs) is gpus
    assert client.kwargs["command"] == ["/air-fleet-bench/bench.py", "--json", "--quick"]
    assert client.kwargs["network_mode"] == "none"
    assert PAYLOAD.read_bytes() in client.container.archive and client.container.removed
    result = bench.bench_image(client, "cell-a", "img:tag", "sha256:abc", gpus=gpus, quick=False)
    path = write_bench_record(tmp_path, "sandbox", result)
    assert path == tmp_path / "sandbox" / "bench" / "cell-a.json"
    record = json.loads(path.read_text())
    assert record["status"] == "measured" and record["rows"][0]["fraction"] == pytest.approx(711.0 / 790)
    assert record["image_id"] == _Image.id and record["manifest_digest"] is None and record["pulled"] is False


def test_run_bench_without_json_is_an_error() -> None:
    client = _Client(b"Traceback: boom\n")
    with pytest.raises(bench.BenchError, match="no JSON object"):
        run_bench(client, "img:tag", gpus=False, quick=True, timeout=10)
    result = bench.bench_image(client, "c", "img:tag", "d", gpus=False, quick=True)
    assert isinstance(result, BenchResult) and result.error and all(r.fraction is None for r in result.rows)


def test_bench_without_a_gpu_prints_one_line_per_cell(
    write_matrix: WriteMatrix, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bench --quick` on a machine without a GPU printed, per cell, a heading and a table of dashes."""
    from generator.cli import verify

    no_gpu = {"schema": 1, "status": "no GPU", "device": None, "results": {}, "reason": "torch sees no CUDA device"}
    monkeypatch.setattr(verify, "connect", lambda: _Client(json.dumps(no_gpu).encode() + b"\n"))
    monkeypatch.setenv("AIR_FLEET_RESULTS", str(tmp_path / "results"))
    fleet = Fleet.load(write_matrix(build_matrix(cloud="aws, azure")))
    args = argparse.Namespace(cells=[], gpus=False, quick=True, json=False)
    assert verify.cmd_bench(fleet, args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{c.slug}: no GPU: nothing measured (torch sees no CUDA device)" for c in fleet.cells]
    # Another matrix than ./matrix.yaml: its records sit apart from the real fleet's (see Profile.records).
    written = sorted(p.stem for p in (tmp_path / "results" / fleet.profile.records / "bench").iterdir())
    assert fleet.profile.records != "default" and written == sorted(c.slug for c in fleet.cells)


def test_a_measured_cell_still_gets_its_table() -> None:
    result = BenchResult("cell-a", "img:tag", "d", True, True, "measured", H200, compare(H200, load_reference()))
    text = bench.report(result)
    assert text.startswith("# cell-a: measured\n\n| Figure |") and "| matmul_bf16 | 711.0 TFLOP/s |" in text
    failed = BenchResult("cell-b", "img:tag", "d", True, True, "error", {}, [], error="the container exited 137")
    assert bench.report(failed) == "cell-b: the container exited 137"
