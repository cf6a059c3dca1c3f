"""Coercion and limits for user keys and values: the first line of defence.

Accepted: ``bytes`` (and ``bytearray``/``memoryview``) or ``str`` (stored as
UTF-8). Anything else is a :class:`~ringkv.errors.WrongType`; over the limit a
:class:`~ringkv.errors.TooLarge`; nothing is stored in either case.
"""

from __future__ import annotations

from ringkv.errors import BadRequest, TooLarge, WrongType

__all__ = ["as_key", "as_value", "as_optional_count", "check_timestamp"]


def _as_bytes(obj: object, what: str) -> bytes:
    t = type(obj)
    if t is bytes:
        return obj  # type: ignore[return-value]
    if t is str:
        try:
            return obj.encode("utf-8")  # type: ignore[union-attr]
        except UnicodeEncodeError:
            raise BadRequest(f"{what} is not encodable as UTF-8") from None
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, str):
        return str(obj).encode("utf-8")
    raise WrongType(f"{what} must be bytes or str, not {t.__name__}")


def as_key(key: object, limit: int) -> bytes:
    k = key if type(key) is bytes else _as_bytes(key, "key")
    if len(k) > limit:
        raise TooLarge(f"key is {len(k)} bytes; the limit is {limit}")
    return k  # type: ignore[return-value]


def as_value(value: object, limit: int) -> bytes:
    v = value if type(value) is bytes else _as_bytes(value, "value")
    if len(v) > limit:
        raise TooLarge(f"value is {len(v)} bytes; the limit is {limit}")
    return v  # type: ignore[return-value]


def as_optional_count(value: object, name: str, upper: int) -> int | None:
    """A per-call R or W: ``None`` (use the keyspace's) or 1..upper."""
    if value is None:
        return None
    if type(value) is not int:
        raise WrongType(f"{name} must be an int, not {type(value).__name__}")
    if not 1 <= value <= upper:
        raise BadRequest(f"{name}={value} is impossible: it must be between 1 and N={upper}")
    return value


def check_timestamp(timestamp: object) -> int:
    """A caller's event time (int milliseconds since the Unix epoch) as an HLC timestamp."""
    if type(timestamp) is not int:
        raise WrongType(f"timestamp must be int milliseconds since the epoch, not {type(timestamp).__name__}")
    if not 0 <= timestamp < 1 << 47:
        raise BadRequest(f"timestamp {timestamp} is out of range (milliseconds since the epoch)")
    return timestamp << 16
