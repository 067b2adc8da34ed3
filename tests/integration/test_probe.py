"""The probe against real images on the real Docker engine (no mocks; in CI these run, they never skip).

One sandbox cell is built through the project's own pipeline: aws-devel (the devel stand-in has the
compiler the second image needs), torch 2.13.0 CPU, einops. It must probe OK with every GPU fact N/A "not
measured". Then an image is made wrong on purpose: FROM that good image, two tiny CPython extensions
that call into libtorch_cpu, one compiled with torch's C++11 ABI (1) and one with the other (0); the probe
must FAIL the CXX11 ABI row naming the bad one and its undefined symbol, and pass the good one.
"""

from __future__ import annotations

import datetime
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import docker
import docker.errors
import pytest

from generator.model import Extension, Origin
from generator.release.push import PushCell, push
from generator.resolve.checks import FAIL, NA, OK
from generator.results import record_path, write_record
from generator.site.catalogue import NO_GPU_MEASURED, Records, catalogue
from generator.site.publish import write_site
from generator.verify.bench import bench_image, write_bench_record
from generator.verify.judge import NOT_MEASURED
from generator.verify.probe import ProbeResult, probe_cells, probe_image, report
from tests.browser import Browser
from tests.integration.sandboxcell import Built as Built  # re-exported: test_source_build uses this fixture
from tests.integration.sandboxcell import built_cell

REPOSITORY = f"air-fleet/test-probe-{uuid.uuid4().hex[:8]}"
BAD_REF = f"127.0.0.1:5000/{REPOSITORY}:wrong-abi"
SLUG = "aws-devel-torch2.13-einops0.8.2"
GPU_ROWS = ("driver", "cuda", "nccl")

# Why this function exposes the C++11 ABI: `c10::Symbol::fromQualString(const std::string&)` takes a
# std::string, and the two ABIs are two different std::string types with two different mangled names.
# libtorch_cpu (torch 2.13, ABI 1) exports only `..._ZN3c106Symbol14fromQualStringERKNSt7__cxx1112basic_
# stringIcSt11char_traitsIcESaIcEEE`; code compiled with -D_GLIBCXX_USE_CXX11_ABI=0 asks for
# `_ZN3c106Symbol14fromQualStringERKSs` (`Ss` = the old std::string), which nothing exports, so the
# dynamic loader refuses the module at import: "undefined symbol". That is the failure a wheel built for
# the other ABI (flash-attn's mislabelled cxx11abiFALSE wheels) shows; the same source with ABI 1 loads.
# The source is the apex stand-in's apex_C (tests/fixtures/apex_argv), renamed to `_C`.
EXTENSION_CPP = (
    (Path(__file__).parent.parent / "fixtures" / "apex_argv" / "csrc" / "flatten_unflatten.cpp")
    .read_text(encoding="utf-8")
    .replace("apex_C", "_C")
)
OLD_ABI_SYMBOL = "_ZN3c106Symbol14fromQualStringERKSs"
# python3-dev for Python.h (the venv's Python is Debian's 3.11); the compiler comes with the devel base.
# Each package: a pure-Python __init__ (imports fine), the native _C beside it (where the ABI shows), and
# a dist-info so importlib.metadata knows its version, as a wheel install would leave.
DOCKERFILE = """\
FROM {good}
RUN apt-get update && apt-get install -y --no-install-recommends python3-dev && rm -rf /var/lib/apt/lists/*
COPY ext.cpp /tmp/ext.cpp
RUN SP=/opt/venv/lib/python3.11/site-packages; T=$SP/torch; \\
    for pair in abi_good:1 abi_bad:0; do name=${{pair%:*}}; abi=${{pair#*:}}; \\
      mkdir -p $SP/$name $SP/$name-0.1.0.dist-info && touch $SP/$name/__init__.py && \\
      printf 'Metadata-Version: 2.1\\nName: %s\\nVersion: 0.1.0\\n' "$name" > $SP/$name-0.1.0.dist-info/METADATA && \\
      g++ -O1 -shared -fPIC -D_GLIBCXX_USE_CXX11_ABI=$abi $(python3-config --includes) -I$T/include /tmp/ext.cpp \\
        -L$T/lib -Wl,-rpath,$T/lib -lc10 -ltorch_cpu -o $SP/$name/_C$(python3-config --extension-suffix) \\
      || exit 1; done
"""
ORIGIN = Origin(Path("tests/integration/test_probe.py"), None, "abi test extensions")


