"""Hybrid logical clock: ordered like wall time, never behind it, never repeating."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ringkv.quorum.hlc import HLC, from_millis, to_millis


class FakeWall:
    def __init__(self, ms: int = 1_700_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


steps = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.integers(-5_000, 5_000)),  # wall clock may step back
        st.tuples(st.just("now"), st.just(0)),
        st.tuples(st.just("observe"), st.integers(-10_000, 10_000)),
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_hlc_is_monotonic_and_never_behind_the_physical_clock(program):
    wall = FakeWall()
    clock = HLC(wall, max_drift_ms=60_000)
    last = 0
    for op, arg in program:
        if op == "tick":
            wall.ms += arg
            continue
        if op == "now":
            ts = clock.now()
        else:
            remote = from_millis(wall.ms + arg) + 7
            ts = clock.observe(remote)
            assert ts > remote  # moves past what it saw from a peer
        assert ts > last
        assert to_millis(ts) >= wall.ms
        last = ts


def test_runaway_peer_clock_is_clamped():
    wall = FakeWall()
    clock = HLC(wall, max_drift_ms=1_000)
    ts = clock.observe(from_millis(wall.ms + 10**9))
    assert to_millis(ts) <= wall.ms + 1_000 + 1


def test_real_clock_is_close_to_wall_time():
    import time

    ts = HLC().now()
    assert abs(to_millis(ts) - time.time() * 1000) < 5_000
