"""The one definition of matrix.yaml's keys: the loader (generator/spec/matrix.py) takes its key sets from here,
and `python -m generator schema` turns the same definition into the JSON Schema that editors read
(docs/matrix.schema.json, named by the `# yaml-language-server: $schema=...` line of each matrix).

The JSON Schema says what an editor can check while typing: keys, types, enumerations, patterns. What
needs the whole matrix (a rule that matches no cell, two cells with one slug, an unknown extension pinned
on a torch row, a FAILing cell) stays the loader's; the loader is always the last word.
"""

from __future__ import annotations

import json
from typing import Any

from generator.model import BASES, CLOUDS, SELECTOR_KEYS, SEVERITY_LEVELS, VARIANTS
from generator.spec import validators
from generator.spec.knowledge import Knowledge

Schema = dict[str, Any]
SCHEMA_ID = "https://air-fleet.invalid/matrix.schema.json"  # an identifier, not a place to fetch from
SCHEMA_VERSION = 1

# Each key with the one-line help an editor shows; the loader refuses any key not listed here.
TOP: dict[str, str] = {
    "schema": "The matrix format version this file is written in (1).",
    "python": 'Python inside the images, major.minor ("3.12": quote it, YAML reads 3.10 as 3.1).',
    "registry": "Where the fleet is pushed: images are <host>/<repository>:<tag>.",
    "clouds": "Clouds the fleet is built for.",
    "variants": "runtime (no compiler) and/or devel (nvcc); source builds compile in a builder stage on devel.",
    "bases": "databricks (FROM databricksruntime/air) and/or scratch (FROM nvidia/cuda + system setup).",
    "accelerators": "Accelerator types every image is blessed for, unless an override narrows it.",
    "host_drivers": "Override the knowledge's host GPU driver per cloud (nvidia-smi on a pod is the truth).",
    "torch": "One row per torch build: a release from the package index, or from a CUDA index (`index:`).",
    "stacks": "Extension stacks: one image per stack for each (cloud, variant, base, torch).",
    "extensions": "Matrix-wide pins of known extensions, and any other pinned package (`kind: pip`).",
    "extra_ca_certificates": "PEM files (relative to this file) the builds trust, e.g. a TLS-intercepting proxy's CA.",
    "exclude": "Drop every cell matching ALL the given keys (fnmatch patterns, or lists of them).",
    "include": "Add cells outside the product, each fully described.",
    "overrides": "Per-selector settings, later ones winning; today they narrow `accelerators`.",
    "vulnerabilities": "What known vulnerabilities of a cell's Python environment the gate refuses (`audit`).",
    "size": "How much a rebuild may grow over the cell's blessed size before the gate refuses it.",
    "signing": "The key pair promote signs released images with (cosign's key-based format); verify and register "
    "check with its public key. Without it nothing is signed here (the nightly signs keyless).",
}
REQUIRED_TOP = ("schema", "registry", "clouds", "variants", "accelerators", "torch")
REGISTRY: dict[str, str] = {
    "host": "Registry host, with a port if any (127.0.0.1:5000).",
    "repository": "Repository path under the host (ml-platform/air-training): the release repository users pull from.",
    "staging": (
        "Repository on the same host for candidates: each build is pushed there, probed and benchmarked by its "
        "manifest digest, and only then promoted to `repository` (default: <repository>-staging)."
    ),
}
TORCH_ROW: dict[str, str] = {
    "version": "torch release (2.8 means 2.8.0).",
    "torchvision": "torchvision release, or `none`; default: knowledge's companion of this torch.",
    "torchaudio": "torchaudio release, or `none`; default: knowledge's companion of this torch.",
    "index": "pypi (the package index's default build) or a CUDA index such as cu129. Selectors and includes "
    "name an index row by torch's own label: 2.8.0+cu129.",
}
PIN: dict[str, str] = {
    "version": "The release (a full 40-hex commit for a source archive).",
    "build": "wheel (a prebuilt artifact) or source (compiled once in a builder stage, installed as a wheel).",
}
DECLARATION: dict[str, str] = {
    "kind": "`pip` for a package the knowledge does not know; known extensions take their kind from knowledge.",
    **PIN,
}
OVERRIDE: dict[str, str] = {
    "select": "Which cells: the keys of a selector.",
    "accelerators": "The accelerators those cells are blessed for.",
}
SELECTOR: dict[str, str] = {
    "cloud": "aws | azure",
    "variant": "runtime | devel",
    "base": "databricks | scratch",
    "torch": "A torch row: 2.8.0, or 2.8.0+cu129 for a CUDA index row.",
    "stack": "A stack name.",
}
INCLUDE_REQUIRED = ("cloud", "variant", "torch", "stack")
VULNERABILITIES: dict[str, str] = {
    "fail_on": "Refuse an advisory of this severity or worse: low | medium | high | critical, or none (default high).",
    "unknown": "fail | pass: an advisory whose data gives no severity, as the package index's never does "
    "(default fail).",
    "not_audited": "fail | pass: a pinned package the vulnerability data could not answer for (default pass).",
    "allow": "Advisories let through until a date, each with its reason.",
}
ALLOWANCE: dict[str, str] = {
    "id": "The advisory's id or any alias: GHSA-..., PYSEC-..., CVE-....",
    "until": 'The last day it allows, quoted ("2027-01-31": the loader reads no YAML dates); from the day after, '
    "the gate refuses the advisory again.",
    "reason": "Why it is allowed, for the next person who reads this.",
}
SIZE: dict[str, str] = {
    "max_growth_percent": "How many percent a rebuild may grow over the cell's blessed size (default 10).",
    "accept": "Cells allowed to grow past that, each up to a size, with a reason.",
}
SIZE_ACCEPT: dict[str, str] = {
    "cell": "The cell's slug, or an fnmatch pattern of slugs.",
    "max_mb": "The size accepted, in MB (10^6 bytes) of the compressed image in the registry.",
    "reason": "Why the growth is accepted.",
}
SIGNING: dict[str, str] = {
    "key": "The private key, an unencrypted PKCS#8 PEM file of an ECDSA P-256 key (relative to this file); only "
    "where images are signed.",
    "public_key": "Its public key, a PEM file (relative to this file): what `cosign verify --key` takes too.",
}
POLICY_CHOICES = ("fail", "pass")
BUILDS = ("wheel", "source")
assert tuple(SELECTOR) == SELECTOR_KEYS, "the model's selector keys and the schema's must be the same"

