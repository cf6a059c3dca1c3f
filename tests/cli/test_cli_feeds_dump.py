"""``ringkv feed ...``, ``dump``/``load`` and the new verbs' usage errors, on an embedded database.

Commands run as real processes (``python -m ringkv.cli.main``); the
progress and table helpers of leave/remove/status are checked in-process.
"""

from __future__ import annotations

import json
import random

import pytest

import ringkv


# -- feeds -----------------------------------------------------------------------


def test_feed_append_list_get_remove_length(data_dir, cli):
    with ringkv.open(data_dir) as db:
        ids = [db.feed("events").append(f"event {i}") for i in range(2)]
    ids.append(cli.ok(cli.run("feed", "append", "events", "event 2", data_dir=data_dir)).out.strip())
    assert all(len(i) == 26 for i in ids) and ids == sorted(ids)
    blob = bytes([0, 255, 1])
    appended = json.loads(cli.ok(cli.run("feed", "append", "events", "--file", "-", "--json", input=blob, data_dir=data_dir)).out)
    assert appended["feed"] == "events" and appended["keyspace"] == "default"
    ids.append(appended["id"])

    listed = json.loads(cli.ok(cli.run("feed", "list", "events", "--json", data_dir=data_dir)).out)
    assert [e["id"] for e in listed] == ids
    assert [e["data"] for e in listed[:3]] == ["event 0", "event 1", "event 2"]
    assert listed[3]["encoding"] == "base64" and listed[3]["data"] == "AP8B"

    page = json.loads(cli.ok(cli.run("feed", "list", "events", "--reverse", "--limit", "2", "--after", ids[3], "--json", data_dir=data_dir)).out)
    assert [e["id"] for e in page] == [ids[2], ids[1]]

    table = cli.ok(cli.run("feed", "list", "events", data_dir=data_dir)).out
    assert all(i in table for i in ids) and "event 1" in table and "(binary, 3 bytes)" in table

    got = json.loads(cli.ok(cli.run("feed", "get", "events", ids[1], "--json", data_dir=data_dir)).out)
    assert got == {"feed": "events", "keyspace": "default", "id": ids[1], "data": "event 1", "encoding": "utf-8", "prev_id": ids[0], "next_id": ids[2]}
    human = cli.ok(cli.run("feed", "get", "events", ids[0], data_dir=data_dir)).out.splitlines()
    assert human == [f"id:   {ids[0]}", "data: event 0", "prev: (none: the first entry)", f"next: {ids[1]}"]
    assert cli.ok(cli.run("feed", "get", "events", ids[3], "--raw", data_dir=data_dir)).stdout == blob

    cli.ok(cli.run("feed", "remove", "events", ids[1], data_dir=data_dir))
    cli.ok(cli.run("feed", "remove", "events", ids[1], data_dir=data_dir))  # idempotent
    cli.assert_one_line_error(cli.run("feed", "get", "events", ids[1], data_dir=data_dir), 1, "not found")
    assert cli.ok(cli.run("feed", "length", "events", data_dir=data_dir)).out.strip() == "3"
    assert json.loads(cli.ok(cli.run("feed", "get", "events", ids[2], "--json", data_dir=data_dir)).out)["prev_id"] == ids[0]


def test_feed_trim_names_and_keyspaces(data_dir, cli):
    with ringkv.open(data_dir) as db:
        db.keyspace_create("logs")
        ids = [db.keyspace("logs").feed("app").append(f"line {i}") for i in range(5)]
        db.feed("other").append("x")

    trimmed = json.loads(cli.ok(cli.run("feed", "trim", "app", "-k", "logs", "--before", ids[2], "--json", data_dir=data_dir)).out)
    assert trimmed == {"feed": "app", "keyspace": "logs", "removed": 2}
    assert "removed 2 entries" in cli.ok(cli.run("feed", "trim", "app", "-k", "logs", "--keep-last", "1", data_dir=data_dir)).out
    assert [e["id"] for e in json.loads(cli.ok(cli.run("feed", "list", "app", "-k", "logs", "--json", data_dir=data_dir)).out)] == [ids[4]]
    assert json.loads(cli.ok(cli.run("feed", "length", "app", "-k", "logs", "--json", data_dir=data_dir)).out)["length"] == 1

    assert cli.ok(cli.run("feeds", "-k", "logs", data_dir=data_dir)).out.split() == ["app"]
    assert json.loads(cli.ok(cli.run("feed", "names", "--json", data_dir=data_dir)).out) == {"keyspace": "default", "feeds": ["other"]}
    cli.assert_one_line_error(cli.run("feed", "list", "app", "-k", "nope", data_dir=data_dir), 3, "does not exist")
    assert cli.run("feed", "trim", "app", "-k", "logs", data_dir=data_dir).returncode == 2  # --keep-last or --before
    assert cli.run("feed", "trim", "app", "--keep-last", "-1", data_dir=data_dir).returncode == 2


