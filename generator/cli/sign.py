"""`sign` and `verify`: signatures of the released images, in cosign's key-based format (generator/sign/)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from generator import paths
from generator.cli.common import add_cells_command, print_json, selected
from generator.fleet import Fleet
from generator.progress import to_stderr

if TYPE_CHECKING:  # imported on use: the registry client brings the Docker SDK, which `list` never loads
    from generator.sign.step import Signing

NOT_CONFIGURED = (
    "signing is not configured for this fleet (no `signing:` keys in the matrix, no `signing: machine` in the "
    "profile): nothing is signed here; the real fleet's nightly signs keyless with cosign"
)

SIGN_HELP = """\
Adds one signature to each released image (the manifest digest the release repository's immutable tag
<slug>-<12 hex> points to), in cosign's key-based format: a simple-signing payload naming
<host>/<release repository> and that digest, ECDSA P-256 over its SHA-256, as one more layer of
<release>:sha256-<hex>.sig (older signatures stay). `promote` does this itself for what it promotes. The
key: the matrix's `signing: {key, public_key}`, else the sandbox profile's machine key pair
(~/.config/air-fleet/signing/, made on first use; AIR_FLEET_SIGNING_DIR moves it).
Records: results/<profile>/sign/<slug>.json.

exit status: 0 every cell signed; 1 a cell is not promoted or its signatures do not verify; 2 the registry
cannot be reached or a key cannot be read
"""

VERIFY_HELP = """\
For each cell, the digest the release repository's immutable tag points to, and every signature in
<release>:sha256-<hex>.sig: each must verify with the public key and its payload must name that digest
and repository. Stricter than `cosign verify` (one good signature is enough there): a signature the key
did not make is reported. Without signing configured it says so and exits 0. Records:
results/<profile>/sign/<slug>.json. A consumer checks the same with cosign:
  cosign verify --key cosign.pub --insecure-ignore-tlog=true <host>/<repository>@<digest>

exit status: 0 every cell verified (or signing not configured); 1 a cell is unsigned, badly signed or not
promoted; 2 the registry cannot be reached or the key cannot be read
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_cells_command(sub, "sign", "sign the released images (cosign's key-based format)", SIGN_HELP)
    add_cells_command(sub, "verify", "check every signature of the released images against the public key", VERIFY_HELP)


def fleet_signing(fleet: Fleet, *, private: bool) -> Signing | None:
    """The fleet's Signing, or None when signing is not configured; `private`: the private key is read now,
    so a run that must sign stops before it changes anything when it cannot."""
    from generator.sign.config import signing_keys
    from generator.sign.step import Signing

    found = signing_keys(fleet.matrix, fleet.profile)
    if found is None:
        return None
    if private:
        found.private_key()
    return Signing(found, say=to_stderr)


def cmd_sign(fleet: Fleet, args: argparse.Namespace) -> int:
    return _run(fleet, args, add=True)


def cmd_verify(fleet: Fleet, args: argparse.Namespace) -> int:
    return _run(fleet, args, add=False)


def _run(fleet: Fleet, args: argparse.Namespace, *, add: bool) -> int:
    from generator.sign.step import Released, exit_status, run_cells

    signing = fleet_signing(fleet, private=add)
    if signing is None:
        if args.json:
            print_json({"profile": fleet.profile.name, "configured": False, "why": NOT_CONFIGURED, "results": []})
        else:
            print(NOT_CONFIGURED)
        return 1 if add else 0
    cells = [Released.of(r.cell.slug, r.digest, r.release_ref) for r in selected(fleet, args.cells)]
    results = run_cells(cells, signing, results=paths.results_dir(), profile=fleet.profile.records, add=add)
    if args.json:
        print_json(
            {
                "profile": fleet.profile.name,
                "configured": True,
                "key": signing.keys.origin,
                "results": [r.record() for r in results],
            }
        )
    else:
        print(f"key: {signing.keys.origin} ({signing.fingerprint[:19]})")
        for r in results:
            print(f"{r.slug}: {r.status}: {r.reason}")
    return exit_status(results, add=add)
