"""A node's hash trees across restarts: loaded after a clean stop, rebuilt after a crash."""

from __future__ import annotations

import asyncio
import time

import ringkv
from ringkv.storage import keyspace_cf


def _trees(node: ringkv.Node):
    return node.server.repair.trees


def _on_loop(node: ringkv.Node, fn):
    async def call():
        return fn()

    return asyncio.run_coroutine_threadsafe(call(), node._runner.loop).result(10)


def _wait_ready(node: ringkv.Node, cf: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while _on_loop(node, lambda: _trees(node).get(cf)) is None:
        assert time.monotonic() < deadline, f"the tree of {cf} was not rebuilt within {timeout:g}s"
        time.sleep(0.02)  # poll interval; the deadline above bounds the wait


def _matches_records(node: ringkv.Node, cf: str) -> bool:
    trees = _trees(node)
    return _on_loop(node, lambda: trees.tree(cf).leaf == trees.recompute(cf))


def test_trees_load_after_a_clean_stop_and_rebuild_after_a_crash(tmp_path):
    path = tmp_path / "node"
    cf = keyspace_cf("t")
    node = ringkv.Node(path, listen="tcp://127.0.0.1:0", vnodes=8).start()
    try:
        with node.client() as client:
            client.keyspace_create("t", n=1, r=1, w=1)
            ks = client.keyspace("t")
            for i in range(300):
                ks.put(b"k%d" % i, b"v%d" % i)
            ks.delete(b"k7")
        _wait_ready(node, cf)
        assert _matches_records(node, cf)
    finally:
        node.stop()  # clean: the leaves are stored with the header

    node = ringkv.Node(path, listen="tcp://127.0.0.1:0", vnodes=8).start()
    try:
        trees = _trees(node)
        assert _on_loop(node, lambda: (trees.rebuilt[cf], trees.get(cf) is not None)) == (0, True), "loaded, not rebuilt"
        assert _matches_records(node, cf)
        with node.client() as client:
            client.keyspace("t").put(b"after", b"the restart")
        assert _matches_records(node, cf)
    finally:  # a crash: nothing stored at the stop
        asyncio.run_coroutine_threadsafe(node._server.stop(clean=False), node._runner.loop).result(30)
        node._runner.close()
        node._server = node._runner = None

    node = ringkv.Node(path, listen="tcp://127.0.0.1:0", vnodes=8).start()
    try:
        _wait_ready(node, cf)  # rebuilt from the records, which include the write the old leaves lack
        assert _on_loop(node, lambda: _trees(node).rebuilt[cf]) == 1
        assert _matches_records(node, cf)
        with node.client() as client:
            assert client.keyspace("t").get(b"after").value == b"the restart"
    finally:
        node.stop()