_SCALAR = {"type": ["string", "number"]}  # YAML reads an unquoted 2.8 as a number; the loader accepts it


def _object(fields: dict[str, str], props: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """A closed mapping: exactly `fields`, each with its help text, no other key."""
    assert set(props) == set(fields), f"schema and help disagree: {sorted(set(props) ^ set(fields))}"
    out: Schema = {
        "type": "object",
        "properties": {key: {"description": fields[key], **props[key]} for key in fields},
        "additionalProperties": False,
    }
    if required:
        out["required"] = list(required)
    return out


def _pattern(regex: str) -> Schema:
    return {"type": "string", "pattern": f"^(?:{regex})$"}


def _enum_list(values: tuple[str, ...] | list[str]) -> Schema:
    return {"type": "array", "items": {"enum": list(values)}, "minItems": 1, "uniqueItems": True}


def _one_or_many(item: Schema) -> Schema:
    return {"anyOf": [item, {"type": "array", "items": item, "minItems": 1}]}


def _pin() -> Schema:
    return {"anyOf": [_SCALAR, _object(PIN, {"version": _SCALAR, "build": {"enum": list(BUILDS)}})]}


def _vulnerabilities() -> Schema:
    allowance = _object(
        ALLOWANCE,
        {
            "id": _pattern(r"[A-Za-z0-9][A-Za-z0-9._:-]{1,99}"),
            "until": {"type": "string", "format": "date"},
            "reason": {"type": "string", "minLength": 1},
        },
        tuple(ALLOWANCE),
    )
    return _object(
        VULNERABILITIES,
        {
            "fail_on": {"enum": [*SEVERITY_LEVELS, "none"]},
            "unknown": {"enum": list(POLICY_CHOICES)},
            "not_audited": {"enum": list(POLICY_CHOICES)},
            "allow": {"type": "array", "items": allowance},
        },
    )


def _size() -> Schema:
    accept = _object(
        SIZE_ACCEPT,
        {
            "cell": _pattern(r"[A-Za-z0-9._+*?\[\]!-]{1,200}"),
            "max_mb": {"type": "number", "exclusiveMinimum": 0},
            "reason": {"type": "string", "minLength": 1},
        },
        tuple(SIZE_ACCEPT),
    )
    return _object(
        SIZE,
        {"max_growth_percent": {"type": "number", "minimum": 0}, "accept": {"type": "array", "items": accept}},
    )


def json_schema(facts: Knowledge) -> Schema:
    """The JSON Schema of matrix.yaml under these facts (accelerators, indexes, extensions)."""
    known_ext = sorted(facts.extensions)
    selector = _object(SELECTOR, {key: _one_or_many(_pattern(r"[A-Za-z0-9._+*?\[\]!-]{1,100}")) for key in SELECTOR})
    selector["minProperties"] = 1
    include = _object(
        SELECTOR,
        {
            "cloud": {"enum": list(CLOUDS)},
            "variant": {"enum": list(VARIANTS)},
            "base": {"enum": list(BASES)},
            "torch": _SCALAR,
            "stack": _pattern(validators.NAME.pattern),
        },
        INCLUDE_REQUIRED,
    )
    row_props: dict[str, Schema] = {
        "version": _SCALAR,
        "torchvision": _SCALAR,
        "torchaudio": _SCALAR,
        "index": {"enum": ["pypi", *facts.torch_indexes]},
    }
    row = _object(TORCH_ROW, row_props, ("version",))
    # Pins of extensions ride on the row beside its own keys: known ones by name, declared `kind: pip`
    # ones by any package name (which only the loader can check against `extensions:`).
    row["properties"].update({name: {"description": f"Pin {name} for this torch.", **_pin()} for name in known_ext})
    row["additionalProperties"] = _pin()
    row["propertyNames"] = _pattern(validators.PYPI_NAME.pattern)
    declared = _object(DECLARATION, {"kind": {"const": "pip"}, "version": _SCALAR, "build": {"enum": list(BUILDS)}})
    known = _object(PIN, {"version": _SCALAR, "build": {"enum": list(BUILDS)}})
    props: dict[str, Schema] = {
        "schema": {"const": SCHEMA_VERSION},
        "python": {"anyOf": [_pattern(r"3\.[0-9]{1,2}"), {"type": "number"}]},
        "registry": _object(
            REGISTRY,
            {
                "host": _pattern(validators.REGISTRY_HOST.pattern),
                "repository": _pattern(validators.REPOSITORY.pattern),
                "staging": _pattern(validators.REPOSITORY.pattern),
            },
            ("host", "repository"),
        ),
        "clouds": _enum_list(CLOUDS),
        "variants": _enum_list(VARIANTS),
        "bases": _enum_list(BASES),
        "accelerators": _enum_list(sorted(facts.accelerators)),
        "host_drivers": {
            "type": "object",
            "properties": {c: _pattern(r"[0-9]{3}(?:\.[0-9]{1,3}){1,2}") for c in CLOUDS},
            "additionalProperties": False,
        },
        "torch": {"type": "array", "minItems": 1, "items": {"anyOf": [_SCALAR, row]}},
        "stacks": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": _pattern(validators.NAME.pattern),
            "additionalProperties": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        },
        "extensions": {
            "type": "object",
            "properties": {name: known for name in known_ext},
            "propertyNames": _pattern(validators.PYPI_NAME.pattern),
            "additionalProperties": {**declared, "required": ["kind", "version"]},
        },
        "extra_ca_certificates": {"type": "array", "items": {"type": "string"}},
        "exclude": {"type": "array", "items": selector},
        "include": {"type": "array", "items": include},
        "overrides": {
            "type": "array",
            "items": _object(
                OVERRIDE, {"select": selector, "accelerators": _enum_list(sorted(facts.accelerators))}, tuple(OVERRIDE)
            ),
        },
        "vulnerabilities": _vulnerabilities(),
        "size": _size(),
        "signing": _object(SIGNING, {"key": {"type": "string"}, "public_key": {"type": "string"}}, ("public_key",)),
    }
    top = _object(TOP, props, REQUIRED_TOP)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "air-fleet matrix.yaml",
        "description": "The blessed image catalogue: generated from generator/spec/schema.py, DO NOT EDIT.",
        **top,
    }


def schema_text(facts: Knowledge) -> str:
    """The committed file's bytes: stable key order, one trailing newline."""
    return json.dumps(json_schema(facts), indent=2, sort_keys=False, ensure_ascii=False) + "\n"
