"""What a registry's answer means, one rule for every step that asks (plan, build) or pushes (push).

- **Present or absent.** A manifest that is there is present; a 404 (the engine's NotFound, "manifest
  unknown") is absent. Anything else (401, 403, 5xx, no answer) says nothing about the image: it is a
  RegistryError naming the registry and the image, never taken for "absent, build it" nor for "present,
  skip it".
- **Transient.** Trouble another try may not meet (408, 429, 5xx, a refused or reset connection, a
  timeout, "context deadline exceeded") is retried with backoff (`generator.retry`) before it is an error.
- **Unreachable.** No HTTP answer at all (refused, no such host, no route, timeouts): the service cannot
  be reached, which the CLI reports with exit status 2.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import docker.errors
import requests.exceptions

from generator.errors import FleetError
from generator.release.credentials import CredentialSource
from generator.retry import Policy, Retrying, retry

# Registry or network trouble that another try may not meet; anything else (denied, unauthorized, name
# invalid, manifest unknown) comes back the same.
TRANSIENT = re.compile(
    r"\b(?:429|5\d\d)\b|too ?many ?requests|service unavailable|bad gateway|gateway time-?out"
    r"|internal server error|connection (?:reset|refused|aborted)|broken pipe|timed? ?out|timeout"
    r"|deadline exceeded|temporar(?:y|ily)|unexpected EOF|\bEOF\b",
    re.IGNORECASE,
)
# A registry's own HTTP status (plan's HEAD). Not the engine's: it answers 500 whatever went wrong, so what
# comes through the engine is judged by its text.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# No answer at all: the engine's wording of a refused connection, a name that does not resolve, a host or
# a registry that never answers (the engine gives up on one after about 25 s: "context deadline exceeded",
# "Client.Timeout exceeded while awaiting headers").
UNREACHABLE = re.compile(
    r"connection refused|no such host|no route to host|network is unreachable|i/o timeout|deadline exceeded"
    r"|awaiting headers|timed? ?out|timeout|server misbehaving",
    re.IGNORECASE,
)
_T = TypeVar("_T")
# Asking whether an image exists is quick: a few tries, a few seconds apart.
LOOKUP = Policy(attempts=3, first_s=2.0)

Say = Callable[[str], object]


def transient(message: str, status: int | None = None) -> bool:
    """Is this registry error worth another try?"""
    return (status is not None and status in TRANSIENT_STATUS) or bool(TRANSIENT.search(message))


def unreachable(message: str) -> bool:
    """Does this error say that no answer came at all (rather than an answer that was no)?"""
    return bool(UNREACHABLE.search(message))


class RegistryError(FleetError):
    """The registry cannot say whether an image exists (exit status 2): one line naming image and why."""

    def __init__(
        self, ref: str, why: str, advice: str = "", *, transient: bool = False, doing: str | None = None
    ) -> None:
        # `doing`: the operation that failed (a write, a listing); without it the error is about a lookup.
        self.ref, self.why, self.advice, self.transient, self.doing = ref, why, advice, transient, doing
        head = f"{doing} on {ref} failed" if doing else f"cannot tell whether {ref} is in the registry"
        super().__init__(f"{head}: {why}" + (f". {advice}" if advice else ""))

    def gave_up(self, tries: int) -> RegistryError:
        """The same error, saying how many tries it took (when more than one)."""
        why = f"{self.why} (after {tries} tries)" if tries > 1 else self.why
        return RegistryError(self.ref, why, self.advice, doing=self.doing)


def asking(
    ref: str,
    once: Callable[[], _T],
    *,
    policy: Policy = LOOKUP,
    say: Say | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> _T:
    """`once()` (present or absent, a digest, or a RegistryError), tried again while its RegistryError is
    transient."""
    tries = 1

    def again(r: Retrying) -> None:
        nonlocal tries
        tries = r.failed + 1
        if say is not None:
            say(f"{ref}: {r.error}; try {tries}/{r.attempts} in {r.delay:.1f} s")

    try:
        return retry(
            once,
            policy=policy,
            transient=lambda e: isinstance(e, RegistryError) and e.transient,
            on_retry=again,
            sleep=sleep,
        )
    except RegistryError as exc:
        raise exc.gave_up(tries) from None


def exists_via_engine(
    client: Any,
    ref: str,
    source: CredentialSource,
    *,
    policy: Policy = LOOKUP,
    say: Say | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> bool:
    """Whether the registry has `ref`, asked through the engine's distribution inspect with `source`'s
    credentials. CredentialsError when they cannot be found out; RegistryError when the answer is not
    yes or no."""
    auth = source.for_ref(ref).auth_config()

    def once() -> bool:
        try:
            client.images.get_registry_data(ref, auth_config=auth)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            # The engine answers 500 whatever the registry said; its explanation says what it was.
            text = source.scrubber.line(str(exc.explanation or exc))
            raise RegistryError(ref, f"the engine says: {text}", transient=transient(text)) from None
        except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
            text = source.scrubber.line(str(exc))
            raise RegistryError(ref, f"the Docker engine cannot be reached: {text}") from None
        return True

    return asking(ref, once, policy=policy, say=say, sleep=sleep)
