"""The builder stage of one compile, as a build context: Dockerfile, torch's locked environment, the source.

The builder runs on a devel base of the cells' base family (nvcc and a compiler; a runtime cell's own base
has neither, and needs neither to RUN the wheel), with torch installed exactly as the cells install it. The
source is compiled into a wheel by the base's installer, then checked (payload/check_wheel.py); the last stage
is `FROM scratch` holding only the wheel: the image the registry keeps under the key's tag.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import jinja2

from generator.compile.key import CompileKey
from generator.compile.source import tree_archive
from generator.model import Cell, Extension
from generator.render.renderer import CA_DIR, HEADER, INSTALL, Renderer
from generator.render.renderer import TEMPLATES as RENDER_TEMPLATES
from generator.spec.knowledge import Knowledge

TEMPLATES = Path(__file__).parent / "templates"
CHECK = Path(__file__).parent / "payload" / "check_wheel.py"
OUT = "/tmp/fleet/out"  # noqa: S108 - inside the builder stage, not on this machine
# One PEP 517 build option (it lands in setup.py's argv through setuptools' build_meta), per installer.
BUILD_OPTION = {"uv": "-C--build-option={option}", "pip": "--config-settings=--build-option={option}"}
# How each installer turns a source archive into a wheel, with what is installed (no isolation).
WHEEL = {
    "uv": "uv build --wheel --no-build-isolation --python {python} {options}--out-dir " + OUT + " {source}",
    "pip": "{python} -m pip wheel --no-cache-dir --no-deps --no-build-isolation {options}--wheel-dir "
    + OUT
    + " {source}",
}


@dataclass(frozen=True)
class Recipe:
    """One compile: the key, the cell whose torch it builds against, and the builder's base image."""

    key: CompileKey
    cell: Cell  # the first cell (matrix order) with this key: its torch environment is everyone's
    ext: Extension
    base_image: str
    base_digest: str | None


def builder_base(cell: Cell, facts: Knowledge) -> str:
    """The devel image of the cell's base family on its cloud: same OS, Python and CUDA as the cell."""
    return facts.bases[cell.base].image_for(cell.cloud, "devel")


def build_options(installer: str, options: tuple[str, ...]) -> str:
    """The installer's spelling of build options for setup.py's argv, e.g. uv's `-C--build-option=--cpp_ext`."""
    return " ".join(BUILD_OPTION[installer].format(option=o) for o in options)


def source_name(recipe: Recipe) -> str:
    return (
        recipe.ext.artifacts[0].filename
        if recipe.ext.artifacts
        else f"{recipe.ext.name}-{recipe.key.source[:12]}.tar.gz"
    )


def wheel_command(recipe: Recipe, facts: Knowledge) -> str:
    cell = recipe.cell
    options = build_options(cell.installer, facts.extensions[recipe.ext.name].compile.build_options)
    return WHEEL[cell.installer].format(
        python=cell.python_path,
        options=f"{options} " if options else "",
        source=f"/tmp/fleet/source/{source_name(recipe)}",  # noqa: S108 - in the builder,
    )


def environment(recipe: Recipe, facts: Knowledge) -> list[tuple[str, str]]:
    """The build's variables: the recipe's own, the architecture variables, and the job count."""
    spec = facts.extensions[recipe.ext.name].compile
    archs = spec.arch_values(recipe.key.archs) if spec.needs_cuda else ()
    return [*spec.env, *archs, ("MAX_JOBS", str(facts.build_max_jobs))]


def dockerfile(recipe: Recipe, facts: Knowledge) -> str:
    cell = recipe.cell
    env = jinja2.Environment(
        # The cells' templates too: the builder trusts the matrix's CA certificates exactly as a cell does.
        loader=jinja2.FileSystemLoader([str(TEMPLATES), str(RENDER_TEMPLATES)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - a Dockerfile; values come from the validated matrix and knowledge
    )
    return env.get_template("builder.Dockerfile.j2").render(
        header=HEADER.replace("generate", "build"),
        key=recipe.key,
        base_image=recipe.base_image,
        base_digest=recipe.base_digest,
        ca=bool(cell.ca_certificates),
        packages=facts.compile_packages.get(cell.base, ()),
        install=INSTALL[cell.installer].format(python=cell.python_path),
        python=cell.python_path,
        index_url=None if cell.torch_from_pypi else facts.torch_index_url.format(index=cell.torch_index),
        torch_wheel=cell.torch_wheel.filename if cell.torch_wheel else None,
        build_tools=" ".join(f"{k}=={v}" for k, v in sorted(facts.build_tools.items())),
        archive=source_name(recipe),
        env=environment(recipe, facts),
        wheel_command=wheel_command(recipe, facts),
    )


def expect(recipe: Recipe, facts: Knowledge) -> dict[str, object]:
    ext = facts.extensions[recipe.ext.name]
    return {
        "python_tag": "cp" + recipe.cell.python.replace(".", ""),
        "abi": recipe.cell.abi,
        "cuda": recipe.cell.torch_cuda,
        "import": ext.import_name,
        "native_modules": list(ext.native_modules),
    }


def write_context(recipe: Recipe, facts: Knowledge, directory: Path, files: dict[str, Path]) -> Path:
    """The builder's build context in `directory` (emptied first). `files`: the fetched files it COPYs by
    name (torch's wheel, the source archive), from the wheelhouse."""
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "wheels").mkdir(parents=True)
    (directory / "source").mkdir()
    (directory / "Dockerfile").write_text(dockerfile(recipe, facts), encoding="utf-8")
    (directory / "requirements-torch.txt").write_text(Renderer.torch_requirements(recipe.cell), encoding="utf-8")
    (directory / "expect.json").write_text(json.dumps(expect(recipe, facts), indent=2) + "\n", encoding="utf-8")
    shutil.copyfile(CHECK, directory / "check_wheel.py")
    cell = recipe.cell
    if cell.torch_wheel is not None:
        shutil.copyfile(files[cell.torch_wheel.filename], directory / "wheels" / cell.torch_wheel.filename)
    source = directory / "source" / source_name(recipe)
    if recipe.ext.artifacts:
        shutil.copyfile(files[recipe.ext.artifacts[0].filename], source)
    else:
        spec = facts.extensions[recipe.ext.name].compile
        assert spec.source_dir is not None  # resolve gives a source build an archive or a tree
        source.write_bytes(tree_archive(spec.source_dir))
    if cell.ca_certificates:
        (directory / CA_DIR).mkdir()
        for n, pem in enumerate(cell.ca_certificates, 1):
            (directory / CA_DIR / f"air-fleet-{n:03d}.crt").write_text(pem + "\n", encoding="utf-8")
    return directory
