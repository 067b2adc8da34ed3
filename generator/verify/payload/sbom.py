"""What an image holds, read INSIDE it for its SBOM (the host copies this to /air-fleet-sbom/sbom.py).

Runs with the image's own Python: standard library only, Python 3.8 syntax. Reports facts and never
judges them: it prints ONE JSON object on stdout and exits 0. The host (generator/sbom/) adds the lock's
hashes and writes the CycloneDX document; the facts come from the image because an SBOM made from the
recipe alone would miss whatever the base image brought (its OS packages, its own Python packages).

    python sbom.py

{"schema": 1,
 "os": {"id", "version_id", "pretty_name"}          from /etc/os-release
 "dpkg": [{"name", "version", "arch", "source"}],    installed packages from /var/lib/dpkg/status
 "python": {"version", "executable", "prefix"},
 "distributions": [{"name", "version", "license", "path", "installer", "requested"}]}
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SCHEMA = 1
DPKG_STATUS = "/var/lib/dpkg/status"
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")


def os_release() -> dict[str, str]:
    for path in OS_RELEASE:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        out = {}
        for line in lines:
            key, sep, value = line.partition("=")
            if sep and key in ("ID", "VERSION_ID", "PRETTY_NAME"):
                out[key.lower()] = value.strip().strip('"')
        return out
    return {}


def dpkg_packages(path: str = DPKG_STATUS) -> list[dict[str, str]]:
    """Every package dpkg says is installed ("install ok installed"): a paragraph per package."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return []  # not a Debian-family image: no OS packages to list, said by an empty list
    out = []
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t"):
                continue  # a continuation line (Description, Conffiles): not needed
            key, sep, value = line.partition(":")
            if sep:
                fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            # Source may carry its own version in parentheses: "glibc (2.36-9)"; the name is enough.
            source = fields.get("Source", fields["Package"]).split(" ")[0]
            out.append(
                {
                    "name": fields["Package"],
                    "version": fields.get("Version", ""),
                    "arch": fields.get("Architecture", ""),
                    "source": source,
                }
            )
    return sorted(out, key=lambda p: (p["name"], p["arch"]))


def _license(meta: Any) -> str:
    """The distribution's own licence words: License-Expression (PEP 639), else License, else the
    classifiers' licence names; "" when it says nothing."""
    expression = meta.get("License-Expression")
    if expression:
        return str(expression).strip()
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 100:  # a licence's full text is not its name
        return text
    classifiers = [c.split(" :: ")[-1] for c in (meta.get_all("Classifier") or []) if c.startswith("License ::")]
    return " OR ".join(classifiers)


def distributions() -> list[dict[str, Any]]:
    """Every distribution this Python sees on its path, whoever installed it (the lock, the base)."""
    from importlib import metadata

    seen = set()
    out = []
    for dist in metadata.distributions():
        meta: Any = dist.metadata  # an email.message.Message in practice: .get, .get_all
        name = meta.get("Name")
        if not name or name.lower() in seen:
            continue  # the first on sys.path is the one imported; a shadowed copy is not
        seen.add(name.lower())
        path = str(getattr(dist, "_path", ""))
        installer = (dist.read_text("INSTALLER") or "").strip()
        out.append(
            {
                "name": name,
                "version": meta.get("Version") or "",
                "license": _license(meta),
                "path": path,
                "installer": installer,
                "requested": dist.read_text("REQUESTED") is not None,
            }
        )
    return sorted(out, key=lambda d: d["name"].lower())


def main() -> int:
    facts: dict[str, Any] = {"schema": SCHEMA, "errors": []}
    for key, read in (("os", os_release), ("dpkg", dpkg_packages), ("distributions", distributions)):
        try:
            facts[key] = read()
        except Exception as exc:  # one unreadable part never hides the others
            facts[key] = {} if key == "os" else []
            facts["errors"].append(f"{key}: {type(exc).__name__}: {exc}")
    facts["python"] = {"version": sys.version.split()[0], "executable": sys.executable, "prefix": sys.prefix}
    facts["user"] = os.getuid() if hasattr(os, "getuid") else None
    print(json.dumps(facts, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
