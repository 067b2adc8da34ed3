"""What the page says about a cell's accounting: its SBOM, its known vulnerabilities, its size against the
blessed one. From the sbom, audit and size records (each trusted only for the cell's current content
digest, like every other record on the page), so the page needs no registry or index to be written."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from generator.render.renderer import RenderedCell
    from generator.site.catalogue import Records

SBOM_FOLDER = "sbom"  # beside index.html: the page links each cell's document there
NOT_COVERED = "OS packages are not covered: the package index's data knows only Python packages (see the SBOM)."


def _current(record: dict[str, Any] | None, digest: str) -> tuple[dict[str, Any] | None, str]:
    if record is None:
        return None, "not run"
    if record.get("digest") != digest:
        return None, "stale"
    return record, ""


def sbom_section(record: dict[str, Any] | None, digest: str, slug: str) -> dict[str, Any]:
    current, status = _current(record, digest)
    if current is None or current.get("status") != "ok":
        detail = (current or {}).get("error") or ("the SBOM is of another build" if status == "stale" else "no SBOM")
        return {
            "status": status or "error",
            "detail": detail,
            "link": None,
            "source": None,
            "counts": {},
            "attached": [],
        }
    return {
        "status": "written",
        "detail": "",
        "link": f"{SBOM_FOLDER}/{slug}.cdx.json",
        "source": current.get("document"),
        "counts": dict(current.get("counts") or {}),
        "attached": list(current.get("attached") or []),
    }


def vulnerability_section(record: dict[str, Any] | None, digest: str) -> dict[str, Any]:
    current, status = _current(record, digest)
    if current is None:
        empty: dict[str, Any] = {
            "counts": {},
            "total": None,
            "findings": [],
            "not_audited": [],
            "source": None,
            "at": None,
        }
        return {"status": status, **empty, "note": NOT_COVERED}
    findings = [f for f in current.get("findings") or [] if isinstance(f, dict)]
    return {
        "status": "audited",
        "counts": {k: v for k, v in (current.get("counts") or {}).items() if v},
        "total": len(findings),
        "findings": findings,
        "not_audited": [n for n in current.get("not_audited") or [] if isinstance(n, dict)],
        "source": current.get("source"),
        "at": current.get("audited_at"),
        "note": NOT_COVERED,
    }


def size_section(record: dict[str, Any] | None, digest: str) -> dict[str, Any]:
    current, status = _current(record, digest)
    if current is None:
        return {"status": status, "bytes": None, "blessed": None, "change_percent": None, "why": ""}
    return {
        "status": "OK" if current.get("ok") else "FAIL",
        "bytes": (current.get("candidate") or {}).get("bytes"),
        "blessed": (current.get("blessed") or {}).get("bytes"),
        "change_percent": current.get("change_percent"),
        "why": str(current.get("why") or ""),
    }


def accounting(rendered: RenderedCell, records: Records) -> dict[str, Any]:
    slug, digest = rendered.cell.slug, rendered.digest
    return {
        "sbom": sbom_section(records.read("sbom", slug), digest, slug),
        "vulnerabilities": vulnerability_section(records.read("audit", slug), digest),
        "size": size_section(records.read("size", slug), digest),
    }


def copy_sboms(out: Path, cells: list[dict[str, Any]]) -> list[Path]:
    """Each cell's SBOM document beside the page (out/sbom/<slug>.cdx.json), so its link works wherever the
    page folder is copied; the paths written."""
    written = []
    for cell in cells:
        sbom = cell["accounting"]["sbom"]
        if sbom["link"] and sbom["source"] and Path(sbom["source"]).is_file():
            target = out / sbom["link"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sbom["source"], target)
            written.append(target)
    return written
