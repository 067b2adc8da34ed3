"""fleet-op: one C++ operator compiled against torch (see setup.py)."""

import torch  # noqa: F401 - loads libtorch, which the compiled module links against

from fleet_op import _C


def intern(name: str) -> int:
    """c10::Symbol::fromQualString(name): a call into libtorch that passes a std::string."""
    return int(_C.intern(name))


def self_test() -> bool:
    """The probe's call: the operator runs, and interning is stable (the same name, the same symbol)."""
    return intern("aten::add") > 0 and intern("aten::add") == intern("aten::add")
