"""The cluster's keyspace catalog on one node: definitions gossiped as metadata.

A definition travels as cluster metadata (``keyspace:<name>``) with a unique
``uid`` per creation, and is also kept in the node's own ``_meta`` column
family, so a node that restarts knows its keyspaces before gossip catches up,
and a keyspace dropped and re-created while a node was down is recognised
as new (its old data is dropped, not revived).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import msgpack

from ringkv.errors import AlreadyExists, BadRequest, KeyspaceNotFound, RingKVError
from ringkv.keyspaces import DEFAULT_KEYSPACE, KeyspaceInfo, check_name
from ringkv.quorum.messages import KeyspaceCreate, KeyspaceDrop, KeyspaceList, KeyspaceListing
from ringkv.quorum.tables import feed_cf
from ringkv.storage import META_CF, keyspace_cf

if TYPE_CHECKING:
    from ringkv.server import NodeServer

__all__ = ["Catalog", "DEFAULT_CLUSTER_KEYSPACE"]

log = logging.getLogger("ringkv.node")

#: The keyspace every cluster has: Dynamo's classic N=3, R=2, W=2.
DEFAULT_CLUSTER_KEYSPACE = KeyspaceInfo(DEFAULT_KEYSPACE, n=3, r=2, w=2)
META_PREFIX = "keyspace:"
_LOCAL = b"ksdef:"


class Catalog:
    """Keyspace definitions known to one node, and their column families."""

    def __init__(self, server: "NodeServer") -> None:
        self.s = server
        self._defs: dict[str, KeyspaceInfo] = {}
        self._uids: dict[str, Any] = {}
        storage = server.storage
        assert storage is not None
        for name in (DEFAULT_KEYSPACE,):
            storage.create_cf(keyspace_cf(name))
            storage.create_cf(feed_cf(name))
        for _, raw in storage.scan(META_CF, _LOCAL, _LOCAL[:-1] + b";"):
            d = msgpack.unpackb(raw)
            info = KeyspaceInfo.from_dict(d)
            self._defs[info.name] = info
            self._uids[info.name] = d.get("uid")
            storage.create_cf(keyspace_cf(info.name))
            storage.create_cf(feed_cf(info.name))

    # -- lookups -----------------------------------------------------------

    def get(self, name: str) -> KeyspaceInfo:
        info = self._defs.get(name)
        if info is not None:
            return info
        if name == DEFAULT_KEYSPACE:
            return DEFAULT_CLUSTER_KEYSPACE
        check_name(name)
        raise KeyspaceNotFound(f"keyspace {name!r} does not exist")

    def all(self) -> list[KeyspaceInfo]:
        out = dict(self._defs)
        out.setdefault(DEFAULT_KEYSPACE, DEFAULT_CLUSTER_KEYSPACE)
        return [out[n] for n in sorted(out)]

    def listing(self) -> KeyspaceListing:
        return KeyspaceListing([k.to_dict() for k in self.all()])

    # -- changes from gossip -----------------------------------------------

    def _drop_data(self, name: str) -> None:
        storage = self.s.storage
        assert storage is not None
        if name != DEFAULT_KEYSPACE:
            repair = getattr(self.s, "repair", None)
            for cf in (keyspace_cf(name), feed_cf(name)):
                storage.drop_cf(cf)
                if repair is not None:
                    repair.trees.forget(cf, stored=True)
            self.s.feeds.store.drop_keyspace(name)

    def on_metadata(self, key: str, value: Any) -> None:
        if not key.startswith(META_PREFIX):
            return
        name = key[len(META_PREFIX):]
        storage = self.s.storage
        assert storage is not None
        if value is None:
            self._uids.pop(name, None)
            if self._defs.pop(name, None) is not None or storage.has_cf(keyspace_cf(name)):
                log.info("keyspace %s dropped", name)
            b = storage.batch()
            b.delete(META_CF, _LOCAL + name.encode())
            storage.write(b, sync=True)
            self._drop_data(name)
            return
        try:
            info = KeyspaceInfo.from_dict(value)
        except RingKVError:
            log.warning("ignoring bad keyspace definition for %s", name)
            return
        uid = value.get("uid")
        if name in self._defs and self._uids.get(name) == uid:
            return
        if name in self._defs:
            self._drop_data(name)  # dropped and re-created while we were away
        storage.create_cf(keyspace_cf(name))
        storage.create_cf(feed_cf(name))
        storage.meta_put(_LOCAL + name.encode(), msgpack.packb(dict(info.to_dict(), uid=uid)))
        self._defs[name] = info
        self._uids[name] = uid
        log.info("keyspace %s: n=%d r=%d w=%d %s", name, info.n, info.r, info.w, info.conflict)

    # -- requests ------------------------------------------------------------

    async def create(self, msg: KeyspaceCreate, deadline: float) -> KeyspaceListing:
        info = KeyspaceInfo(msg.name, n=msg.n, r=msg.r, w=msg.w, conflict=msg.conflict)
        if msg.name in self._defs or msg.name == DEFAULT_KEYSPACE:
            raise AlreadyExists(f"keyspace {msg.name!r} already exists")
        s = self.s
        value = dict(info.to_dict(), uid=f"{s.node_id}:{s._now():.6f}")
        s._run(s.gossip.set_metadata(META_PREFIX + msg.name, value, s._now()))  # type: ignore[union-attr]
        await self._await_everywhere(lambda names: msg.name in names, deadline)
        return KeyspaceListing([info.to_dict()])

    async def drop(self, msg: KeyspaceDrop, deadline: float) -> None:
        self.get(msg.name)
        if msg.name == DEFAULT_KEYSPACE:
            raise BadRequest("the default keyspace cannot be dropped")
        s = self.s
        s._run(s.gossip.set_metadata(META_PREFIX + msg.name, None, s._now()))  # type: ignore[union-attr]
        await self._await_everywhere(lambda names: msg.name not in names, deadline)

    async def _await_everywhere(self, done, deadline: float, timeout: float = 5.0) -> None:
        """Wait (bounded) until every live member's keyspace list satisfies ``done``."""
        s = self.s
        loop = asyncio.get_running_loop()
        deadline = min(loop.time() + timeout, deadline)
        pending = [
            m for m in s.gossip.members.values()  # type: ignore[union-attr]
            if m.node_id != s.node_id and m.status in ("up", "joining", "leaving") and s.is_alive(m.node_id)
        ]
        while pending and loop.time() < deadline:
            still = []
            for m in pending:
                try:
                    reply = await s.transport.request(m.addr, KeyspaceList(), min(1.0, max(0.05, deadline - loop.time())))  # type: ignore[union-attr]
                    if not done({k["name"] for k in reply.keyspaces}):  # type: ignore[attr-defined]
                        still.append(m)
                except RingKVError:
                    pass  # a member that does not answer learns it from gossip later
            pending = still
            if pending:
                await asyncio.sleep(0.05)  # bounded poll while gossip spreads the change
