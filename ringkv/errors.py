"""The one exception hierarchy of ringkv.

Every error a user can see is a :class:`RingKVError`. Errors also subclass the
builtin that a generic handler would expect (``BadRequest`` is a
``ValueError``, ``Timeout`` is a ``TimeoutError``...), so code that knows
nothing of ringkv still catches them.

Each class has a stable wire ``code``: a remote node's error is sent as
``(code, message, details)`` and re-raised on the caller's side as the same
class (see :func:`to_wire` / :func:`from_wire`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RingKVError",
    "BadRequest",
    "WrongType",
    "TooLarge",
    "AlreadyExists",
    "NotFound",
    "KeyspaceNotFound",
    "ConflictError",
    "Unavailable",
    "Timeout",
    "QuorumError",
    "CorruptRecord",
    "ProtocolError",
    "ClosedError",
    "to_wire",
    "from_wire",
]

_REGISTRY: dict[str, type["RingKVError"]] = {}


class RingKVError(Exception):
    """Base of every ringkv error."""

    code = "error"
    #: True when the same request may succeed if simply sent again.
    retriable = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        _REGISTRY[cls.code] = cls

    def details(self) -> dict:
        """Structured fields carried over the wire besides the message."""
        return {}


_REGISTRY[RingKVError.code] = RingKVError


class BadRequest(RingKVError, ValueError):
    """The caller sent something ringkv cannot accept (your fault, not ours)."""

    code = "bad_request"


class WrongType(BadRequest, TypeError):
    """An argument has the wrong type (e.g. an ``int`` key)."""

    code = "wrong_type"


class TooLarge(BadRequest):
    """A key, value or frame is over its configured size limit."""

    code = "too_large"


class AlreadyExists(BadRequest):
    """Creating something (a keyspace) that already exists."""

    code = "already_exists"


class NotFound(RingKVError, KeyError):
    """The thing asked for does not exist (where absence is an error).

    A ``KeyError`` (hence a ``LookupError``) so mapping-style code such as
    ``db[key]`` behaves as a dict would.
    """

    code = "not_found"

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class KeyspaceNotFound(NotFound):
    """No keyspace of that name."""

    code = "keyspace_not_found"


class ConflictError(RingKVError):
    """One value was asked for, but the key holds concurrent siblings.

    ``siblings`` holds all values; resolve them and put the result back with
    the read's context.
    """

    code = "conflict"

    def __init__(self, message: str = "", siblings: list | None = None) -> None:
        super().__init__(message or f"key has {len(siblings or [])} concurrent siblings")
        self.siblings = list(siblings or [])

    def details(self) -> dict:
        return {"siblings": self.siblings}


class Unavailable(RingKVError):
    """The store cannot serve the request right now (locked, closed peer, overloaded)."""

    code = "unavailable"
    retriable = True


class Timeout(RingKVError, TimeoutError):
    """A deadline passed before the request completed; its outcome is unknown."""

    code = "timeout"
    retriable = True


class QuorumError(Unavailable):
    """Fewer replicas than required answered.

    Nothing already written is undone: ``acks`` replicas may hold the write.
    """

    code = "quorum"

    def __init__(
        self,
        message: str = "",
        acks: int = 0,
        required: int = 0,
        failed: list | None = None,
    ) -> None:
        self.acks = int(acks)
        self.required = int(required)
        self.failed = list(failed or [])
        super().__init__(
            message
            or f"quorum not met: {self.acks} of {self.required} required replicas answered"
            + (f"; failed: {', '.join(map(str, self.failed))}" if self.failed else "")
        )

    def details(self) -> dict:
        return {"acks": self.acks, "required": self.required, "failed": self.failed}


class CorruptRecord(RingKVError):
    """Stored bytes could not be decoded as a ringkv record."""

    code = "corrupt_record"


class ProtocolError(RingKVError):
    """A peer sent a frame that breaks the wire protocol."""

    code = "protocol"


class ClosedError(RingKVError):
    """The database, node or client was closed by its owner."""

    code = "closed"


def to_wire(exc: BaseException) -> tuple[str, str, dict]:
    """Encode an exception as ``(code, message, details)`` for a reply frame."""
    if isinstance(exc, RingKVError):
        return exc.code, str(exc), exc.details()
    return RingKVError.code, f"{type(exc).__name__}: {exc}", {}


def from_wire(code: Any, message: Any, details: Any = None) -> RingKVError:
    """Rebuild the typed exception a remote node sent."""
    cls = _REGISTRY.get(code if isinstance(code, str) else "", RingKVError)
    message = message if isinstance(message, str) else repr(message)
    details = details if isinstance(details, dict) else {}
    try:
        if cls is QuorumError:
            return QuorumError(message, details.get("acks", 0), details.get("required", 0), details.get("failed"))
        if cls is ConflictError:
            return ConflictError(message, details.get("siblings"))
        return cls(message)
    except Exception:  # a malformed details dict must not hide the error itself
        return cls.__new__(cls)
