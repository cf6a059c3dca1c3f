"""``ringkv leave`` and ``ringkv remove`` on a cluster of their own (they change it for good)."""

from __future__ import annotations

import json


def _members(cluster, i: int) -> dict:
    return {m["node_id"]: m for m in cluster.status(i)["members"]}


def test_leave_stops_the_node_and_remove_retires_a_dead_one(cluster):
    n1, n2, n3 = cluster.nodes
    proc = cluster.cli("leave", "--connect", n3.addr)
    assert proc.returncode == 0, proc.stderr
    assert f"node {n3.node_id} is leaving" in proc.stdout
    assert n3.proc.wait(30) == 0  # it hands off its ranges, then stops by itself, cleanly
    cluster.wait_for(lambda: all(_members(cluster, i)[n3.node_id]["status"] == "left" for i in (0, 1)), 5.0, "n3 seen as left")

    ring = json.loads(cluster.cli("ring", "--json", "--connect", n1.addr).stdout)
    owned = {m["node_id"]: m["ownership"] for m in ring["members"]}
    assert owned[n3.node_id] == 0.0
    assert owned[n1.node_id] + owned[n2.node_id] > 0.999

    refused = cluster.cli("remove", n2.node_id, "--connect", n1.addr)
    assert refused.returncode == 3 and "alive" in refused.stderr

    cluster.kill(1)
    cluster.wait_for(lambda: _members(cluster, 0)[n2.node_id]["liveness"] == "down", 5.0, "n2 seen down")
    proc = cluster.cli("remove", n2.node_id, "--connect", n1.addr, "--json")
    assert proc.returncode == 0, proc.stderr
    done = json.loads(proc.stdout)
    assert {k: done[k] for k in ("removed", "ok", "waited")} == {"removed": n2.node_id, "ok": True, "waited": True}
    assert done["keys"] >= 0 and done["transfers"] >= 0 and done["failed"] == []
    assert _members(cluster, 0)[n2.node_id]["status"] == "removed"
    assert _members(cluster, 0)[n1.node_id]["ownership"] > 0.999
