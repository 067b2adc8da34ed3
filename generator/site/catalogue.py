"""What is known about every cell, in one row each: the matrix's answers plus the records of what happened.

The compatibility page (`publish`) is written from these rows, and so is its JSON. A row joins:
- the rendered cell (versions, checks, air.yaml, COMPAT table): always there;
- the build, probe, GPU probe, bench, push, sign and register records under results/<profile>/: each trusted only
  when it is for the cell's current content digest. A record for another build is reported as stale, never
  shown as if it were about this image;
- the registration ledgers under <state>/register/ (any workspace profile), by the pushed manifest digest.

Nothing here talks to Docker or a registry: the page can be rendered anywhere the records were copied to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from generator.errors import FleetError
from generator.release.registration import Ledger, RegisterError
from generator.render.renderer import RenderedCell, cell_summary
from generator.results import mapping, read_record, record_path
from generator.site.accounting import accounting
from generator.status import BUILD_PASSED, Built, Promoted, Pushed, Signed

SCHEMA = 1

NOT_RUN = "not run"
NOT_REGISTERED = "not registered"
STALE = "stale"
# The sections a run's records fill, and the statuses that mean "this run's records say nothing".
RUN_SECTIONS = ("build", "probe", "bench", "push", "promotion", "registration")
UNKNOWN = frozenset({NOT_RUN, NOT_REGISTERED})
NO_GPU_MEASURED = "no GPU measured"
# Every section has the same keys whatever is known, so the JSON has one shape for consumers.
EMPTY_PROBE: dict[str, Any] = {
    "status": NOT_RUN,
    "detail": "",
    "gpu": False,
    "at": None,
    "devices": [],
    "checks": [],
    "packages": [],
    "python": None,
    "torch": None,
}
EMPTY_BENCH: dict[str, Any] = {
    "status": NOT_RUN,
    "detail": "",
    "measured": False,
    "device": None,
    "quick": False,
    "at": None,
    "figures": [],
}
EMPTY_PUSH: dict[str, Any] = {
    "status": NOT_RUN,
    "detail": "",
    "repository": None,
    "tags": [],
    "repo_digest": None,
    "at": None,
}


REGISTERED = ("registered", "already registered")
EMPTY_PROMOTION: dict[str, Any] = {
    "status": NOT_RUN,
    "detail": "",
    "release_ref": None,
    "manifest_digest": None,
    "tags": [],
    "at": None,
}


class CatalogueError(FleetError):
    """A previous page's JSON that cannot be used (unreadable, another schema or profile)."""


@dataclass(frozen=True)
class Records:
    """Where the records are: results/<profile>/<step>/<slug>.json and the registration ledgers."""

    results: Path
    profile: str
    ledgers: Path  # Ledger.folder(): one JSON file per workspace profile

    def read(self, step: str, slug: str) -> dict[str, Any] | None:
        return read_record(record_path(self.results, self.profile, step, slug))

    def compile_run(self) -> dict[str, int] | None:
        """The last compile step's counts (results/<profile>/compile.json), or None when none ran."""
        record = read_record(self.results / self.profile / "compile.json")
        if record is None:
            return None
        return {k: int(record.get(k, 0)) for k in ("compiled", "reused", "pulled", "failed")}

    def registrations(self) -> dict[str, dict[str, Any]]:
        """manifest digest -> ledger entry (with its workspace profile), over every ledger file."""
        found: dict[str, dict[str, Any]] = {}
        for path in sorted(self.ledgers.glob("*.json")) if self.ledgers.is_dir() else []:
            try:
                entries = Ledger(path).entries()
            except RegisterError:
                continue  # `register` refuses an unreadable ledger; the page only loses that column
            found.update({digest: {**asdict(e), "workspace": path.stem} for digest, e in entries.items()})
        return found


