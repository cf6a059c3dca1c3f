"""The envelope: the versioned frame every ringkv message travels in.

Sans-IO: bytes in, bytes out; no sockets, no clocks.

A *frame* (one ZeroMQ message) is one msgpack array carrying a batch of
envelopes, so many messages to the same peer in one event-loop turn cost one
send and one receive::

    frame    = [PROTO_VERSION, [envelope, ...]]          (at least one envelope)
    envelope = [kind, request_id, type, budget_ms, body]

``kind``
    ``REQUEST`` (0) expects a reply; ``REPLY`` (1) answers one;
    ``ERROR`` (2) is a failed reply; ``ONEWAY`` (3) expects nothing.
``request_id``
    uint64 chosen by the requester, echoed by the reply; ``> 0`` for
    requests and replies, ``0`` for one-way messages.
``type``
    the registered message type (see :mod:`ringkv.wire`); for ``ERROR``
    the error code from :func:`ringkv.errors.to_wire`.
``budget_ms``
    the deadline, as a *relative* budget: milliseconds the sender will still
    wait, measured when the frame was sent (uint32), or nil for "none".
    Relative budgets need no clock agreement between nodes (the grpc-timeout
    choice); the receiver turns it into a local deadline on arrival, so time
    spent in the network and in the peer's socket buffers is not counted.
    Only requests and one-way messages carry one; replies carry nil.
``body``
    the message body (``Message.to_body()``); for ``ERROR``
    ``[message: str, details: map]``.

:func:`decode` checks everything above and raises
:class:`~ringkv.errors.ProtocolError` for anything else — random bytes,
truncated msgpack, trailing bytes, wrong field types (a bool where an int is
due), declared lengths larger than the frame, nesting deeper than msgpack's
stack, extension types, unknown versions or kinds. A whole frame is accepted
or refused; the error's ``salvage`` attribute lists the ``(kind,
request_id)`` pairs still readable in a refused frame, so a receiver can
answer the requests in it with an error instead of leaving them to time out.
Bodies are checked later, per envelope, by :func:`ringkv.wire.decode_body`,
so one message of a type this node does not know (a newer peer) fails alone.
"""

from __future__ import annotations

import struct
from typing import Any, Iterable, NamedTuple, NoReturn

import msgpack

from ringkv import wire
from ringkv.errors import BadRequest, ProtocolError, RingKVError, TooLarge, WrongType, from_wire, to_wire

__all__ = [
    "PROTO_VERSION",
    "REQUEST",
    "REPLY",
    "ERROR",
    "ONEWAY",
    "DEFAULT_MAX_SIZE",
    "Envelope",
    "Codec",
    "encode",
    "decode",
]

PROTO_VERSION = 1
REQUEST, REPLY, ERROR, ONEWAY = 0, 1, 2, 3
KINDS = (REQUEST, REPLY, ERROR, ONEWAY)
DEFAULT_MAX_SIZE = 64 * 1024 * 1024
MAX_TYPE_LEN = 128
MAX_BUDGET_MS = 2**32 - 1
_MAX_RID = 2**64 - 1
#: Bytes a frame adds around its envelopes: fixarray(2), version, array32 header.
FRAME_OVERHEAD = 7

_HEAD = struct.Struct(">BBBQ")  # fixarray(5), kind, uint64 marker, request id
_BUDGET = struct.Struct(">BI")  # uint32 marker, budget
_NIL = b"\xc0"


