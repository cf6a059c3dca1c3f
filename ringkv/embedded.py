"""The embedded database: ``ringkv.open(path)``, one replica, no network.

It is the cluster's replica code with N=1, not a separate store: records are
dotted version vector sets, written by :class:`~ringkv.quorum.replica.LocalReplica`
under this directory's actor id, so a directory can later hold data that
merges with other replicas' without loss.
"""

from __future__ import annotations

import threading
from typing import Iterator, Optional

import msgpack

from ringkv.api import DatabaseAPI, KeyspaceAPI
from ringkv.codec import decode_parts, decode_record, one_value
from ringkv.config import StoreOptions
from ringkv.errors import AlreadyExists, BadRequest, ClosedError, KeyspaceNotFound, RingKVError, Unavailable, WrongType
from ringkv.hashing import hash64_bytes, user_key
from ringkv.identity import Identity, mark_clean_shutdown, open_identity, persistent_clock
from ringkv.keys import as_key, as_optional_count, as_value, check_timestamp
from ringkv.keyspaces import DEFAULT_KEYSPACE, KeyspaceInfo, check_name
from ringkv.quorum.dvv import decode_context
from ringkv.quorum.replica import LocalReplica
from ringkv.result import Result
from ringkv.feeds.ids import EntryIds
from ringkv.feeds.local import EmbeddedFeed
from ringkv.feeds.store import FeedStore
from ringkv.quorum.tables import feed_cf
from ringkv.storage import META_CF, Storage, keyspace_cf

__all__ = ["Database", "EmbeddedKeyspace", "open"]

_KS_PREFIX = b"keyspace:"


class EmbeddedKeyspace(KeyspaceAPI):
    """One keyspace of an embedded database."""

    def __init__(self, db: "Database", info: KeyspaceInfo) -> None:
        self._db = db
        self.info = info
        self.name = info.name
        self._cf = keyspace_cf(info.name)
        self._lww = info.lww
        self._table = db._storage.cf(self._cf)
        self._replica = db._replica
        self._max_key = db.options.max_key_size
        self._max_value = db.options.max_value_size

    def __repr__(self) -> str:
        return f"<EmbeddedKeyspace {self.name!r} conflict={self.info.conflict}>"

    def _failed(self, exc: Exception) -> Exception:
        """Why a storage call on this keyspace failed: closed, dropped, or a storage error."""
        self._db._check_open()
        if self._db._keyspaces.get(self.name) is not self:
            return KeyspaceNotFound(f"keyspace {self.name!r} does not exist")
        return exc if isinstance(exc, RingKVError) else Unavailable(f"storage error: {exc}")

    def get(self, key, *, r: Optional[int] = None) -> Optional[Result]:
        if type(key) is not bytes or len(key) > self._max_key:
            key = as_key(key, self._max_key)
        if r is not None:
            as_optional_count(r, "r", self.info.n)
        try:
            raw = self._table.get(hash64_bytes(key) + key)
        except Exception as exc:
            raise self._failed(exc) from None
        if raw is None:
            return None
        value = one_value(raw)
        if value is not None:
            return Result.of_record(value, raw)
        clock, entries = decode_parts(raw)
        values = [e[3] for e in entries if e[3] is not None]
        return Result(values, clock, entries) if values else None

    def put(self, key, value, context: Optional[bytes] = None, *, w: Optional[int] = None, timestamp: Optional[int] = None) -> None:
        if type(value) is not bytes or len(value) > self._max_value:
            value = as_value(value, self._max_value)
        if context is None and w is None and timestamp is None and type(key) is bytes and len(key) <= self._max_key:
            try:  # the common case, without the general path's checks
                self._replica.put_plain(self._cf, self._table, hash64_bytes(key) + key, value, self._lww)
            except Exception as exc:
                raise self._failed(exc) from None
            return
        self._write(key, value, context, w, timestamp)

    def delete(self, key, context: Optional[bytes] = None, *, w: Optional[int] = None) -> None:
        self._write(key, None, context, w, None)

    def _write(self, key, value: Optional[bytes], context, w, timestamp) -> None:
        if type(key) is not bytes or len(key) > self._max_key:
            key = as_key(key, self._max_key)
        if w is not None:
            as_optional_count(w, "w", self.info.n)
        ctx = None if context is None else decode_context(context)
        ts = None
        if timestamp is not None:
            if not self._lww:
                raise BadRequest("timestamp= is only meaningful in lww keyspaces")
            ts = check_timestamp(timestamp)
        try:
            self._replica.write(self._cf, hash64_bytes(key) + key, value, ctx, lww=self._lww, timestamp=ts)
        except Exception as exc:
            raise self._failed(exc) from None

    def items(self) -> Iterator[tuple[bytes, Result]]:
        """Live keys and their reads, in hash order, read in chunks."""
        try:
            scan = self._db._storage.scan(self._cf)
            for skey, raw in scan:
                rec = decode_record(raw)
                if not rec.is_deleted:
                    yield user_key(skey), Result(rec.values, rec.clock, rec.entries)
        except BadRequest as exc:
            raise self._failed(exc) from None

    def keys(self) -> Iterator[bytes]:
        for k, _ in self.items():
            yield k

    def feed(self, name: str | bytes) -> EmbeddedFeed:
        """A feed of this keyspace (created by its first append)."""
        return EmbeddedFeed(self._db, self.name, name)

    def feeds(self) -> list[str]:
        """Names of the feeds in this keyspace that hold entries (or did)."""
        self._db._check_open()
        return [name for name, _ in self._db._feed_store.feeds(self.name)]


