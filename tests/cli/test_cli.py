"""The ``ringkv`` command, run as a real process (``python -m ringkv.cli.main``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

TIMEOUT = 60


def run(*args: str, data_dir: str | None = None, input: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``ringkv [--data-dir D] ARGS...``; stdout/stderr as text."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RINGKV_")}
    clean.update(env or {})
    argv = [sys.executable, "-m", "ringkv.cli.main"]
    if data_dir is not None:
        argv += ["--data-dir", data_dir]
    proc = subprocess.run(argv + list(args), input=input, capture_output=True, env=clean, timeout=TIMEOUT)
    proc.out = proc.stdout.decode("utf-8", "replace")  # type: ignore[attr-defined]
    proc.err = proc.stderr.decode("utf-8", "replace")  # type: ignore[attr-defined]
    return proc


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (proc.returncode, proc.err)
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, fragment: str = "") -> None:
    assert proc.returncode == code, (proc.returncode, proc.out, proc.err)
    assert proc.err.startswith("error: "), proc.err
    assert proc.err.count("\n") == 1 and proc.err.endswith("\n"), proc.err
    assert "Traceback" not in proc.err
    assert fragment in proc.err, proc.err


def get_json(data_dir: str, key: str, *extra: str) -> dict:
    return json.loads(ok(run("get", key, "--json", *extra, data_dir=data_dir)).out)


# -- basics ------------------------------------------------------------------


def test_version():
    import ringkv

    proc = ok(run("--version"))
    assert proc.out.strip() == f"ringkv {ringkv.__version__}"


def test_put_get_delete_round_trip(data_dir):
    ok(run("put", "alice", "hello world", data_dir=data_dir))
    proc = ok(run("get", "alice", data_dir=data_dir))
    lines = proc.out.splitlines()
    assert lines[0] == "hello world"
    assert lines[-1].startswith("context: ")
    assert proc.err == ""

    ok(run("put", "alice", "second", data_dir=data_dir))
    assert ok(run("get", "alice", "--raw", data_dir=data_dir)).stdout == b"second"

    ok(run("delete", "alice", data_dir=data_dir))
    assert_one_line_error(run("get", "alice", data_dir=data_dir), 1, "not found")
    ok(run("delete", "alice", data_dir=data_dir))  # idempotent


def test_data_dir_option_after_the_command_and_from_env(data_dir):
    ok(run("put", "k", "v", "--data-dir", data_dir))
    proc = ok(run("get", "k", "--raw", env={"RINGKV_DATA_DIR": data_dir}))
    assert proc.stdout == b"v"


def test_binary_value_from_stdin_round_trips(data_dir):
    blob = bytes(range(256)) * 4
    ok(run("put", "blob", "--file", "-", data_dir=data_dir, input=blob))
    assert ok(run("get", "blob", "--raw", data_dir=data_dir)).stdout == blob
    doc = get_json(data_dir, "blob")
    assert doc["encoding"] == "base64"
    import base64

    assert base64.b64decode(doc["values"][0]) == blob


def test_get_json_has_documented_fields(data_dir):
    ok(run("put", "k", "héllo", data_dir=data_dir))
    doc = get_json(data_dir, "k")
    assert doc["key"] == "k"
    assert doc["keyspace"] == "default"
    assert doc["values"] == ["héllo"]
    assert doc["encoding"] == "utf-8"
    assert doc["siblings"] is False
    assert isinstance(doc["context"], str) and doc["context"]
    put_doc = json.loads(ok(run("put", "k2", "v", "--json", data_dir=data_dir)).out)
    assert put_doc == {"key": "k2", "keyspace": "default", "ok": True}


# -- siblings and contexts ----------------------------------------------------


def test_siblings_from_two_puts_with_the_same_context(data_dir):
    ok(run("put", "cart", "apples", data_dir=data_dir))
    ctx = get_json(data_dir, "cart")["context"]
    ok(run("put", "cart", "bread", "--context", ctx, data_dir=data_dir))
    ok(run("put", "cart", "milk", "--context", ctx, data_dir=data_dir))

    doc = get_json(data_dir, "cart")
    assert doc["siblings"] is True
    assert sorted(doc["values"]) == ["bread", "milk"]

    text = ok(run("get", "cart", data_dir=data_dir)).out
    assert "2 siblings" in text
    sibling_lines = [line for line in text.splitlines() if line.startswith("sibling ")]
    assert sorted(line.split(": ", 1)[1] for line in sibling_lines) == ["bread", "milk"]

    assert_one_line_error(run("get", "cart", "--raw", data_dir=data_dir), 3, "siblings")

    # Resolve: a put with the context of the read that saw both siblings.
    ok(run("put", "cart", "bread,milk", "--context", doc["context"], data_dir=data_dir))
    resolved = get_json(data_dir, "cart")
    assert resolved["values"] == ["bread,milk"] and resolved["siblings"] is False


def test_delete_with_context(data_dir):
    ok(run("put", "k", "v", data_dir=data_dir))
    ctx = get_json(data_dir, "k")["context"]
    ok(run("delete", "k", "--context", ctx, data_dir=data_dir))
    assert run("get", "k", data_dir=data_dir).returncode == 1


def test_lww_keyspace_keeps_one_value(data_dir):
    ok(run("keyspace", "create", "sessions", "--conflict", "lww", data_dir=data_dir))
    ok(run("put", "s", "v0", "-k", "sessions", data_dir=data_dir))
    ctx = get_json(data_dir, "s", "-k", "sessions")["context"]
    ok(run("put", "s", "a", "--context", ctx, "--keyspace", "sessions", data_dir=data_dir))
    ok(run("put", "s", "b", "--context", ctx, "--keyspace", "sessions", data_dir=data_dir))
    doc = get_json(data_dir, "s", "--keyspace", "sessions")
    assert doc["values"] == ["b"] and doc["siblings"] is False


# -- keyspaces ----------------------------------------------------------------


def test_keyspace_create_list_drop(data_dir):
    created = json.loads(ok(run("keyspace", "create", "users", "--conflict", "lww", "--json", data_dir=data_dir)).out)
    assert created == {"name": "users", "n": 1, "r": 1, "w": 1, "conflict": "lww"}
    ok(run("keyspace", "create", "events", "--n", "3", "--r", "2", "--w", "2", data_dir=data_dir))

    listed = json.loads(ok(run("keyspace", "list", "--json", data_dir=data_dir)).out)
    by_name = {ks["name"]: ks for ks in listed["keyspaces"]}
    assert set(by_name) == {"default", "users", "events"}
    assert (by_name["events"]["n"], by_name["events"]["r"], by_name["events"]["w"]) == (3, 2, 2)
    assert by_name["users"]["conflict"] == "lww"

    table = ok(run("keyspace", "list", data_dir=data_dir)).out
    for name in ("default", "users", "events", "lww"):
        assert name in table

    ok(run("put", "k", "v", "-k", "users", data_dir=data_dir))
    assert ok(run("get", "k", "--raw", "-k", "users", data_dir=data_dir)).stdout == b"v"
    assert run("get", "k", data_dir=data_dir).returncode == 1  # keyspaces are separate

    ok(run("keyspace", "drop", "users", data_dir=data_dir))
    listed = json.loads(ok(run("keyspace", "list", "--json", data_dir=data_dir)).out)
    assert {ks["name"] for ks in listed["keyspaces"]} == {"default", "events"}
    assert_one_line_error(run("get", "k", "-k", "users", data_dir=data_dir), 3, "does not exist")


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
def test_usage_errors_exit_2(data_dir, argv):
    proc = run(*argv, data_dir=data_dir)
    assert proc.returncode == 2, (proc.out, proc.err)
    assert "Traceback" not in proc.err and "error" in proc.err


def test_no_target_is_a_usage_error():
    assert_one_line_error(run("get", "k"), 2, "--data-dir")


def test_missing_key_exits_1(data_dir):
    ok(run("put", "other", "v", data_dir=data_dir))
    proc = run("get", "missing", data_dir=data_dir)
    assert_one_line_error(proc, 1, "'missing' not found")
    assert proc.stdout == b""
    assert run("get", "missing", "--json", data_dir=data_dir).returncode == 1


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
def test_other_errors_exit_3_with_one_line(data_dir, argv, fragment):
    ok(run("put", "seed", "v", data_dir=data_dir))
    assert_one_line_error(run(*argv, data_dir=data_dir), 3, fragment)


def test_value_too_large_exits_3(data_dir):
    big = b"x" * (16 * 1024 * 1024 + 1)
    assert_one_line_error(run("put", "big", "--file", "-", data_dir=data_dir, input=big), 3, "limit")
    assert run("get", "big", data_dir=data_dir).returncode == 1


def test_os_errors_exit_3(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert_one_line_error(run("put", "k", "v", data_dir=str(not_a_dir)), 3, "not a directory")
    assert_one_line_error(run("put", "k", "--file", str(tmp_path / "absent"), data_dir=str(tmp_path / "d")), 3, "No such file")


def test_reading_a_missing_data_dir_does_not_create_it(tmp_path):
    where = tmp_path / "nothing-here"
    assert_one_line_error(run("get", "k", data_dir=str(where)), 3, "does not exist")
    assert_one_line_error(run("keyspace", "list", data_dir=str(where)), 3, "does not exist")
    assert not where.exists()


def test_data_dir_in_use_by_another_process_exits_3(data_dir):
    import ringkv

    with ringkv.open(data_dir):
        assert_one_line_error(run("get", "k", data_dir=data_dir), 3, "in use")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_connect_to_no_node_is_a_clear_error(how):
    if how == "flag":
        proc = run("--connect", "tcp://127.0.0.1:9", "--timeout", "0.5", "get", "k")
    else:
        proc = run("get", "k", "--timeout", "0.5", env={"RINGKV_CONNECT": "tcp://127.0.0.1:9"})
    assert_one_line_error(proc, 3, "no ringkv node answered at tcp://127.0.0.1:9")


def test_cluster_commands_need_connect(data_dir):
    for args in (["status"], ["ring"], ["leave"], ["remove", "abc"], ["get", "k", "--local"]):
        assert_one_line_error(run(*args, data_dir=data_dir), 2, "--connect")


def test_bad_timeout_is_a_usage_error():
    proc = run("get", "k", "--connect", "tcp://127.0.0.1:9", "--timeout", "0")
    assert proc.returncode == 2 and "--timeout" in proc.err


def test_data_dir_and_connect_together_is_a_usage_error(data_dir):
    assert_one_line_error(run("get", "k", "--connect", "tcp://127.0.0.1:7100", data_dir=data_dir), 2, "not both")


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


def test_demo_runs_a_cluster_and_cleans_up(demo_tmp):
    proc = run("demo", env={"TMPDIR": str(demo_tmp)})
    assert proc.returncode == 0, proc.err
    out = proc.out
    for fragment in ("start three nodes", "kill -9 n3", "down", "still serving", "restart n3", "siblings", "done"):
        assert fragment in out, fragment
    assert "20/20" in out
    assert "all 10" in out  # the restarted node holds every write it missed
    assert list(demo_tmp.iterdir()) == []  # the temporary directory is gone
    assert _processes_mentioning(str(demo_tmp)) == []


def test_demo_keep_leaves_a_working_cluster_and_says_how_to_stop_it(demo_tmp):
    proc = run("demo", "--keep", env={"TMPDIR": str(demo_tmp)})
    assert proc.returncode == 0, proc.err
    status_cmd = next(line.strip() for line in proc.out.splitlines() if line.strip().startswith("ringkv status --connect "))
    stop_cmd = next(line.strip() for line in proc.out.splitlines() if line.strip().startswith("kill "))
    pids = [int(p) for p in stop_cmd.split("&&")[0].split()[1:]]
    assert len(pids) == 3
    try:
        status = run(*status_cmd.split()[1:], "--json")
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