class Envelope(NamedTuple):
    """One decoded envelope; ``body`` is still raw msgpack data."""

    kind: int
    request_id: int
    type: str
    budget_ms: int | None
    body: Any

    def message(self) -> wire.Message:
        """The typed message of a request, reply or one-way envelope."""
        return wire.decode_body(self.type, self.body)

    def exception(self) -> RingKVError:
        """The typed exception an ``ERROR`` envelope carries."""
        return from_wire(self.type, self.body[0], self.body[1])

    @classmethod
    def request(cls, request_id: int, msg: wire.Message, budget_ms: int | None = None) -> "Envelope":
        return cls(REQUEST, request_id, msg.TYPE, budget_ms, msg.to_body())

    @classmethod
    def reply(cls, request_id: int, msg: wire.Message) -> "Envelope":
        return cls(REPLY, request_id, msg.TYPE, None, msg.to_body())

    @classmethod
    def error(cls, request_id: int, exc: BaseException) -> "Envelope":
        code, text, details = to_wire(exc)
        return cls(ERROR, request_id, code, None, [text, details])

    @classmethod
    def oneway(cls, msg: wire.Message, budget_ms: int | None = None) -> "Envelope":
        return cls(ONEWAY, 0, msg.TYPE, budget_ms, msg.to_body())


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed")


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


class Codec:
    """Packs envelopes and frames with one reused msgpack Packer.

    Not thread-safe: use one per thread / event loop (a Transport owns one).
    The hot path packs a body once (:meth:`pack_body`), adds the few header
    bytes (:meth:`part`) and joins parts into frames (:meth:`frames`).
    """

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if max_size < 64:
            raise ValueError("max_size must be at least 64 bytes")
        self.max_size = max_size
        self._pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack
        self._types: dict[str, bytes] = {}

    def pack_body(self, body: Any) -> bytes:
        """msgpack a body; unencodable values are the caller's bug (BadRequest)."""
        try:
            data = self._pack(body)
        except TypeError as exc:
            raise WrongType(f"cannot encode message body: {exc}") from None
        except (ValueError, OverflowError) as exc:  # big ints, bad unicode
            raise BadRequest(f"cannot encode message body: {exc}") from None
        if len(data) > self.max_size - 256:
            raise TooLarge(f"message body of {len(data)} bytes is over the {self.max_size}-byte frame limit")
        return data

    def part(self, kind: int, request_id: int, type_: str, budget_ms: int | None, body: bytes) -> bytes:
        """One encoded envelope from an already packed body."""
        t = self._types.get(type_)
        if t is None:
            if not isinstance(type_, str) or not 0 < len(type_) <= MAX_TYPE_LEN:
                raise BadRequest(f"bad message type {type_!r:.60}")
            t = self._pack(type_)
            if len(self._types) < 4096:
                self._types[type_] = t
        if budget_ms is None:
            return _HEAD.pack(0x95, kind, 0xCF, request_id) + t + _NIL + body
        return _HEAD.pack(0x95, kind, 0xCF, request_id) + t + _BUDGET.pack(0xCE, budget_ms) + body

    def envelope(self, env: Envelope) -> bytes:
        """Encode one :class:`Envelope` (checks its header fields)."""
        kind, rid, type_, budget, body = env
        if not isinstance(type_, str):
            raise BadRequest(f"bad message type {type_!r:.60}")
        if type(kind) is not int or kind not in KINDS or type(rid) is not int or not 0 <= rid <= _MAX_RID:
            raise BadRequest(f"bad envelope header {kind!r}, {rid!r}")
        if budget is not None and (type(budget) is not int or not 0 <= budget <= MAX_BUDGET_MS):
            raise BadRequest(f"bad budget {budget!r}")
        return self.part(kind, rid, type_, budget, self.pack_body(body))

    def frames(self, parts: list[bytes]) -> list[tuple[bytes, int]]:
        """Join encoded envelopes into as few frames as ``max_size`` allows.

        Returns ``(frame, number_of_envelopes)`` pairs, in order.
        """
        if len(parts) == 1:
            return [(self._frame(parts), 1)]
        limit = self.max_size - FRAME_OVERHEAD
        out: list[tuple[bytes, int]] = []
        start, size = 0, 0
        for i, p in enumerate(parts):
            if size + len(p) > limit and i > start:
                out.append((self._frame(parts[start:i]), i - start))
                start, size = i, 0
            size += len(p)
        if start < len(parts):
            out.append((self._frame(parts[start:] if start else parts), len(parts) - start))
        return out

    @staticmethod
    def _frame(parts: list[bytes]) -> bytes:
        return b"\x92\x01" + _array_header(len(parts)) + b"".join(parts)

    def decode(self, frame: bytes) -> list[Envelope]:
        return decode(frame, self.max_size)


