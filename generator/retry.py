"""Another try after a failure that another try may not meet: exponential backoff with jitter.

One helper for every network loop of the project (pushing to a registry, asking a registry, fetching a
file, calling a registration CLI). What is worth another try stays each caller's own rule, given as
`transient`; this module only decides when to try again and how long to wait first.

    policy = Policy(attempts=4, first_s=1.0)
    value = retry(lambda: fetch(url), policy=policy, transient=lambda exc: isinstance(exc, Busy))

The wait before try n+1 is `first_s * factor**(n-1)`, at most `max_s`, less up to `jitter` of itself
drawn at random: many clients that failed together (a registry restarting under a CI fan-out) then come
back spread out rather than all at the same instant.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

_T = TypeVar("_T")


@dataclass(frozen=True)
class Policy:
    attempts: int = 4  # tries in all, the first included: 1 means no retry
    first_s: float = 1.0  # the wait after the first failure, before jitter
    factor: float = 2.0
    max_s: float = 60.0  # no single wait is longer
    jitter: float = 0.5  # each wait is cut by a random fraction of itself, up to this much

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_s < 0 or self.factor < 1 or self.max_s < 0 or not 0 <= self.jitter <= 1:
            raise ValueError(f"not a retry policy: {self}")

    def delay(self, failed: int, draw: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the `failed`-th failed try (1-based)."""
        base = min(self.max_s, self.first_s * self.factor ** (failed - 1))
        return base * (1 - self.jitter * draw())


@dataclass(frozen=True)
class Retrying:
    """What `on_retry` is told before each wait: try `failed` of `attempts` failed with `error`."""

    failed: int
    attempts: int
    delay: float
    error: Exception


def retry(
    call: Callable[[], _T],
    *,
    policy: Policy,
    transient: Callable[[Exception], bool],
    on_retry: Callable[[Retrying], object] | None = None,
    sleep: Callable[[float], object] = time.sleep,
    draw: Callable[[], float] = random.random,
) -> _T:
    """`call()`'s value, trying again after each transient failure while tries are left.

    The error of the last try, or of the first one that is not transient, is raised as it is: the
    caller words it (and can count the tries from `on_retry`). `sleep` and `draw` (a number in [0, 1))
    are there for tests, which then see every wait without spending it.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == policy.attempts or not transient(exc):
                raise
            delay = policy.delay(attempt, draw)
            if on_retry is not None:
                on_retry(Retrying(attempt, policy.attempts, delay, exc))
            sleep(delay)
    raise AssertionError("unreachable: the last try returns or raises")
