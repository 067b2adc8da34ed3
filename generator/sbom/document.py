"""The CycloneDX document of one image: the inventory read inside it, with the hashes the lock knows.

Pure: no engine, no clock. The serial number and timestamp come from the image (its id, its creation
time), so the same image gives the same bytes on every run, and a changed SBOM file means a changed image.
The document is validated against the CycloneDX schema (the library's own copy) before anyone sees it.

What goes in:
- the image itself (metadata.component, a container): its cell, content digest, image id, base image;
- the OS (an operating-system component) and every installed dpkg package (purl pkg:deb/...);
- every Python distribution the image's Python sees (purl pkg:pypi/...), with its licence, and the
  sha256 of the file the lock pinned for it where the lock pinned it (the base's own pip: no hash, said
  by the property air-fleet:locked=false);
- every fetched file the build COPYed (flash-attn wheel, apex source, EFA installer, the torch wheel)
  with the sha256 the lock pinned and the build checked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.tool import ToolRepository
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from generator import __version__
from generator.clock import parse_stamp
from generator.model import Cell, Pinned
from generator.sbom.inventory import SbomError

SCHEMA = SchemaVersion.V1_6
PROPERTY = "air-fleet:"  # the namespace of this project's properties


@dataclass(frozen=True)
class ImageFacts:
    """What the engine says about the image the inventory was read from."""

    ref: str  # the reference it was read through (<image>:<immutable tag>)
    image_id: str  # sha256:... of its config
    created: str  # the engine's RFC 3339 creation time
    content_digest: str  # the cell's content digest (its air-fleet.digest label)


def _prop(name: str, value: object) -> Property:
    return Property(name=PROPERTY + name, value=str(value))


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def locked_hashes(cell: Cell) -> dict[str, list[Pinned]]:
    """The lock's pins of the cell's environment by canonical name: what a distribution's sha256 comes from."""
    out: dict[str, list[Pinned]] = {}
    for pin in (*(cell.torch_closure or ()), *(cell.closure or ())):
        out.setdefault(canonicalize_name(pin.name), []).append(pin)
    if cell.torch_wheel is not None and cell.torch_wheel.sha256:
        out.setdefault("torch", []).append(Pinned("torch", cell.torch_wheel.version, cell.torch_wheel.sha256))
    return out


def _licenses(text: str) -> list[Any]:
    if not text:
        return []
    return [LicenseFactory().make_from_string(text)]  # an SPDX expression or id where it is one, else a name


def python_component(dist: Mapping[str, Any], locked: Mapping[str, list[Pinned]]) -> Component:
    name, version = str(dist.get("name", "")), str(dist.get("version", ""))
    pin = next((p for p in locked.get(canonicalize_name(name), []) if _same_version(p.version, version)), None)
    hashes = [HashType(alg=HashAlgorithm.SHA_256, content=pin.sha256)] if pin else []
    props = [_prop("locked", "true" if pin else "false"), _prop("installer", dist.get("installer") or "unknown")]
    if dist.get("path"):
        props.append(_prop("path", dist["path"]))
    return Component(
        name=name,
        version=version,
        type=ComponentType.LIBRARY,
        bom_ref=f"pypi:{canonicalize_name(name)}@{version}",
        purl=PackageURL(type="pypi", name=canonicalize_name(name), version=version),
        licenses=_licenses(str(dist.get("license") or "")),
        hashes=hashes,
        properties=props,
    )


def dpkg_component(pkg: Mapping[str, Any], os_facts: Mapping[str, Any]) -> Component:
    name, version, arch = str(pkg["name"]), str(pkg.get("version", "")), str(pkg.get("arch", ""))
    namespace = str(os_facts.get("id") or "debian")
    qualifiers = {"arch": arch} if arch else {}
    if os_facts.get("id") and os_facts.get("version_id"):
        qualifiers["distro"] = f"{os_facts['id']}-{os_facts['version_id']}"
    return Component(
        name=name,
        version=version,
        type=ComponentType.LIBRARY,
        bom_ref=f"deb:{name}:{arch}@{version}",
        purl=PackageURL(type="deb", namespace=namespace, name=name, version=version, qualifiers=qualifiers),
        properties=[_prop("source-package", pkg.get("source") or name)],
    )


def file_components(cell: Cell) -> list[Component]:
    """The files the build COPYed, each with the sha256 the lock pinned (checked when fetched)."""
    out = []
    for artifact in cell.artifacts:
        refs = []
        if artifact.url:
            refs = [ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(quote(artifact.url, ":/%+@")))]
        out.append(
            Component(
                name=artifact.filename,
                version=artifact.version,
                type=ComponentType.FILE,
                bom_ref=f"file:{artifact.filename}",
                hashes=[HashType(alg=HashAlgorithm.SHA_256, content=artifact.sha256)] if artifact.sha256 else [],
                external_references=refs,
                properties=[_prop("project", artifact.project), _prop("fetched", "true")],
            )
        )
    return out


def build_bom(cell: Cell, image: ImageFacts, inventory: Mapping[str, Any]) -> Bom:
    os_facts = inventory.get("os") if isinstance(inventory.get("os"), dict) else {}
    assert isinstance(os_facts, dict)
    root_props = [
        _prop("cell", cell.slug),
        _prop("content-digest", image.content_digest),
        _prop("image-id", image.image_id),
        _prop("base-image", cell.base_image + (f"@{cell.base_digest}" if cell.base_digest else "")),
    ]
    name, _, tag = image.ref.rpartition(":")
    root = Component(
        name=name, version=tag, type=ComponentType.CONTAINER, bom_ref=f"image:{cell.slug}", properties=root_props
    )
    components: list[Component] = []
    if os_facts.get("id"):
        components.append(
            Component(
                name=str(os_facts["id"]),
                version=str(os_facts.get("version_id", "")),
                type=ComponentType.OPERATING_SYSTEM,
                bom_ref="os",
                description=str(os_facts.get("pretty_name", "")) or None,
            )
        )
    components += [dpkg_component(p, os_facts) for p in _items(inventory.get("dpkg"))]
    locked = locked_hashes(cell)
    components += [python_component(d, locked) for d in _items(inventory.get("distributions"))]
    components += file_components(cell)
    bom = Bom(
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"air-fleet:{image.image_id}"),
        metadata=BomMetaData(
            component=root,
            tools=ToolRepository(
                components=[Component(name="air-fleet", version=__version__, type=ComponentType.APPLICATION)]
            ),
            timestamp=parse_stamp(image.created),
        ),
        components=components,
    )
    bom.register_dependency(root, components)
    return bom


def _items(value: object) -> Iterable[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, dict) and v.get("name")] if isinstance(value, list) else []


def document_text(bom: Bom) -> str:
    """The document as CycloneDX 1.6 JSON, validated against the schema; SbomError if it does not validate."""
    text = JsonV1Dot6(bom).output_as_string(indent=2) + "\n"
    error = JsonStrictValidator(SCHEMA).validate_str(text)
    if error is not None:
        raise SbomError(
            f"the SBOM of {bom.metadata.component.name if bom.metadata.component else '?'} does "
            f"not validate against CycloneDX {SCHEMA.to_version()}: {error}"
        )
    return text