def _current(record: dict[str, Any] | None, digest: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the record if it is about this build, else None; why not)."""
    if record is None:
        return None, None
    if record.get("digest") != digest:
        other = str(record.get("digest") or "?").removeprefix("sha256:")[:12]
        return None, f"{STALE}: the record is for another build ({other})"
    return record, None


def _build(record: dict[str, Any] | None, why: str | None) -> dict[str, Any]:
    if record is None:
        return {"status": STALE if why else NOT_RUN, "detail": why or "no build record", "size": None, "built_at": None}
    status = str(record.get("status"))
    size = record.get("size")
    return {
        "status": status,
        "detail": record.get("error") or (f"up to date ({record.get('where')})" if record.get("where") else status),
        "size": size if isinstance(size, int) and size > 0 else None,
        # The image's own creation time when known; an "up to date" record's finish time is not a build date.
        "built_at": record.get("created") or (record.get("finished_at") if status == Built.BUILT else None),
    }


def _probe(cpu: dict[str, Any] | None, gpu: dict[str, Any] | None, why: str | None) -> dict[str, Any]:
    record = gpu if gpu is not None else cpu
    if record is None:
        return {**EMPTY_PROBE, "status": STALE if why else NOT_RUN, "detail": why or "never probed"}
    facts = mapping(record.get("facts"))
    torch = mapping(facts.get("torch"))
    devices = [d.get("name") for d in torch.get("devices") or [] if isinstance(d, dict) and d.get("name")]
    return {
        "status": str(record.get("status")),
        "detail": record.get("error") or ("on a GPU runner" if record.get("gpus") else "no GPU: GPU rows not measured"),
        "gpu": bool(record.get("gpus")),
        "at": record.get("finished_at"),
        "devices": devices,
        "checks": [c for c in record.get("checks") or [] if isinstance(c, dict)],
        "packages": sorted(str(d) for d in facts.get("distributions") or []),
        "python": mapping(facts.get("python")).get("version"),
        "torch": torch.get("version"),
    }


def _bench(record: dict[str, Any] | None, why: str | None) -> dict[str, Any]:
    if record is None:
        return {**EMPTY_BENCH, "status": STALE if why else NOT_RUN, "detail": why or "never benchmarked"}
    status = str(record.get("status"))
    figures = [r for r in record.get("rows") or [] if isinstance(r, dict)]
    measured = status == "measured" and any(r.get("value") is not None for r in figures)
    device = next((r.get("device") for r in figures if r.get("device")), None)
    if measured:
        detail = f"on {device}" + (" (quick run)" if record.get("quick") else "")
    elif status == "no GPU":
        detail = NO_GPU_MEASURED
    else:
        detail = record.get("error") or f"{status}: nothing measured"
    return {
        "status": status,
        "detail": detail,
        "measured": measured,
        "device": device,
        "quick": bool(record.get("quick")),
        "at": record.get("finished_at"),
        "figures": figures if measured else [],
    }


def _not_done(record: dict[str, Any] | None, why: str | None, empty: dict[str, Any], never: str) -> dict[str, Any]:
    """The section of a step that did not succeed for this build: stale, never run, or its record's status."""
    detail = why or (record.get("reason") if record else None) or never
    status = (STALE if why else NOT_RUN) if record is None else str(record.get("status"))
    return {**empty, "status": status, "detail": detail}


def _push(record: dict[str, Any] | None, why: str | None) -> dict[str, Any]:
    if record is None or record.get("status") != Pushed.PUSHED:
        return _not_done(record, why, EMPTY_PUSH, "never pushed")
    return {
        "status": Pushed.PUSHED,
        "detail": str(record.get("repository")),
        "repository": record.get("repository"),
        "tags": [str(t) for t in record.get("tags") or []],
        "repo_digest": record.get("repo_digest"),
        "at": record.get("pushed_at"),
    }


def _promotion(record: dict[str, Any] | None, why: str | None) -> dict[str, Any]:
    if record is None or record.get("status") != Promoted.PROMOTED:
        return _not_done(record, why, EMPTY_PROMOTION, "never promoted")
    return {
        "status": Promoted.PROMOTED,
        "detail": str(record.get("release_ref")),
        "release_ref": record.get("release_ref"),
        "manifest_digest": record.get("manifest_digest"),
        "tags": [str(t) for t in record.get("tags") or []],
        "at": record.get("promoted_at"),
    }


