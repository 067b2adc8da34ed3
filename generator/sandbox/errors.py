"""The sandbox's two failures, a service's and a base image's: each reads as one line.

One line says what failed, why (a log's gist or an error's first line) and where the log is, so that a
failure is read at a glance and the log holds the rest.
"""

from __future__ import annotations

from generator.errors import FleetError


class ServiceError(FleetError):
    """A service cannot start or stop: one line saying what failed, why (its log's gist) and where the log is."""


class SandboxBaseError(FleetError):
    """A sandbox base image could not be made: one line saying which, why, and where the log is."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.splitlines()))
