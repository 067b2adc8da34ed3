"""`audit`: known vulnerabilities of each cell's locked Python environment, judged by the matrix's policy."""

from __future__ import annotations

import argparse

from generator import paths
from generator.cli.common import add_cells_command, print_json, selected
from generator.clock import utc_today
from generator.fleet import Fleet
from generator.progress import to_stderr

AUDIT_HELP = """\
Each cell's LOCKED requirements (requirements.txt: the whole environment the build installs, every pin
hashed) and its fetched files (by project and version) against the package index's vulnerability data,
through pip-audit's service. No image is needed. Records: results/<profile>/audit/<slug>.json, counted by
severity, each advisory with its link; then the matrix's `vulnerabilities:` policy is applied as the gate
applies it (promote refuses what it refuses).

Honest limits:
  severity     the package index's data carries none: every finding is "unknown", and the policy's
               `unknown:` (default fail) says what that means; nothing is guessed.
  not audited  a pin the data cannot answer for (a local version like torch's +cpu; a release the index
               has no page for where only its project page is served: then only the latest release's
               advisories are known) is listed as not audited, never as clean; `not_audited: fail`
               refuses such cells.
  OS packages  not covered: the package index knows nothing of dpkg packages (see the SBOM for what is
               installed).

examples:
  python -m generator --profile sandbox audit
  python -m generator --profile sandbox audit 2 --json

exit status: 0 every cell passes the policy; 1 a cell is refused; 2 the vulnerability data cannot be reached
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    summary = "known vulnerabilities of each cell's locked Python packages (pip-audit), judged by the matrix's policy"
    add_cells_command(sub, "audit", summary, AUDIT_HELP)


def cmd_audit(fleet: Fleet, args: argparse.Namespace) -> int:
    from generator.audit.gate import vulnerability_gate
    from generator.audit.index import IndexAuditor
    from generator.audit.step import audit_cells

    results_dir, profile = paths.results_dir(), fleet.profile.records
    results = audit_cells(IndexAuditor(), selected(fleet, args.cells), results_dir, profile, say=to_stderr)
    today = utc_today()
    verdicts = [
        vulnerability_gate(results_dir, profile, r.slug, r.digest, fleet.matrix.vulnerabilities, today) for r in results
    ]
    if args.json:
        records = [
            {**r.record(), "verdict": {"ok": ok, "why": why}} for r, (ok, why) in zip(results, verdicts, strict=True)
        ]
        print_json({"profile": fleet.profile.name, "results": records})
    else:
        for r, (ok, why) in zip(results, verdicts, strict=True):
            counts = ", ".join(f"{n} {severity}" for severity, n in r.counts.items() if n) or "none known"
            print(f"{r.slug}: {r.packages} packages, advisories: {counts}, {len(r.not_audited)} not audited")
            for f in r.findings:
                print(f"  {f['id']} {f['package']} {f['version']} ({f['severity']}): {f['link']}")
            print(f"  gate: {'OK' if ok else 'REFUSED'}: {why}")
    return 0 if all(ok for ok, _ in verdicts) else 1