def chain(
    push: dict[str, Any] | None,
    probes: list[dict[str, Any] | None],
    bench: dict[str, Any] | None,
    promotion: dict[str, Any],
    registered_ref: str | None,
    signed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The trust chain of one cell: the manifest digest each step saw. `intact` only when the release's
    digest is the one pushed to staging, every probe (and the benchmark, when it ran) tested it, its
    signature (where one was made or checked: a sign record) names it, and a registration names it;
    `broken` names the first link that names another digest, `missing` the links that name none yet (not
    released, not registered, a probe of a local image never pushed, a signature that did not verify)."""
    released = promotion.get("manifest_digest")
    links = [
        ("staging", (push or {}).get("repo_digest")),
        *(("GPU probe" if p.get("gpus") else "probe", _tested(p, push)) for p in probes if p),
        *((("bench", _tested(bench, push)),) if bench else ()),
        ("release", released),
        *((("signed", _signed(signed)),) if signed else ()),
        ("registered", registered_ref.rpartition("@")[2] if registered_ref and "@" in registered_ref else None),
    ]
    shown = [{"step": step, "digest": digest} for step, digest in links]
    anchor = released or links[0][1]  # before a promotion, the links are held to the staging digest
    broken = next((step for step, digest in links if digest and anchor and digest != anchor), None)
    missing = [step for step, digest in links if not digest]
    return {"links": shown, "intact": broken is None and not missing, "broken": broken, "missing": missing}


def _signed(record: dict[str, Any]) -> str | None:
    """The manifest a sign record found good signatures for (None when they were missing or bad)."""
    good = record.get("status") in (Signed.SIGNED, Signed.VERIFIED)
    return str(record["manifest_digest"]) if good and record.get("manifest_digest") else None


def _tested(record: dict[str, Any] | None, push: dict[str, Any] | None) -> str | None:
    """The manifest a probe or bench record tested: the one it names, or, for a local image probed before
    its push, the pushed manifest when the push's image (config digest) is the one probed."""
    if not record:
        return None
    if record.get("manifest_digest"):
        return str(record["manifest_digest"])
    if push and record.get("image_id") and record.get("image_id") == push.get("image_id"):
        return str(push.get("repo_digest")) if push.get("repo_digest") else None
    return None


def _registration(
    record: dict[str, Any] | None, promotion: dict[str, Any], ledgers: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    ref = promotion.get("release_ref")
    entry = ledgers.get(str(promotion.get("manifest_digest"))) if promotion["status"] == Promoted.PROMOTED else None
    if entry is not None and entry.get("ref") == ref:
        return {
            "status": "registered",
            "detail": f"in workspace profile {entry['workspace']} by {entry['cli']}",
            "at": entry.get("registered_at"),
        }
    if record is not None and record.get("ref") == ref:  # the last attempt, when the ledger has nothing
        return {"status": str(record.get("status")), "detail": str(record.get("detail") or ""), "at": None}
    return {"status": NOT_REGISTERED, "detail": "no registration of this image", "at": None}


def row(rendered: RenderedCell, records: Records, ledgers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Everything the page says about one cell."""
    cell, digest, slug = rendered.cell, rendered.digest, rendered.cell.slug
    build, build_why = _current(records.read("build", slug), digest)
    cpu, cpu_why = _current(records.read("probe", slug), digest)
    gpu, _ = _current(records.read("gpu-probe", slug), digest)
    bench, bench_why = _current(records.read("bench", slug), digest)
    push_record, push_why = _current(records.read("push", slug), digest)
    push = _push(push_record, push_why)
    promote_record, promote_why = _current(records.read("promote", slug), digest)
    promotion = _promotion(promote_record, promote_why)
    registration = _registration(records.read("register", slug), promotion, ledgers)
    signed, _ = _current(records.read("sign", slug), digest)
    return {
        **cell_summary(cell),
        "digest": digest,
        "tag": rendered.tag,
        "ref": rendered.release_ref,
        "candidate": rendered.ref,
        "checks": {
            "status": rendered.status,
            "items": [{"id": c.id, "title": c.title, "status": c.status, "detail": c.detail} for c in rendered.checks],
        },
        "build": _build(build, build_why),
        "probe": _probe(cpu, gpu, cpu_why),
        "bench": _bench(bench, bench_why),
        "push": push,
        "promotion": promotion,
        "chain": chain(
            push_record,
            [cpu, gpu],
            bench,
            promotion,
            promotion["release_ref"] if registration["status"] in REGISTERED else None,
            signed,
        ),
        "registration": registration,
        "air_yaml": rendered.files["air.yaml"].decode("utf-8"),
        "accounting": accounting(rendered, records),
    }


def catalogue(rendered: Iterable[RenderedCell], records: Records, *, generated_at: str) -> dict[str, Any]:
    """The page's data: one row per cell, in matrix order, and what the page was made from."""
    ledgers = records.registrations()
    rows = [row(r, records, ledgers) for r in rendered]
    return {
        "schema": SCHEMA,
        "profile": records.profile,
        "generated_at": generated_at,
        "cells": rows,
        "counts": counts(rows),
        # Source-built extensions: how many wheels the last build compiled and how many it reused.
        "compile": records.compile_run(),
    }


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """The headline: how many cells, and how many of them are known to work."""
    return {
        "cells": len(rows),
        "checks_fail": sum(r["checks"]["status"] == "FAIL" for r in rows),
        "built": sum(r["build"]["status"] in BUILD_PASSED for r in rows),
        "probed_ok": sum(r["probe"]["status"] == "OK" for r in rows),
        "probed_on_gpu": sum(r["probe"]["gpu"] for r in rows),
        "benchmarked": sum(r["bench"]["measured"] for r in rows),
        "pushed": sum(r["push"]["status"] == Pushed.PUSHED for r in rows),
        "promoted": sum(r["promotion"]["status"] == Promoted.PROMOTED for r in rows),
        "registered": sum(r["registration"]["status"] in REGISTERED for r in rows),
    }


def carry_forward(data: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """Fill what this run's records say nothing about from the previous page, for the same build only.

    A nightly run builds, probes and benchmarks only the cells whose content digest is new; the others'
    records are from earlier nights. A section is taken from the previous page when this run has no record
    for it (never over a record, never over a stale one) and the previous row is for the same slug AND
    content digest, so it is about the very same image. It keeps `carried_from`: when it was first known.
    """
    if previous.get("schema") != SCHEMA or not isinstance(previous.get("cells"), list):
        raise CatalogueError(f"the previous page's JSON is not schema {SCHEMA} with a cells list")
    if previous.get("profile") != data["profile"]:
        raise CatalogueError(f"the previous page is for profile {previous.get('profile')!r}, not {data['profile']!r}")
    before = {(c.get("slug"), c.get("digest")): c for c in previous["cells"] if isinstance(c, dict)}
    for row in data["cells"]:
        old = before.get((row["slug"], row["digest"]))
        if old is None:
            continue
        for section in RUN_SECTIONS:
            was = old.get(section)
            if row[section]["status"] not in UNKNOWN or not isinstance(was, dict) or was.get("status") in UNKNOWN:
                continue
            if not set(row[section]) <= set(was):
                continue  # another shape (an older page): better unknown than half-filled
            since = was.get("carried_from") or previous.get("generated_at")
            row[section] = {**was, "carried_from": since, "detail": f"{_without_since(was)} (as of {since})"}
    data["counts"] = counts(data["cells"])
    return data


def _without_since(section: dict[str, Any]) -> str:
    detail = str(section.get("detail") or "")
    since = section.get("carried_from")
    return detail.removesuffix(f" (as of {since})") if since else detail
