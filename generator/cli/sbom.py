"""`sbom`: what is inside each image, as CycloneDX."""

from __future__ import annotations

import argparse

from generator import paths
from generator.cli.common import add_cells_command, print_json, selected
from generator.fleet import Fleet
from generator.progress import to_stderr
from generator.resolve.checks import FAIL

SBOM_HELP = """\
For each built cell (its immutable tag, local or pulled from the registry), read inside the image:
  - the OS release and every installed dpkg package (/var/lib/dpkg/status),
  - every Python distribution the image's Python sees (name, version, licence),
and add what the lock knows: the sha256 of each locked distribution's file and of every fetched file
(torch wheel, flash-attn wheel, apex source, EFA installer). The result is a CycloneDX 1.6 JSON
document, validated against the CycloneDX schema, at results/<profile>/sbom/<slug>.cdx.json, with a
record beside it (<slug>.json: the image it describes, the counts).

--attach also puts each document in the registry beside its image (the staging candidate, and the
release once promoted): an OCI artifact whose subject is the image's manifest, found from the image's
digest alone through the referrers API, or where the registry lacks that API (Debian's docker-registry
2.8) through the tag sha256-<hex>.sbom. Credentials as for push.

The reading runs the image's own Python in a throw-away container without network, like the probe.
The same image gives the same bytes (serial number and timestamp come from the image).

examples:
  python -m generator --profile sandbox sbom          every cell that has an image
  python -m generator --profile sandbox sbom 2 'aws-*'
  python -m generator --profile sandbox sbom --attach 2      after `push`: attach it in the registry
  jq '.components[] | select(.name=="torch")' results/sandbox/sbom/aws-runtime-torch2.13.cdx.json

exit status: 0 every selected cell has its SBOM; 1 a cell has none (not built, unreadable); 2 no engine
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = "a CycloneDX SBOM per image, read inside it (dpkg, Python distributions, fetched files)"
    s = add_cells_command(sub, "sbom", summary, SBOM_HELP)
    s.add_argument("--attach", action="store_true", help="also attach each SBOM to its image in the registry")


def cmd_sbom(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.engine import connect
    from generator.sbom.step import sbom_cells

    chosen = [r for r in selected(fleet, args.cells) if r.status != FAIL]  # FAILing cells are never built
    registry = None
    if args.attach:
        from generator.release.credentials import CredentialSource
        from generator.release.distribution import Registry

        registry = Registry(fleet.matrix.registry_host, CredentialSource())
    results = sbom_cells(
        connect(), chosen, paths.results_dir(), fleet.profile.records, say=to_stderr, registry=registry
    )
    if args.json:
        print_json({"profile": fleet.profile.name, "results": [r.record() for r in results]})
    else:
        for r in results:
            if r.status == "ok":
                n = r.counts
                print(
                    f"{r.slug}: {n['dpkg']} OS packages, {n['python']} Python distributions "
                    f"({n['python_hashed']} with the lock's sha256), {n['files']} fetched files -> {r.document}"
                )
                for a in r.attached:
                    print(f"  attached to {a['repository']}@{a['image_digest']} as {a['artifact']} ({a['via']})")
            else:
                print(f"{r.slug}: {'written, not attached' if r.document else 'no SBOM'}: {r.error}")
    return 1 if any(r.status != "ok" for r in results) else 0
