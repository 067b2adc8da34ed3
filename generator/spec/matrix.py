"""Load and validate `matrix.yaml` into a Matrix value.

Every error is one line naming file:line and the key path. Unknown keys are errors: a typo must never
silently drop a cell or a pin.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from packaging.version import Version

from generator.errors import MatrixError
from generator.model import (
    BASES,
    CLOUDS,
    SELECTOR_KEYS,
    VARIANTS,
    ExtensionDecl,
    ExtensionPin,
    Include,
    Matrix,
    Origin,
    Override,
    Selector,
    SizePolicy,
    TorchRow,
    VulnerabilityPolicy,
)
from generator.spec import policies, validators
from generator.spec import schema as spec_keys
from generator.spec.knowledge import Knowledge, knowledge, minor
from generator.spec.userfiles import read_bounded
from generator.spec.yamlsource import KeyPath, Located, format_path, load_yaml

# The keys come from the one schema definition, which also makes docs/matrix.schema.json for editors.
TOP_KEYS = set(spec_keys.TOP)
TORCH_KEYS = set(spec_keys.TORCH_ROW)
BUILDS = spec_keys.BUILDS
SCHEMA_VERSION = spec_keys.SCHEMA_VERSION

T = TypeVar("T")


class _Reader:
    """Typed access to a Located document with file:line errors."""

    def __init__(self, doc: Located) -> None:
        self.doc = doc

    def origin(self, path: KeyPath) -> Origin:
        return Origin(self.doc.file, self.doc.line(path), format_path(path))

    def fail(self, path: KeyPath, message: str) -> MatrixError:
        return self.doc.error(path, message)

    def mapping(
        self, value: Any, path: KeyPath, allowed: Iterable[str] | None = None, required: Iterable[str] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_kind(value)}")
        if allowed is not None:
            allowed = set(allowed)
            for key in value:
                if key not in allowed:
                    raise self.fail((*path, key), f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
        for key in required:
            if key not in value:
                raise self.fail(path, f"missing required key {key!r}")
        return value

    def seq(self, value: Any, path: KeyPath, *, nonempty: bool = True) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {_kind(value)}")
        if nonempty and not value:
            raise self.fail(path, "must not be empty")
        return value

    def string(self, value: Any, path: KeyPath, check: Callable[[str], str] | None = None) -> str:
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            raise self.fail(path, f"expected a string, got {_kind(value)}")
        text = str(value)
        if any(ch in text for ch in "\n\r\0"):
            raise self.fail(path, "control characters are not allowed")
        if check is None:
            return text
        try:
            return check(text)
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None

    def choice(self, value: Any, path: KeyPath, choices: Iterable[str], what: str) -> str:
        text = self.string(value, path)
        options = tuple(choices)
        if text not in options:
            raise self.fail(path, f"unknown {what} {text!r} (known: {', '.join(options)})")
        return text

    def unique_choices(self, value: Any, path: KeyPath, choices: Iterable[str], what: str) -> tuple[str, ...]:
        items = self.seq(value, path)
        out: list[str] = []
        for i, item in enumerate(items):
            text = self.choice(item, (*path, i), choices, what)
            if text in out:
                raise self.fail((*path, i), f"{what} {text!r} is listed twice")
            out.append(text)
        return tuple(out)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", bool: "a boolean", int: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )


def load_matrix(path: Path, facts: Knowledge | None = None) -> Matrix:
    """Read, parse and validate a matrix file; raise MatrixError on the first problem."""
    return parse_matrix(load_yaml(path), facts or knowledge())


def parse_matrix(doc: Located, facts: Knowledge) -> Matrix:
    r = _Reader(doc)
    if doc.data is None:
        raise r.fail((), "the matrix is empty")
    top = r.mapping(doc.data, (), TOP_KEYS, required=spec_keys.REQUIRED_TOP)
    schema = top["schema"]
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
        raise r.fail(("schema",), f"unsupported schema {schema!r}; this generator reads schema {SCHEMA_VERSION}")

    reg = r.mapping(top["registry"], ("registry",), spec_keys.REGISTRY, required=("host", "repository"))
    host = r.string(reg["host"], ("registry", "host"), validators.registry_host)
    repository = r.string(reg["repository"], ("registry", "repository"), validators.repository)
    staging = (
        r.string(reg["staging"], ("registry", "staging"), validators.repository)
        if "staging" in reg
        else f"{repository}-staging"
    )
    if staging == repository:  # promotion copies from one to the other: one repository would bless anything
        raise r.fail(("registry", "staging"), f"the staging repository must differ from the release one ({repository})")

    clouds = r.unique_choices(top["clouds"], ("clouds",), CLOUDS, "cloud")
    variants = r.unique_choices(top["variants"], ("variants",), VARIANTS, "variant")
    bases = r.unique_choices(top.get("bases", ["databricks"]), ("bases",), BASES, "base")
    accelerators = r.unique_choices(top["accelerators"], ("accelerators",), facts.accelerators, "accelerator")

    python = (
        r.string(top["python"], ("python",), validators.python_version)
        if "python" in top
        else facts.bases["databricks"].python
    )

    host_drivers = dict(facts.host_drivers)
    driver_origins = []
    if "host_drivers" in top:
        hd = r.mapping(top["host_drivers"], ("host_drivers",), CLOUDS)
        for cloud, value in hd.items():
            host_drivers[cloud] = r.string(value, ("host_drivers", cloud), validators.driver_version)
            driver_origins.append((cloud, r.origin(("host_drivers", cloud))))

    ca_certificates = _ca_certificates(r, top.get("extra_ca_certificates", []))
    declared = _extensions(r, top.get("extensions", {}), facts)
    known_ext = set(facts.extensions) | {d.name for d in declared}
    torch_rows = _torch_rows(r, top["torch"], facts, known_ext, declared)
    stacks = _stacks(r, top.get("stacks", {"plain": []}), known_ext)
    _refuse_unused_pins(r, torch_rows, declared, stacks)
    stack_names = tuple(name for name, _ in stacks)
    torch_keys = tuple(row.key for row in torch_rows)

    exclude = tuple(
        _selector(r, item, ("exclude", i))
        for i, item in enumerate(r.seq(top.get("exclude", []), ("exclude",), nonempty=False))
    )
    include = tuple(
        _include(r, item, ("include", i), torch_keys, stack_names)
        for i, item in enumerate(r.seq(top.get("include", []), ("include",), nonempty=False))
    )
    overrides = tuple(
        _override(r, item, ("overrides", i), facts)
        for i, item in enumerate(r.seq(top.get("overrides", []), ("overrides",), nonempty=False))
    )

    return Matrix(
        file=doc.file,
        python=python,
        registry_host=host,
        repository=repository,
        staging_repository=staging,
        clouds=clouds,
        variants=variants,
        bases=bases,
        accelerators=accelerators,
        torch=torch_rows,
        stacks=stacks,
        extensions=declared,
        exclude=exclude,
        include=include,
        overrides=overrides,
        host_drivers=tuple(sorted(host_drivers.items())),
        python_origin=r.origin(("python",)) if "python" in top else None,
        host_driver_origins=tuple(driver_origins),
        ca_certificates=ca_certificates,
        vulnerabilities=policies.vulnerability_policy(r, top["vulnerabilities"])
        if "vulnerabilities" in top
        else VulnerabilityPolicy(),
        size=policies.size_policy(r, top["size"]) if "size" in top else SizePolicy(),
        signing=policies.signing_policy(r, top["signing"]) if "signing" in top else None,
    )


PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----")


def _ca_certificates(r: _Reader, value: Any) -> tuple[str, ...]:
    """PEM files (paths relative to the matrix file) split into single certificates.

    Split because Debian's update-ca-certificates skips any file holding more than one certificate.
    """
    certs: list[str] = []
    for i, item in enumerate(r.seq(value, ("extra_ca_certificates",), nonempty=False)):
        path_key: KeyPath = ("extra_ca_certificates", i)
        path = (r.doc.file.parent / r.string(item, path_key)).resolve()
        try:
            text = read_bounded(path).decode("ascii")  # not /dev/zero, a FIFO, a 1 GiB file
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not ASCII PEM text"
            raise r.fail(path_key, f"cannot read a PEM file at {path}: {why}") from None
        found = [m.group(0).replace("\r\n", "\n") for m in PEM_CERT.finditer(text)]
        if not found:
            raise r.fail(path_key, f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
        certs.extend(found)
    return tuple(dict.fromkeys(certs))  # a certificate listed twice is installed once


def _refuse_unused_pins(
    r: _Reader,
    rows: tuple[TorchRow, ...],
    declared: tuple[ExtensionDecl, ...],
    stacks: tuple[tuple[str, tuple[str, ...]], ...],
) -> None:
    """A pin no stack uses is a typo or a forgotten stack: never drop it silently."""
    used = {ext for _, exts in stacks for ext in exts}
    for i, row in enumerate(rows):
        for pin in row.pins:
            if pin.name not in used:
                raise r.fail(("torch", i, pin.name), f"{pin.name} is pinned but no stack lists it")
    for decl in declared:
        if decl.name not in used:
            raise r.fail(("extensions", decl.name), f"{decl.name} is declared but no stack lists it")


def _companion(text: str) -> str:
    """torchvision/torchaudio: a PEP 440 version, or `none` to leave it out of the image."""
    return text if text == "none" else validators.version(text)


def _pin_version(r: _Reader, value: Any, path: KeyPath, kind: str) -> str:
    check = validators.git_commit if kind == "source" else validators.version
    return r.string(value, path, check)


def _extensions(r: _Reader, value: Any, facts: Knowledge) -> tuple[ExtensionDecl, ...]:
    section = r.mapping(value, ("extensions",))
    out = []
    for ext_name, spec in section.items():
        path: KeyPath = ("extensions", ext_name)
        r.string(ext_name, path, validators.package_name)
        spec = r.mapping(spec, path, spec_keys.DECLARATION)
        known = facts.extensions.get(ext_name)
        if known is None:
            if spec.get("kind") != "pip":
                raise r.fail(
                    path,
                    f"unknown extension {ext_name!r} (known: {', '.join(facts.extensions)}); "
                    "declare any other pinned package with `kind: pip` and `version:`",
                )
            if "version" not in spec:
                raise r.fail(path, "a `kind: pip` extension needs `version:`")
            kind = "pip"
        else:
            if "kind" in spec:
                raise r.fail((*path, "kind"), f"{ext_name!r} is a known extension; its kind comes from knowledge")
            kind = known.kind
        build = r.choice(
            spec.get("build", "source" if kind == "source" else "wheel"), (*path, "build"), BUILDS, "build"
        )
        version = _pin_version(r, spec["version"], (*path, "version"), kind) if "version" in spec else None
        out.append(ExtensionDecl(name=ext_name, kind=kind, version=version, build=build, origin=r.origin(path)))
    return tuple(out)


def _torch_rows(
    r: _Reader, value: Any, facts: Knowledge, known_ext: set[str], declared: tuple[ExtensionDecl, ...]
) -> tuple[TorchRow, ...]:
    rows = []
    seen: dict[str, int] = {}
    kinds = {name: e.kind for name, e in facts.extensions.items()} | {d.name: d.kind for d in declared}
    for i, item in enumerate(r.seq(value, ("torch",))):
        path: KeyPath = ("torch", i)
        if not isinstance(item, dict):
            item = {"version": item}  # `- 2.6.0` is shorthand for `- {version: 2.6.0}`
        spec = r.mapping(item, path, required=("version",))
        version = r.string(spec["version"], (*path, "version"), validators.release_version)
        facts_row = facts.torch.get(minor(version))
        if facts_row is None:
            raise r.fail(
                (*path, "version"),
                f"torch {version} is not in generator/knowledge/torch.yaml "
                f"(known: {', '.join(facts.torch)}); add its facts there first",
            )
        patch = str(Version(version).micro)
        # `none` leaves a companion out (the sandbox's CPU torch has no importable torchvision).
        torchvision = r.string(
            spec.get("torchvision", f"{facts_row.torchvision_minor}.{patch}"), (*path, "torchvision"), _companion
        )
        torchaudio = r.string(
            spec.get("torchaudio", f"{facts_row.torchaudio_minor}.{patch}"), (*path, "torchaudio"), _companion
        )
        index = r.choice(spec.get("index", "pypi"), (*path, "index"), ("pypi", *facts.torch_indexes), "index")
        # One release may be listed once per build: the default one and each CUDA index (`2.8.0+cu129`).
        key = version if index == "pypi" else f"{version}+{index}"
        if key in seen:
            raise r.fail(
                (*path, "version"),
                f"torch {key} is already listed at torch[{seen[key]}]; a second row of one release needs "
                "another `index:`",
            )
        seen[key] = i
        pins = []
        for key, pin in spec.items():
            if key in TORCH_KEYS:
                continue
            if key not in known_ext:
                raise r.fail(
                    (*path, key),
                    f"unknown key {key!r}: expected {', '.join(sorted(TORCH_KEYS))} "
                    f"or an extension ({', '.join(sorted(known_ext))})",
                )
            pins.append(_pin(r, pin, (*path, key), key, kinds[key]))
        rows.append(
            TorchRow(
                version=version,
                torchvision=torchvision,
                torchaudio=torchaudio,
                index=index,
                pins=tuple(pins),
                origin=r.origin(path),
            )
        )
    return tuple(rows)


def _pin(r: _Reader, value: Any, path: KeyPath, ext_name: str, kind: str) -> ExtensionPin:
    default_build = "source" if kind == "source" else "wheel"
    if isinstance(value, dict):
        spec = r.mapping(value, path, spec_keys.PIN)
        build = r.choice(spec.get("build", default_build), (*path, "build"), BUILDS, "build")
        version = _pin_version(r, spec["version"], (*path, "version"), kind) if "version" in spec else None
    else:
        build = default_build
        version = _pin_version(r, value, path, kind)
    return ExtensionPin(name=ext_name, version=version, build=build, origin=r.origin(path))


def _stacks(r: _Reader, value: Any, known_ext: set[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    section = r.mapping(value, ("stacks",))
    if not section:
        raise r.fail(("stacks",), "must define at least one stack (e.g. `plain: []`)")
    out = []
    for stack_name, exts in section.items():
        path: KeyPath = ("stacks", stack_name)
        r.string(stack_name, path, lambda s: validators.name(s, "stack name"))
        names: list[str] = []
        for i, ext in enumerate(r.seq(exts, path, nonempty=False)):
            ext_name = r.choice(ext, (*path, i), sorted(known_ext), "extension")
            if ext_name in names:
                raise r.fail((*path, i), f"extension {ext_name!r} is listed twice")
            names.append(ext_name)
        out.append((stack_name, tuple(names)))
    return tuple(out)


def _selector(r: _Reader, value: Any, path: KeyPath) -> Selector:
    spec = r.mapping(value, path, SELECTOR_KEYS)
    if not spec:
        raise r.fail(path, f"an empty selector matches every cell; name at least one of {', '.join(SELECTOR_KEYS)}")
    patterns = []
    for key in SELECTOR_KEYS:
        if key not in spec:
            continue
        raw = spec[key]
        items = r.seq(raw, (*path, key)) if isinstance(raw, list) else [raw]
        patterns.append((key, tuple(r.string(item, (*path, key), validators.pattern) for item in items)))
    return Selector(patterns=tuple(patterns), origin=r.origin(path))


def _include(r: _Reader, value: Any, path: KeyPath, torch_keys: tuple[str, ...], stacks: tuple[str, ...]) -> Include:
    spec = r.mapping(value, path, SELECTOR_KEYS, required=spec_keys.INCLUDE_REQUIRED)
    torch_value = r.string(spec["torch"], (*path, "torch"), validators.torch_key)
    if torch_value not in torch_keys:
        raise r.fail(
            (*path, "torch"),
            f"torch {torch_value} is not a row of `torch:` ({', '.join(torch_keys)}; a CUDA index build is "
            "named like 2.8.0+cu129)",
        )
    return Include(
        cloud=r.choice(spec["cloud"], (*path, "cloud"), CLOUDS, "cloud"),
        variant=r.choice(spec["variant"], (*path, "variant"), VARIANTS, "variant"),
        base=r.choice(spec.get("base", "databricks"), (*path, "base"), BASES, "base"),
        torch=torch_value,
        stack=r.choice(spec["stack"], (*path, "stack"), stacks, "stack"),
        origin=r.origin(path),
    )


def _override(r: _Reader, value: Any, path: KeyPath, facts: Knowledge) -> Override:
    spec = r.mapping(value, path, spec_keys.OVERRIDE, required=tuple(spec_keys.OVERRIDE))
    return Override(
        select=_selector(r, spec["select"], (*path, "select")),
        accelerators=r.unique_choices(spec["accelerators"], (*path, "accelerators"), facts.accelerators, "accelerator"),
    )
