"""Typed wire messages.

Every message that crosses the network is a frozen dataclass registered under
a stable ``TYPE`` string. Its body on the wire is the list of its field values
in declaration order (compact, and msgpack-friendly). Decoding checks the
shape and the type of every field and raises :class:`ringkv.errors.ProtocolError`
for anything else: a decoder has one contract, decode or raise ProtocolError.

Field types understood by the checker: ``int``, ``float`` (ints accepted),
``str``, ``bytes``, ``bool``, ``list``, ``dict``, ``Any``, and ``X | None``
of those. Messages that carry nested structures validate them further in
``check()``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar, TypeVar

from ringkv.errors import ProtocolError

__all__ = ["Message", "message", "registry", "decode_body", "encode_body", "check_pairs"]

M = TypeVar("M", bound="Message")

_REGISTRY: dict[str, type["Message"]] = {}


def registry() -> dict[str, type["Message"]]:
    """All registered message classes by ``TYPE`` (read-only use)."""
    return _REGISTRY


class Message:
    """Base of all wire messages; subclasses are frozen dataclasses."""

    TYPE: ClassVar[str] = ""
    _checks: ClassVar[tuple] = ()
    #: fields without a default: a body may leave off the fields after these (a peer that predates them)
    _required: ClassVar[int] = 0
    #: defaults of the fields after those: a body leaves off the trailing ones its
    #: message does not change, so a peer that predates them still reads it
    _defaults: ClassVar[tuple] = ()

    def to_body(self) -> list:
        body = [getattr(self, f) for f in self.__dataclass_fields__]  # type: ignore[attr-defined]
        defaults = self._defaults
        if defaults:
            n = len(body)
            k = len(defaults)
            while k and body[n - 1] == defaults[k - 1] and type(body[n - 1]) is type(defaults[k - 1]):
                n -= 1
                k -= 1
            if n < len(body):
                del body[n:]
        return body

    @classmethod
    def from_body(cls: type[M], body: Any) -> M:
        checks = cls._checks
        if not isinstance(body, (list, tuple)) or not cls._required <= len(body) <= len(checks):
            raise ProtocolError(f"{cls.TYPE}: expected a list of {len(checks)} fields")
        for (name, allowed, optional), value in zip(checks, body):
            if value is None:
                if not optional:
                    raise ProtocolError(f"{cls.TYPE}.{name}: missing")
                continue
            if allowed is not None and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
                raise ProtocolError(f"{cls.TYPE}.{name}: expected {'/'.join(t.__name__ for t in allowed)}, got {type(value).__name__}")
        msg = cls(*body)
        msg.check()
        return msg

    def check(self) -> None:
        """Deeper validation of nested fields; raise ProtocolError."""


def check_pairs(items: Any, what: str, first: tuple = (bytes,), second: tuple = (bytes,)) -> None:
    """Validate a nested list of ``[first, second]`` pairs (ProtocolError otherwise)."""
    for it in items:
        if not (isinstance(it, list) and len(it) == 2 and isinstance(it[0], first) and isinstance(it[1], second)):
            raise ProtocolError(f"{what}: bad entry")


def _field_check(name: str, hint: Any) -> tuple[str, tuple | None, bool]:
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) != len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else Any
        origin = typing.get_origin(hint)
    base = origin or hint
    if base is Any:
        return name, None, optional
    if base is float:
        return name, (float, int), optional
    if base in (list, tuple):
        return name, (list, tuple), optional
    if base in (int, str, bytes, bool, dict):
        return name, (base,), optional
    raise TypeError(f"unsupported wire field type {hint!r} for {name}")


def message(type_name: str):
    """Class decorator: make a frozen dataclass and register it as ``type_name``."""

    def wrap(cls: type[M]) -> type[M]:
        cls = dataclasses.dataclass(frozen=True, slots=True)(cls)
        cls.TYPE = type_name
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)
        cls._checks = tuple(_field_check(f.name, hints[f.name]) for f in fields)
        cls._required = sum(1 for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        trailing = fields[cls._required:]
        if all(f.default is not dataclasses.MISSING for f in trailing):  # not for default_factory fields
            cls._defaults = tuple(f.default for f in trailing)
        if type_name in _REGISTRY:
            raise ValueError(f"duplicate wire message type {type_name!r}")
        _REGISTRY[type_name] = cls
        return cls

    return wrap


def encode_body(msg: Message) -> tuple[str, list]:
    """``(TYPE, body)`` ready for the envelope."""
    return msg.TYPE, msg.to_body()


def decode_body(type_name: Any, body: Any) -> Message:
    """Rebuild a registered message; ProtocolError for unknown types or bad bodies."""
    cls = _REGISTRY.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {type_name!r:.60}")
    try:
        return cls.from_body(body)
    except ProtocolError:
        raise
    except Exception as exc:  # a check() bug or odd value must still be a protocol error
        raise ProtocolError(f"{type_name}: {exc}") from None
