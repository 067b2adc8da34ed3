"""Do a compiled extension's GPU kernels serve the GPUs its cell is blessed for?

The probe reads each native module's .nv_fatbin (payload/probe.py, kernel_archs): `sm_XY` entries are
cubins, which run on GPUs of the same major and an equal or newer minor (sm_80 runs on the A10's 8.6);
`compute_XY` entries are PTX, which the driver JIT-compiles for any GPU at least as new. A blessed GPU
that no entry serves FAILs (the kernel launch would fail there); cubins for no blessed GPU's major only
cost size (WARN), since the compile asked for exactly the cell's architectures.
"""

from __future__ import annotations

from generator.status import Verdict

FAIL, WARN, OK = Verdict.FAIL, Verdict.WARN, Verdict.OK


def _number(capability: str) -> tuple[int, int]:
    major, _, minor = capability.partition(".")
    return int(major), int(minor or 0)


def _entry(name: str) -> tuple[str, int, int] | None:
    kind, _, digits = name.partition("_")
    if kind not in ("sm", "compute") or not digits.isdigit() or len(digits) < 2:
        return None
    return kind, int(digits[:-1]), int(digits[-1])


def serves(entries: list[str], capability: str) -> bool:
    major, minor = _number(capability)
    for name in entries:
        parsed = _entry(name)
        if parsed is None:
            continue
        kind, e_major, e_minor = parsed
        if kind == "sm" and e_major == major and e_minor <= minor:
            return True
        if kind == "compute" and (e_major, e_minor) <= (major, minor):
            return True
    return False


def judge_archs(entries: list[str], capabilities: tuple[str, ...]) -> tuple[Verdict, str]:
    """The verdict and one line for kernels `entries` against the blessed compute `capabilities`."""
    shown = ", ".join(entries) or "none"
    missing = [c for c in capabilities if not serves(entries, c)]
    if missing:
        return FAIL, f"kernels {shown} serve no GPU of compute capability {', '.join(missing)}"
    majors = {_number(c)[0] for c in capabilities}
    extra = [n for n in entries if (p := _entry(n)) is not None and p[0] == "sm" and p[1] not in majors]
    if extra:
        return WARN, f"kernels {shown}: {', '.join(extra)} for GPUs the cell is not blessed for"
    return OK, f"kernels {shown} for {', '.join(capabilities)}"
