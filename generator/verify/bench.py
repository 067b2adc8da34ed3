"""Benchmark built images on a GPU runner: run generator/verify/payload/bench.py inside one, compare with references.

The payload is copied into the container (`put_archive`) like the probe's, so it also measures images built
before it existed; it prints one JSON object. `compare` turns its figures into rows with the fraction of
the device's reference figure (generator/knowledge/gpu_reference.yaml). A fraction is None, never 0 or a
guess, when nothing was measured (no GPU), the figure failed, or the device or figure has no reference.
Records: results/<profile>/bench/<slug>.json (`bench_record`, `write_bench_record`).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from docker import DockerClient

from generator.clock import utc_stamp
from generator.errors import FleetError, MatrixError
from generator.release.credentials import CredentialSource
from generator.results import mapping, record_path, write_record
from generator.spec.yamlsource import load_yaml
from generator.verify.candidate import NoCandidate, acquire
from generator.verify.payloadrun import Payload, run_payload

STEP = "bench"
PAYLOAD = Path(__file__).parent / "payload" / "bench.py"
REFERENCE = Path(__file__).parent.parent / "knowledge" / "gpu_reference.yaml"
BENCH_DIR = "/air-fleet-bench"
DEFAULT_TIMEOUT_S = 900  # full sizes on 8 GPUs: import, six sections, NCCL process start-up
SHM_SIZE = "16g"  # NCCL between processes of one node goes through /dev/shm; Docker's default is 64 MiB
NO_GPU = "no GPU: nothing measured"

# (result section, key in it, reference figure name, unit)
FIGURES: tuple[tuple[str, str, str, str], ...] = (
    ("matmul_bf16", "tflops_median", "matmul_bf16_tflops", "TFLOP/s"),
    ("matmul_fp16", "tflops_median", "matmul_fp16_tflops", "TFLOP/s"),
    ("sdpa", "tflops", "sdpa_tflops", "TFLOP/s"),
    ("flash_attn", "tflops", "flash_attn_tflops", "TFLOP/s"),
    ("memcpy_d2d", "gb_per_s", "memcpy_d2d_gb_per_s", "GB/s"),
    ("nccl_allreduce", "busbw_gb_per_s", "nccl_busbw_gb_per_s", "GB/s"),
)


class BenchError(FleetError):
    """The benchmark could not run in the image, or printed no JSON object."""


# -- reference figures -------------------------------------------------------------------------------------


_BENCH = Payload("benchmark", BENCH_DIR, BenchError, "printed no JSON object")


@dataclass(frozen=True)
class RefFigure:
    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class DeviceReference:
    match: str  # regular expression, searched case-insensitively in the device name
    name: str
    figures: dict[str, RefFigure]


@dataclass(frozen=True)
class Reference:
    devices: tuple[DeviceReference, ...]

    def for_device(self, name: object) -> DeviceReference | None:
        """The first entry whose pattern is found in `name`; None for an unknown (or no) device."""
        if not isinstance(name, str) or not name:
            return None
        return next((d for d in self.devices if re.search(d.match, name, re.IGNORECASE)), None)


def load_reference(path: Path = REFERENCE) -> Reference:
    """The reference table; every figure must carry a positive value and its source."""
    try:  # the matrix's strict loader: a duplicate key is refused, not silently the last one
        data = load_yaml(path).data
    except MatrixError as exc:
        raise BenchError(str(exc)) from None
    if not isinstance(data, dict) or "source" not in data or not isinstance(data.get("devices"), list):
        raise BenchError(f"{path}: expected a mapping with 'source' and a 'devices' list")
    devices = []
    for i, entry in enumerate(data["devices"]):
        try:
            figures = {
                str(key): RefFigure(float(f["value"]), str(f["unit"]), str(f["source"]))
                for key, f in entry["figures"].items()
            }
            re.compile(entry["match"])
            devices.append(DeviceReference(str(entry["match"]), str(entry["name"]), figures))
        except (KeyError, TypeError, ValueError, AttributeError, re.error) as exc:
            raise BenchError(f"{path}: devices[{i}] is malformed: {exc!r}") from None
        if any(f.value <= 0 or not f.source.strip() for f in figures.values()):
            raise BenchError(f"{path}: devices[{i}]: every figure needs a positive value and a source")
    return Reference(tuple(devices))


# -- comparing ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchRow:
    figure: str  # the payload's result section, e.g. matmul_bf16
    value: float | None  # None: not measured
    unit: str
    reference: float | None
    reference_source: str | None
    fraction: float | None  # value / reference; None when either is missing, never 0 for "unknown"
    note: str
    device: str | None
    driver: str | None
    torch: str | None
    cuda: str | None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and value > 0 else None  # NaN, 0 or negative: not a measurement


def compare(results: Mapping[str, Any], reference: Reference) -> list[BenchRow]:
    """One row per figure, with the fraction of the device's reference; never raises on odd output."""
    status = results.get("status")
    device = mapping(results.get("device"))
    context = {
        "device": device.get("name") if isinstance(device.get("name"), str) else None,
        "driver": device.get("driver") if isinstance(device.get("driver"), str) else None,
        "torch": results.get("torch") if isinstance(results.get("torch"), str) else None,
        "cuda": results.get("cuda") if isinstance(results.get("cuda"), str) else None,
    }
    measured = status == "measured"
    sections = mapping(results.get("results")) if measured else {}
    ref_device = reference.for_device(context["device"]) if measured else None
    rows = []
    for section, key, ref_name, unit in FIGURES:
        ref = ref_device.figures.get(ref_name) if ref_device else None
        got = sections.get(section)
        value = _number(got.get(key)) if isinstance(got, dict) else None
        if not measured:
            note = NO_GPU if status == "no GPU" else f"status {status!r}: nothing measured"
            reason = results.get("reason") or results.get("error")
            note += f" ({reason})" if reason else ""
        elif value is None:
            note = str(got.get("status") or got.get("error") or "no figure") if isinstance(got, dict) else "absent"
            if isinstance(got, dict) and got.get("error") and got.get("status"):
                note += f": {got['error']}"
        elif ref_device is None:
            note = f"no reference for {context['device']}"
        elif ref is None:
            note = f"no reference figure for {section} on {ref_device.name}"
        else:
            note = f"reference {ref.value:g} {ref.unit} ({ref.source})"
        fraction = value / ref.value if value is not None and ref is not None else None
        rows.append(
            BenchRow(
                figure=section,
                value=value,
                unit=unit,
                reference=ref.value if ref else None,
                reference_source=ref.source if ref else None,
                fraction=fraction,
                note=note,
                **context,
            )
        )
    return rows


