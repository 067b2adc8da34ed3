"""fleet-op: the sandbox's own source-built torch extension (one C++ operator, CPU only).

It stands where apex stands in the real fleet: compiled once per compile key in a builder stage
(generator/compile/), shipped as a wheel to runtime and devel cells alike. FLEET_OP_FORCE_CXX11_ABI builds it
against a chosen C++ ABI on purpose, so the tests can show that a wheel built against the wrong one never
leaves the builder.
"""

import os

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

forced = os.environ.get("FLEET_OP_FORCE_CXX11_ABI")
macros = [("FLEET_OP_FORCE_CXX11_ABI", forced)] if forced in ("0", "1") else []
setup(
    name="fleet-op",
    version="0.1",
    packages=["fleet_op"],
    ext_modules=[CppExtension("fleet_op._C", ["csrc/fleet_op.cpp"], define_macros=macros)],
    cmdclass={"build_ext": BuildExtension},
)
