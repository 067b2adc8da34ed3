"""Runs in the builder stage after the compile: the wheel must load against THIS torch before it ships.

    python check_wheel.py OUT_DIR EXPECT_JSON

EXPECT_JSON: {"python_tag": "cp311", "abi": 1, "cuda": "12.9" | null, "import": "apex", "native_modules": [...]}.
Installs nothing: the caller installed the wheel --no-deps beside torch. Checks the wheel's tag, torch's ABI
and CUDA against what the compile key says, then imports torch and each native module: a module built with
the wrong C++ ABI fails right here with `undefined symbol`. Exits 1 with one line per problem, so the builder
stage fails and nothing is exported. Standard library only (torch is imported inside a try).
"""

from __future__ import annotations

import glob
import importlib
import json
import os
import sys
from typing import Any


def problems(out_dir: str, expect: dict[str, Any]) -> list[str]:
    found = []
    wheels = glob.glob(os.path.join(out_dir, "*.whl"))
    if len(wheels) != 1:
        return [f"expected one wheel in {out_dir}, found {len(wheels)}: {', '.join(map(os.path.basename, wheels))}"]
    name = os.path.basename(wheels[0])
    tag = expect["python_tag"]
    if f"-{tag}-" not in name and "-py3-" not in name:
        found.append(f"{name}: not a {tag} wheel")
    try:
        import torch
    except Exception as exc:
        return [*found, f"torch does not import in the builder: {exc}"]
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    if abi != expect["abi"]:
        found.append(f"torch in the builder has C++11 ABI {abi}, the compile key says {expect['abi']}")
    if (torch.version.cuda or None) != expect.get("cuda"):
        found.append(f"torch in the builder has CUDA {torch.version.cuda}, the compile key says {expect.get('cuda')}")
    for module in [expect.get("import"), *expect.get("native_modules", [])]:
        if not module:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:
            why = " ".join(str(exc).split())
            hint = (
                " (a C++ ABI mismatch: the extension was not built with torch's _GLIBCXX_USE_CXX11_ABI)"
                if ("undefined symbol" in why)
                else ""
            )
            found.append(f"{name}: {module} does not load against torch {torch.__version__} (ABI {abi}): {why}{hint}")
    return found


def main(argv: list[str]) -> int:
    with open(argv[2], encoding="utf-8") as fh:
        expect = json.load(fh)
    found = problems(argv[1], expect)
    for line in found:
        print(f"compiled wheel refused: {line}", file=sys.stderr)
    if not found:
        print("compiled wheel loads against torch: ok")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
