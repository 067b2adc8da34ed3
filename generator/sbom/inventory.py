"""Read what an image holds: run generator/verify/payload/sbom.py inside it, the way the probe runs.

A throw-away container with the image's own Python, no network, removed afterwards (payloadrun.py). The
answer is facts only: OS packages, Python distributions and the OS release; generator/sbom/document.py
turns them, with the lock's hashes, into the CycloneDX document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docker import DockerClient

from generator.errors import FleetError
from generator.verify.payloadrun import Payload, run_payload

PAYLOAD = Path(__file__).resolve().parent.parent / "verify" / "payload" / "sbom.py"
SBOM_DIR = "/air-fleet-sbom"
DEFAULT_TIMEOUT_S = 120  # reading dpkg's status and every distribution's METADATA: seconds


class SbomError(FleetError):
    """The inventory could not be read from the image, or the document could not be made."""


_INVENTORY = Payload("SBOM inventory", SBOM_DIR, SbomError, "printed no inventory")


def read_inventory(
    client: DockerClient, image_ref: str, *, python: str, slug: str, timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """The payload's facts about `image_ref` (local or pullable), read with the cell's Python."""
    return run_payload(
        client,
        image_ref,
        _INVENTORY,
        python=python,
        files={"sbom.py": PAYLOAD.read_bytes()},
        args=[f"{SBOM_DIR}/sbom.py"],
        gpus=False,
        timeout=timeout,
        labels={"air-fleet.sbom": slug},
    )
