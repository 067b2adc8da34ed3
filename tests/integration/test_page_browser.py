"""The compatibility page in a real browser (headless Chromium, Debian's, driven by Playwright, no mocks): it
loads offline with nothing fetched and no script error, its filters show exactly the cells they should
(driven the way a person drives them, with real input: choosing options, typing, clicking Clear, opening a
shared link), and it fits a phone's width. Screenshots are left in the artifacts folder
(results/test-artifacts by default).

The page is the default matrix's cells (42) with canned records for a few (tests/records.py); the page from
real build and probe records is loaded in tests/integration/test_probe.py.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest
from playwright.sync_api import expect

from generator.fleet import Fleet
from generator.render.renderer import RenderedCell
from generator.site.catalogue import catalogue
from generator.site.publish import HTML, write_site
from tests import records as canned
from tests.browser import Browser
from tests.conftest import DEFAULT_MATRIX

VISIBLE_ROWS = """Array.from(document.querySelectorAll('#cells tbody tr'))
  .filter(function (r) { return r.offsetParent !== null; }).map(function (r) { return r.dataset.slug; })"""
VISIBLE_SECTIONS = """Array.from(document.querySelectorAll('section.cell'))
  .filter(function (s) { return s.offsetParent !== null; }).map(function (s) { return s.id.slice(5); })"""


@functools.cache
def _rendered() -> tuple[RenderedCell, ...]:
    return tuple(Fleet.load(DEFAULT_MATRIX).render())


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("page")
    cells = _rendered()
    canned.sample(root, cells)
    data = catalogue(cells, canned.records(root), generated_at="2026-11-29T00:00:00Z")
    (path,) = (p for p in write_site(root / "site", data) if p.name == HTML)
    return path.as_uri(), data


def _expected(data: dict[str, Any], **wanted: str) -> list[str]:
    """The cells a filter must show, computed from the data (not from the page)."""

    def keep(c: dict[str, Any]) -> bool:
        have = {
            "cloud": [c["cloud"]],
            "variant": [c["variant"]],
            "torch": [c["torch"]["torch"]],
            "ext": [e["name"] for e in c["extensions"]] or ["none"],
            "acc": c["accelerators"],
        }
        return all(value in have[key] for key, value in wanted.items())

    return [c["slug"] for c in data["cells"] if keep(c)]


def _choose(browser: Browser, **values: str) -> None:
    """Choose options the way a person does: Playwright selects them and fires `input` and `change`, which
    bubble to the form. An option the select lacks fails the test (after TIMEOUT_MS)."""
    for name, value in values.items():
        chosen = browser.page.select_option(f"#filters select[name={name}]", value=value)
        assert chosen == [value], (name, value, chosen)


def test_the_page_loads_offline_with_no_error(
    browser: Browser, page: tuple[str, dict[str, Any]], artifacts: Path
) -> None:
    url, data = page
    browser.resize(1400, 900)
    browser.open(url)
    assert browser.requests() == [url]  # the file itself, nothing else
    assert browser.problems() == []
    assert browser.evaluate("document.getElementById('filters').hidden") is False  # the script ran
    assert (
        browser.evaluate("document.getElementById('shown').textContent")
        == f"{len(data['cells'])} of {len(data['cells'])} cells"
    )
    assert browser.evaluate(VISIBLE_ROWS) == [c["slug"] for c in data["cells"]]
    first, second = data["cells"][0]["slug"], data["cells"][1]["slug"]
    bench_cell = "document.getElementById('row-{}').querySelector('td[data-label=Benchmark]').textContent"
    assert browser.evaluate(bench_cell.format(first)) == "no GPU measured"
    assert "711.0 TFLOP/s (90% of reference)" in browser.evaluate(bench_cell.format(second))
    assert browser.evaluate(bench_cell.format(data["cells"][2]["slug"])) == "never benchmarked"
    browser.screenshot(artifacts / "page-wide.png")


def test_the_filters_show_exactly_the_matching_cells(
    browser: Browser, page: tuple[str, dict[str, Any]], artifacts: Path
) -> None:
    url, data = page
    browser.resize(1400, 900)
    browser.open(url)
    wanted = {"cloud": "azure", "torch": "2.7.1", "ext": "flash-attn", "acc": "GPU_8xH100"}
    _choose(browser, **wanted)
    expected = _expected(data, **wanted)
    assert expected  # the question the page exists for has an answer in the default matrix
    assert browser.evaluate(VISIBLE_ROWS) == expected
    assert browser.evaluate(VISIBLE_SECTIONS) == expected
    assert (
        browser.evaluate("document.getElementById('shown').textContent")
        == f"{len(expected)} of {len(data['cells'])} cells"
    )
    assert browser.evaluate("location.search") == "?cloud=azure&torch=2.7.1&ext=flash-attn&acc=GPU_8xH100"
    browser.screenshot(artifacts / "page-filtered.png")
    # Plain torch: the "none" extension choice.
    _choose(browser, cloud="", torch="", acc="", ext="none")
    assert browser.evaluate(VISIBLE_ROWS) == _expected(data, ext="none")
    assert browser.problems() == []


def test_typing_clearing_and_no_match(browser: Browser, page: tuple[str, dict[str, Any]]) -> None:
    url, data = page
    browser.open(url)
    browser.page.fill("#filters input[name=q]", "XFORMERS")  # typed: fires `input` as a keystroke does
    assert browser.evaluate(VISIBLE_ROWS) == [c["slug"] for c in data["cells"] if "xformers" in c["slug"]]
    # apex is built for devel images only: no runtime cell has it.
    _choose(browser, variant="runtime", ext="apex")
    assert browser.evaluate(VISIBLE_ROWS) == []
    assert browser.evaluate("document.getElementById('none').offsetParent !== null") is True
    browser.page.click("#filters button[type=reset]")
    # The page applies a reset after the form has cleared itself (setTimeout 0): wait for it to happen,
    # for at most TIMEOUT_MS, rather than a fixed sleep that may be too short or hide that it never does.
    total = len(data["cells"])
    expect(browser.page.locator("#shown")).to_have_text(f"{total} of {total} cells")
    assert len(browser.evaluate(VISIBLE_ROWS)) == total
    assert browser.evaluate("document.getElementById('none').offsetParent") is None
    assert browser.evaluate("location.search") == ""


def test_a_shared_link_opens_filtered(browser: Browser, page: tuple[str, dict[str, Any]]) -> None:
    url, data = page
    browser.open(url + "?cloud=aws&variant=devel&ext=apex")
    assert browser.evaluate(VISIBLE_ROWS) == _expected(data, cloud="aws", variant="devel", ext="apex")
    assert browser.evaluate("document.querySelector('#filters select[name=ext]').value") == "apex"
    browser.open(url + "?cloud=mars")  # no such option: ignored, never an empty page
    assert len(browser.evaluate(VISIBLE_ROWS)) == len(data["cells"])
    assert browser.evaluate("document.querySelector('#filters select[name=cloud]').value") == ""


def test_a_cell_section_has_the_job_to_copy(browser: Browser, page: tuple[str, dict[str, Any]]) -> None:
    url, data = page
    browser.open(url)
    cell = data["cells"][1]
    pre = f"document.getElementById('air-{cell['slug']}')"
    assert browser.evaluate(f"{pre}.textContent") == cell["air_yaml"]
    assert browser.evaluate(f"document.querySelector('button[data-copy=\"air-{cell['slug']}\"]').hidden") is False
    section = f"document.getElementById('cell-{cell['slug']}')"
    packages = browser.evaluate(
        f"Array.from({section}.querySelectorAll('pre')).map(function (p) {{ return p.textContent; }})"
    )
    assert "\n".join(cell["probe"]["packages"]) in packages


def test_the_page_fits_a_phone(browser: Browser, page: tuple[str, dict[str, Any]], artifacts: Path) -> None:
    url, data = page
    browser.resize(390, 844, mobile=True)
    try:
        browser.open(url)
        width = browser.evaluate("document.documentElement.clientWidth")
        assert width == 390
        assert browser.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
        # Rows are cards on a phone; the filters must still hide them there.
        _choose(browser, cloud="azure", ext="xformers")
        assert browser.evaluate(VISIBLE_ROWS) == _expected(data, cloud="azure", ext="xformers")
        browser.screenshot(artifacts / "page-phone.png")
    finally:
        browser.resize(1400, 900)


def test_the_driver_awaits_promises_and_waits_for_the_page(browser: Browser, page: tuple[str, dict[str, Any]]) -> None:
    """The waits above really wait: a Promise's value is what `evaluate` returns (not the Promise object),
    and `expect` returns only once its condition holds, and fails the test when it never does."""
    url, _ = page
    browser.open(url)
    assert browser.evaluate("new Promise(function (done) { setTimeout(function () { done(42); }, 100); })") == 42
    shown = browser.page.locator("#shown")
    browser.evaluate("setTimeout(function () { document.getElementById('shown').textContent = 'later'; }, 300)")
    expect(shown).to_have_text("later")
    assert browser.evaluate("document.getElementById('shown').textContent") == "later"
    with pytest.raises(AssertionError):
        expect(shown).to_have_text("never", timeout=300)
    assert browser.problems() == []


def test_the_driver_sees_requests_csp_refusals_and_exceptions(
    browser: Browser, page: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The offline test above is not vacuous: the same page with a planted outside image and a failing
    script shows the request, the Content-Security-Policy's refusal and the uncaught exception."""
    url, _ = page
    html = Path(url2pathname(urlparse(url).path))
    planted = tmp_path / "planted.html"
    outside = "https://example.invalid/planted.png"  # a reserved name: nothing is ever fetched from it
    extra = f'<img src="{outside}" alt=""><script>throw new Error("planted");</script></body>'
    planted.write_text(html.read_text(encoding="utf-8").replace("</body>", extra), encoding="utf-8")
    browser.open(planted.as_uri())
    assert browser.requests()[0] == planted.as_uri() and outside in browser.requests()
    problems = browser.problems()
    assert any("Content Security Policy" in p and outside in p for p in problems), problems
    assert any(p.startswith("exception:") and "planted" in p for p in problems), problems
