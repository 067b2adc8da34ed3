"""`sandbox`: the local engine, registry, stand-in bases and browser."""

from __future__ import annotations

import argparse

from generator.cli.common import print_json
from generator.engine import connect


def cmd_sandbox(args: argparse.Namespace) -> int:
    """Services first (engine, registry), then on `up` the stand-in base images the sandbox builds FROM."""
    from generator.sandbox import services
    from generator.sandbox.bases import ensure_bases

    say = (lambda line: None) if args.json else print  # with --json, progress goes nowhere
    if args.action == "browser":
        path = services.browser(progress=say)
        if args.json:
            print_json({"chromium": path})
        else:
            print(f"chromium: {path}")
        return 0
    if args.action == "clean":
        cleaned = services.clean(progress=say)
        states = services.status()
        # The stand-ins stay in the engine; pushing them again makes the emptied registry usable at once.
        if all(s.running for s in states):
            ensure_bases(connect(), progress=say)
        if args.json:
            print_json({"cleaned": cleaned.as_json(), "services": [s.as_json() for s in states]})
        return 0
    if args.action == "up":
        states = services.up(progress=say)
        stand_ins = [(s.ref, outcome) for s, outcome in ensure_bases(connect(), progress=say)]
    elif args.action == "status":
        states, stand_ins = services.status(), []
    else:
        states, stand_ins = services.down(progress=say), []
    if args.json:
        print_json(
            {
                "services": [s.as_json() for s in states],
                "stand_ins": [{"ref": ref, "outcome": outcome} for ref, outcome in stand_ins],
            }
        )
    else:
        for s in states:
            print(s.line())
    return 0 if args.action == "down" or all(s.running for s in states) else 1
