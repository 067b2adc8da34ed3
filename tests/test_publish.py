"""The published page as files: HTML (self-contained, escaped, every cell), Markdown, JSON, and the CLI.
How the page behaves in a browser is tested in tests/integration/test_page_browser.py."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from generator.fleet import Fleet
from generator.render.renderer import RenderedCell
from generator.site.catalogue import catalogue
from generator.site.publish import (
    HTML,
    JSON_FILE,
    MARKDOWN,
    NO_EXTENSION_LABEL,
    bench_summary,
    data_attrs,
    filter_options,
    html,
    json_text,
    markdown,
    size,
    stamp,
    version,
    write_site,
)
from tests import records as canned
from tests.conftest import DEFAULT_MATRIX, ROOT

STAMP = "2026-11-29T00:00:00Z"
HOSTILE = '<script>alert("x")</script> | & "quoted"'


@functools.cache
def _rendered() -> tuple[RenderedCell, ...]:
    return tuple(Fleet.load(DEFAULT_MATRIX).render())


def _catalogue(root: Path) -> dict[str, Any]:
    cells = _rendered()
    canned.sample(root, cells)
    # A record field is text from a container: it must never become markup or break a table.
    canned.write(root, "build", cells[2].cell.slug, {"digest": cells[2].digest, "status": "failed", "error": HOSTILE})
    return catalogue(cells, canned.records(root), generated_at=STAMP)


def test_every_cell_has_a_row_and_a_section(tmp_path: Path) -> None:
    page = html(_catalogue(tmp_path))
    slugs = [c.cell.slug for c in _rendered()]
    assert re.findall(r'<tr id="row-([^"]+)"', page) == slugs
    assert re.findall(r'<section class="cell" id="cell-([^"]+)"', page) == slugs
    assert page.count('href="#cell-') == len(slugs)


def test_the_page_loads_nothing_from_outside(tmp_path: Path) -> None:
    page = html(_catalogue(tmp_path))
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"\bsrc\s*=", page)
    assert not re.search(r"@import|url\(", page)
    assert set(re.findall(r'href="([^"#][^"]*)"', page)) == set()  # every link is to an anchor on the page
    assert page.count("<script>") == 1 and page.count("<style>") == 1  # inline, the only ones


def test_record_text_is_escaped(tmp_path: Path) -> None:
    page = html(_catalogue(tmp_path))
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    md = markdown(_catalogue(tmp_path))
    assert "&lt;script&gt;" in md and "<script>" not in md  # Markdown renderers pass HTML through
    assert "\\| &amp; " in md and " | & " not in md  # a | in a table cell would start a new column


def test_cells_never_measured_say_so(tmp_path: Path) -> None:
    data = _catalogue(tmp_path)
    page = html(data)
    rows = {c["slug"]: c for c in data["cells"]}
    first, second, third = (c.cell.slug for c in _rendered()[:3])
    assert bench_summary(rows[first]["bench"]) == "no GPU measured"
    assert bench_summary(rows[second]["bench"]) == "matmul_bf16 711.0 TFLOP/s (90% of reference) on NVIDIA H200"
    assert bench_summary(rows[third]["bench"]) == "never benchmarked"
    assert page.count(">never benchmarked</td>") == len(data["cells"]) - 2
    assert "no GPU measured" in page and "711.0 TFLOP/s" in page


def test_the_summary_figure_is_the_first_measured_one_when_bf16_failed(tmp_path: Path) -> None:
    output = json.loads(json.dumps(canned.H200_OUTPUT))
    output["results"]["matmul_bf16"] = {"status": "error", "error": "CUDA error: out of memory"}
    canned.bench(tmp_path, _rendered()[0], output)
    bench = catalogue(_rendered()[:1], canned.records(tmp_path), generated_at=STAMP)["cells"][0]["bench"]
    assert bench_summary(bench) == "matmul_fp16 692.3 TFLOP/s (70% of reference) on NVIDIA H200"


def test_filters_offer_what_the_rows_have_in_a_useful_order(tmp_path: Path) -> None:
    options = {key: values for key, _, values in filter_options(_catalogue(tmp_path)["cells"])}
    assert [v for v, _ in options["cloud"]] == ["aws", "azure"]
    assert [v for v, _ in options["torch"]] == ["2.6.0", "2.7.1", "2.8.0"]
    assert options["ext"][0] == ("none", NO_EXTENSION_LABEL)
    assert {v for v, _ in options["ext"][1:]} == {"apex", "flash-attn", "xformers"}
    assert "GPU_8xH100" in {v for v, _ in options["acc"]}
    # Versions sort as versions: 2.10 after 2.9, never between 2.1 and 2.2.
    fake = [{**_catalogue(tmp_path)["cells"][0], "torch": {"torch": t}} for t in ("2.10.0", "2.9.1", "2.1.0")]
    torch = next(values for key, _, values in filter_options(fake) if key == "torch")
    assert [v for v, _ in torch] == ["2.1.0", "2.9.1", "2.10.0"]


def test_rows_carry_the_values_the_filters_match() -> None:
    flash = next(r for r in _rendered() if r.cell.stack == "flash-attn" and r.cell.cloud == "azure")
    attrs = data_attrs({"slug": flash.cell.slug, **json.loads(flash.files["cell.json"])})
    assert f'data-slug="{flash.cell.slug}"' in attrs and 'data-cloud="azure"' in attrs
    assert 'data-ext="flash-attn"' in attrs and f'data-torch="{flash.cell.torch}"' in attrs
    assert f'data-acc="{" ".join(flash.cell.accelerators)}"' in attrs
    plain = next(r for r in _rendered() if not r.cell.extensions)
    assert 'data-ext="none"' in data_attrs(json.loads(plain.files["cell.json"]))


def test_markdown_has_the_table_and_a_section_per_cell(tmp_path: Path) -> None:
    md = markdown(_catalogue(tmp_path))
    slugs = [c.cell.slug for c in _rendered()]
    table_rows = [line for line in md.splitlines() if re.match(r"\| \d+ \| \[", line)]
    assert [re.search(r"\[([^\]]+)\]", line).group(1) for line in table_rows] == slugs  # type: ignore[union-attr]
    assert all(line.count(" | ") == 14 for line in table_rows)  # 15 columns, no stray separators
    assert [line[3:] for line in md.splitlines() if line.startswith("## ")] == slugs
    assert [line[7:-6] for line in md.splitlines() if line.startswith("<a id=")] == slugs  # the table's links
    assert md.count("```yaml") == len(slugs)
    assert "| matmul_bf16 | 711.0 TFLOP/s | 790.0 TFLOP/s | 90% |" in md


def test_json_is_the_catalogue(tmp_path: Path) -> None:
    data = _catalogue(tmp_path)
    loaded = json.loads(json_text(data))
    assert loaded.pop("_generated").startswith("GENERATED by `python -m generator publish`")
    assert loaded == json.loads(json.dumps(data))


def test_write_site_replaces_its_three_files_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "CNAME").write_text("keep me")
    (out / HTML).write_text("old")
    written = write_site(out, _catalogue(tmp_path / "records"))
    assert [p.name for p in written] == [HTML, MARKDOWN, JSON_FILE]
    assert sorted(p.name for p in out.iterdir()) == sorted(["CNAME", HTML, MARKDOWN, JSON_FILE])
    assert (out / "CNAME").read_text() == "keep me" and (out / HTML).read_text().startswith("<!doctype html>")


def test_sizes_and_times_read_like_people_write_them() -> None:
    assert (size(None), size(0), size(300 * 2**20), size(int(1.5 * 2**30))) == ("—", "—", "300 MiB", "1.50 GiB")
    assert stamp("2026-11-29T21:14:07.136053988Z") == "2026-11-29T21:14:07Z"
    assert stamp("2026-11-29T21:14:07+0000") == "2026-11-29T21:14:07+0000" and stamp(None) == "—"
    assert version("810ffae374a2b9cb4b5c5e28eaeca7d7998fca0c") == "810ffae374a2" and version("2.8.3") == "2.8.3"


def test_cli_publish_writes_the_page_and_says_where(tmp_path: Path) -> None:
    canned.build(tmp_path, _rendered()[0])
    canned.probe(tmp_path, _rendered()[0])
    env = {**os.environ, "AIR_FLEET_RESULTS": str(tmp_path / "results"), "AIR_FLEET_STATE": str(tmp_path / "state")}
    out = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "generator", "publish", "--out", str(out), "1", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.splitlines()[0]
        == "2 cells: 1 probed OK (0 on a GPU), 0 benchmarked, 0 pushed to staging, 0 promoted, 0 registered"
    )
    assert done.stdout.splitlines()[-1] == f"the page: {(out / HTML).resolve().as_uri()}"
    data = json.loads((out / JSON_FILE).read_text())
    assert [c["index"] for c in data["cells"]] == [1, 2] and data["profile"] == "default"
    assert data["cells"][0]["probe"]["status"] == "OK" and data["cells"][1]["probe"]["status"] == "not run"


def test_cli_publish_default_folder_is_under_results(tmp_path: Path) -> None:
    env = {**os.environ, "AIR_FLEET_RESULTS": str(tmp_path / "results"), "AIR_FLEET_STATE": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-m", "generator", "publish", "3"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "results" / "default" / "site" / HTML).is_file()


def test_cli_publish_carries_the_previous_page_and_refuses_a_bad_one(tmp_path: Path) -> None:
    env = {**os.environ, "AIR_FLEET_RESULTS": str(tmp_path / "results"), "AIR_FLEET_STATE": str(tmp_path / "state")}

    def publish(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "generator", "publish", "1", "2", *args]
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)

    last = tmp_path / "last-night"
    canned.sample(last, list(_rendered()))
    previous = tmp_path / "previous.json"
    previous.write_text(json_text(catalogue(_rendered()[:2], canned.records(last), generated_at=STAMP)))
    done = publish("--out", str(tmp_path / "site"), "--previous", str(previous))
    assert done.returncode == 0, done.stderr
    assert "1 benchmarked" in done.stdout.splitlines()[0]  # carried: tonight has no record at all
    cells = json.loads((tmp_path / "site" / JSON_FILE).read_text())["cells"]
    assert cells[1]["bench"]["carried_from"] == STAMP
    for content, why in (("{", "is not JSON"), ("[]", "is not a JSON object"), ('{"schema": 2}', "schema 1")):
        previous.write_text(content)
        done = publish("--previous", str(previous))
        assert done.returncode == 2 and why in done.stderr and done.stderr.count("\n") == 1, done.stderr
    done = publish("--previous", str(tmp_path / "absent.json"))
    assert done.returncode == 2 and "cannot read the previous page" in done.stderr


def test_cli_publish_refuses_a_previous_page_that_is_not_a_file(tmp_path: Path) -> None:
    """A FIFO with no writer once hung `publish --previous` (and /dev/zero read until memory ran out)."""
    env = {**os.environ, "AIR_FLEET_RESULTS": str(tmp_path / "results"), "AIR_FLEET_STATE": str(tmp_path / "state")}
    fifo = tmp_path / "previous.json"
    os.mkfifo(fifo)
    argv = [sys.executable, "-m", "generator", "publish", "1", "--previous", str(fifo)]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 2
    assert done.stderr == f"error: {fifo}: cannot read the previous page: not a regular file (a FIFO)\n"


def test_the_page_says_how_many_wheels_were_compiled_and_reused(tmp_path: Path) -> None:
    assert _catalogue(tmp_path)["compile"] is None and 'id="compiled"' not in html(_catalogue(tmp_path))
    records = canned.records(tmp_path)
    compile_json = records.results / records.profile / "compile.json"
    compile_json.write_text(json.dumps({"compiled": 1, "reused": 2, "pulled": 1, "failed": 0, "keys": []}))
    data = _catalogue(tmp_path)
    assert data["compile"] == {"compiled": 1, "reused": 2, "pulled": 1, "failed": 0}
    assert "source-built wheels: 1 compiled, 3 reused (1 from the registry)</li>" in html(data)
