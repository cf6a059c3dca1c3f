"""A retried request id finds what it produced while it is recent, and the memo stays bounded."""

from __future__ import annotations

from ringkv.quorum.retries import RetryMemo


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_id_is_remembered_for_at_least_keep_seconds_and_then_forgotten():
    clock = _Clock()
    memo: RetryMemo[str] = RetryMemo(size=1000, keep=10.0, clock=clock)
    memo[1] = "first"
    clock.now = 9.9
    memo[2] = "second"
    assert memo.get(1) == "first" and memo.get(2) == "second"
    clock.now = 10.0
    memo[3] = "third"  # the generation holding 1, 2 and 3 ages out next
    assert memo.get(1) == "first"
    clock.now = 20.0
    memo[4] = "fourth"
    assert memo.get(1) is None and memo.get(3) is None
    assert memo.get(4) == "fourth"


def test_an_id_survives_size_later_ids_and_memory_stays_under_twice_size():
    memo: RetryMemo[int] = RetryMemo(size=100, keep=1e9)
    for rid in range(1000):
        memo[rid] = rid
        assert len(memo) < 200
    assert all(memo.get(rid) == rid for rid in range(900, 1000))
    assert memo.get(0) is None
