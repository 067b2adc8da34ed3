"""`sbom`: for each built cell, read its image's inventory and write results/<profile>/sbom/<slug>.cdx.json.

The image is the cell's candidate, found as the probe finds it (generator/verify/candidate.py: the local
image, else pulled from staging by its manifest digest), and the record names the manifest digest it
read, as probe records do; an image whose air-fleet.digest label is not the cell's digest is refused (a
stale build would get another image's SBOM). Beside each document, a record <slug>.json says which image it describes,
what it counts, and where in the registry it was attached (`--attach`: generator/sbom/attach.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker.errors
from docker import DockerClient

from generator.atomic import write_atomic
from generator.clock import utc_stamp
from generator.release.credentials import CredentialSource
from generator.release.distribution import Registry
from generator.release.oci import split_ref
from generator.release.registry import RegistryError
from generator.results import record_path, write_record
from generator.sbom.attach import attach_sbom
from generator.sbom.document import ImageFacts, build_bom, document_text
from generator.sbom.inventory import SbomError, read_inventory
from generator.verify.candidate import NoCandidate, acquire
from generator.verify.payloadrun import one_line

if TYPE_CHECKING:
    from generator.render.renderer import RenderedCell

STEP = "sbom"


def document_path(results: Path, profile: str, slug: str) -> Path:
    return results / profile / STEP / f"{slug}.cdx.json"


@dataclass
class SbomResult:
    slug: str
    ref: str
    digest: str  # the cell's content digest: the page trusts this record only for the same digest
    status: str  # ok | error
    document: str | None = None  # the path of the CycloneDX file
    image_id: str | None = None
    manifest_digest: str | None = None  # the staging manifest read (None: the local image was never pushed)
    counts: dict[str, int] = field(default_factory=dict)  # dpkg, python, locked (with a sha256), files
    error: str | None = None
    # Where the document was attached: [{"repository", "image_digest", "artifact", "via"}] (`--attach`).
    attached: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    finished_at: str = field(default_factory=utc_stamp)

    def record(self) -> dict[str, Any]:
        return asdict(self)


def attach_cell(registry: Registry, rendered: RenderedCell, document: bytes) -> list[dict[str, str]]:
    """Attach the document to the cell's image in every repository that holds it (the staging candidate,
    and the release once promoted: the same manifest digest in both); [] when neither holds it yet."""
    out = []
    for ref in dict.fromkeys((rendered.ref, rendered.release_ref)):
        _, repo, tag = split_ref(ref)
        digest = registry.manifest_digest(repo, tag)
        if digest is None:
            continue
        done = attach_sbom(registry, repo, digest, document, f"{rendered.cell.slug}.cdx.json")
        out.append({"repository": repo, "image_digest": digest, "artifact": done.digest, "via": done.via})
    return out


def sbom_cell(
    client: DockerClient,
    rendered: RenderedCell,
    results: Path,
    profile: str,
    registry: Registry | None = None,
    source: CredentialSource | None = None,
) -> SbomResult:
    """One cell's SBOM written, and attached in `registry` when given (or why not); never raises SbomError
    or RegistryError."""
    started = time.monotonic()
    cell = rendered.cell
    result = SbomResult(cell.slug, rendered.ref, rendered.digest, "error")
    try:
        tested = acquire(client, rendered.ref, source or CredentialSource())
        image = tested.image
        label = (image.labels or {}).get("air-fleet.digest")
        if label != rendered.digest:
            raise SbomError(f"{rendered.ref}: its digest label is {label}, the cell's is {rendered.digest}: rebuild")
        result.image_id, result.manifest_digest = tested.image_id, tested.manifest_digest
        inventory = read_inventory(client, tested.ref, python=cell.python_path, slug=cell.slug)
        facts = ImageFacts(rendered.ref, tested.image_id, str(image.attrs.get("Created", "")), rendered.digest)
        bom = build_bom(cell, facts, inventory)
        path = document_path(results, profile, cell.slug)
        document = document_text(bom).encode("utf-8")
        write_atomic(path, document)
        python = [c for c in bom.components if c.purl is not None and c.purl.type == "pypi"]
        result.counts = {
            "dpkg": sum(1 for c in bom.components if c.purl is not None and c.purl.type == "deb"),
            "python": len(python),
            "python_hashed": sum(1 for c in python if c.hashes),
            "files": len(cell.artifacts),
        }
        result.document, result.status = str(path), "ok"
        if registry is not None:
            result.attached = attach_cell(registry, rendered, document)
    except RegistryError as exc:  # the document is written; only its attachment failed
        result.status, result.error = "error", str(exc)
    except (SbomError, NoCandidate, docker.errors.APIError) as exc:  # this cell has no SBOM; the others go on
        result.error = f"{rendered.ref}: {one_line(exc)}" if isinstance(exc, docker.errors.APIError) else str(exc)
    result.seconds = round(time.monotonic() - started, 2)
    write_record(record_path(results, profile, STEP, cell.slug), result.record())
    return result


def sbom_cells(
    client: DockerClient,
    selected: Sequence[RenderedCell],
    results: Path,
    profile: str,
    say: Callable[[str], object] = lambda _: None,
    registry: Registry | None = None,
) -> list[SbomResult]:
    source = registry.source if registry is not None else CredentialSource()  # helpers asked once a run
    out = []
    for rendered in selected:
        say(f"sbom {rendered.cell.slug}: {rendered.ref}")
        out.append(sbom_cell(client, rendered, results, profile, registry, source))
    return out
