"""BuildKit without an engine: which docker CLI builds, its command line, reading its plain progress, and
the builder and bake describing the same builds.

The CLI choice runs against stand-in `docker` executables (shell scripts answering `--version` and
`buildx version` as the real ones do); the progress fixtures are real output of the engine's BuildKit
(docker 20.10, DOCKER_BUILDKIT=1, --progress=plain) captured on the sandbox: a build whose torch layer came
from a pushed image's inline cache, one whose cache source was not pushed yet, and a failed RUN.
"""

from __future__ import annotations

import base64
import itertools
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from generator.build import cli
from generator.build.cli import BuildCli, NoBuildKit, select
from generator.build.dockerconfig import build_env
from generator.build.plain import PlainProgress, parse
from generator.build.spec import build_spec, cache_sources, group_key, groups
from generator.ci.bake import bake_file, target_name
from generator.fleet import Fleet
from generator.release.credentials import CredentialSource
from generator.render.renderer import RenderedCell
from tests.conftest import DEFAULT_MATRIX, ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "buildkit"


def fake_docker(folder: Path, version: str, buildx: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "docker"
    exe.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then echo "Docker version {version}, build 0000000"; exit 0; fi\n'
        + ('if [ "$1" = "buildx" ]; then echo "github.com/docker/buildx v0.12.1"; exit 0; fi\n' if buildx else "")
        + 'echo "docker: unknown command: docker $1" >&2; exit 1\n'
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


@pytest.fixture
def debian(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the fallback looks for Debian's docker: a folder of the test's (empty unless a test fills it)."""
    folder = tmp_path / "usr-bin"
    folder.mkdir()
    monkeypatch.setattr(cli, "DEBIAN_DOCKER", str(folder / "docker"))
    return folder


# -- choosing the CLI -------------------------------------------------------------------------------------------


def test_a_newer_docker_without_buildx_is_passed_over_for_debians_20_10(tmp_path: Path, debian: Path) -> None:
    newer = fake_docker(tmp_path / "local", "28.2.2", buildx=False)
    old = fake_docker(debian, "20.10.24+dfsg1", buildx=False)
    chosen = select({"PATH": str(newer.parent)})
    assert chosen == BuildCli(str(old), "buildkit", "20.10.24+dfsg1")
    assert chosen.describe == f"DOCKER_BUILDKIT=1 docker build ({old} 20.10.24+dfsg1)"
    assert chosen.env({"PATH": "x"})["DOCKER_BUILDKIT"] == "1"


def test_a_docker_with_buildx_is_preferred(tmp_path: Path, debian: Path) -> None:
    fake_docker(debian, "20.10.24+dfsg1", buildx=False)
    with_buildx = fake_docker(tmp_path / "local", "27.0.1", buildx=True)
    chosen = select({"PATH": str(with_buildx.parent)})
    assert (chosen.executable, chosen.mode) == (str(with_buildx), "buildx")
    assert chosen.describe.startswith("docker buildx build (")


def test_the_environment_forces_a_mode_or_an_executable(tmp_path: Path, debian: Path) -> None:
    old = fake_docker(debian, "20.10.24+dfsg1", buildx=False)
    with_buildx = fake_docker(tmp_path / "local", "27.0.1", buildx=True)
    path = str(with_buildx.parent)
    assert select({"PATH": path, "AIR_FLEET_BUILDER": "buildkit"}).executable == str(old)
    named = select({"PATH": path, "AIR_FLEET_DOCKER": str(old)})
    assert (named.executable, named.mode) == (str(old), "buildkit")
    with pytest.raises(NoBuildKit, match="AIR_FLEET_BUILDER='classic': expected one of auto, buildx, buildkit"):
        select({"PATH": path, "AIR_FLEET_BUILDER": "classic"})


def test_no_buildkit_capable_cli_is_one_line_saying_what_to_install(tmp_path: Path, debian: Path) -> None:
    newer = fake_docker(tmp_path / "local", "28.2.2", buildx=False)
    with pytest.raises(NoBuildKit) as caught:
        select({"PATH": str(newer.parent)})
    message = str(caught.value)
    assert "\n" not in message and str(newer) in message
    assert "install the buildx plugin" in message and "docker.io" in message and "AIR_FLEET_DOCKER" in message
    with pytest.raises(NoBuildKit, match="no docker CLI found"):
        select({"PATH": str(tmp_path / "nowhere")})
    with pytest.raises(NoBuildKit, match="with buildx"):
        select({"PATH": str(newer.parent), "AIR_FLEET_BUILDER": "buildx"})


# -- reading --progress=plain ------------------------------------------------------------------------------------


def test_a_torch_layer_from_a_pushed_images_cache_reads_cached() -> None:
    progress = parse((FIXTURES / "cache-hit.txt").read_text())
    torch = progress.torch_step()
    assert torch is not None and torch.cached and (torch.k, torch.n) == (6, 9)
    assert torch.label.startswith("step 6/9 RUN uv pip install")
    assert [v.k for v in progress.steps if v.cached] == [2, 3, 4, 5, 6]  # everything up to torch, nothing after
    assert progress.missing_cache_sources() == [] and progress.error() is None


def test_a_cache_source_not_pushed_yet_is_skipped_not_a_failure() -> None:
    progress = parse((FIXTURES / "cache-source-missing.txt").read_text())
    assert progress.missing_cache_sources() == ["127.0.0.1:5000/bk-test/exp:b"]
    torch = progress.torch_step()
    assert torch is not None and not torch.cached and torch.done and torch.seconds == 8.7
    assert all(v.error is None for v in progress.steps)


def test_a_failed_run_gives_the_clis_error_line() -> None:
    progress = parse((FIXTURES / "failed.txt").read_text())
    assert progress.error() == (
        'executor failed running [/bin/sh -c echo preparing && echo "no such package" >&2 && exit 3]: exit code: 3'
    )
    (failed,) = [v for v in progress.steps if v.error]
    assert failed.short == "step 2/2"


def test_events_for_progress_lines_and_buildx_style_errors() -> None:
    progress = PlainProgress()
    kinds = [
        (e.kind, e.vertex.short) if e else None
        for e in map(
            progress.feed,
            [
                "#7 [builder 2/4] RUN make",
                "#12 [stage-0  8/11] RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements-torch.txt",  # noqa: E501
                "#13 [ 9/11] COPY requirements.txt /tmp/",
                "#7 0.512 compiling",
                "#8 [internal] load build context",
                "#7 DONE 12.0s",
                "#9 [stage-1 3/3] COPY --from=builder /out /out",
                "#9 ERROR: failed to compute cache key: not found",
                "------",
                " > [stage-1 3/3] COPY --from=builder /out /out:",
                "------",
                "ERROR: failed to solve: failed to compute cache key: not found",
            ],
        )
    ]
    assert kinds == [
        ("start", "step builder 2/4"),
        ("start", "step 8/11"),  # padded to the count's width; the first stage's default name left out
        ("start", "step 9/11"),
        None,
        ("start", "step None/None"),
        ("done", "step builder 2/4"),
        ("start", "step stage-1 3/3"),
        ("error", "step stage-1 3/3"),
        None,
        None,
        None,
        None,
    ]
    assert progress.error() == "failed to solve: failed to compute cache key: not found"
    torch = progress.torch_step()
    assert torch is not None and torch.number == 12


# -- one description of a build: the builder's command line and bake's target ----------------------------------


@pytest.fixture(scope="module")
def fleet() -> list[RenderedCell]:
    return [r for r in Fleet.load(DEFAULT_MATRIX).render() if r.status != "FAIL"]


def argv_as_target(argv: list[str]) -> dict[str, Any]:
    """buildx's command line read back into bake's vocabulary."""
    assert argv[1:4] == ["buildx", "build", "--load"]
    target: dict[str, Any] = {"args": {}, "labels": {}, "cache-from": [], "cache-to": [], "platforms": [], "tags": []}
    words = iter(argv[4:-1])
    for word in words:
        if word.startswith("--progress") or word == "--iidfile":
            if word == "--iidfile":
                next(words)
            continue
        value = next(words)
        if word in ("--build-arg", "--label"):
            key, _, val = value.partition("=")
            target["args" if word == "--build-arg" else "labels"][key] = val
        else:
            name = {"--file": "file", "--platform": "platforms", "--tag": "tags"}.get(word, word.removeprefix("--"))
            if name == "file":
                target["file"] = value
            else:
                target[name].append(value)
    target["context"] = argv[-1]
    return target


def test_the_builder_and_bake_describe_the_same_builds(fleet: list[RenderedCell], tmp_path: Path) -> None:
    bake = bake_file(fleet, Path("images"))
    sharing = groups(fleet)
    buildx = BuildCli("/usr/bin/docker", "buildx", "27.0.1")
    for r in fleet:
        spec = build_spec(r, Path("images") / r.cell.slug, sharing[group_key(r)])
        target = bake["target"][target_name(r.cell.slug)]
        mine = argv_as_target(buildx.argv(spec, tmp_path / "iid"))
        assert mine["context"] == target["context"] and mine["file"] == f"{target['context']}/{target['dockerfile']}"
        assert mine["tags"] == target["tags"] == [r.ref]  # the candidate; aliases move at promote, after the probes
        for key in ("args", "labels", "cache-from", "cache-to", "platforms"):
            assert mine[key] == target[key], (r.cell.slug, key)


def test_cache_sources_are_the_groups_pushed_images_not_the_cell_itself(fleet: list[RenderedCell]) -> None:
    sharing = groups(fleet)
    assert any(len(members) > 1 for members in sharing.values())
    for r in fleet:
        members = sharing[group_key(r)]
        sources = cache_sources(r, members)
        assert r.ref not in sources and len(sources) == len(members) - 1
        assert all(ref.startswith(f"{r.cell.staging_image}:") for ref in sources)  # where candidates are pushed


def test_the_engines_buildkit_gets_plain_refs_and_the_inline_cache_argument(
    fleet: list[RenderedCell], tmp_path: Path
) -> None:
    sharing = groups(fleet)
    r = next(r for r in fleet if len(sharing[group_key(r)]) > 1)
    spec = build_spec(r, Path("images") / r.cell.slug, sharing[group_key(r)])
    argv = BuildCli("/usr/bin/docker", "buildkit", "20.10.24").argv(spec, tmp_path / "iid")
    assert argv[:4] == ["/usr/bin/docker", "build", "--progress=plain", "--iidfile"]
    assert "buildx" not in argv and "--cache-to" not in argv and "--load" not in argv
    pairs = list(itertools.pairwise(argv))
    assert ("--build-arg", "BUILDKIT_INLINE_CACHE=1") in pairs and ("--platform", "linux/amd64") in pairs
    assert [b for a, b in pairs if a == "--cache-from"] == list(spec.cache_from) != []
    with_registry_cache = build_spec(r, Path("images"), sharing[group_key(r)], cache_repo="cache.example.com/c")
    with pytest.raises(Exception, match="cannot export a registry cache"):
        BuildCli("/usr/bin/docker", "buildkit", "20.10.24").argv(with_registry_cache, tmp_path / "iid")


# -- credentials: a temporary Docker config, never the command line ------------------------------------------


def test_credentials_only_the_environment_holds_go_to_a_private_temporary_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    (home / ".docker" / "config.json").write_text(
        json.dumps({"credsStore": "desktop", "credHelpers": {"registry.example.com": "ecr-login", "other.io": "gcr"}})
    )
    env = {"HOME": str(home), "AIR_FLEET_REGISTRY_USERNAME": "robot", "AIR_FLEET_REGISTRY_PASSWORD": "s3cr3t-pw"}
    source = CredentialSource(env)
    refs = ["registry.example.com/ml/air:a-0123456789ab", "registry.example.com/ml/air:b-0123456789ab"]
    with build_env(env, source, refs) as out:
        folder = Path(out["DOCKER_CONFIG"])
        config = folder / "config.json"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(config.stat().st_mode) == 0o600
        written = json.loads(config.read_text())
        assert written["auths"]["registry.example.com"]["auth"] == base64.b64encode(b"robot:s3cr3t-pw").decode()
        assert written["credHelpers"] == {"other.io": "gcr"} and "credsStore" not in written
        spec = build_spec(_a_cell(), tmp_path, [_a_cell()])
        argv = BuildCli("/usr/bin/docker", "buildkit", "20.10.24").argv(spec, tmp_path / "iid")
        assert not any("s3cr3t" in word or "robot" in word for word in argv)
    assert not folder.exists()  # removed after the build
    # Credentials the Docker config gives are the CLI's own: nothing is written.
    plain_env = {"HOME": str(home)}
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {"registry.example.com": {"auth": "eDp5"}}}))
    with build_env(plain_env, CredentialSource(plain_env), refs) as out:
        assert "DOCKER_CONFIG" not in out


def _a_cell() -> RenderedCell:
    return Fleet.load(DEFAULT_MATRIX).render()[0]
