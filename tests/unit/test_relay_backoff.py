"""Unit tests for the relay's reconnect backoff (exponential, full jitter, capped)."""

from __future__ import annotations

import random

import pytest

from edge_relay.backoff import Backoff

pytestmark = pytest.mark.unit


def test_backoff_ceiling_doubles_until_the_cap():
    backoff = Backoff(0.5, 30.0)
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.ceiling(10_000) == 30.0


def test_backoff_delays_stay_within_zero_and_the_ceiling():
    backoff = Backoff(0.1, 5.0, uniform=random.Random(7).uniform)
    for attempt in range(200):
        delay = backoff.next_delay()
        assert 0.0 <= delay <= min(5.0, 0.1 * 2**attempt)


def test_backoff_uses_full_jitter_range():
    calls = []

    def record(low, high):
        calls.append((low, high))
        return high

    backoff = Backoff(1.0, 8.0, uniform=record)
    delays = [backoff.next_delay() for _ in range(5)]
    assert calls == [(0.0, 1.0), (0.0, 2.0), (0.0, 4.0), (0.0, 8.0), (0.0, 8.0)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]


def test_backoff_reset_starts_again_from_base():
    backoff = Backoff(1.0, 8.0, uniform=lambda low, high: high)
    for _ in range(4):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 1.0


@pytest.mark.parametrize("base,cap", [(0, 1), (-1, 1), (2, 1)])
def test_backoff_rejects_impossible_bounds(base, cap):
    with pytest.raises(ValueError):
        Backoff(base, cap)
