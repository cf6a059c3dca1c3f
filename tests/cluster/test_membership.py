"""Membership of real processes: joining, failure detection, restart with the same identity."""

from __future__ import annotations

import json
import time


def _ring(cluster, addr: str) -> dict:
    proc = cluster.cli("ring", "--json", "--connect", addr)
    assert proc.returncode == 0, proc.stderr
    return {m["node_id"]: m for m in json.loads(proc.stdout)["members"]}


def test_three_nodes_converge_within_five_seconds(cluster):
    # Measured by the fixture: the last node listening (joined) -> every node sees 3 members up
    # and alive. The whole start, three interpreters launched one after the other included,
    # takes about 3 s on an idle 2-core machine; it only has to finish.
    assert cluster.converge_seconds < 5.0, (cluster.converge_seconds, cluster.start_seconds)
    assert cluster.start_seconds < 30.0, cluster.start_seconds
    for i in range(3):
        view = cluster.liveness(i)
        assert len(view) == 3
        assert set(view.values()) == {("up", "alive")}


def test_kill9_is_detected_and_a_restart_keeps_id_and_tokens(healthy):
    cluster = healthy
    victim = cluster.nodes[2]
    before = _ring(cluster, cluster.addrs[0])
    assert set(before) == {n.node_id for n in cluster.nodes}

    cluster.kill(2)
    killed_at = time.monotonic()
    cluster.wait_liveness(2, "down", timeout=5.0)
    assert time.monotonic() - killed_at < 5.0
    # Down is liveness, not membership: the member keeps its status and tokens.
    assert cluster.liveness(0)[victim.node_id] == ("up", "down")
    assert _ring(cluster, cluster.addrs[1])[victim.node_id]["tokens"] == before[victim.node_id]["tokens"]

    old_id = victim.node_id
    cluster.restart(2)
    assert victim.node_id == old_id  # the id is kept in the data directory
    cluster.wait_converged()
    after = _ring(cluster, victim.addr)
    assert {nid: m["tokens"] for nid, m in after.items()} == {nid: m["tokens"] for nid, m in before.items()}
    assert after[old_id]["liveness"] == "alive"


def test_sigterm_stops_a_node_cleanly(healthy):
    cluster = healthy
    node = cluster.nodes[1]
    assert cluster.kill_with_sigterm(1) == 0
    assert "Traceback" not in node.log()
    cluster.wait_liveness(1, "down", timeout=5.0)