def _extension(name: str, abi: int) -> Extension:
    module = name.replace("-", "_")
    return Extension(
        name=name,
        kind="release-wheel",
        version="0.1.0",
        build="wheel",
        import_name=module,
        native_modules=(f"{module}._C",),
        artifacts=(),
        abi=abi,
        abi_note=f"compiled here with -D_GLIBCXX_USE_CXX11_ABI={abi}",
        problem=None,
        origin=ORIGIN,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """The one good cell, locked and built by the project's own pipeline; results go to a temp dir. The
    wrong-ABI image made from it is removed first afterwards (an image with a child cannot be removed)."""
    with built_cell(tmp_path_factory, "probe-fleet", REPOSITORY, "devel", also_remove=(BAD_REF,)) as cell:
        yield cell


def _leftover_probe_containers(client: docker.DockerClient, ref: str) -> list[str]:
    # Only this test's image: probes of other runs sharing the engine are not this probe's leftovers.
    found = client.containers.list(all=True, filters={"label": "air-fleet.probe", "ancestor": ref})
    return [c.id for c in found]


def test_a_good_image_probes_ok_and_gpu_facts_are_not_measured(built: Built) -> None:
    (result,) = probe_cells(built.fleet, [built.rendered], client=built.client, gpus=None)
    assert result.slug == SLUG and result.digest == built.rendered.digest
    checks = {c.id: c for c in result.checks}
    for row in GPU_ROWS:  # the sandbox torch is a CPU build: N/A with GPUs or without, never OK
        assert checks[row].status == NA
        if not result.gpus:
            assert checks[row].detail == NOT_MEASURED
    assert checks["network"].status == NA and "stand-in" in checks["network"].detail
    others = {c.id: c.status for c in result.checks if c.id not in (*GPU_ROWS, "network")}
    assert set(others.values()) == {OK}, report([result])
    assert result.status == OK
    assert result.facts["torch"]["version"] == "2.13.0+cpu" and result.facts["torch"]["cxx11_abi"] == 1
    assert result.facts["python"]["executable"] == "/opt/venv/bin/python"
    assert "einops==0.8.2" in result.facts["distributions"]
    assert result.facts["uv"]["path"] == "/usr/local/bin/uv" and result.facts["errors"] == []
    record_file = built.root / "results" / built.fleet.profile.records / "probe" / f"{SLUG}.json"
    record = json.loads(record_file.read_text())
    assert (record["slug"], record["digest"], record["status"]) == (SLUG, built.rendered.digest, OK)
    assert record["image_id"] == built.client.images.get(built.rendered.ref).id
    assert [c["title"] for c in record["checks"]][:2] == ["Image", "CUDA toolkit vs host driver"]
    assert record["facts"] == result.facts
    assert not _leftover_probe_containers(built.client, built.rendered.ref)


def test_an_extension_built_for_the_wrong_abi_fails(built: Built, tmp_path: Path) -> None:
    context = tmp_path / "wrong-abi"
    context.mkdir()
    (context / "ext.cpp").write_text(EXTENSION_CPP)
    (context / "Dockerfile").write_text(DOCKERFILE.format(good=built.rendered.ref))
    built.client.images.build(path=str(context), tag=BAD_REF, rm=True, forcerm=True)
    # By hand first: torch exports only the C++11 name, and the ABI-0 module asks for the old one.
    site = "/opt/venv/lib/python3.11/site-packages"
    script = (
        f"nm -D --defined-only {site}/torch/lib/libtorch_cpu.so | grep -c fromQualString; "
        f"nm -D --defined-only {site}/torch/lib/libtorch_cpu.so | grep -c {OLD_ABI_SYMBOL}; "
        f"nm -D --undefined-only {site}/abi_bad/_C*.so | grep fromQualString"
    )
    symbols = built.client.containers.run(BAD_REF, ["bash", "-c", script], remove=True, network_mode="none")
    exported, old_exported, wanted = symbols.decode().split("\n", 2)
    assert (int(exported), int(old_exported)) == (1, 0)
    assert OLD_ABI_SYMBOL in wanted

    cell = replace(
        built.rendered.cell,
        extensions=(*built.rendered.cell.extensions, _extension("abi-good", 1), _extension("abi-bad", 0)),
    )
    result = probe_image(built.client, cell, BAD_REF, built.rendered.digest, built.fleet.facts, gpus=False)
    checks = {c.id: c for c in result.checks}
    abi = checks["abi"]
    assert abi.status == FAIL and result.status == FAIL
    assert "abi-bad: abi_bad._C does not load" in abi.detail
    assert f"undefined symbol: {OLD_ABI_SYMBOL}" in abi.detail
    assert "abi-good: abi_good._C loads" in abi.detail
    # The packages themselves import and are at their versions: it is the native module that fails.
    assert checks["extensions"].status == OK and "abi-bad 0.1.0" in checks["extensions"].detail
    assert result.facts["extensions"]["abi-good"]["native"] == "ok"
    print(f"\nwrong-ABI probe: {abi.detail}")

    # ...and it is not pushed: with this probe on record for the cell, the push gate holds it back.
    results = built.root / "results"
    write_record(record_path(results, built.fleet.profile.records, "probe", SLUG), result.record())
    (pushed,) = push(
        [PushCell.of(built.rendered)],
        built.client,
        profile=built.fleet.profile.records,
        atomic=True,
        date=datetime.date(2026, 11, 29),
        results=results,
        progress=lambda _: None,
    )
    assert pushed.status == "refused" and "FAIL" in (pushed.reason or "")
    try:  # the registry knows the repository only once something was pushed to it
        with urllib.request.urlopen(f"http://127.0.0.1:5000/v2/{REPOSITORY}/tags/list") as response:
            listed = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
        listed = {}
    assert not listed.get("tags")


def test_a_missing_image_or_another_digest_is_a_fail(built: Built) -> None:
    cell = built.rendered.cell
    absent = f"127.0.0.1:5000/{REPOSITORY}:never-built"
    result = probe_image(built.client, cell, absent, built.rendered.digest, built.fleet.facts, gpus=False)
    assert result.status == FAIL and result.error and "not built" in result.error
    other = "sha256:" + "f" * 64
    result = probe_image(built.client, cell, built.rendered.ref, other, built.fleet.facts, gpus=False)
    image_row = result.checks[0]
    assert (image_row.id, image_row.status) == ("image", FAIL) and "rebuild" in image_row.detail


def test_a_probe_over_its_time_is_stopped_and_cleaned_up(built: Built) -> None:
    result: ProbeResult = probe_image(
        built.client,
        built.rendered.cell,
        built.rendered.ref,
        built.rendered.digest,
        built.fleet.facts,
        gpus=False,
        timeout=0.05,
    )
    assert result.status == FAIL and result.error and "no answer from the probe" in result.error
    assert not _leftover_probe_containers(built.client, built.rendered.ref)


def test_the_page_shows_the_real_probe_and_no_gpu_figure(built: Built, browser: Browser, artifacts: Path) -> None:
    """The page from records the real steps wrote: this build, this probe, the real benchmark (no GPU here)."""
    (probed,) = probe_cells(built.fleet, [built.rendered], client=built.client, gpus=False)
    assert probed.status == OK
    results = built.root / "results"
    bench = bench_image(
        built.client, SLUG, built.rendered.ref, built.rendered.digest, gpus=False, quick=True, python="python3"
    )
    write_bench_record(results, built.fleet.profile.records, bench)
    data = catalogue(
        [built.rendered], Records(results, built.fleet.profile.records, built.root / "register"), generated_at="now"
    )
    (row,) = data["cells"]
    assert row["build"]["status"] in ("built", "up to date") and row["build"]["size"] > 100 * 2**20
    assert row["build"]["built_at"]  # the engine's creation time, also when the build was a cache hit
    assert row["probe"]["status"] == OK and row["probe"]["gpu"] is False
    assert "einops==0.8.2" in row["probe"]["packages"] and row["probe"]["torch"] == "2.13.0+cpu"
    assert row["bench"]["status"] == "no GPU" and row["bench"]["detail"] == NO_GPU_MEASURED
    assert row["bench"]["figures"] == [] and data["counts"]["benchmarked"] == 0
    (page,) = (p for p in write_site(built.root / "site", data) if p.name == "index.html")
    browser.resize(1400, 900)
    browser.open(page.as_uri())
    assert browser.problems() == [] and browser.requests() == [page.as_uri()]
    cell = f"document.getElementById('row-{SLUG}').querySelector('td[data-label=\"{{}}\"]').textContent"
    assert browser.evaluate(cell.format("Probe")).split() == ["OK", "no", "GPU"]
    assert browser.evaluate(cell.format("Benchmark")) == NO_GPU_MEASURED
    assert browser.evaluate(cell.format("Size")).endswith(("GiB", "MiB"))
    browser.screenshot(artifacts / "page-sandbox-cell.png", full_page=True)
