"""The embedded database as a user sees it: ringkv.open(path)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap

import pytest

import ringkv
from ringkv.errors import (
    AlreadyExists,
    BadRequest,
    ClosedError,
    ConflictError,
    KeyspaceNotFound,
    NotFound,
    TooLarge,
    Unavailable,
    WrongType,
)


@pytest.fixture
def db(tmp_path):
    d = ringkv.open(tmp_path / "data")
    yield d
    d.close()


def test_put_get_delete_round_trip(db):
    assert db.get(b"k") is None
    db.put(b"k", b"v")
    res = db.get(b"k")
    assert res.value == b"v" and res.values == [b"v"] and not res.siblings
    assert isinstance(res.context, bytes)
    db.put("text-key", "text value")
    assert db.get(b"text-key").value == "text value".encode()
    db.delete(b"k")
    assert db.get(b"k") is None
    assert b"k" not in db


def test_mapping_sugar(db):
    db[b"a"] = b"1"
    assert db[b"a"] == b"1"
    assert b"a" in db
    del db[b"a"]
    assert b"a" not in db
    with pytest.raises(KeyError):
        db[b"a"]
    with pytest.raises(NotFound):
        db[b"missing"]
    del db[b"never-there"]  # deletes are idempotent


def test_siblings_from_a_stale_context_and_their_resolution(db):
    db.put(b"k", b"v0")
    stale = db.get(b"k").context
    db.put(b"k", b"left", context=stale)
    db.put(b"k", b"right", context=stale)
    res = db.get(b"k")
    assert sorted(res.values) == [b"left", b"right"] and res.siblings
    with pytest.raises(ConflictError) as err:
        res.value
    assert sorted(err.value.siblings) == [b"left", b"right"]
    db.put(b"k", b"merged", context=res.context)
    assert db.get(b"k").values == [b"merged"]


def test_put_without_context_supersedes_what_the_replica_has(db):
    db.put(b"k", b"1")
    ctx = db.get(b"k").context
    db.put(b"k", b"2", context=ctx)
    db.put(b"k", b"3", context=ctx)
    db.put(b"k", b"4")
    assert db.get(b"k").values == [b"4"]


def test_delete_with_stale_context_keeps_the_unseen_write(db):
    db.put(b"k", b"old")
    stale = db.get(b"k").context
    db.put(b"k", b"new", context=stale)
    db.delete(b"k", context=stale)  # saw only "old"
    assert db.get(b"k").values == [b"new"]


def test_lww_keyspace_keeps_one_value_by_timestamp(db):
    db.keyspace_create("events", conflict="lww")
    ev = db.keyspace("events")
    ev.put(b"x", b"late", timestamp=2_000)
    ev.put(b"x", b"early", timestamp=1_000)  # arrives later, but is older
    assert ev.get(b"x").values == [b"late"]
    stale = ev.get(b"x").context
    ev.put(b"x", b"a", context=stale)
    ev.put(b"x", b"b", context=stale)
    assert len(ev.get(b"x").values) == 1  # never siblings
    with pytest.raises(BadRequest):
        db.put(b"k", b"v", timestamp=5)  # only lww keyspaces take event time


def test_keyspaces_are_separate_and_managed(db):
    info = db.keyspace_create("users", n=3, r=2, w=2)
    assert (info.n, info.r, info.w, info.conflict) == (3, 2, 2, "siblings")
    users = db.keyspace("users")
    users.put(b"k", b"in-users")
    db.put(b"k", b"in-default")
    assert users[b"k"] == b"in-users" and db[b"k"] == b"in-default"
    assert [k.name for k in db.keyspaces()] == ["default", "users"]
    with pytest.raises(AlreadyExists):
        db.keyspace_create("users")
    db.keyspace_drop("users")
    with pytest.raises(KeyspaceNotFound):
        db.keyspace("users")
    with pytest.raises(KeyspaceNotFound):
        users.get(b"k")  # a handle to a dropped keyspace
    db.keyspace_create("users")
    assert db.keyspace("users").get(b"k") is None  # dropping removed the data
    with pytest.raises(BadRequest):
        db.keyspace_drop("default")


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "_internal", "-x", "ünï"])
def test_bad_keyspace_names(db, name):
    with pytest.raises(BadRequest):
        db.keyspace_create(name)


@pytest.mark.parametrize("kw", [dict(n=0), dict(n=3, r=4), dict(n=2, w=0), dict(r="2"), dict(conflict="crdt"), dict(n=99)])
def test_impossible_nrw(db, kw):
    with pytest.raises(BadRequest):
        db.keyspace_create("ks", **kw)
    assert [k.name for k in db.keyspaces()] == ["default"]


def test_bad_keys_and_values_are_typed_errors_and_store_nothing(tmp_path):
    with ringkv.open(tmp_path / "d", max_key_size=16, max_value_size=32) as db:
        for bad_key in (1, None, 1.5, ["k"], object()):
            with pytest.raises(WrongType) as err:
                db.put(bad_key, b"v")
            assert isinstance(err.value, TypeError) and "key" in str(err.value)
        for bad_value in (1, None, {"a": 1}):
            with pytest.raises(WrongType):
                db.put(b"k", bad_value)
        with pytest.raises(TooLarge):
            db.put(b"k" * 17, b"v")
        with pytest.raises(TooLarge):
            db.put(b"k", b"v" * 33)
        with pytest.raises(BadRequest):
            db.put("\ud800", b"v")  # not encodable as UTF-8
        with pytest.raises(BadRequest):
            db.put(b"k", b"v", context=b"garbage")
        with pytest.raises(WrongType):
            db.put(b"k", b"v", context="garbage")
        with pytest.raises(BadRequest):
            db.get(b"k", r=2)  # r > n
        assert list(db.keys()) == []
        db.put(bytearray(b"k"), memoryview(b"v"))
        assert db[b"k"] == b"v"
    with pytest.raises(BadRequest):
        ringkv.open(tmp_path / "e", max_value_size="big")
    with pytest.raises(BadRequest):
        ringkv.open(tmp_path / "e", no_such_option=1)


def test_keys_and_items_iterate_in_chunks(tmp_path):
    with ringkv.open(tmp_path / "d", scan_chunk=7) as db:
        expected = {f"key{i}".encode(): f"v{i}".encode() for i in range(100)}
        for k, v in expected.items():
            db.put(k, v)
        db.delete(b"key5")
        del expected[b"key5"]
        assert sorted(db.keys()) == sorted(expected)
        assert {k: r.value for k, r in db.items()} == expected


def test_persistence_across_reopen(tmp_path):
    path = tmp_path / "d"
    with ringkv.open(path) as db:
        db.put(b"k", b"v")
        db.keyspace_create("ks", conflict="lww")
        db.keyspace("ks").put(b"x", b"y")
        ident = db.identity
    with ringkv.open(path) as db:
        assert db[b"k"] == b"v"
        assert db.keyspace("ks")[b"x"] == b"y"
        assert db.keyspace("ks").info.conflict == "lww"
        assert db.identity == ident  # clean shutdown keeps the actor


def test_closed_database_raises_closed_error(tmp_path):
    db = ringkv.open(tmp_path / "d")
    db.put(b"k", b"v")
    db.close()
    db.close()  # idempotent
    with pytest.raises(ClosedError):
        db.get(b"k")
    with pytest.raises(ClosedError):
        db.put(b"k", b"v")
    with pytest.raises(ClosedError):
        db.keyspaces()


def test_async_twins(db):
    async def main():
        await db.aput(b"k", b"v")
        res = await db.aget(b"k")
        assert res.value == b"v"
        await db.adelete(b"k")
        assert await db.aget(b"k") is None

    asyncio.run(main())


WRITER = textwrap.dedent(
    """
    import sys, ringkv
    db = ringkv.open(sys.argv[1])
    ks = db.keyspace("default")
    i = 0
    while True:
        ks.put(b"key%d" % i, b"value%d" % i)
        print(i, flush=True)
        i += 1
    """
)


def _spawn(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_acknowledged_writes_survive_kill_9(tmp_path):
    path = str(tmp_path / "d")
    with ringkv.open(path) as db:
        first_epoch = db.identity.epoch
    proc = _spawn(WRITER, path)
    acked = -1
    try:
        for line in proc.stdout:
            acked = int(line)
            if acked >= 2000:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert acked >= 2000, proc.stderr.read()
    with ringkv.open(path) as db:
        missing = [i for i in range(acked + 1) if db.get(b"key%d" % i) is None]
        assert missing == []
        assert db.identity.epoch == first_epoch + 1  # unclean shutdown: the next session writes as a new actor


HOLDER = textwrap.dedent(
    """
    import sys, ringkv
    db = ringkv.open(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def test_second_process_on_the_same_directory_is_unavailable(tmp_path):
    path = str(tmp_path / "d")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        with pytest.raises(Unavailable) as err:
            ringkv.open(path)
        assert "in use" in str(err.value)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    with ringkv.open(path) as db:  # free again once the holder is gone
        db.put(b"k", b"v")


def test_corrupt_record_is_a_typed_error_and_the_database_stays_usable(db):
    from ringkv.errors import CorruptRecord
    from ringkv.hashing import storage_key

    db.put(b"good", b"v")
    db.default._table.put(storage_key(b"bad"), b"\x01\xff\xff")
    with pytest.raises(CorruptRecord):
        db.get(b"bad")
    assert db[b"good"] == b"v"


def test_public_names():
    assert set(ringkv.__all__) >= {"open", "errors", "Result", "__version__"}
    assert ringkv.__version__
    assert issubclass(ringkv.errors.Timeout, TimeoutError)
    assert issubclass(ringkv.errors.BadRequest, ValueError)
    assert issubclass(ringkv.errors.WrongType, TypeError)
    assert all(issubclass(getattr(ringkv.errors, n), ringkv.errors.RingKVError) for n in ringkv.errors.__all__ if n[0].isupper())
