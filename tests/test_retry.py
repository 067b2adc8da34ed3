"""The one retry helper (generator/retry.py): waits, jitter, which errors are tried again, what is raised.

Sleep and the random draw are injected: every wait is seen, none is spent.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from generator.retry import Policy, Retrying, retry


class Flaky:
    """Fails with the given errors, one per call, then answers "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def is_oserror(exc: Exception) -> bool:
    return isinstance(exc, OSError)


def never(seconds: float) -> None:
    raise AssertionError(f"waited {seconds} s")


def run(call: Callable[[], str], policy: Policy, draw: float = 0.0) -> tuple[list[float], list[Retrying]]:
    waits: list[float] = []
    told: list[Retrying] = []
    retry(call, policy=policy, transient=is_oserror, on_retry=told.append, sleep=waits.append, draw=lambda: draw)
    return waits, told


def test_waits_grow_exponentially_up_to_the_cap() -> None:
    flaky = Flaky(*[OSError("reset")] * 5)
    waits, told = run(flaky, Policy(attempts=6, first_s=1, factor=2, max_s=5))
    assert flaky.calls == 6 and waits == [1, 2, 4, 5, 5]
    assert [(r.failed, r.attempts, r.delay) for r in told] == [(n, 6, w) for n, w in enumerate(waits, 1)]
    assert all(isinstance(r.error, OSError) for r in told)


def test_jitter_only_shortens_a_wait_by_at_most_its_share() -> None:
    policy = Policy(attempts=3, first_s=10, jitter=0.5)
    assert run(Flaky(OSError(), OSError()), policy, draw=0.0)[0] == [10, 20]
    longest_cut = run(Flaky(OSError(), OSError()), policy, draw=0.999999)[0]
    assert longest_cut == pytest.approx([5, 10], abs=1e-4)
    assert run(Flaky(OSError()), Policy(attempts=2, first_s=10, jitter=0), draw=0.9)[0] == [10]
    # The real draw: always within [half, whole] of the exponential wait.
    for _ in range(50):
        assert 5 <= policy.delay(1) <= 10 and 10 <= policy.delay(2) <= 20


def test_a_final_error_is_raised_at_once_without_a_wait() -> None:
    flaky = Flaky(ValueError("denied"))
    waits: list[float] = []
    with pytest.raises(ValueError, match="denied"):
        retry(flaky, policy=Policy(attempts=5), transient=is_oserror, sleep=waits.append)
    assert flaky.calls == 1 and waits == []


def test_the_last_transient_error_is_raised_as_it_is_after_all_attempts() -> None:
    last = ConnectionResetError("third")
    flaky = Flaky(OSError("first"), OSError("second"), last)
    waits: list[float] = []
    with pytest.raises(ConnectionResetError) as caught:
        retry(flaky, policy=Policy(attempts=3, first_s=0.5), transient=is_oserror, sleep=waits.append, draw=lambda: 0)
    assert caught.value is last and flaky.calls == 3 and waits == [0.5, 1.0]


def test_one_attempt_means_no_retry() -> None:
    flaky = Flaky(OSError())
    with pytest.raises(OSError):
        retry(flaky, policy=Policy(attempts=1), transient=is_oserror, sleep=never)
    assert flaky.calls == 1


def test_success_needs_no_wait() -> None:
    assert retry(Flaky(), policy=Policy(), transient=is_oserror, sleep=never) == "ok"


@pytest.mark.parametrize(
    "bad",
    [{"attempts": 0}, {"first_s": -1}, {"factor": 0.5}, {"jitter": 1.5}, {"max_s": -1}],
)
def test_nonsense_policies_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="not a retry policy"):
        Policy(**bad)  # type: ignore[arg-type]
