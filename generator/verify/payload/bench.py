"""GPU benchmark shipped into fleet images (the host copies it to /air-fleet-bench/bench.py before each run).

Runs INSIDE an image with the image's own Python: standard library plus the image's torch (imported inside
a try), Python 3.8 syntax. It measures, never judges: it prints ONE JSON object on stdout and exits 0; the
host (generator/verify/bench.py) compares the figures with generator/knowledge/gpu_reference.yaml.

    python bench.py [--quick] [--json]

--quick: small sizes and few iterations (a smoke run: the figures then mean nothing about peak).
--json: only the JSON object (without it a readable summary also goes to stderr).

Figures: bf16 and fp16 matmul TFLOP/s (CUDA events, warm-up, median/min/max of repeated runs), attention
TFLOP/s and tokens/s with torch's SDPA and with flash-attn where installed (same shapes), device-to-device
copy bandwidth (bytes read + bytes written per second), and NCCL all-reduce bus bandwidth over every GPU of
the node (one process per GPU, torch.multiprocessing, 127.0.0.1) when there are two or more. Without a GPU
the status is "no GPU" and there are no results: never a number.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the payload also runs on Python 3.8
    from collections.abc import Callable

    Json = dict[str, Any]

SCHEMA = 1
NCCL_PORT = "29517"


def _error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:500]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _sizes(quick: bool) -> Json:
    if quick:
        return {
            "matmul_n": 1024,
            "warmup": 2,
            "runs": 3,
            "iters": 2,
            "attn": (1, 128, 2, 64),
            "copy_bytes": 8 << 20,
            "nccl_bytes": 1 << 20,
        }
    return {
        "matmul_n": 8192,  # 1.1 TFLOP per product: long enough to reach peak on an H200
        "warmup": 10,
        "runs": 20,
        "iters": 10,
        "attn": (8, 4096, 32, 128),  # batch, sequence, heads, head dim
        "copy_bytes": 1 << 30,
        "nccl_bytes": 256 << 20,
    }


def _time_runs(torch: Any, step: Callable[[], object], warmup: int, runs: int, iters: int) -> list[float]:
    """Seconds per call of `step`, one figure per run of `iters` calls, timed with CUDA events."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    out = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            step()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) / 1000.0 / iters)
    return out


def _rates(work: float, seconds: list[float]) -> Json:
    """Median, min and max of work/second over the runs (the spread of repeated runs)."""
    rates = [work / s for s in seconds if s > 0]
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


def matmul(torch: Any, dtype_name: str, s: Json) -> Json:
    n = s["matmul_n"]
    dtype = getattr(torch, dtype_name)
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    c = torch.empty(n, n, device="cuda", dtype=dtype)
    seconds = _time_runs(torch, lambda: torch.matmul(a, b, out=c), s["warmup"], s["runs"], s["iters"])
    r = _rates(2.0 * n**3 / 1e12, seconds)
    return {
        "tflops_median": r["median"],
        "tflops_min": r["min"],
        "tflops_max": r["max"],
        "runs": len(seconds),
        "iters_per_run": s["iters"],
        "shape": [n, n, n],
        "dtype": dtype_name,
    }


def _attention_figures(batch: int, seq: int, heads: int, dim: int, seconds: list[float]) -> Json:
    flops = 4.0 * batch * heads * seq * seq * dim  # QK^T and PV, forward, no causal mask
    r = _rates(flops / 1e12, seconds)
    tokens = _rates(float(batch * seq), seconds)
    return {
        "tflops": r["median"],
        "tflops_min": r["min"],
        "tflops_max": r["max"],
        "tokens_per_s": tokens["median"],
        "runs": len(seconds),
        "shape": {"batch": batch, "seq": seq, "heads": heads, "head_dim": dim},
        "dtype": "bfloat16",
        "causal": False,
    }


