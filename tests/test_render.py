"""Rendering one cell: the per-cell rules a reviewer relies on, and a digest that tracks the build."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from generator.deps.cells import unlocked
from generator.fleet import Fleet
from generator.render.renderer import HEADER, RenderedCell, instructions
from generator.spec.knowledge import knowledge
from tests.conftest import DEFAULT_MATRIX

LoadFleet = Callable[[str], Fleet]

BASE = """\
schema: 1
registry: {host: registry.example.com, repository: team/air}
clouds: [aws, azure]
variants: [runtime, devel]
bases: [databricks, scratch]
accelerators: [GPU_1xA10, GPU_8xH100]
torch:
  - {version: 2.6.0, flash-attn: 2.7.4.post1, xformers: 0.0.29.post3}
  - {version: 2.7.1, flash-attn: 2.8.3}
  - {version: 2.8.0, index: cu129}
stacks:
  plain: []
  flash-attn: [flash-attn]
  xformers: [xformers]
  apex: [apex]
  tools: [einops-extra]
extensions:
  apex: {version: 810ffae374a2b9cb4b5c5e28eaeca7d7998fca0c}
  einops-extra: {kind: pip, version: 1.2.3}
exclude:
  - {variant: runtime, stack: apex}
  - {torch: [2.6.0, 2.7.1], stack: apex}  # apex needs torch's CUDA = nvcc's (12.9)
  - {torch: 2.8.0+cu129, stack: [plain, flash-attn, xformers, tools]}
  - {torch: 2.7.1, stack: xformers}
overrides:
  - select: {cloud: aws, base: scratch, variant: runtime}
    accelerators: [GPU_1xA10]
