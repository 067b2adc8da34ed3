"""The gate's policies in the matrix: `vulnerabilities:` (generator/audit/), `size:` (the size gate) and
`signing:` (the key pair of generator/sign/).

Read by generator/spec/matrix.py with its reader, so every error names file:line and the key path; the
keys come from generator/spec/schema.py like every other key.
"""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING, Any

from generator.clock import parse_day
from generator.model import (
    SEVERITY_LEVELS,
    Allowance,
    SigningPolicy,
    SizeAcceptance,
    SizePolicy,
    VulnerabilityPolicy,
)
from generator.spec import schema as spec_keys
from generator.spec import validators

if TYPE_CHECKING:
    from generator.spec.matrix import _Reader
    from generator.spec.yamlsource import KeyPath

ADVISORY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{1,99}")


def vulnerability_policy(r: _Reader, value: Any) -> VulnerabilityPolicy:
    path: KeyPath = ("vulnerabilities",)
    spec = r.mapping(value, path, spec_keys.VULNERABILITIES)
    default = VulnerabilityPolicy()
    levels = (*SEVERITY_LEVELS, "none")
    allow = []
    for i, item in enumerate(r.seq(spec.get("allow", []), (*path, "allow"), nonempty=False)):
        where: KeyPath = (*path, "allow", i)
        entry = r.mapping(item, where, spec_keys.ALLOWANCE, required=tuple(spec_keys.ALLOWANCE))
        allow.append(
            Allowance(
                id=r.string(entry["id"], (*where, "id"), _advisory_id),
                until=_date(r, entry["until"], (*where, "until")),
                reason=r.string(entry["reason"], (*where, "reason"), _reason),
                origin=r.origin(where),
            )
        )
    return VulnerabilityPolicy(
        fail_on=r.choice(spec.get("fail_on", default.fail_on), (*path, "fail_on"), levels, "severity"),
        unknown=r.choice(spec.get("unknown", default.unknown), (*path, "unknown"), spec_keys.POLICY_CHOICES, "choice"),
        not_audited=r.choice(
            spec.get("not_audited", default.not_audited), (*path, "not_audited"), spec_keys.POLICY_CHOICES, "choice"
        ),
        allow=tuple(allow),
    )


def size_policy(r: _Reader, value: Any) -> SizePolicy:
    path: KeyPath = ("size",)
    spec = r.mapping(value, path, spec_keys.SIZE)
    growth = _number(spec.get("max_growth_percent", SizePolicy().max_growth_percent))
    if growth is None or growth < 0:
        raise r.fail(
            (*path, "max_growth_percent"), f"expected a number of percent ≥ 0, got {spec['max_growth_percent']!r}"
        )
    accept = []
    for i, item in enumerate(r.seq(spec.get("accept", []), (*path, "accept"), nonempty=False)):
        where: KeyPath = (*path, "accept", i)
        entry = r.mapping(item, where, spec_keys.SIZE_ACCEPT, required=tuple(spec_keys.SIZE_ACCEPT))
        mb = _number(entry["max_mb"])
        if mb is None or mb <= 0:
            raise r.fail((*where, "max_mb"), f"expected a size in MB > 0, got {entry['max_mb']!r}")
        accept.append(
            SizeAcceptance(
                cell=r.string(entry["cell"], (*where, "cell"), validators.pattern),
                max_bytes=int(mb * 1_000_000),
                reason=r.string(entry["reason"], (*where, "reason"), _reason),
                origin=r.origin(where),
            )
        )
    return SizePolicy(max_growth_percent=growth, accept=tuple(accept))


def signing_policy(r: _Reader, value: Any) -> SigningPolicy:
    """The key pair, paths relative to the matrix file. The public key must be there (every machine that
    verifies reads it); the private key only where images are signed, so it is looked for when signing."""
    path: KeyPath = ("signing",)
    spec = r.mapping(value, path, spec_keys.SIGNING, required=("public_key",))
    public = (r.doc.file.parent / r.string(spec["public_key"], (*path, "public_key"))).resolve()
    if not public.is_file():
        raise r.fail((*path, "public_key"), f"no public key file at {public}")
    key = (r.doc.file.parent / r.string(spec["key"], (*path, "key"))).resolve() if "key" in spec else None
    return SigningPolicy(public_key=public, key=key)


def _number(value: Any) -> float | None:
    """A number as YAML gave it: an int, or the text of a decimal (the loader keeps `1.5` as text, since
    every other dotted number in a matrix is a version)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


def _advisory_id(text: str) -> str:
    if not ADVISORY_ID.fullmatch(text):
        raise ValueError(f"not an advisory id: {text!r} (GHSA-..., PYSEC-..., CVE-...)")
    return text


def _reason(text: str) -> str:
    if not text.strip():
        raise ValueError("a reason is required: say why, for the next person who reads this")
    return text.strip()


def _date(r: _Reader, value: Any, path: KeyPath) -> datetime.date:
    try:
        return parse_day(r.string(value, path))
    except ValueError:
        raise r.fail(path, f"expected a date YYYY-MM-DD, got {value!r}") from None
