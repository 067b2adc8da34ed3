"""Smoke test shipped into every fleet image at /opt/fleet/smoke.py.

Runs inside the image (standard library + the image's torch), compares what is installed with
/opt/fleet/expect.json, prints one JSON object and exits 1 on any mismatch. It is the first command of
the example jobs in air.yaml, so a broken image fails in seconds instead of hours into a job.
"""

import importlib
import json
import sys
from pathlib import Path

EXPECT = Path(__file__).with_name("expect.json")


def main() -> int:
    expect = json.loads(EXPECT.read_text())
    report = {"cell": expect["cell"], "python": sys.version.split()[0], "problems": []}
    problems = report["problems"]
    try:
        import torch
    except Exception as exc:  # any import failure is the finding
        problems.append(f"import torch: {exc}")
        print(json.dumps(report, indent=2))
        return 1
    report["torch"] = torch.__version__
    report["torch_cuda"] = torch.version.cuda
    report["cxx11_abi"] = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    report["cuda_available"] = torch.cuda.is_available()
    if torch.__version__.split("+")[0] != expect["torch"]:
        problems.append(f"torch {torch.__version__}, expected {expect['torch']}")
    if report["cxx11_abi"] != expect["cxx11_abi"]:
        problems.append(f"torch C++11 ABI {report['cxx11_abi']}, expected {expect['cxx11_abi']}")
    if report["cuda_available"]:
        report["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        report["nccl"] = ".".join(str(p) for p in torch.cuda.nccl.version())
        x = torch.ones(256, 256, device="cuda")
        report["matmul_ok"] = bool(torch.allclose(x @ x, torch.full_like(x, 256.0)))
        if not report["matmul_ok"]:
            problems.append("GPU matmul gave a wrong result")
    report["extensions"] = {}
    for ext in expect["extensions"]:
        modules = [m for m in (ext["import"], *ext.get("native_modules", [])) if m]
        try:
            for module in modules:
                importlib.import_module(module)
            report["extensions"][ext["name"]] = "ok"
        except Exception as exc:  # an ABI mismatch shows here as an undefined symbol
            report["extensions"][ext["name"]] = f"{type(exc).__name__}: {exc}"
            problems.append(f"{ext['name']}: {type(exc).__name__}: {exc}")
    print(json.dumps(report, indent=2))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
