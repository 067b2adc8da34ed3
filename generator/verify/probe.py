"""Probe built images: run generator/verify/payload/probe.py inside each one and judge its REAL facts.

The static checks (compat.py) say what a cell should be from knowledge; the probe says what its image is.
The payload runs with the image's own Python in a throw-away container (no network; the GPUs when this
machine has them) and prints facts as JSON; `generator.verify.judge` turns them into the seed's table
(OK / WARN / FAIL / N/A) against the cell's expectations. Each cell's outcome is stored as a record under
results/<profile>/probe/<slug>.json; later steps trust it only for the same content digest.

The payload is copied into each container (`put_archive`) before it starts, never read from the image:
it works on images built before the probe existed, and the payload always matches the host's judge.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker.errors
from docker import DockerClient

from generator import paths
from generator.clock import utc_stamp
from generator.errors import FleetError
from generator.model import Cell
from generator.release.credentials import CredentialSource
from generator.render.renderer import expect_json
from generator.resolve.checks import FAIL, OK, Check, worst
from generator.results import record_path, write_record
from generator.spec.knowledge import Knowledge
from generator.verify.candidate import NoCandidate, acquire
from generator.verify.judge import expectations_for, judge
from generator.verify.payloadrun import Payload, archive, one_line, parse_answer, run_payload

if TYPE_CHECKING:
    from generator.fleet import Fleet
    from generator.render.renderer import RenderedCell

STEP = "probe"
GPU_STEP = "gpu-probe"  # a probe given GPUs keeps its own record: promote needs both where CUDA is in the image
PAYLOAD = Path(__file__).parent / "payload" / "probe.py"
PROBE_DIR = "/air-fleet-probe"  # where the payload and its expect.json are copied in each container
DEFAULT_TIMEOUT_S = 300  # importing torch and every extension: seconds on a healthy image
STAND_IN_LABEL = "air-fleet.sandbox"  # set by the sandbox's stand-in bases, inherited by every image on them


class ProbeError(FleetError):
    """The probe could not run in the image, or printed no facts."""


# -- running the payload ------------------------------------------------------------------------------------


_PROBE = Payload("probe", PROBE_DIR, ProbeError, "printed no facts")


def detect_gpus(client: DockerClient) -> bool:
    """Whether the engine can give containers GPUs: the NVIDIA runtime is registered with it."""
    try:
        runtimes = client.info().get("Runtimes") or {}
    except docker.errors.APIError:
        return False
    return any("nvidia" in str(name) for name in runtimes)


def payload_sha256() -> str:
    return hashlib.sha256(PAYLOAD.read_bytes()).hexdigest()


def _archive(files: Mapping[str, bytes]) -> bytes:
    """A tar of PROBE_DIR holding `files`, for put_archive at "/"."""
    return archive(PROBE_DIR, files)


def run_probe(
    client: DockerClient, image_ref: str, cell: Cell, *, gpus: bool, timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """Run the payload in `image_ref` with the cell's Python and return its facts; ProbeError if it cannot."""
    files = {"probe.py": PAYLOAD.read_bytes(), "expect.json": json.dumps(expect_json(cell), indent=2).encode()}
    return run_payload(
        client,
        image_ref,
        _PROBE,
        python=cell.python_path,
        files=files,
        args=[f"{PROBE_DIR}/probe.py", f"{PROBE_DIR}/expect.json"],
        gpus=gpus,
        timeout=timeout,
        labels={"air-fleet.probe": cell.slug},
    )