"""


@pytest.fixture(scope="module")
def rendered() -> dict[str, RenderedCell]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "matrix.yaml"
        path.write_text(BASE, encoding="utf-8")
        return {r.cell.slug: r for r in Fleet.load(path).render()}


def text(r: RenderedCell, name: str) -> str:
    return r.files[name].decode("utf-8")


def test_every_generated_file_says_so(rendered: dict[str, RenderedCell]) -> None:
    for r in rendered.values():
        assert set(r.files) == {
            "Dockerfile",
            ".dockerignore",
            "requirements.txt",
            "fleet/expect.json",
            "fleet/smoke.py",
            "wheels.json",
            "air.yaml",
            "COMPAT.md",
            "cell.json",
        }
        for name, data in r.files.items():
            assert HEADER in data.decode("utf-8"), f"{r.cell.slug}/{name} lacks the DO NOT EDIT header"


def test_efa_block_only_where_a_blessed_accelerator_has_efa(rendered: dict[str, RenderedCell]) -> None:
    lean = text(rendered["aws-runtime-scratch-torch2.6"], "Dockerfile")  # A10 only by override
    full = text(rendered["aws-devel-scratch-torch2.6"], "Dockerfile")  # A10 + 8xH100
    assert "efa_installer.sh" not in lean and "FI_EFA_USE_DEVICE_RDMA" not in lean
    assert "./efa_installer.sh -y --skip-kmod --skip-limit-conf --no-verify" in full
    # The installer is never downloaded and run unchecked: it is a locked file, COPY'd from wheels/ after
    # `fetch` verified its sha256, and it is part of the cell's files (wheels.json, lock, digest).
    efa_block = full[full.index("# AWS EFA") : full.index("FI_EFA_USE_DEVICE_RDMA")]
    assert "curl" not in efa_block and "amazonaws" not in efa_block and "wget" not in efa_block
    assert "COPY wheels/aws-efa-installer-1.42.0.tar.gz /tmp/aws-efa-installer.tar.gz" in full
    (installer,) = rendered["aws-devel-scratch-torch2.6"].cell.system_artifacts
    assert (installer.project, installer.version, installer.sha256) == ("aws-efa-installer", "1.42.0", None)
    assert installer.url == "https://efa-installer.amazonaws.com/aws-efa-installer-1.42.0.tar.gz"
    assert "aws-efa-installer-1.42.0.tar.gz" in unlocked(rendered["aws-devel-scratch-torch2.6"].cell)
    files = json.loads(text(rendered["aws-devel-scratch-torch2.6"], "wheels.json"))["files"]
    assert files[0]["url"] == installer.url
    assert rendered["aws-runtime-scratch-torch2.6"].cell.system_artifacts == ()  # the lean image has none
    assert "hwloc libhwloc-dev" in full
    assert "ln -sf libcudart.so.12 /usr/local/cuda/lib64/libcudart.so" in full
    assert "LD_LIBRARY_PATH=/opt/amazon/ofi-nccl/lib/x86_64-linux-gnu" in full
    # Databricks bases ship EFA themselves: never a second installer.
    for slug, r in rendered.items():
        if "-scratch-" not in slug:
            assert "efa_installer" not in text(r, "Dockerfile")


def test_infiniband_block_on_azure_scratch_only(rendered: dict[str, RenderedCell]) -> None:
    for slug, r in rendered.items():
        has_ib = "rdma-core ibverbs-utils infiniband-diags perftest" in text(r, "Dockerfile")
        assert has_ib == (slug.startswith("azure-") and "-scratch-" in slug), slug


def test_scratch_system_setup_follows_the_seed(rendered: dict[str, RenderedCell]) -> None:
    df = text(rendered["azure-runtime-scratch-torch2.6"], "Dockerfile")
    assert df.splitlines()[3] == "FROM nvidia/cuda:12.9.0-runtime-ubuntu24.04"
    assert "ln -sf /usr/bin/python3 /databricks/python/bin/python" in df
    assert "OPENSSL_FORCE_FIPS_MODE=0" in df
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in df
    assert (
        "RUN --mount=type=cache,id=air-fleet-pip,target=/root/.cache/pip \\\n"
        "    /usr/bin/python3 -m pip install --cache-dir /root/.cache/pip --break-system-packages"
    ) in df


def test_databricks_base_uses_uv_into_opt_venv(rendered: dict[str, RenderedCell]) -> None:
    df = text(rendered["aws-runtime-torch2.6"], "Dockerfile")
    assert "FROM databricksruntime/air:dcs-base-aws-runtime" in df
    assert (
        "RUN --mount=type=cache,id=air-fleet-uv,target=/root/.cache/uv \\\n"
        "    uv pip install --python /opt/venv/bin/python --cache-dir /root/.cache/uv --link-mode=copy"
    ) in df
    assert "torch==2.6.0 torchvision==0.21.0 torchaudio==2.6.0" in df
    assert "--index-url" not in df  # the default build comes from the package index


def test_flash_attn_wheel_matches_torch_abi(rendered: dict[str, RenderedCell]) -> None:
    old = text(rendered["aws-runtime-torch2.6-flash-attn2.7.4.post1"], "Dockerfile")
    new = text(rendered["aws-runtime-torch2.7-flash-attn2.8.3"], "Dockerfile")
    assert "wheels/flash_attn-2.7.4.post1+cu12torch2.6cxx11abiFALSE-cp312-cp312-linux_x86_64.whl" in old
    assert "wheels/flash_attn-2.8.3+cu12torch2.7cxx11abiTRUE-cp312-cp312-linux_x86_64.whl" in new
    for df in (old, new):
        assert re.search(r"--no-deps /tmp/fleet/wheels/flash_attn-", df)
        assert "einops" not in df  # flash-attn's dependency is in the locked environment, not a fetched file
    spec = rendered["aws-runtime-torch2.7-flash-attn2.8.3"].cell.closure_spec
    assert spec is not None and "einops==0.8.2" in spec.requirements
    manifest = json.loads(rendered["aws-runtime-torch2.7-flash-attn2.8.3"].files["wheels.json"])
    urls = {f["filename"]: f["url"] for f in manifest["files"]}
    assert urls["flash_attn-2.8.3+cu12torch2.7cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"] == (
        "https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/"
        "flash_attn-2.8.3%2Bcu12torch2.7cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )
    assert list(urls) == ["flash_attn-2.8.3+cu12torch2.7cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"]
    assert all(f["sha256"] is None for f in manifest["files"])  # not locked yet


def test_xformers_no_deps_and_apex_source_build(rendered: dict[str, RenderedCell]) -> None:
    xf = text(rendered["aws-runtime-torch2.6-xformers0.0.29.post3"], "Dockerfile")
    assert "--no-deps xformers==0.0.29.post3" in xf
    # apex compiles once in a builder stage (generator/compile/, tests/test_compile.py), never in a cell: the
    # cell installs the compiled wheel the lock records, and ships no source archive and no build tools.
    apex = text(rendered["aws-devel-torch2.8-cu129-apex"], "Dockerfile")
    assert "apex-810ffae374a2b9cb4b5c5e28eaeca7d7998fca0c.tar.gz" not in apex
    assert "setuptools==" not in apex and "ninja==" not in apex and "--no-build-isolation" not in apex
    assert "compiled once per compile key in a builder stage" in apex


def test_requirements_pin_pip_extensions_and_never_torch(rendered: dict[str, RenderedCell]) -> None:
    for r in rendered.values():
        reqs = [ln for ln in text(r, "requirements.txt").splitlines() if ln and not ln.startswith("#")]
        assert not any(re.match(r"torch(vision|audio)?\b", ln) for ln in reqs)
        assert all("==" in ln for ln in reqs)
    tools = rendered["aws-runtime-torch2.6-einops-extra1.2.3"]
    assert "einops-extra==1.2.3" in text(tools, "requirements.txt").splitlines()
    assert "-r /tmp/fleet/requirements.txt" in text(tools, "Dockerfile")
    assert "requirements.txt" not in text(rendered["aws-runtime-torch2.6"], "Dockerfile")


ACCELERATORS = knowledge().accelerators


def test_air_yaml_is_a_valid_job_per_accelerator(rendered: dict[str, RenderedCell]) -> None:
    for slug, r in rendered.items():
        jobs = list(yaml.safe_load_all(text(r, "air.yaml")))
        assert [j["compute"]["accelerator_type"] for j in jobs] == list(r.cell.accelerators)
        for job in jobs:
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,100}", job["experiment_name"])
            accel = ACCELERATORS[job["compute"]["accelerator_type"]]
            n = job["compute"]["num_accelerators"]
            assert n > 0 and n % accel.gpus_per_node == 0
            assert job["environment"]["docker_image"]["url"] == r.release_ref  # what users pull: the release
            assert "dependencies" not in job["environment"]
            # Absolute paths only: the platform ignores WORKDIR.
            for word in job["command"].split():
                if "/" in word or word.endswith(".py"):
                    assert word.startswith("/"), f"{slug}: relative path {word!r} in command"


def test_nccl_net_plugin_none_where_efa_is_shipped_but_absent(rendered: dict[str, RenderedCell]) -> None:
    def plugin(slug: str, accel: str) -> str | None:
        jobs = yaml.safe_load_all(text(rendered[slug], "air.yaml"))
        job = next(j for j in jobs if j["compute"]["accelerator_type"] == accel)
        env: dict[str, str] = job.get("env_variables", {})
        return env.get("NCCL_NET_PLUGIN")

    assert plugin("aws-runtime-torch2.6", "GPU_1xA10") == "none"  # base ships EFA, A10 has none
    assert plugin("aws-runtime-torch2.6", "GPU_8xH100") is None  # EFA is the point there
    assert plugin("azure-runtime-torch2.6", "GPU_1xA10") is None  # no EFA on Azure
    assert plugin("aws-runtime-scratch-torch2.6", "GPU_1xA10") is None  # lean image: no EFA installed


def test_labels_carry_identity(rendered: dict[str, RenderedCell]) -> None:
    r = rendered["aws-runtime-torch2.6-flash-attn2.7.4.post1"]
    df = text(r, "Dockerfile")
    for label in (
        'org.opencontainers.image.title="aws-runtime-torch2.6-flash-attn2.7.4.post1"',
        f'org.opencontainers.image.version="{r.tag}"',
        'air-fleet.torch="2.6.0"',
        'air-fleet.torch-cuda="12.4"',
        'air-fleet.cuda="12.9.1"',
        'air-fleet.cxx11-abi="0"',
        'air-fleet.extensions="flash-attn==2.7.4.post1"',
        f'air-fleet.digest="{r.digest}"',
    ):
        assert label in df
    assert r.tag == f"aws-runtime-torch2.6-flash-attn2.7.4.post1-{r.digest.removeprefix('sha256:')[:12]}"


def test_compat_md_and_cell_json_agree(rendered: dict[str, RenderedCell]) -> None:
    r = rendered["aws-runtime-torch2.6-flash-attn2.7.4.post1"]
    md = text(r, "COMPAT.md")
    assert "| Check | Status | Details |" in md
    assert "| CXX11 ABI (CUDA extensions) | OK |" in md
    data = json.loads(r.files["cell.json"])
    assert data["digest"] == r.digest and data["status"] == "OK"
    assert sorted(data["files"]) == sorted(r.files)
    assert [c["id"] for c in data["checks"]] == ["driver", "torch-cuda", "nccl", "network", "abi", "python", "builds"]


def test_rendering_is_deterministic_across_processes() -> None:
    """Same inputs, same bytes: two fresh interpreters (different hash seeds) render identical files."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "import hashlib,sys; from pathlib import Path; from generator.fleet import Fleet, desired_files;"
        "files = desired_files(Fleet.load(Path(sys.argv[1])).render());"
        "print(hashlib.sha256(b''.join(k.encode()+v for k,v in sorted(files.items()))).hexdigest())"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code, str(DEFAULT_MATRIX)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1


