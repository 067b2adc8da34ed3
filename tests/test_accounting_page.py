"""The page's accounting: SBOM link (and the document beside the page), vulnerability counts with advisory
links, size and change; records of another build are not shown as this one's."""

from __future__ import annotations

import json
from pathlib import Path

from generator.fleet import Fleet
from generator.site.accounting import copy_sboms
from generator.site.catalogue import catalogue
from generator.site.publish import html, markdown, write_site
from generator.spec.profiles import load_profile
from tests import records as canned

GHSA = "GHSA-wj6h-64fc-37mp"
LINK = f"https://osv.dev/vulnerability/{GHSA}"


def test_the_page_links_the_sbom_and_shows_advisories_and_size_change(tmp_path: Path) -> None:
    rendered = Fleet.for_profile(load_profile("sandbox")).render()[:2]
    first, second = rendered
    document = tmp_path / "doc.cdx.json"
    document.write_text('{"bomFormat": "CycloneDX"}')
    counts = {"dpkg": 118, "python": 12, "python_hashed": 11, "files": 1}
    sbom = {"digest": first.digest, "status": "ok", "document": str(document), "counts": counts, "attached": []}
    canned.write(tmp_path, "sbom", first.cell.slug, sbom)
    finding = {"id": GHSA, "package": "ecdsa", "version": "0.19.2", "aliases": ["CVE-2024-23342"],
               "severity": "unknown", "link": LINK, "summary": "Minerva timing attack", "fix_versions": []}  # fmt: skip
    audit = {"digest": first.digest, "findings": [finding], "counts": {"high": 0, "unknown": 1}, "not_audited": []}
    canned.write(tmp_path, "audit", first.cell.slug, audit)
    size = {"digest": first.digest, "ok": False, "why": "grew", "candidate": {"bytes": 420_000_000},
            "blessed": {"bytes": 320_000_000}, "change_percent": 31.25}  # fmt: skip
    canned.write(tmp_path, "size", first.cell.slug, size)
    canned.write(tmp_path, "audit", second.cell.slug, {**audit, "digest": "sha256:" + "0" * 64})  # another build

    data = catalogue(rendered, canned.records(tmp_path), generated_at="2026-12-02T00:00:00Z")
    page = html(data)
    assert f'href="sbom/{first.cell.slug}.cdx.json"' in page and "118 OS packages" in page
    assert f'<a href="{LINK}">{GHSA}</a>' in page and "1 unknown" in page
    assert "OS packages are not covered" in page
    assert "401 MiB (+31.2 %) refused" in page
    second_row = page[page.index(f'id="row-{second.cell.slug}"') :]
    assert GHSA not in second_row.split("</tr>")[0]  # a stale audit is not this image's
    assert data["cells"][1]["accounting"]["vulnerabilities"]["status"] == "stale"
    assert f"[{GHSA}]({LINK})" in markdown(data)

    out = tmp_path / "site"
    write_site(out, data)
    assert copy_sboms(out, data["cells"]) == [out / "sbom" / f"{first.cell.slug}.cdx.json"]
    assert json.loads((out / "sbom" / f"{first.cell.slug}.cdx.json").read_text())["bomFormat"] == "CycloneDX"