def test_feed_bad_ids_are_one_line_errors(data_dir, cli):
    with ringkv.open(data_dir) as db:
        db.feed("f").append("x")
    for args in (
        ("feed", "get", "f", "nope"),
        ("feed", "remove", "f", "not-an-entry-id"),
        ("feed", "list", "f", "--after", "zz"),
        ("feed", "trim", "f", "--before", "!" * 26),
        ("feed", "follow", "f", "--after", "123", "--timeout", "1"),
    ):
        cli.assert_one_line_error(cli.run(*args, data_dir=data_dir), 3, "bad entry id")
    cli.assert_one_line_error(cli.run("feed", "get", "f", "0" * 26, data_dir=data_dir), 1, "not found")
    cli.assert_one_line_error(cli.run("feed", "list", "f", data_dir=data_dir + "-missing"), 3, "does not exist")
    assert cli.run("feed", "append", "f", data_dir=data_dir).returncode == 2  # neither DATA nor --file


def test_feed_follow_prints_entries_after_the_cursor_and_stops_at_the_timeout(data_dir, cli):
    with ringkv.open(data_dir) as db:
        ids = [db.feed("f").append(f"e{i}") for i in range(3)]
    proc = cli.ok(cli.run("feed", "follow", "f", "--after", ids[0], "--timeout", "0.5", data_dir=data_dir))
    assert proc.out.splitlines() == [f"{ids[1]} e1", f"{ids[2]} e2"]
    lines = cli.ok(cli.run("feed", "follow", "f", "--after", ids[1], "--timeout", "0.3", "--json", data_dir=data_dir)).out.splitlines()
    assert [json.loads(line) for line in lines] == [{"id": ids[2], "data": "e2", "encoding": "utf-8"}]
    assert cli.ok(cli.run("feed", "follow", "f", "--timeout", "0.3", data_dir=data_dir)).out == ""  # from the end: nothing new


# -- dump / load -------------------------------------------------------------------


def _records(text: str) -> dict:
    """A dump's lines by key, without the contexts (they belong to the dumped database)."""
    out = {}
    for line in text.splitlines():
        rec = json.loads(line)
        assert isinstance(rec.pop("context"), str)
        out[rec["key"]] = rec
    return out


def test_dump_load_round_trip(tmp_path, cli):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    rng = random.Random(7)
    blob = bytes(rng.randrange(256) for _ in range(300))
    with ringkv.open(src) as db:
        for i in range(3):
            db.put(f"k{i}", f"value {i}")
        db.put(b"blob", blob)
        db.put(b"\xff\xfe-key", b"odd key")
        ctx = db.get(b"k0").context
        db.put(b"k0", b"left", context=ctx)
        db.put(b"k0", b"right", context=ctx)
        db.delete(b"k2")
    with ringkv.open(dst) as db:
        db.put(b"k1", b"to be replaced")
        db.keyspace_create("copy")

    out_file = tmp_path / "dump.jsonl"
    proc = cli.ok(cli.run("dump", "--output", str(out_file), data_dir=src))
    assert "dumped 4 keys" in proc.out
    dumped = _records(out_file.read_text("utf-8"))
    assert set(dumped) == {"k0", "k1", "blob", "//4ta2V5"}  # k2 was deleted; the odd key is base64
    assert dumped["k0"] == {"key": "k0", "values": ["left", "right"], "encoding": "utf-8"}
    assert dumped["//4ta2V5"]["key_encoding"] == "base64"
    assert dumped["blob"]["encoding"] == "base64"
    to_stdout = cli.ok(cli.run("dump", data_dir=src))
    assert _records(to_stdout.out) == dumped and "dumped 4 keys" in to_stdout.err

    loaded = json.loads(cli.ok(cli.run("load", str(out_file), "--json", data_dir=dst)).out)
    assert loaded == {"keyspace": "default", "keys": 4, "values": 5}
    assert _records(cli.ok(cli.run("dump", data_dir=dst)).out) == dumped
    assert cli.ok(cli.run("get", "blob", "--raw", data_dir=dst)).stdout == blob
    siblings = json.loads(cli.ok(cli.run("get", "k0", "--json", data_dir=dst)).out)
    assert siblings["siblings"] and siblings["values"] == ["left", "right"]

    # into another keyspace, from stdin
    cli.ok(cli.run("load", "-", "--keyspace", "copy", input=out_file.read_bytes(), data_dir=dst))
    assert _records(cli.ok(cli.run("dump", "-k", "copy", data_dir=dst)).out) == dumped


def test_dump_and_load_errors(tmp_path, data_dir, cli):
    with ringkv.open(data_dir) as db:
        db.put(b"a", b"b")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "a", "values": ["1"]}\n{"key": "b", "values": "2"}\n')
    cli.assert_one_line_error(cli.run("load", str(bad), data_dir=data_dir), 3, "line 2")
    bad.write_text('{"key": "a", "values": ["@@"], "encoding": "base64"}\n')
    cli.assert_one_line_error(cli.run("load", str(bad), data_dir=data_dir), 3, "base64")
    cli.assert_one_line_error(cli.run("load", str(tmp_path / "missing.jsonl"), data_dir=data_dir), 3)
    cli.assert_one_line_error(cli.run("load", str(bad), "-k", "nope", data_dir=data_dir), 3, "does not exist")
    cli.assert_one_line_error(cli.run("dump", "-k", "nope", data_dir=data_dir), 3, "does not exist")
    cli.assert_one_line_error(cli.run("dump", data_dir=str(tmp_path / "none")), 3, "does not exist")
    assert not (tmp_path / "none").exists()
    assert cli.run("dump").returncode == 2  # no database given