def decode(frame: bytes, max_size: int = DEFAULT_MAX_SIZE) -> list[Envelope]:
    """Decode one frame into its envelopes, or raise ProtocolError."""
    n = len(frame)
    if n > max_size:
        raise ProtocolError(f"frame of {n} bytes is over the {max_size}-byte limit")
    try:
        obj = msgpack.unpackb(
            frame,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=n,
            max_bin_len=n,
            max_array_len=n,
            max_map_len=n // 2,
            max_ext_len=0,
            ext_hook=_refuse_ext,
        )
    except Exception as exc:  # msgpack raises ValueError subclasses, TypeError, UnicodeDecodeError...
        _fail(f"undecodable frame: {type(exc).__name__}: {exc}"[:200], _lenient_items(frame))
    if type(obj) is not list or len(obj) != 2:
        _fail("frame is not [version, envelopes]", None)
    version, items = obj
    if type(version) is not int or version != PROTO_VERSION:
        _fail(f"unsupported protocol version {version!r:.20}", None)
    if type(items) is not list or not items:
        _fail("frame carries no envelopes", None)
    out = []
    for item in items:
        if type(item) is not list or len(item) != 5:
            _fail("envelope is not a 5-item array", items)
        kind, rid, type_, budget, body = item
        if type(kind) is not int or kind not in KINDS:
            _fail(f"unknown envelope kind {kind!r:.20}", items)
        if type(rid) is not int or not 0 <= rid <= _MAX_RID or (rid == 0) != (kind == ONEWAY):
            _fail(f"bad request id {rid!r:.30}", items)
        if type(type_) is not str or not 0 < len(type_) <= MAX_TYPE_LEN:
            _fail(f"bad message type {type_!r:.60}", items)
        if budget is not None and (
            type(budget) is not int or not 0 <= budget <= MAX_BUDGET_MS or kind in (REPLY, ERROR)
        ):
            _fail(f"bad budget {budget!r:.30}", items)
        if kind == ERROR and (
            type(body) is not list or len(body) != 2 or type(body[0]) is not str or type(body[1]) is not dict
        ):
            _fail("error body is not [message, details]", items)
        out.append(Envelope(kind, rid, type_, budget, body))
    return out


def _lenient_items(frame: bytes) -> list | None:
    """The envelopes of a frame refused only for a map key that is not a string.

    The frame stays refused; reading it once more with any map keys allowed
    recovers its request ids, so those requests get an error back instead
    of a silent timeout. Same size limits; anything else still fails.
    """
    n = len(frame)
    try:
        obj = msgpack.unpackb(
            frame, raw=False, use_list=True, strict_map_key=False, max_str_len=n, max_bin_len=n,
            max_array_len=n, max_map_len=n // 2, max_ext_len=0, ext_hook=_refuse_ext,
        )
    except Exception:
        return None
    if type(obj) is list and len(obj) == 2 and type(obj[0]) is int and obj[0] == PROTO_VERSION and type(obj[1]) is list:
        return obj[1]
    return None


def _fail(reason: str, items: list | None) -> NoReturn:
    exc = ProtocolError(reason)
    exc.salvage = [  # type: ignore[attr-defined]
        (it[0], it[1])
        for it in items or ()
        if type(it) is list and len(it) >= 2 and type(it[0]) is int and it[0] in KINDS
        and type(it[1]) is int and 0 < it[1] <= _MAX_RID
    ]
    raise exc


def encode(envelopes: Envelope | Iterable[Envelope], max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """Encode one envelope or a batch into one frame (TooLarge if it does not fit)."""
    codec = Codec(max_size)
    if isinstance(envelopes, Envelope):
        envelopes = [envelopes]
    parts = [codec.envelope(e) for e in envelopes]
    if not parts:
        raise BadRequest("a frame needs at least one envelope")
    if sum(map(len, parts)) + FRAME_OVERHEAD > max_size:
        raise TooLarge(f"batch does not fit in one {max_size}-byte frame")
    return Codec._frame(parts)