class Database(DatabaseAPI):
    """An embedded ringkv database in one data directory."""

    def __init__(self, path: str, options: StoreOptions | None = None) -> None:
        self.options = options or StoreOptions()
        self._storage = Storage(path, self.options)
        try:
            self.identity: Identity = open_identity(self._storage)
        except BaseException:
            self._storage.close()
            raise
        self._replica = LocalReplica(self._storage, self.identity.actor, persistent_clock(self._storage))
        self._feed_store = FeedStore(self._storage)
        self._feed_ids = EntryIds(self.identity.node_id, self._replica.hlc)
        self._max_key = self.options.max_key_size
        self._max_value = self.options.max_value_size
        self._lock = threading.RLock()
        self._keyspaces: dict[str, EmbeddedKeyspace] = {}
        for raw_key, raw in self._storage.scan(META_CF, _KS_PREFIX, _KS_PREFIX[:-1] + b";"):
            info = KeyspaceInfo.from_dict(msgpack.unpackb(raw))
            self._storage.create_cf(feed_cf(info.name))
            self._keyspaces[info.name] = EmbeddedKeyspace(self, info)
        for cf in self._storage.cf_names():
            if cf[:3] in ("ks.", "fd.") and cf[3:] not in self._keyspaces:
                self._storage.drop_cf(cf)
        if DEFAULT_KEYSPACE not in self._keyspaces:
            self._create(KeyspaceInfo(DEFAULT_KEYSPACE, n=1, r=1, w=1))
        self._default = self._keyspaces[DEFAULT_KEYSPACE]
        # The default keyspace's calls, bound once: the shortest path for db.get/db.put.
        self.get = self._default.get  # type: ignore[method-assign]
        self.put = self._default.put  # type: ignore[method-assign]
        self.delete = self._default.delete  # type: ignore[method-assign]

    @property
    def path(self) -> str:
        return self._storage.path

    @property
    def default(self) -> EmbeddedKeyspace:
        return self._default

    def __repr__(self) -> str:
        return f"<ringkv.Database {self.path!r}{' closed' if self._storage.closed else ''}>"

    def _check_open(self) -> None:
        if self._storage.closed:
            raise ClosedError("database is closed")

    def _create(self, info: KeyspaceInfo) -> None:
        self._storage.create_cf(keyspace_cf(info.name))
        self._storage.create_cf(feed_cf(info.name))
        self._storage.meta_put(_KS_PREFIX + info.name.encode(), msgpack.packb(info.to_dict()))
        self._keyspaces[info.name] = EmbeddedKeyspace(self, info)

    def keyspace(self, name: str) -> EmbeddedKeyspace:
        try:
            return self._keyspaces[name]
        except (KeyError, TypeError):
            self._check_open()
            check_name(name)
            raise KeyspaceNotFound(f"keyspace {name!r} does not exist") from None

    def keyspace_create(self, name: str, *, n: Optional[int] = None, r: Optional[int] = None, w: Optional[int] = None, conflict: str = "siblings") -> KeyspaceInfo:
        """Create a keyspace. N/R/W are kept for the cluster; an embedded store has one replica."""
        info = KeyspaceInfo(name, n=1 if n is None else n, r=1 if r is None else r, w=1 if w is None else w, conflict=conflict)
        with self._lock:
            self._check_open()
            if name in self._keyspaces:
                raise AlreadyExists(f"keyspace {name!r} already exists")
            self._create(info)
        return info

    def keyspaces(self) -> list[KeyspaceInfo]:
        self._check_open()
        return [self._keyspaces[n].info for n in sorted(self._keyspaces)]

    def keyspace_drop(self, name: str) -> None:
        with self._lock:
            ks = self.keyspace(name)
            if name == DEFAULT_KEYSPACE:
                raise BadRequest("the default keyspace cannot be dropped")
            # Definition first: a crash between the two leaves an orphan column
            # family, which the next open drops, never a keyspace without data.
            b = self._storage.batch()
            b.delete(META_CF, _KS_PREFIX + name.encode())
            self._storage.write(b, sync=True)
            del self._keyspaces[name]
            self._storage.drop_cf(ks._cf)
            self._storage.drop_cf(feed_cf(name))
            self._feed_store.drop_keyspace(name)

    def feed(self, name: str | bytes) -> EmbeddedFeed:
        """A feed of the default keyspace (created by its first append)."""
        return self._default.feed(name)

    def feeds(self) -> list[str]:
        return self._default.feeds()

    def close(self) -> None:
        with self._lock:
            if self._storage.closed:
                return
            self._storage.flush()
            mark_clean_shutdown(self._storage, self._replica.hlc)
            self._storage.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def open(path: str, **options: object) -> Database:  # noqa: A001 - the public name is ringkv.open
    """Open (creating if needed) an embedded database in directory ``path``.

    Options are the fields of :class:`ringkv.config.StoreOptions`
    (``fsync``, ``block_cache_mb``, ``max_key_size``, ``max_value_size``...).
    A directory held by another process raises :class:`ringkv.errors.Unavailable`.
    """
    if not isinstance(path, (str, bytes)) and not hasattr(path, "__fspath__"):
        raise WrongType(f"path must be a str or path-like, not {type(path).__name__}")
    import os

    return Database(os.fsdecode(os.fspath(path)), StoreOptions.from_kwargs(**options))
