"""Helpers for transport tests: run a coroutine on a fresh loop, check no task leaks."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture
def run():
    """``run(coro, timeout=20)``: asyncio.run with a deadline and a leaked-task check."""

    def run(coro, timeout: float = 20.0):
        async def main():
            result = await asyncio.wait_for(coro, timeout)
            leaked = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert not leaked, f"tasks left running: {leaked}"
            return result

        return asyncio.run(main())

    return run
