"""Register built images with a Databricks workspace (AI Runtime), once per image, never interactively.

    adapter = pick_adapter(None, "my-workspace")          # the Go `databricks` CLI if on PATH, else `air`
    outcomes = register(targets, adapter, Ledger.for_profile("my-workspace"))

`base` (targets, the adapter contract), `adapters` (the two CLIs and their output), `ledger` (what is done),
`runner` (calls, timeouts, retries); `generator.scrub` keeps secrets out of everything shown.
"""

from generator.release.registration.adapters import DatabricksCli, LegacyAirCli, pick_adapter
from generator.release.registration.base import Adapter, AdapterResult, RegisterError, Target
from generator.release.registration.ledger import Entry, Ledger
from generator.release.registration.runner import ALREADY, CACHED, FAILED, REGISTERED, Outcome, register
from generator.scrub import Scrubber

__all__ = [
    "ALREADY",
    "CACHED",
    "FAILED",
    "REGISTERED",
    "Adapter",
    "AdapterResult",
    "DatabricksCli",
    "Entry",
    "Ledger",
    "LegacyAirCli",
    "Outcome",
    "RegisterError",
    "Scrubber",
    "Target",
    "pick_adapter",
    "register",
]
