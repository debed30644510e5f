"""Reconnect delays: exponential backoff with full jitter.

"Full jitter" (a uniformly random delay between 0 and the exponential ceiling) keeps a
fleet of relays from reconnecting in lock-step after a gateway restart. The random
source is injected so tests can check the bounds deterministically.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delay before reconnect attempt n: uniform(0, min(cap, base * 2**n)).

    ``reset()`` after a session that worked, so the next loss starts from ``base`` again.
    """

    def __init__(self, base: float, cap: float, *, uniform: Callable[[float, float], float] = random.uniform):
        if base <= 0 or cap < base:
            raise ValueError("backoff needs 0 < base <= cap")
        self.base = base
        self.cap = cap
        self._uniform = uniform
        self.attempt = 0

    def ceiling(self, attempt: int) -> float:
        # Cap the exponent first: 2**attempt would overflow a float after ~1000 failures.
        return min(self.cap, self.base * (2 ** min(attempt, 62)))

    def next_delay(self) -> float:
        delay = self._uniform(0.0, self.ceiling(self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