def _parse(image_ref: str, exit_status: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The facts: the last stdout line is the payload's JSON object (anything before it is noise)."""
    return parse_answer(_PROBE, image_ref, exit_status, stdout, stderr)


# -- the step over cells ------------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    index: int
    slug: str
    ref: str
    digest: str  # the cell's content digest: a later step trusts this record only for the same digest
    status: str  # worst of the checks: OK | WARN | FAIL | N/A
    checks: list[Check]
    facts: dict[str, Any]
    gpus: bool
    image_id: str | None = None  # the config digest of the image tested
    manifest_digest: str | None = None  # the staging manifest tested (None: a local image not yet pushed)
    tested_ref: str | None = None  # what ran: the local tag, or <staging>@<manifest digest> when pulled
    pulled: bool = False
    error: str | None = None
    seconds: float = 0.0
    probe_sha256: str = field(default_factory=payload_sha256)
    finished_at: str = field(default_factory=utc_stamp)

    def record(self) -> dict[str, Any]:
        return asdict(self)


def probe_image(
    client: DockerClient,
    cell: Cell,
    ref: str,
    digest: str,
    facts: Knowledge,
    *,
    gpus: bool,
    timeout: float = DEFAULT_TIMEOUT_S,
    source: CredentialSource | None = None,
    say: Callable[[str], object] = lambda _: None,
) -> ProbeResult:
    """Probe one candidate (the local image, else pulled from staging by digest) and judge it; never raises
    ProbeError."""
    started = time.monotonic()
    result = ProbeResult(cell.index, cell.slug, ref, digest, FAIL, [], {}, gpus)
    try:
        tested = acquire(client, ref, CredentialSource() if source is None else source, say=say)
        result.image_id, result.manifest_digest = tested.image_id, tested.manifest_digest
        result.tested_ref, result.pulled = tested.ref, tested.pulled
        labels = tested.image.labels or {}
        expected = expectations_for(cell, facts, gpus=gpus, stand_in=labels.get(STAND_IN_LABEL) == "true")
        result.facts = run_probe(client, tested.ref, cell, gpus=gpus, timeout=timeout)
        result.checks = [_image_check(labels, digest), *judge(cell, result.facts, expected)]
    except (ProbeError, NoCandidate, docker.errors.APIError) as exc:  # the engine refused something: FAIL
        result.error = str(exc) if isinstance(exc, ProbeError | NoCandidate) else f"{ref}: {one_line(exc)}"
        result.checks = [Check("probe", "Probe", FAIL, result.error)]
    result.status = worst([c.status for c in result.checks])
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _image_check(labels: Mapping[str, str], digest: str) -> Check:
    """The image really is this cell's build: its digest label is the cell's content digest."""
    label = labels.get("air-fleet.digest")
    if label != digest:
        return Check("image", "Image", FAIL, f"digest label {label}, the cell's digest is {digest}: rebuild it")
    return Check("image", "Image", OK, f"digest {digest[:19]}… matches the cell")


def probe_cells(
    fleet: Fleet,
    selected: Sequence[RenderedCell],
    *,
    client: DockerClient | None = None,
    gpus: bool | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    results_dir: Path | None = None,
    say: Callable[[str], object] = lambda _: None,
) -> list[ProbeResult]:
    """Probe each selected cell's image, store results/<profile>/probe/<slug>.json, return the results.

    `gpus`: None asks the engine (the NVIDIA runtime registered); False probes without GPUs (GPU facts
    are then N/A "not measured"); True asks for every GPU and fails loudly if the engine cannot give them.
    """
    if client is None:
        from generator.engine import connect

        client = connect()
    use_gpus = detect_gpus(client) if gpus is None else gpus
    results_dir = paths.results_dir() if results_dir is None else results_dir
    source = CredentialSource()
    step = GPU_STEP if use_gpus else STEP
    out = []
    for rendered in selected:
        say(f"probe {rendered.cell.slug}: {rendered.ref}{' (GPUs)' if use_gpus else ''}")
        result = probe_image(
            client,
            rendered.cell,
            rendered.ref,
            rendered.digest,
            fleet.facts,
            gpus=use_gpus,
            timeout=timeout,
            source=source,
            say=say,
        )
        write_record(record_path(results_dir, fleet.profile.records, step, rendered.cell.slug), result.record())
        out.append(result)
    return out


def report(results: Sequence[ProbeResult]) -> str:
    """Per cell, the seed's table from real facts, then one summary line."""
    blocks = []
    for r in results:
        gpus = "GPUs given" if r.gpus else "no GPU here: GPU facts not measured"
        tested = r.manifest_digest or (f"image {r.image_id}, not pushed yet" if r.image_id else "nothing")
        lines = [
            f"{r.index} {r.slug}: {r.status} ({r.ref}; tested {tested}; {gpus})",
            "",
            "| Check | Status | Details |",
            "|---|---|---|",
        ]
        lines += [f"| {c.title} | {c.status} | {c.detail.replace('|', '/')} |" for c in r.checks]
        blocks.append("\n".join(lines))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    blocks.append(", ".join(f"{n} {status}" for status, n in counts.items()) or "no cells")
    return "\n\n".join(blocks) + "\n"