def table(rows: list[BenchRow]) -> str:
    """Markdown: figure, value, reference, fraction, note."""
    lines = ["| Figure | Value | Reference | Fraction | Note |", "|---|---|---|---|---|"]
    for r in rows:
        value = f"{r.value:.1f} {r.unit}" if r.value is not None else "—"
        ref = f"{r.reference:g} {r.unit}" if r.reference is not None else "—"
        frac = f"{r.fraction:.0%}" if r.fraction is not None else "—"
        lines.append(f"| {r.figure} | {value} | {ref} | {frac} | {r.note.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


# -- running the payload -------------------------------------------------------------------------------------


def payload_sha256() -> str:
    return hashlib.sha256(PAYLOAD.read_bytes()).hexdigest()


def bench_command(*, quick: bool) -> list[str]:
    return [f"{BENCH_DIR}/bench.py", "--json", *(["--quick"] if quick else [])]


def run_bench(
    client: DockerClient,
    image_ref: str,
    *,
    gpus: bool,
    quick: bool,
    timeout: float = DEFAULT_TIMEOUT_S,
    python: str = "python3",
) -> dict[str, Any]:
    """Run the payload in `image_ref` and return its JSON object; BenchError if it cannot.

    GPUs are requested (every one, DeviceRequest) only when `gpus`; without them the payload says "no GPU".
    NCCL between local ranks uses loopback and shared memory only: no network, a large /dev/shm.
    """
    return run_payload(
        client,
        image_ref,
        _BENCH,
        python=python,
        files={"bench.py": PAYLOAD.read_bytes()},
        args=bench_command(quick=quick),
        gpus=gpus,
        timeout=timeout,
        labels={"air-fleet.bench": image_ref},
        shm_size=SHM_SIZE,
    )


# -- records ---------------------------------------------------------------------------------------------------


@dataclass
class BenchResult:
    slug: str
    ref: str
    digest: str  # the cell's content digest: the figures belong to this build only
    gpus: bool
    quick: bool
    status: str  # the payload's: measured | no GPU | error (also: the benchmark could not run)
    output: dict[str, Any]
    rows: list[BenchRow]
    image_id: str | None = None  # the config digest of the image measured
    manifest_digest: str | None = None  # the staging manifest measured (None: a local image not yet pushed)
    tested_ref: str | None = None  # what ran: the local tag, or <staging>@<manifest digest> when pulled
    pulled: bool = False
    error: str | None = None
    seconds: float = 0.0
    bench_sha256: str = field(default_factory=payload_sha256)
    finished_at: str = field(default_factory=utc_stamp)

    def record(self) -> dict[str, Any]:
        """results/<profile>/bench/<slug>.json: the payload's object as printed, and the compared rows."""
        return asdict(self)


def report(result: BenchResult) -> str:
    """What `bench` prints for one cell: a heading and the table when the payload measured, else one line.

    Without a GPU (or when the benchmark could not run) every row is a dash with the same note: a table of
    dashes per cell said nothing the one line does not.
    """
    if result.status == "measured":
        return f"# {result.slug}: measured\n\n{table(result.rows)}"
    why = result.error or (result.rows[0].note if result.rows else "nothing measured")
    return f"{result.slug}: {why}"


def bench_image(
    client: DockerClient,
    slug: str,
    ref: str,
    digest: str,
    *,
    gpus: bool,
    quick: bool,
    reference: Reference | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    python: str = "python3",
    source: CredentialSource | None = None,
    say: Callable[[str], object] = lambda _: None,
) -> BenchResult:
    """Benchmark one candidate (the local image, else pulled from staging by digest) and compare; never
    raises BenchError (the result says what failed)."""
    started = time.monotonic()
    reference = load_reference() if reference is None else reference
    result = BenchResult(slug, ref, digest, gpus, quick, "error", {}, [])
    try:
        tested = acquire(client, ref, CredentialSource() if source is None else source, say=say)
        result.image_id, result.manifest_digest = tested.image_id, tested.manifest_digest
        result.tested_ref, result.pulled = tested.ref, tested.pulled
        result.output = run_bench(client, tested.ref, gpus=gpus, quick=quick, timeout=timeout, python=python)
        result.status = str(result.output.get("status"))
    except (BenchError, NoCandidate) as exc:
        result.error = str(exc)
    result.rows = compare(result.output, reference)
    result.seconds = round(time.monotonic() - started, 2)
    return result


def write_bench_record(results_dir: Path, profile: str, result: BenchResult) -> Path:
    path = record_path(results_dir, profile, STEP, result.slug)
    write_record(path, result.record())
    return path