def _digests(load_fleet: LoadFleet, text_: str) -> dict[str, str]:
    return {r.cell.slug: r.digest for r in load_fleet(text_).render()}


DIGEST_BASE = """\
schema: 1
registry: {host: registry.example.com, repository: team/air}
clouds: [aws]
variants: [runtime, devel]
accelerators: [GPU_1xA10, GPU_8xH100]
torch:
  - {version: 2.6.0, xformers: 0.0.29.post3}
  - {version: 2.7.1}
stacks:
  plain: []
  xformers: [xformers]
exclude:
  - {torch: 2.7.1, stack: xformers}
"""


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        # Not part of any build: registry naming, blessed accelerators without a build effect.
        ("host: registry.example.com", "host: other.example.com:5000", set()),
        ("accelerators: [GPU_1xA10, GPU_8xH100]", "accelerators: [GPU_8xH100, GPU_1xH100]", set()),
        ("schema: 1\n", "schema: 1\n# a comment moves every line number\n", set()),
        # Part of the build: only the cells that use the changed row.
        (
            "{version: 2.7.1}",
            "{version: 2.7.1, torchvision: 0.22.0}",
            {"aws-runtime-torch2.7", "aws-devel-torch2.7"},
        ),
        ("{version: 2.7.1}", "{version: 2.7.1, torchaudio: 2.7.0}", {"aws-runtime-torch2.7", "aws-devel-torch2.7"}),
    ],
)
def test_digest_changes_exactly_when_the_build_would(
    load_fleet: LoadFleet, old: str, new: str, changed: set[str]
) -> None:
    before = _digests(load_fleet, DIGEST_BASE)
    assert old in DIGEST_BASE
    after = _digests(load_fleet, DIGEST_BASE.replace(old, new))
    assert set(before) == set(after)
    assert {slug for slug in before if before[slug] != after[slug]} == changed


