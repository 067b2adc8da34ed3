"""apex's build options, as rendered, reach setup.py's argv through the real installer (no mocks).

apex at the pinned commit builds its C++/CUDA extensions only when `--cpp_ext` / `--cuda_ext` are in
setup.py's argv; the `APEX_*_EXT` variables exist only in later commits, and with them the build succeeds
and installs pure-Python apex. apex's own source cannot be fetched here, so tests/fixtures/apex_argv
stands in for its setup.py (its README says what it keeps). The wheel command is the one the generator
renders into the builder stage of the default fleet's apex compile (generator/compile/recipe.py), taken
verbatim and run with the image's uv (the installer the Databricks bases use) on the probe tests' devel
image, which has torch and a compiler; the wheel it makes is then installed --no-deps, as cells do.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import docker.errors
import pytest

from generator.compile.key import CompileKey
from generator.compile.recipe import Recipe, builder_base
from generator.compile.recipe import dockerfile as render_builder
from generator.fleet import Fleet
from tests.conftest import DEFAULT_MATRIX
from tests.integration.test_probe import REPOSITORY, Built, built  # noqa: F401 (`built` is a fixture)

FIXTURE = Path(__file__).parent.parent / "fixtures" / "apex_argv"
REF = f"127.0.0.1:5000/{REPOSITORY}:apex-options"
# Python.h for the extension; the devel stand-in brings the compiler.
DOCKERFILE = """\
FROM {good}
RUN apt-get update && apt-get install -y --no-install-recommends python3-dev && rm -rf /var/lib/apt/lists/*
COPY {archive} /tmp/fleet/source/
"""
# torch first, as apex itself does: apex_C links libtorch and finds it only once torch has loaded it.
CHECK = (
    "import torch, apex, apex._build_options as o; print('requested', o.REQUESTED)\n"
    "try:\n    import apex_C; print('apex_C', apex_C.intern('aten::add') > 0)\n"
    "except ImportError as e:\n    print('apex_C missing', e)\n"
)


def rendered_apex_install() -> tuple[str, str]:
    """The default fleet's apex compile for a uv base, as the builder stage runs it (build tools, the wheel
    command with its variables, the wheel installed --no-deps), and the archive it builds."""
    fleet = Fleet.load(DEFAULT_MATRIX)
    cell = next(c for c in fleet.cells if c.installer == "uv" and any(e.name == "apex" for e in c.extensions))
    (ext,) = cell.extensions
    key = CompileKey("apex", ext.version, "s" * 64, "2.8.0 cu129", "t" * 64, "3.12", cell.cuda, ext.archs, 1, ())
    recipe = Recipe(key, cell, ext, builder_base(cell, fleet.facts), None)
    dockerfile = render_builder(recipe, fleet.facts)
    tools = re.search(r"^RUN (uv pip install [^\n]*ninja==[^\n]*)$", dockerfile, flags=re.MULTILINE)
    assert tools is not None, dockerfile
    lines = dockerfile[dockerfile.index("COPY source/") :].splitlines()[1:]
    run_lines = lines[: next(i for i, line in enumerate(lines) if not line.endswith("\\")) + 1]
    wheel_cmd = " ".join(" ".join(line.rstrip("\\") for line in run_lines).removeprefix("RUN ").split())
    install = f"uv pip install --python {cell.python_path} --no-cache --no-deps /tmp/fleet/out/*.whl"
    return f"{tools.group(1)} && {wheel_cmd} && {install}", ext.artifacts[0].filename


def archive_of_fixture(archive: str) -> bytes:
    """The fixture as a GitHub-style source archive: one top directory named after the commit."""
    top = archive.removesuffix(".tar.gz")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path in sorted(FIXTURE.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=f"{top}/{path.relative_to(FIXTURE)}")
    return out.getvalue()


@pytest.fixture(scope="module")
def before_apex(built: Built, tmp_path_factory: pytest.TempPathFactory) -> str:  # noqa: F811 (the fixture)
    """The probe tests' good devel image plus Python's headers and the fixture archive where apex's COPY puts it."""
    _, archive = rendered_apex_install()
    context = tmp_path_factory.mktemp("apex-options")
    (context / archive).write_bytes(archive_of_fixture(archive))
    (context / "Dockerfile").write_text(DOCKERFILE.format(good=built.rendered.ref, archive=archive))
    built.client.images.build(path=str(context), tag=REF, rm=True, forcerm=True)
    return REF


def run(built: Built, image: str, command: str) -> str:  # noqa: F811 (the fixture's type)
    try:
        out: bytes = built.client.containers.run(image, ["bash", "-o", "pipefail", "-c", command], remove=True)
    except docker.errors.ContainerError as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        raise AssertionError(f"{command!r} failed: {stderr}") from None
    return out.decode(errors="replace")


def test_the_rendered_options_build_apex_c_against_torch(built: Built, before_apex: str) -> None:  # noqa: F811
    command, _ = rendered_apex_install()
    assert "-C--build-option=--cpp_ext -C--build-option=--cuda_ext" in command
    out = run(built, before_apex, f'{command} && /opt/venv/bin/python -c "{CHECK}"')
    assert "requested ['--cpp_ext', '--cuda_ext']" in out, out
    # Compiled by torch.utils.cpp_extension against the image's torch, with its ABI: it loads and calls in.
    assert "apex_C True" in out, out


def test_the_environment_variables_alone_build_pure_python_apex(built: Built, before_apex: str) -> None:  # noqa: F811
    """The spelling the fleet used before: the build SUCCEEDS, and apex has no extension at all."""
    command, archive = rendered_apex_install()
    old = "APEX_CPP_EXT=1 APEX_CUDA_EXT=1 uv pip install --python /opt/venv/bin/python --no-build-isolation"
    setup = command.split(" && ")[0]  # the pinned build tools, as rendered
    out = run(built, before_apex, f'{setup} && {old} /tmp/fleet/source/{archive} && /opt/venv/bin/python -c "{CHECK}"')
    assert "requested []" in out, out
    assert "apex_C missing" in out, out
