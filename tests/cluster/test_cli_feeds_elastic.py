"""Feeds, ``join``, ``status`` transfers, ``repair`` and ``leave`` through the CLI, on real processes.

One 4-node cluster for the module: the conftest's three nodes plus a fourth
started with ``ringkv join``. The last tests make that fourth node leave, so
they come last.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

KS = "cfx"


@pytest.fixture(scope="module")
def cluster(cluster):
    """The conftest's 3-node cluster plus a fourth node that joins with ``ringkv join``."""
    node_class = type(cluster.nodes[0])

    class JoinedNode(node_class):  # type: ignore[misc, valid-type]
        def launch(self, seeds, extra=()):
            argv = [sys.executable, "-m", "ringkv.cli.main", "join", "--data-dir", str(self.data_dir), "--listen", self.listen]
            for s in seeds:
                argv += ["--seed", s]
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(argv + list(extra), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=_env())
            self._lines = queue.Queue()
            threading.Thread(target=self._read, args=(self.proc, self._lines), daemon=True).start()

    n4 = JoinedNode("n4", cluster.root / "n4")
    cluster.nodes.append(n4)  # from here on, teardown kills it too
    n4.launch([cluster.nodes[0].addr], ("--vnodes", str(cluster.vnodes)))
    n4.wait_listening()
    cluster.wait_converged(timeout=30.0)  # up everywhere once its ranges are streamed
    return cluster


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("RINGKV_")}


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def keyspace(cluster) -> str:
    _ok(cluster.cli("keyspace", "create", KS, "--n", "3", "--r", "2", "--w", "2", "--connect", cluster.nodes[0].addr))
    return KS


def test_join_verb_added_a_member_and_status_lists_its_transfers(cluster):
    n4 = cluster.nodes[3]
    members = {m["node_id"]: m for m in cluster.status(0)["members"]}
    assert len(members) == 4 and members[n4.node_id]["status"] == "up"
    assert members[n4.node_id]["ownership"] > 0.05
    text = _ok(cluster.cli("status", "--connect", n4.addr)).stdout
    assert f"range transfers of {n4.node_id}" in text  # the pulls of its join
    assert "pull" in text and "done" in text


def test_feed_append_and_list_through_every_node(cluster, keyspace):
    ids = []
    for node in cluster.nodes:
        proc = _ok(cluster.cli("feed", "append", "timeline", f"hello from {node.name}", "-k", keyspace, "--connect", node.addr))
        ids.append(proc.stdout.strip())
    assert ids == sorted(ids)
    for node in cluster.nodes:
        listed = json.loads(_ok(cluster.cli("feed", "list", "timeline", "-k", keyspace, "--json", "--connect", node.addr)).stdout)
        assert [e["id"] for e in listed] == ids, node.name
        assert [e["data"] for e in listed] == [f"hello from {n.name}" for n in cluster.nodes]
    got = json.loads(_ok(cluster.cli("feed", "get", "timeline", ids[1], "-k", keyspace, "--json", "--connect", cluster.nodes[2].addr)).stdout)
    assert (got["prev_id"], got["next_id"]) == (ids[0], ids[2])
    assert _ok(cluster.cli("feeds", "-k", keyspace, "--connect", cluster.nodes[3].addr)).stdout.split() == ["timeline"]
    bad = cluster.cli("feed", "get", "timeline", "not-an-id", "-k", keyspace, "--connect", cluster.nodes[0].addr)
    assert bad.returncode == 3 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1


def test_feed_follow_sees_appends_from_other_nodes_and_stops_on_ctrl_c(cluster, keyspace):
    client = cluster.client()
    feed = client.keyspace(keyspace).feed("follow-me")
    start = feed.append("before")
    argv = [sys.executable, "-m", "ringkv.cli.main", "feed", "follow", "follow-me", "-k", keyspace, "--after", start, "--json", "--poll", "0.05", "--connect", cluster.nodes[1].addr]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=_env(), text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        for node in (cluster.nodes[2], cluster.nodes[3]):
            _ok(cluster.cli("feed", "append", "follow-me", f"via {node.name}", "-k", keyspace, "--connect", node.addr))
        seen = []
        deadline = time.monotonic() + 15
        while len(seen) < 2 and time.monotonic() < deadline:
            try:
                seen.append(json.loads(lines.get(timeout=max(0.0, deadline - time.monotonic()))))
            except queue.Empty:
                break
        assert [e["data"] for e in seen] == ["via n3", "via n4"], proc.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_repair_prints_its_statistics(cluster, keyspace):
    repair = pytest.importorskip("ringkv.repair")
    if not hasattr(repair, "run_repair"):
        pytest.skip("ringkv.repair.run_repair does not exist yet")
    client = cluster.client()
    for i in range(20):
        client.keyspace(keyspace).put(f"r{i}", f"v{i}")
    text = _ok(cluster.cli("repair", "--connect", cluster.nodes[0].addr)).stdout
    for column in ("ranges compared", "keys repaired", "tombstones purged", "seconds"):
        assert column in text
    assert cluster.nodes[0].node_id in text
    stats = json.loads(_ok(cluster.cli("repair", "-k", keyspace, "--json", "--connect", cluster.nodes[1].addr)).stdout)
    assert stats["node_id"] == cluster.nodes[1].node_id and stats["keyspace"] == keyspace
    assert stats["ranges_compared"] >= 1 and stats["keys_repaired"] >= 0 and stats["tombstones_purged"] >= 0
    assert stats["seconds"] >= 0
    unknown = cluster.cli("repair", "-k", "no-such-ks", "--connect", cluster.nodes[0].addr)
    assert unknown.returncode == 3 and unknown.stderr.startswith("error: ")


def test_leave_of_one_of_four_nodes_keeps_every_key(cluster, keyspace):
    n1, n4 = cluster.nodes[0], cluster.nodes[3]
    client = cluster.client(*(n.addr for n in cluster.nodes[:3]))
    ks = client.keyspace(keyspace)
    written = {f"before-leave:{i}": f"value {i}" for i in range(300)}
    for k, v in written.items():
        ks.put(k, v)
    feed = ks.feed("before-leave")
    feed_ids = [feed.append(f"entry {i}") for i in range(10)]

    proc = _ok(cluster.cli("leave", "--connect", n4.addr, timeout=90))
    assert f"node {n4.node_id} is leaving" in proc.stdout
    assert f"node {n4.node_id} left the cluster" in proc.stdout, proc.stdout
    assert n4.proc.wait(30) == 0  # it stops by itself, cleanly

    def gone() -> bool:
        members = {m["node_id"]: m for m in cluster.status(0)["members"]}
        m = members.get(n4.node_id)
        return m is None or (m["status"] == "left" and m["ownership"] == 0.0)

    cluster.wait_for(gone, 10.0, "n4 seen as left by n1")
    status = json.loads(_ok(cluster.cli("status", "--json", "--connect", n1.addr)).stdout)
    assert all(m["status"] == "up" for m in status["members"] if m["node_id"] != n4.node_id)
    assert sum(m["ownership"] for m in status["members"]) == pytest.approx(1.0)

    missing = [k for k, v in written.items() if (r := ks.get(k)) is None or r.values != [v.encode()]]
    assert missing == []
    assert [e.id for e in feed.iterate()] == feed_ids


def test_a_left_node_that_stopped_is_not_reported_alive(cluster):
    n4 = cluster.nodes[3]
    if n4.running:
        pytest.skip("needs the leave test to have run")
    member = next(m for m in cluster.status(0)["members"] if m["node_id"] == n4.node_id)
    assert member["liveness"] != "alive"