# -- the other new verbs: usage ------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("join", "--data-dir", "d"),  # --seed is required
        ("replace", "--data-dir", "d", "--seed", "tcp://127.0.0.1:9"),  # NODE_ID is required
        ("replace", "abc", "--data-dir", "d"),
        ("repair", "--data-dir", "d"),  # repair needs a cluster
        ("leave", "--no-wait"),  # no target
    ],
)
def test_usage_errors_exit_2(args, tmp_path, cli):
    proc = cli.run(*args)
    assert proc.returncode == 2, (proc.out, proc.err)
    assert "Traceback" not in proc.err


# -- progress of leave/remove and the transfers table, in-process ------------------


def _transfer(kind="push", table="ks", lo=0, last=99, peer="b", keys=0, nbytes=0, done=False, fraction=0.0, error=""):
    return {
        "kind": kind, "table": table, "range": [lo, last], "peer": peer, "keys": keys, "bytes": nbytes,
        "resumed_from_bytes": 0, "done": done, "fraction": fraction, "rate_bytes_per_s": 10.0,
        "eta_s": None if done else 1.0, "error": error,
    }


def test_transfer_watch_counts_only_the_changes_transfers():
    from ringkv.cli.transfers import TransferWatch

    old = _transfer(lo=0, last=99, keys=5, nbytes=50, done=True, fraction=1.0)
    watch = TransferWatch(expected_span=400, expected_keys=100)
    watch.baseline("a", [old])
    running = _transfer(lo=100, last=199, keys=25, nbytes=250, fraction=0.5)
    watch.update("a", [old, running])
    s = watch.totals()
    assert (s["transfers"], s["running"], s["keys"], s["bytes"]) == (1, 1, 25, 250)
    assert s["fraction"] == pytest.approx(0.25)  # keys moved / keys expected
    assert s["peers"] == ["b"]

    finished = _transfer(lo=100, last=199, keys=50, nbytes=500, done=True, fraction=1.0)
    rerun = _transfer(lo=0, last=99, keys=1, nbytes=10, fraction=0.1, error="peer down")
    watch.update("a", [rerun, finished])
    s = watch.totals()
    assert (s["transfers"], s["running"], s["keys"]) == (2, 1, 51)
    assert watch.failed() == [rerun] and "retrying: peer down" in watch.detail()

    by_span = TransferWatch(expected_span=400)  # no key count: the ring span decides
    by_span.update("a", [finished])
    assert by_span.totals()["fraction"] == pytest.approx(100 / 400)
    assert TransferWatch(expected_keys=10).totals()["fraction"] == 0.0


def test_plans_of_a_leave_and_a_remove():
    from ringkv.cli.transfers import leave_plan, remove_plan

    rng = random.Random(3)
    members = [[f"n{i}", f"tcp://h:{i}", [rng.randrange(2**64) for _ in range(16)], "up", "alive"] for i in range(4)]
    keyspaces = [{"name": "a", "n": 3}, {"name": "b", "n": 1}]
    leave = leave_plan(members, keyspaces, "n3")
    assert leave.span > 0 and leave.share == pytest.approx(1.0)  # each range it holds goes to one new owner
    remove = remove_plan(members, keyspaces, "n3", ["n0", "n1", "n2"])
    assert remove.span > 0 and 0.4 < remove.share <= 1.0
    three = [m for m in members if m[0] != "n3"]
    assert leave_plan(three, [{"name": "a", "n": 3}], "n2").span == 0  # 3 nodes, N=3: nobody gains anything
    assert remove_plan(members, keyspaces, "n9", ["n0"]).span == 0


def test_transfers_table_shows_running_then_recent():
    from rich.console import Console

    from ringkv.cli.transfers import transfers_table

    assert transfers_table({"node_id": "a", "elastic": {"state": "idle", "transfers": []}}) is None
    transfers = [_transfer(lo=i * 100, last=i * 100 + 99, keys=i, done=True, fraction=1.0) for i in range(8)]
    transfers.append(_transfer(kind="pull", lo=900, last=999, peer="", keys=1234, nbytes=5 * 1024 * 1024, fraction=0.42))
    table = transfers_table({"node_id": "a", "elastic": {"state": "joining", "transfers": transfers}}, recent=5)
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "range transfers of a (elastic: joining)" in text
    assert "1,234" in text and "5.0 MB" in text and "42%" in text and "running" in text
    assert text.count("done") == 5 and "3 earlier finished transfers not shown" in text
