"""Wire messages of the quorum layer: client requests and replica traffic.

Records travel as their codec bytes (:mod:`ringkv.codec`), so a replica
validates them with the same decoder that guards the disk.
"""

from __future__ import annotations

from ringkv.errors import ProtocolError
from ringkv.wire import Message, message

__all__ = [
    "KvGet",
    "KvPut",
    "KvResult",
    "KvDone",
    "ReplicaPut",
    "ReplicaRead",
    "ReplicaRecord",
    "KeyspaceCreate",
    "KeyspaceDrop",
    "KeyspaceList",
    "KeyspaceListing",
    "LocalGet",
    "KvScan",
    "KvScanPage",
    "ReplicaScan",
    "ReplicaScanPage",
    "ReplicaPutMany",
    "ReplicaPutManyDone",
    "ReplicaReadMany",
    "ReplicaRecords",
    "KvReadMany",
    "KvWriteMany",
    "KvWritten",
    "KvReplicate",
]


@message("kv.get")
class KvGet(Message):
    """Client -> any node: a quorum read."""

    keyspace: str
    key: bytes
    r: int | None = None


@message("kv.put")
class KvPut(Message):
    """Client -> a replica of the key: a write (``value=None`` deletes).

    ``request_id`` makes a retry idempotent: the coordinator answers a repeat
    with the write it already made instead of a new sibling.
    """

    keyspace: str
    key: bytes
    value: bytes | None
    context: bytes | None
    w: int | None
    timestamp: int | None
    request_id: str
    #: Set when a node forwards the write to a replica: the receiver coordinates
    #: it even if its own (possibly newer or older) ring disagrees, so views in
    #: flux can never bounce a write between nodes.
    forwarded: bool = False
    #: The digest of the client's ring when it offers to send the copies to the
    #: other replicas itself: a coordinator sharing that ring may answer
    #: ``kv.written`` after its own write (see :mod:`ringkv.client_writes`).
    ring: bytes | None = None


@message("kv.result")
class KvResult(Message):
    """Reply to ``kv.get``: live values (empty: not found), context, latest timestamp."""

    values: list
    context: bytes
    timestamp: int

    def check(self) -> None:
        if not all(isinstance(v, bytes) for v in self.values):
            raise ProtocolError("kv.result.values: expected a list of bytes")


@message("kv.done")
class KvDone(Message):
    """Reply to ``kv.put``: how many replicas acknowledged."""

    acks: int


@message("replica.put")
class ReplicaPut(Message):
    """Coordinator -> replica: merge this record. ``hint_for`` marks a fallback's copy."""

    keyspace: str
    key: bytes
    record: bytes
    hint_for: str | None = None


@message("replica.read")
class ReplicaRead(Message):
    keyspace: str
    key: bytes


@message("replica.record")
class ReplicaRecord(Message):
    """A replica's stored record for a key (``None``: nothing stored)."""

    record: bytes | None


@message("keyspace.create")
class KeyspaceCreate(Message):
    name: str
    n: int
    r: int
    w: int
    conflict: str


@message("keyspace.drop")
class KeyspaceDrop(Message):
    name: str


@message("keyspace.list")
class KeyspaceList(Message):
    pass


@message("keyspace.listing")
class KeyspaceListing(Message):
    keyspaces: list

    def check(self) -> None:
        if not all(isinstance(k, dict) for k in self.keyspaces):
            raise ProtocolError("keyspace.listing: expected a list of maps")


@message("kv.local_get")
class LocalGet(Message):
    """Operator read of one replica's stored copy, bypassing the quorum."""

    keyspace: str
    key: bytes


def _check_rows(keys: list, records: list, what: str) -> None:
    if len(keys) != len(records) or not set(map(type, keys)) <= {bytes} or not set(map(type, records)) <= {bytes}:
        raise ProtocolError(f"{what}: bad rows")


@message("kv.scan")
class KvScan(Message):
    """Client -> any node: a page of a keyspace's records, from storage key ``start`` on, merged from R replicas."""

    keyspace: str
    start: bytes
    limit: int
    r: int | None = None


@message("kv.scan_page")
class KvScanPage(Message):
    """``keys[i]`` holds ``records[i]`` (tombstones included); ``next``: where the next page starts (None: the end)."""

    keys: list
    records: list
    next: bytes | None

    def check(self) -> None:
        _check_rows(self.keys, self.records, "kv.scan_page")


@message("replica.scan")
class ReplicaScan(Message):
    """Coordinator -> replica: stored records with ``start <= storage key < end`` (``end`` None: to the end)."""

    keyspace: str
    start: bytes
    end: bytes | None
    limit: int