def test_digest_ignores_comments_but_not_instructions() -> None:
    df = "# GENERATED\nFROM x\n\n# why\nRUN a \\\n    # inner comment\n    && b\n"
    assert instructions(df) == "FROM x\nRUN a \\\n    && b"
    assert instructions(df) != instructions(df.replace("&& b", "&& c"))


def test_the_host_side_payloads_move_no_digest(
    load_fleet: LoadFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """probe.py and bench.py are copied into containers at run time: editing them rebuilds nothing. smoke.py
    ships in the image (the example jobs run it), so editing it does move every digest."""
    from generator.render import renderer

    before = _digests(load_fleet, DIGEST_BASE)
    payload = tmp_path / "payload"
    shutil.copytree(renderer.PAYLOAD, payload)
    for name in ("probe.py", "bench.py"):
        (payload / name).write_text((payload / name).read_text() + "\n# an edit\n")
    monkeypatch.setattr(renderer, "PAYLOAD", payload)
    assert _digests(load_fleet, DIGEST_BASE) == before
    (payload / "smoke.py").write_text((payload / "smoke.py").read_text() + "\n# an edit\n")
    after = _digests(load_fleet, DIGEST_BASE)
    assert set(after) == set(before) and all(after[s] != before[s] for s in before)


def test_an_installer_cache_is_only_ever_a_cache_mount(rendered: dict[str, RenderedCell]) -> None:
    """The installs that download keep their cache in a BuildKit cache mount; every other install keeps
    none: no layer of any image carries an installer's cache."""
    installs = 0
    for r in rendered.values():
        runs = re.findall(r"^RUN (.*?)(?<!\\)$", text(r, "Dockerfile"), flags=re.M | re.S)
        for run in runs:
            if " install " not in run:
                continue
            installs += 1
            cache = re.search(r"--cache-dir (\S+)", run)
            if cache:
                assert run.startswith(f"--mount=type=cache,id=air-fleet-{'pip' if 'pip' in cache[1] else 'uv'},"), run
                assert f"target={cache[1]} " in run, run
            elif "uv pip install" in run or "pip install" in run:
                assert "--no-cache" in run, run
    assert installs > len(rendered)
