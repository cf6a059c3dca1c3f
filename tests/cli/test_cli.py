"""The ``ringkv`` command, run as a real process (``python -m ringkv.cli.main``)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest


def get_json(cli, data_dir: str, key: str, *extra: str) -> dict:
    return json.loads(cli.ok(cli.run("get", key, "--json", *extra, data_dir=data_dir)).out)


# -- basics ------------------------------------------------------------------


def test_version(cli):
    import ringkv

    proc = cli.ok(cli.run("--version"))
    assert proc.out.strip() == f"ringkv {ringkv.__version__}"


def test_put_get_delete_round_trip(data_dir, cli):
    cli.ok(cli.run("put", "alice", "hello world", data_dir=data_dir))
    proc = cli.ok(cli.run("get", "alice", data_dir=data_dir))
    lines = proc.out.splitlines()
    assert lines[0] == "hello world"
    assert lines[-1].startswith("context: ")
    assert proc.err == ""

    cli.ok(cli.run("put", "alice", "second", data_dir=data_dir))
    assert cli.ok(cli.run("get", "alice", "--raw", data_dir=data_dir)).stdout == b"second"

    cli.ok(cli.run("delete", "alice", data_dir=data_dir))
    cli.assert_one_line_error(cli.run("get", "alice", data_dir=data_dir), 1, "not found")
    cli.ok(cli.run("delete", "alice", data_dir=data_dir))  # idempotent


def test_data_dir_option_after_the_command_and_from_env(data_dir, cli):
    cli.ok(cli.run("put", "k", "v", "--data-dir", data_dir))
    proc = cli.ok(cli.run("get", "k", "--raw", env={"RINGKV_DATA_DIR": data_dir}))
    assert proc.stdout == b"v"


def test_binary_value_from_stdin_round_trips(data_dir, cli):
    blob = bytes(range(256)) * 4
    cli.ok(cli.run("put", "blob", "--file", "-", data_dir=data_dir, input=blob))
    assert cli.ok(cli.run("get", "blob", "--raw", data_dir=data_dir)).stdout == blob
    doc = get_json(cli, data_dir, "blob")
    assert doc["encoding"] == "base64"
    import base64

    assert base64.b64decode(doc["values"][0]) == blob


def test_get_json_has_documented_fields(data_dir, cli):
    cli.ok(cli.run("put", "k", "héllo", data_dir=data_dir))
    doc = get_json(cli, data_dir, "k")
    assert doc["key"] == "k"
    assert doc["keyspace"] == "default"
    assert doc["values"] == ["héllo"]
    assert doc["encoding"] == "utf-8"
    assert doc["siblings"] is False
    assert isinstance(doc["context"], str) and doc["context"]
    put_doc = json.loads(cli.ok(cli.run("put", "k2", "v", "--json", data_dir=data_dir)).out)
    assert put_doc == {"key": "k2", "keyspace": "default", "ok": True}


# -- siblings and contexts ----------------------------------------------------


def test_siblings_from_two_puts_with_the_same_context(data_dir, cli):
    cli.ok(cli.run("put", "cart", "apples", data_dir=data_dir))
    ctx = get_json(cli, data_dir, "cart")["context"]
    cli.ok(cli.run("put", "cart", "bread", "--context", ctx, data_dir=data_dir))
    cli.ok(cli.run("put", "cart", "milk", "--context", ctx, data_dir=data_dir))

    doc = get_json(cli, data_dir, "cart")
    assert doc["siblings"] is True
    assert sorted(doc["values"]) == ["bread", "milk"]

    text = cli.ok(cli.run("get", "cart", data_dir=data_dir)).out
    assert "2 siblings" in text
    sibling_lines = [line for line in text.splitlines() if line.startswith("sibling ")]
    assert sorted(line.split(": ", 1)[1] for line in sibling_lines) == ["bread", "milk"]

    cli.assert_one_line_error(cli.run("get", "cart", "--raw", data_dir=data_dir), 3, "siblings")

    # Resolve: a put with the context of the read that saw both siblings.
    cli.ok(cli.run("put", "cart", "bread,milk", "--context", doc["context"], data_dir=data_dir))
    resolved = get_json(cli, data_dir, "cart")
    assert resolved["values"] == ["bread,milk"] and resolved["siblings"] is False


def test_delete_with_context(data_dir, cli):
    cli.ok(cli.run("put", "k", "v", data_dir=data_dir))
    ctx = get_json(cli, data_dir, "k")["context"]
    cli.ok(cli.run("delete", "k", "--context", ctx, data_dir=data_dir))
    assert cli.run("get", "k", data_dir=data_dir).returncode == 1


def test_lww_keyspace_keeps_one_value(data_dir, cli):
    cli.ok(cli.run("keyspace", "create", "sessions", "--conflict", "lww", data_dir=data_dir))
    cli.ok(cli.run("put", "s", "v0", "-k", "sessions", data_dir=data_dir))
    ctx = get_json(cli, data_dir, "s", "-k", "sessions")["context"]
    cli.ok(cli.run("put", "s", "a", "--context", ctx, "--keyspace", "sessions", data_dir=data_dir))
    cli.ok(cli.run("put", "s", "b", "--context", ctx, "--keyspace", "sessions", data_dir=data_dir))
    doc = get_json(cli, data_dir, "s", "--keyspace", "sessions")
    assert doc["values"] == ["b"] and doc["siblings"] is False


# -- keyspaces ----------------------------------------------------------------


def test_keyspace_create_list_drop(data_dir, cli):
    created = json.loads(cli.ok(cli.run("keyspace", "create", "users", "--conflict", "lww", "--json", data_dir=data_dir)).out)
    assert created == {"name": "users", "n": 1, "r": 1, "w": 1, "conflict": "lww"}
    cli.ok(cli.run("keyspace", "create", "events", "--n", "3", "--r", "2", "--w", "2", data_dir=data_dir))

    listed = json.loads(cli.ok(cli.run("keyspace", "list", "--json", data_dir=data_dir)).out)
    by_name = {ks["name"]: ks for ks in listed["keyspaces"]}
    assert set(by_name) == {"default", "users", "events"}
    assert (by_name["events"]["n"], by_name["events"]["r"], by_name["events"]["w"]) == (3, 2, 2)
    assert by_name["users"]["conflict"] == "lww"

    table = cli.ok(cli.run("keyspace", "list", data_dir=data_dir)).out
    for name in ("default", "users", "events", "lww"):
        assert name in table

    cli.ok(cli.run("put", "k", "v", "-k", "users", data_dir=data_dir))
    assert cli.ok(cli.run("get", "k", "--raw", "-k", "users", data_dir=data_dir)).stdout == b"v"
    assert cli.run("get", "k", data_dir=data_dir).returncode == 1  # keyspaces are separate

    cli.ok(cli.run("keyspace", "drop", "users", data_dir=data_dir))
    listed = json.loads(cli.ok(cli.run("keyspace", "list", "--json", data_dir=data_dir)).out)
    assert {ks["name"] for ks in listed["keyspaces"]} == {"default", "events"}
    cli.assert_one_line_error(cli.run("get", "k", "-k", "users", data_dir=data_dir), 3, "does not exist")


# -- exit codes and error lines -------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["put"],
        ["get"],
        ["frobnicate"],
        ["keyspace"],
        ["keyspace", "create", "x", "--conflict", "random"],
        ["get", "k", "--no-such-option"],
        ["put", "k", "v", "--context", "not base64!"],
        ["put", "k"],  # neither VALUE nor --file
    ],
)
def test_usage_errors_exit_2(data_dir, argv, cli):
    proc = cli.run(*argv, data_dir=data_dir)
    assert proc.returncode == 2, (proc.out, proc.err)
    assert "Traceback" not in proc.err and "error" in proc.err


def test_no_target_is_a_usage_error(cli):
    cli.assert_one_line_error(cli.run("get", "k"), 2, "--data-dir")


def test_missing_key_exits_1(data_dir, cli):
    cli.ok(cli.run("put", "other", "v", data_dir=data_dir))
    proc = cli.run("get", "missing", data_dir=data_dir)
    cli.assert_one_line_error(proc, 1, "'missing' not found")
    assert proc.stdout == b""
    assert cli.run("get", "missing", "--json", data_dir=data_dir).returncode == 1


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["keyspace", "create", "bad name"], "bad keyspace name"),
        (["keyspace", "create", "ok", "--n", "2", "--r", "3"], "r=3 is impossible"),
        (["keyspace", "drop", "nosuch"], "'nosuch' does not exist"),
        (["keyspace", "drop", "default"], "cannot be dropped"),
        (["put", "k", "v", "--keyspace", "nosuch"], "'nosuch' does not exist"),
        (["put", "k", "v", "--context", "AAAA"], "not a ringkv causal context"),
        (["put", "k", "v", "--timestamp", "5"], "lww"),
        (["put", "k" * 70_000, "v"], "limit"),
        (["get", "k", "--r", "2"], "r=2 is impossible"),
    ],
)
def test_other_errors_exit_3_with_one_line(data_dir, argv, fragment, cli):
    cli.ok(cli.run("put", "seed", "v", data_dir=data_dir))
    cli.assert_one_line_error(cli.run(*argv, data_dir=data_dir), 3, fragment)


def test_value_too_large_exits_3(data_dir, cli):
    big = b"x" * (16 * 1024 * 1024 + 1)
    cli.assert_one_line_error(cli.run("put", "big", "--file", "-", data_dir=data_dir, input=big), 3, "limit")
    assert cli.run("get", "big", data_dir=data_dir).returncode == 1


def test_os_errors_exit_3(tmp_path, cli):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    cli.assert_one_line_error(cli.run("put", "k", "v", data_dir=str(not_a_dir)), 3, "not a directory")
    cli.assert_one_line_error(cli.run("put", "k", "--file", str(tmp_path / "absent"), data_dir=str(tmp_path / "d")), 3, "No such file")


def test_reading_a_missing_data_dir_does_not_create_it(tmp_path, cli):
    where = tmp_path / "nothing-here"
    cli.assert_one_line_error(cli.run("get", "k", data_dir=str(where)), 3, "does not exist")
    cli.assert_one_line_error(cli.run("keyspace", "list", data_dir=str(where)), 3, "does not exist")
    assert not where.exists()


def test_data_dir_in_use_by_another_process_exits_3(data_dir, cli):
    import ringkv

    with ringkv.open(data_dir):
        cli.assert_one_line_error(cli.run("get", "k", data_dir=data_dir), 3, "in use")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_connect_to_no_node_is_a_clear_error(how, cli):
    if how == "flag":
        proc = cli.run("--connect", "tcp://127.0.0.1:9", "--timeout", "0.5", "get", "k")
    else:
        proc = cli.run("get", "k", "--timeout", "0.5", env={"RINGKV_CONNECT": "tcp://127.0.0.1:9"})
    cli.assert_one_line_error(proc, 3, "no ringkv node answered at tcp://127.0.0.1:9")


def test_cluster_commands_need_connect(data_dir, cli):
    for args in (["status"], ["ring"], ["leave"], ["remove", "abc"], ["get", "k", "--local"]):
        cli.assert_one_line_error(cli.run(*args, data_dir=data_dir), 2, "--connect")


def test_bad_timeout_is_a_usage_error(cli):
    proc = cli.run("get", "k", "--connect", "tcp://127.0.0.1:9", "--timeout", "0")
    assert proc.returncode == 2 and "--timeout" in proc.err


def test_data_dir_and_connect_together_is_a_usage_error(data_dir, cli):
    cli.assert_one_line_error(cli.run("get", "k", "--connect", "tcp://127.0.0.1:7100", data_dir=data_dir), 2, "not both")


# -- demo -----------------------------------------------------------------------


def _processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (a test's unique temporary path)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


@pytest.fixture
def demo_tmp(tmp_path):
    """TMPDIR for a demo; afterwards, any node it left behind is killed (and the test fails)."""
    yield tmp_path
    left = _processes_mentioning(str(tmp_path))
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"the demo left processes running: {left}"


def test_demo_runs_a_cluster_and_cleans_up(demo_tmp, cli):
    proc = cli.run("demo", env={"TMPDIR": str(demo_tmp)})
    assert proc.returncode == 0, proc.err
    out = proc.out
    for fragment in ("start three nodes", "kill -9 n3", "down", "still serving", "restart n3", "siblings", "done"):
        assert fragment in out, fragment
    assert "20/20" in out
    assert "all 10" in out  # the restarted node holds every write it missed
    assert list(demo_tmp.iterdir()) == []  # the temporary directory is gone
    assert _processes_mentioning(str(demo_tmp)) == []


def test_demo_keep_leaves_a_working_cluster_and_says_how_to_stop_it(demo_tmp, cli):
    proc = cli.run("demo", "--keep", env={"TMPDIR": str(demo_tmp)})
    assert proc.returncode == 0, proc.err
    status_cmd = next(line.strip() for line in proc.out.splitlines() if line.strip().startswith("ringkv status --connect "))
    stop_cmd = next(line.strip() for line in proc.out.splitlines() if line.strip().startswith("kill "))
    pids = [int(p) for p in stop_cmd.split("&&")[0].split()[1:]]
    assert len(pids) == 3
    try:
        status = cli.run(*status_cmd.split()[1:], "--json")
        assert status.returncode == 0, status.err
        assert [m["liveness"] for m in json.loads(status.out)["members"]] == ["alive"] * 3
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while _processes_mentioning(str(demo_tmp)) and time.monotonic() < deadline:
        time.sleep(0.05)  # poll until the nodes have stopped
    assert _processes_mentioning(str(demo_tmp)) == [], "SIGTERM should stop every node"
    root = stop_cmd.split("rm -rf ", 1)[1]
    assert root.startswith(str(demo_tmp)) and os.path.isdir(root)
