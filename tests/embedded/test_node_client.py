"""A client of an in-process node, used from the node's own event loop."""

from __future__ import annotations

import asyncio

import ringkv


def test_blocking_calls_inside_the_clients_own_loop_fail_fast_instead_of_deadlocking(tmp_path):
    from ringkv.errors import BadRequest

    node = ringkv.Node(tmp_path / "node", listen="tcp://127.0.0.1:0", vnodes=8)
    node.start()
    try:
        client = node.client()

        async def inside() -> list[str]:
            errors = []
            for call in (lambda: client.keyspace("default").get(b"k"), lambda: list(client.feed("f").iterate())):
                try:
                    call()
                except BadRequest as exc:
                    errors.append(str(exc))
            return errors

        errors = asyncio.run_coroutine_threadsafe(inside(), node._runner.loop).result(10)
        assert len(errors) == 2 and all("deadlock" in e for e in errors)
    finally:
        node.stop()
