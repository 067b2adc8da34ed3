"""Source-built extensions compile ONCE per compile key into a wheel, which every cell then installs.

The compile key (key.py) is what the wheel's bytes depend on: the extension and its pinned source, the torch
build (its wheel's sha256), Python, the builder's CUDA toolkit, the target GPU architectures (the cells'
accelerators), the C++ ABI and the build recipe. One builder stage per key (recipe.py, on a devel base:
runtime cells get the wheel without the toolkit) builds the wheel, installs it beside torch and imports its
native modules before it is exported (payload/check_wheel.py): a wheel built against the wrong C++ ABI never
leaves the builder.

Compiled C++ is not bit-reproducible, so a wheel's sha256 is known only after its first compile. The first
compile RECORDS it in the lock's `compiled` section under the key (lockfile.py; in the machine's lock where the
profile keeps machine-specific inputs there, as the sandbox does for its bases); every later build reuses
exactly that wheel: from the wheelhouse (the content-addressed cache), else from the registry, where the
wheel lives as a small `FROM scratch` image tagged by the key (store.py). A cell's Dockerfile COPYs the wheel
and checks its sha256 before installing it `--no-deps`, and the content digest covers that sha256: the
digest of a cell is known once its wheel is recorded, and moves only when a compile key does.
"""