@message("replica.scan_page")
class ReplicaScanPage(Message):
    """Storage keys and their records as stored; ``full``: a limit stopped the page."""

    keys: list
    records: list
    full: bool

    def check(self) -> None:
        _check_rows(self.keys, self.records, "replica.scan_page")


def _check_failed(failed: list, what: str) -> None:
    for item in failed:
        if not (isinstance(item, list) and len(item) == 3 and type(item[0]) is int and type(item[1]) is str and type(item[2]) is str):
            raise ProtocolError(f"{what}: bad failure entry")


@message("replica.put_many")
class ReplicaPutMany(Message):
    """Coordinator -> replica: the ``replica.put`` of one loop turn, as ``[keyspace, key, record, hint_for]``.

    One message, one batch on the replica and one reply for many writes:
    per-message costs are paid once per turn, not once per write.
    """

    records: list

    def check(self) -> None:
        for item in self.records:
            if not (isinstance(item, list) and len(item) == 4 and type(item[0]) is str and type(item[1]) is bytes
                    and type(item[2]) is bytes and (item[3] is None or type(item[3]) is str)):
                raise ProtocolError("replica.put_many: bad record")


@message("replica.put_many_done")
class ReplicaPutManyDone(Message):
    """Which records of a ``replica.put_many`` failed, as ``[index, error code, message]`` (the rest are stored)."""

    failed: list

    def check(self) -> None:
        _check_failed(self.failed, "replica.put_many_done")


@message("replica.read_many")
class ReplicaReadMany(Message):
    """Coordinator -> replica: the ``replica.read`` of one loop turn, as ``[keyspace, key]``."""

    keys: list

    def check(self) -> None:
        for item in self.keys:
            if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is str and type(item[1]) is bytes):
                raise ProtocolError("replica.read_many: bad key")


@message("replica.records")
class ReplicaRecords(Message):
    """``records[i]``: the stored record of key i (None: nothing stored); ``failed`` as in ``replica.put_many_done``."""

    records: list
    failed: list

    def check(self) -> None:
        if not set(map(type, self.records)) <= {bytes, type(None)}:
            raise ProtocolError("replica.records: bad record")
        _check_failed(self.failed, "replica.records")


@message("kv.read_many")
class KvReadMany(Message):
    """Client -> replica: its stored records of ``keys`` (``[keyspace, key]``), for a quorum the client merges.

    ``ring`` is the digest of the ring the client placed the keys with and
    ``tables`` lists ``[keyspace, n, r, w, lww]`` as the client knows them: a
    node whose own ring or keyspaces differ answers ``Unavailable`` instead
    of records, and the client asks a coordinator (``kv.get``). The reply
    is ``replica.records``.
    """

    ring: bytes
    tables: list
    keys: list

    def check(self) -> None:
        _check_view(self.ring, self.tables, "kv.read_many")
        for item in self.keys:
            if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is str and type(item[1]) is bytes):
                raise ProtocolError("kv.read_many: bad key")


def _check_view(ring: bytes, tables: list, what: str) -> None:
    if len(ring) > 64:
        raise ProtocolError(f"{what}: bad ring digest")
    for t in tables:
        if not (isinstance(t, list) and len(t) == 5 and type(t[0]) is str and type(t[1]) is int
                and type(t[2]) is int and type(t[3]) is int and type(t[4]) is bool):
            raise ProtocolError(f"{what}: bad table")


@message("kv.written")
class KvWritten(Message):
    """Reply to a ``kv.put`` offering to copy it (``ring`` set): the coordinator stored ``record``; the client sends it to the other replicas."""

    record: bytes
    node: str
    #: the keyspace's N and the write's W as the coordinator knows them: the client counts copies by these
    n: int
    w: int


@message("kv.write_many")
class KvWriteMany(Message):
    """Client -> replica: merge these records (``[keyspace, key, record]``) written by a coordinator; ``ring`` and ``tables`` as in ``kv.read_many``.

    The reply is ``replica.put_many_done``.
    """

    ring: bytes
    tables: list
    records: list

    def check(self) -> None:
        _check_view(self.ring, self.tables, "kv.write_many")
        for item in self.records:
            if not (isinstance(item, list) and len(item) == 3 and type(item[0]) is str and type(item[1]) is bytes
                    and type(item[2]) is bytes):
                raise ProtocolError("kv.write_many: bad record")


@message("kv.replicate")
class KvReplicate(Message):
    """Client -> the coordinator of a write it could not copy to W replicas itself: copy ``record`` as a coordinator would (fallbacks, hints).

    The reply is ``kv.done``, or a ``QuorumError``.
    """

    keyspace: str
    key: bytes
    record: bytes
    w: int | None = None
