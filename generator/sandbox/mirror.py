"""The Debian mirror the rootfs is made from: the host's own, read from its apt sources (deb822 or one-line)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from generator.sandbox.errors import SandboxBaseError

APT_DIR = Path("/etc/apt")
SUITE = "bookworm"


def debian_mirror(apt_dir: Path = APT_DIR, suite: str = SUITE) -> str:
    """The first http(s) mirror the host's apt uses for `suite`: deb822 `.sources` first, then one-line lists.

    Read at run time, never written down: the rootfs and every apt-get in the stand-ins then use the
    mirror this machine is known to reach.
    """
    for source in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for uri in _deb822_uris(source.read_text(encoding="utf-8", errors="replace"), suite):
            return uri
    lists = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for source in lists:
        if source.is_file():
            for uri in _one_line_uris(source.read_text(encoding="utf-8", errors="replace"), suite):
                return uri
    raise SandboxBaseError(
        f"no Debian mirror for suite {suite!r} in {apt_dir}/sources.list.d/*.sources or {apt_dir}/sources.list: "
        "debootstrap needs one (add a `deb` source for it to the host's apt configuration)"
    )


def _deb822_uris(text: str, suite: str) -> Iterator[str]:
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields = _deb822_fields(stanza)
        enabled = fields.get("enabled", "yes").lower() != "no"
        if enabled and "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            yield from (uri for uri in fields.get("uris", "").split() if _is_http(uri))


def _deb822_fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0] in " \t" and key:  # a continuation line
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def _one_line_uris(text: str, suite: str) -> Iterator[str]:
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()  # drop comments and [options]
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite and _is_http(words[1]):
            yield words[1]


def _is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))