def sdpa(torch: Any, s: Json) -> Json:
    batch, seq, heads, dim = s["attn"]
    q, k, v = (torch.randn(batch, heads, seq, dim, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    fn = torch.nn.functional.scaled_dot_product_attention
    seconds = _time_runs(torch, lambda: fn(q, k, v), s["warmup"], s["runs"], s["iters"])
    return _attention_figures(batch, seq, heads, dim, seconds)


def flash_attn(torch: Any, s: Json) -> Json:
    try:
        from flash_attn import flash_attn_func  # type: ignore[import-not-found]
    except ImportError as exc:
        return {"status": "not installed", "error": _error(exc)}
    batch, seq, heads, dim = s["attn"]
    # flash-attn's layout is (batch, seq, heads, dim); the shapes are the same as SDPA's.
    q, k, v = (torch.randn(batch, seq, heads, dim, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    seconds = _time_runs(torch, lambda: flash_attn_func(q, k, v), s["warmup"], s["runs"], s["iters"])
    out = _attention_figures(batch, seq, heads, dim, seconds)
    try:
        import flash_attn as fa

        out["version"] = getattr(fa, "__version__", None)
    except ImportError:
        pass
    return out


def memcpy_d2d(torch: Any, s: Json) -> Json:
    nbytes = s["copy_bytes"]
    src = torch.empty(nbytes, device="cuda", dtype=torch.uint8)
    dst = torch.empty_like(src)
    seconds = _time_runs(torch, lambda: dst.copy_(src), s["warmup"], s["runs"], s["iters"])
    r = _rates(2.0 * nbytes / 1e9, seconds)  # each byte is read once and written once
    return {
        "gb_per_s": r["median"],
        "gb_per_s_min": r["min"],
        "gb_per_s_max": r["max"],
        "copy_gb_per_s": r["median"] / 2.0,
        "bytes": nbytes,
        "runs": len(seconds),
        "counted": "bytes read + bytes written",
    }


def _nccl_worker(rank: int, world: int, s: Json, queue: Any) -> None:
    """One process per GPU: all-reduce a float32 tensor, rank 0 reports the slowest rank's times."""
    import torch
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", NCCL_PORT)
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=world)
    try:
        nbytes = s["nccl_bytes"]
        x = torch.ones(nbytes // 4, device="cuda", dtype=torch.float32)
        seconds = _time_runs(torch, lambda: dist.all_reduce(x), s["warmup"], s["runs"], s["iters"])
        slowest = torch.tensor(seconds, device="cuda", dtype=torch.float64)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        if rank == 0:
            queue.put(slowest.tolist())
    finally:
        dist.destroy_process_group()


def nccl_allreduce(torch: Any, s: Json, count: int) -> Json:
    if count < 2:
        return {"status": "n/a: one GPU"}
    import torch.multiprocessing as mp

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", NCCL_PORT)
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_nccl_worker, args=(count, s, queue), nprocs=count, join=True)
    seconds = queue.get()
    nbytes = s["nccl_bytes"]
    alg = _rates(nbytes / 1e9, seconds)
    factor = 2.0 * (count - 1) / count
    return {
        "busbw_gb_per_s": alg["median"] * factor,
        "busbw_gb_per_s_min": alg["min"] * factor,
        "busbw_gb_per_s_max": alg["max"] * factor,
        "algbw_gb_per_s": alg["median"],
        "bytes": nbytes,
        "ranks": count,
        "runs": len(seconds),
        "nccl": ".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else None,
    }


def _driver() -> str | None:
    if shutil.which("nvidia-smi"):
        try:
            done = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            lines = done.stdout.strip().splitlines()
            if done.returncode == 0 and lines:
                return lines[0].strip()
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as fh:
            for word in fh.readline().split():
                if word[:1].isdigit() and "." in word:
                    return word
    except OSError:
        pass
    return None


def bench(quick: bool) -> Json:
    out: Json = {"schema": SCHEMA, "quick": quick, "device": None, "torch": None, "cuda": None, "results": {}}
    try:
        import torch
    except Exception as exc:  # not installed, or broken: either way nothing to measure with
        out.update(status="no GPU", reason=f"torch does not import: {_error(exc)}")
        return out
    out["torch"] = str(torch.__version__)
    out["cuda"] = torch.version.cuda
    try:
        available = bool(torch.cuda.is_available())
    except Exception as exc:
        available, out["reason"] = False, _error(exc)
    if not available:
        out["status"] = "no GPU"
        out.setdefault("reason", "torch.cuda.is_available() is False")
        return out
    count = torch.cuda.device_count()
    major, minor = torch.cuda.get_device_capability(0)
    out["device"] = {
        "name": torch.cuda.get_device_name(0),
        "count": count,
        "driver": _driver(),
        "capability": f"{major}.{minor}",
    }
    torch.backends.cuda.matmul.allow_tf32 = False
    s = _sizes(quick)
    sections: list[tuple[str, Callable[[], Json]]] = [
        ("matmul_bf16", lambda: matmul(torch, "bfloat16", s)),
        ("matmul_fp16", lambda: matmul(torch, "float16", s)),
        ("sdpa", lambda: sdpa(torch, s)),
        ("flash_attn", lambda: flash_attn(torch, s)),
        ("memcpy_d2d", lambda: memcpy_d2d(torch, s)),
        ("nccl_allreduce", lambda: nccl_allreduce(torch, s, count)),
    ]
    results: Json = out["results"]
    for name, measure in sections:
        try:
            results[name] = measure()
        except Exception as exc:  # one failed figure (OOM, a broken kernel) never hides the others
            results[name] = {"status": "error", "error": _error(exc)}
        with contextlib.suppress(Exception):  # freeing cached memory is best effort
            torch.cuda.empty_cache()
    fa, sd = results.get("flash_attn", {}), results.get("sdpa", {})
    if isinstance(fa.get("tflops"), float) and isinstance(sd.get("tflops"), float) and sd["tflops"] > 0:
        fa["vs_sdpa"] = fa["tflops"] / sd["tflops"]
    out["status"] = "measured"
    return out


def _summary(out: Json) -> str:
    lines = [f"status: {out.get('status')} {out.get('reason', '')}".rstrip(), f"device: {out.get('device')}"]
    for name, figures in (out.get("results") or {}).items():
        shown = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in figures.items() if k != "shape"}
        lines.append(f"{name}: {shown}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few iterations (smoke run)")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args(argv)
    try:
        out = bench(args.quick)
    except Exception as exc:  # a bug here: still one JSON object, with no figure
        out = {"schema": SCHEMA, "status": "error", "error": _error(exc), "results": {}}
    if not args.json:
        print(_summary(out), file=sys.stderr)
    print(json.dumps(out, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
