"""The ``ringkv`` command against a cluster of ``ringkv serve`` processes.

The module's cluster is itself three ``ringkv serve`` processes; these tests
drive it with the data commands over ``--connect`` and with ``status``/``ring``.
"""

from __future__ import annotations

import json
import signal
import subprocess

import pytest


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def one_line_error(proc: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert fragment in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def rk(cluster):
    """``rk(*args)``: run ``ringkv ARGS --connect <node 1>``."""

    def rk(*args: str, addr: str | None = None) -> subprocess.CompletedProcess:
        return cluster.cli(*args, "--connect", addr or cluster.addrs[0])

    return rk


def test_status_json_lists_every_member_with_the_documented_fields(cluster, rk):
    status = json.loads(ok(rk("status", "--json")).stdout)
    assert status["node_id"] == cluster.nodes[0].node_id
    members = status["members"]
    assert sorted(m["node_id"] for m in members) == sorted(n.node_id for n in cluster.nodes)
    for m in members:
        assert set(m) >= {"node_id", "addr", "status", "liveness", "tokens", "ownership", "keys", "hints"}
        assert (m["status"], m["liveness"], m["tokens"]) == ("up", "alive", cluster.vnodes)
    assert sum(m["ownership"] for m in members) == pytest.approx(1.0, abs=1e-6)
    assert {m["addr"] for m in members} == set(cluster.addrs)


def test_status_table_shows_each_node(cluster, rk):
    out = ok(rk("status")).stdout
    for node in cluster.nodes:
        assert node.node_id in out and node.addr in out
    assert out.count("alive") == 3 and "%" in out


def test_ring_json_has_every_token_and_the_same_view_from_every_node(cluster, rk):
    views = [json.loads(ok(rk("ring", "--json", addr=a)).stdout) for a in cluster.addrs]
    tokens = [{m["node_id"]: m["tokens"] for m in v["members"]} for v in views]
    assert tokens[0] == tokens[1] == tokens[2]
    assert all(len(t) == cluster.vnodes for t in tokens[0].values())
    assert sum(m["ownership"] for m in views[0]["members"]) == pytest.approx(1.0, abs=1e-6)
    assert all(m["replica_ownership"] == pytest.approx(1.0) for m in views[0]["members"])  # N=3 of 3 nodes
    table = ok(rk("ring")).stdout
    assert all(n.node_id in table for n in cluster.nodes)


def test_put_get_delete_over_connect(cluster, rk):
    ok(rk("put", "alice", "hello cluster"))
    assert ok(rk("get", "alice", addr=cluster.addrs[2])).stdout.splitlines()[0] == "hello cluster"
    doc = json.loads(ok(rk("get", "alice", "--json", "--r", "3")).stdout)
    assert doc["values"] == ["hello cluster"] and doc["siblings"] is False and doc["keyspace"] == "default"
    assert json.loads(ok(rk("delete", "alice", "--json", "--w", "3")).stdout)["ok"] is True
    one_line_error(rk("get", "alice"), 1, "not found")


def test_connect_list_from_the_environment(cluster):
    env = {"RINGKV_CONNECT": ",".join(cluster.addrs[:2])}
    assert json.loads(ok(cluster.cli("put", "envkey", "from env", "--json", env=env)).stdout) == {"key": "envkey", "keyspace": "default", "ok": True}
    assert ok(cluster.cli("get", "envkey", "--raw", env=env)).stdout == "from env"


def test_siblings_over_connect(rk):
    ok(rk("put", "cart", "apples"))
    ctx = json.loads(ok(rk("get", "cart", "--json")).stdout)["context"]
    ok(rk("put", "cart", "apples,bread", "--context", ctx))
    ok(rk("put", "cart", "apples,milk", "--context", ctx))
    doc = json.loads(ok(rk("get", "cart", "--json", "--r", "3")).stdout)
    assert doc["siblings"] is True and sorted(doc["values"]) == ["apples,bread", "apples,milk"]
    text = ok(rk("get", "cart")).stdout
    assert text.startswith("2 siblings") and "sibling 1: " in text and "sibling 2: " in text
    ok(rk("put", "cart", "apples,bread,milk", "--context", doc["context"]))
    assert json.loads(ok(rk("get", "cart", "--json")).stdout)["values"] == ["apples,bread,milk"]


def test_keyspaces_over_connect(cluster, rk):
    created = json.loads(ok(rk("keyspace", "create", "cli_ks", "--n", "3", "--r", "1", "--w", "3", "--conflict", "lww", "--json")).stdout)
    assert created == {"name": "cli_ks", "n": 3, "r": 1, "w": 3, "conflict": "lww"}
    for addr in cluster.addrs:  # created everywhere before the command returned
        listed = json.loads(ok(rk("keyspace", "list", "--json", addr=addr)).stdout)["keyspaces"]
        assert created in listed
    ok(rk("put", "k", "v", "--keyspace", "cli_ks"))
    assert ok(rk("get", "k", "-k", "cli_ks")).stdout.startswith("v\n")
    one_line_error(rk("keyspace", "create", "cli_ks"), 3, "already exists")
    one_line_error(rk("keyspace", "create", "cli_bad", "--n", "2", "--r", "3"), 3, "impossible")
    assert "dropped keyspace cli_ks" in ok(rk("keyspace", "drop", "cli_ks")).stdout
    one_line_error(rk("get", "k", "-k", "cli_ks"), 3, "does not exist")


def test_get_local_reads_exactly_one_replica(cluster, rk):
    ok(rk("put", "everywhere", "on all three", "--w", "3"))
    for addr in cluster.addrs:
        doc = json.loads(ok(rk("get", "everywhere", "--local", "--json", addr=addr)).stdout)
        assert doc["values"] == ["on all three"]
    one_line_error(rk("get", "never-written", "--local"), 1, "not found")
    one_line_error(rk("get", "everywhere", "--local", "--r", "2"), 2, "--r does not apply")


def test_bad_requests_over_connect_are_one_line_errors(cluster, rk):
    one_line_error(rk("get", "k", "--r", "4"), 3, "impossible")
    one_line_error(rk("put", "k", "v", "--keyspace", "nope"), 3, "does not exist")
    one_line_error(rk("put", "k", "v", "--timestamp", "5"), 3, "lww")
    one_line_error(cluster.cli("status"), 2, "--connect")
    one_line_error(cluster.cli("get", "k", "--connect", "not-an-address"), 2, "bad node address")


def test_remove_refuses_a_live_member(cluster, rk):
    one_line_error(rk("remove", cluster.nodes[1].node_id), 3, "only a down member can be removed")
    one_line_error(rk("remove", "nobody"), 3, "no member")


def serve_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    """A failed start: exit 3, its log lines, then one ``error:`` line last, no traceback."""
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert lines and lines[-1].startswith("error: ") and fragment in lines[-1], proc.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""  # never announced as listening


def test_serve_start_errors_are_one_line_and_exit_3(cluster, tmp_path):
    busy = cluster.addrs[0]
    serve_error(cluster.cli("serve", "--data-dir", str(tmp_path / "x"), "--listen", busy), "address already in use")
    serve_error(cluster.cli("serve", "--data-dir", str(cluster.nodes[0].data_dir), "--listen", "tcp://127.0.0.1:0"), "in use")
    serve_error(
        cluster.cli("serve", "--data-dir", str(tmp_path / "y"), "--listen", "tcp://127.0.0.1:0", "--seed", "tcp://127.0.0.1:9", "--join-wait", "0.5"),
        "could not reach any seed",
    )
    first = cluster.cli("serve", "--data-dir", str(tmp_path / "z"), "--listen", busy)  # leaves a node id in z
    assert first.returncode == 3
    serve_error(cluster.cli("serve", "--data-dir", str(tmp_path / "z"), "--listen", busy, "--node-id", "someone-else"), "belongs to node")


def test_serve_stops_cleanly_on_sigint(solo):
    assert solo.node_id and solo.addr.startswith("tcp://127.0.0.1:")
    assert solo.kill(signal.SIGINT) == 0
    assert "Traceback" not in solo.log()


def test_dump_and_load_over_connect(cluster, rk, tmp_path):
    ok(rk("keyspace", "create", "cli_dump", "--n", "3", "--r", "2", "--w", "2"))
    for i in range(30):
        ok(rk("put", f"key{i}", f"value{i}", "-k", "cli_dump"))
    ok(rk("delete", "key0", "-k", "cli_dump"))
    out = tmp_path / "dump.jsonl"
    ok(rk("dump", "-k", "cli_dump", "--output", str(out), addr=cluster.addrs[1]))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(d["key"] for d in lines) == sorted(f"key{i}" for i in range(1, 30))
    assert all(d["values"] == [f"value{d['key'][3:]}"] for d in lines)
    ok(rk("keyspace", "create", "cli_load", "--n", "3"))
    ok(rk("load", str(out), "-k", "cli_load", addr=cluster.addrs[2]))
    again = tmp_path / "again.jsonl"
    ok(rk("dump", "-k", "cli_load", "--output", str(again)))
    assert sorted((d["key"], d["values"]) for d in map(json.loads, again.read_text().splitlines())) == sorted((d["key"], d["values"]) for d in lines)
